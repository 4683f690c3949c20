"""A click on a picture lands on the unit or channel under it, in a real browser, whatever size the page shows it at:
the 32 px CIFAR-10 crop, a grid of four channels, and a 224 px ImageNet crop."""

from __future__ import annotations

import shutil

import pytest

from bench.browser import answer_to, chromium_page, pixel_on_screen
from resnet_core import create_model
from resnet_core.data import cifar10
from resnet_core.explain.analysis import analyze
from resnet_core.render import enlargement, feature_grid

from .conftest import PHOTOS, ROOT, pick_untrained_resnet18

SCREENSHOTS = ROOT / "screenshots"  # git-ignored: look at them after a run
CAT = next(iter(sorted(cifar10.GALLERY_DIR.glob("cat_*.png"))))
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]


def _value(page, selector: str) -> str:
    return page.locator(f"{selector} input").first.input_value()


def _click_channels(page, result, name: str) -> None:
    """Four channels shown: each tile clicked at its centre selects the channel drawn there."""
    page.get_by_role("tab", name="Feature maps").click()
    shown_count = page.locator("#feature-channels input[type=number]")
    shown_count.fill("4")
    shown_count.press("Enter")
    small = (
        "() => { const i = document.querySelector('#feature-grid img');"
        " return i && i.complete && i.naturalWidth > 0 && i.naturalWidth < 400; }"
    )
    page.wait_for_function(small, timeout=60_000)  # the grid of four (32 channels: 468 px)
    page.wait_for_timeout(300)
    stage = _value(page, "#feature-stage")
    grid, order = feature_grid(result.stages[stage], 4, "mean")
    k = page.locator("#feature-grid img").evaluate("img => img.naturalWidth") / grid.shape[1]
    for index, channel in enumerate(order):
        row, col = divmod(index, 2)
        x, y = k * (2 + col * 58 + 28), k * (2 + row * 58 + 28)  # the tile's centre (56 px cells, 2 px gutters)
        page.locator("#feature-grid img").click(position=pixel_on_screen(page, "#feature-grid img", x, y))
        page.wait_for_function(
            f"() => document.querySelector('#feature-channel input').value === '{channel}'", timeout=60_000
        )
    page.locator("#feature-grid").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / f"channel_click_4_tiles_{name}.png"))


def _click_units(page, expect, result, name: str) -> None:
    """Units near the corners and the middle of the stage's map, each clicked at its centre on screen; the row and
    column boxes must name it, and the field pictures show it."""
    page.get_by_role("tab", name="Network map").click()
    expect(page.locator("#field-units img")).to_have_count(1, timeout=60_000)
    width, height = result.crop.size
    shown = enlargement(max(width, height))  # the page's enlargement of this analysis's crop
    # This analysis's map, loaded (not the previous network's, nor one still downloading after a click).
    ready = (
        "() => { const i = document.querySelector('#field-units img');"
        f" return i && i.complete && i.naturalWidth === {width * shown}; }}"
    )
    page.wait_for_function(ready, timeout=60_000)
    stage = _value(page, "#field-stage")
    rows, cols = result.stages[stage].shape[-2:]
    for row, col in ((5, cols - 6), (1, 1), (rows - 2, 2), (rows // 2, cols // 2)):
        page.wait_for_function(ready, timeout=60_000)
        x, y = (col + 0.5) * width / cols * shown, (row + 0.5) * height / rows * shown  # the unit's centre
        page.locator("#field-units img").click(position=pixel_on_screen(page, "#field-units img", x, y))
        page.wait_for_function(
            f"() => document.querySelector('#field-row input').value === '{row}'"
            f" && document.querySelector('#field-col input').value === '{col}'",
            timeout=60_000,
        )
    expect(page.locator("#field-text")).to_contain_text(f"({rows // 2}, {cols // 2})", timeout=60_000)
    expect(page.locator("#field-network img")).to_have_count(1, timeout=60_000)
    page.wait_for_timeout(500)  # the outlined map's download
    boxes = [page.locator(selector).bounding_box() for selector in ("#field-stage", "#field-twin")]
    scrolled = page.evaluate("window.scrollY")  # bounding boxes are in the viewport, a full-page clip in the page
    top, bottom = boxes[0]["y"] + scrolled, boxes[1]["y"] + boxes[1]["height"] + scrolled
    page.screenshot(path=str(SCREENSHOTS / f"unit_click_{name}.png"), full_page=True,
                    clip={"x": 0, "y": top - 10, "width": 1400, "height": bottom - top + 20})  # fmt: skip


def test_clicks_land_on_the_unit_and_channel_under_them(served_app):
    expect = pytest.importorskip("playwright.sync_api").expect
    SCREENSHOTS.mkdir(exist_ok=True)
    with chromium_page(served_app, height=1000) as page:
        # The 32 px CIFAR-10 crop on the trained cifar10_resnet56 (the app opens on it here, offline).
        page.set_input_files("#photo input[type=file]", str(CAT))
        answer_to(page, "#predictions", page.get_by_role("button", name="Analyze").click, "cat (3)")
        result = analyze(create_model("cifar10_resnet56", weights="DEFAULT"), CAT)
        _click_channels(page, result, "cifar10_32px")
        _click_units(page, expect, result, "cifar10_32px")

        # A 224 px crop: resnet18, untrained (the published weights would be downloaded on a laptop).
        page.get_by_role("tab", name="Feature maps").click()
        pick_untrained_resnet18(page)
        page.set_input_files("#photo input[type=file]", str(PHOTOS / "coffee.png"))
        page.wait_for_timeout(500)
        model = create_model("resnet18", weights=None)
        result = analyze(model, PHOTOS / "coffee.png")
        top = f"{result.topk[0][1]} ({result.topk[0][0]})"
        answer_to(page, "#predictions", page.get_by_role("button", name="Analyze").click, top)
        page.get_by_role("tab", name="Feature maps").click()
        _click_channels(page, result, "imagenet_224px")
        _click_units(page, expect, result, "imagenet_224px")
        assert "Error" not in page.locator("body").inner_text()
