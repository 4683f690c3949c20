"""The way in: what a first visit sees before scrolling, on a laptop and on a phone, and the guide it can close."""

from __future__ import annotations

import shutil

import pytest

from bench.browser import answer_to, chromium_page
from demo import layout
from resnet_core.data import cifar10

from .conftest import ROOT

SCREENSHOTS = ROOT / "screenshots"  # git-ignored: look at them after a run
CAT = next(iter(sorted(cifar10.GALLERY_DIR.glob("cat_*.png"))))
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed"),
]


def test_the_guide_names_only_the_tabs_there_are():
    full = layout.guide_text(layout.TABS)
    assert [tab.TITLE for tab, _ in layout.GUIDE if tab] == [tab.TITLE for tab in layout.TABS[:4]]  # in page order
    assert all(f"**{tab.TITLE}**" in full for tab, _ in layout.GUIDE if tab) and "5. " in full
    without_lab = layout.guide_text([tab for tab in layout.TABS if tab.TITLE != "Degradation lab"])
    assert "Degradation lab" not in without_lab and "4. " in without_lab and "5. " not in without_lab


def test_the_first_screen_has_the_way_in_and_a_guide_that_stays_closed(served_app):
    expect = pytest.importorskip("playwright.sync_api").expect
    SCREENSHOTS.mkdir(exist_ok=True)
    with chromium_page(served_app, height=1000) as page:
        expect(page.locator("#guide-close")).to_be_visible(timeout=30_000)
        expect(page.locator("#guide-text")).to_contain_text("New here?")
        page.wait_for_selector(f"#cifar10-examples img[src*='{CAT.name}']")
        page.screenshot(path=str(SCREENSHOTS / "first_screen_1400x1000.png"))
        analyze = page.locator("#analyze").bounding_box()
        assert analyze["y"] + analyze["height"] <= 1000, analyze  # Analyze whole on the first screen
        for examples in ("#cifar10-examples", "#digit-examples"):
            box = page.locator(f"{examples} img").first.bounding_box()
            assert box["y"] + box["height"] <= 1000, (examples, box)  # a first row of examples too
        page.locator("#guide-close").click()
        expect(page.locator("#guide-close")).to_be_hidden()
        page.reload()
        page.wait_for_selector("#analyze")
        page.wait_for_timeout(1500)  # the page's load event has run
        expect(page.locator("#guide-close")).to_be_hidden()


def test_on_a_phone_a_tapped_examples_answer_is_scrolled_into_view(served_app):
    pytest.importorskip("playwright.sync_api")
    with chromium_page(served_app, width=390, height=844) as page:
        page.wait_for_selector("#guide-close", state="visible", timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "first_screen_390x844.png"))
        example = page.locator(f"#cifar10-examples img[src*='{CAT.name}']")
        example.scroll_into_view_if_needed()
        answer_to(page, "#predictions", example.click, "cat (3)")
        page.wait_for_timeout(500)
        box = page.locator("#predictions").bounding_box()  # relative to the viewport
        assert box["y"] >= -1 and box["y"] < 844, box  # its top on the screen
        page.screenshot(path=str(SCREENSHOTS / "phone_390x844_answer.png"))
