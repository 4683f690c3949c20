"""The Residuals tab's evidence split: the handler against the library, through gradio_client, in Chromium."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file

from bench.browser import chromium_page
from demo import analysis_panel as panel
from demo import app_state, residuals_tab
from demo.catalog import RANDOM_INIT
from demo.model_cache import ModelCache
from resnet_core.data import cifar10
from resnet_core.explain.evidence import evidence_split
from resnet_core.render import evidence_maps

from .conftest import ROOT, read_png

SCREENSHOTS = ROOT / "screenshots"
CAT = next(path for path in sorted(cifar10.GALLERY_DIR.glob("cat_*.png")))


@pytest.fixture()
def cache():
    models = ModelCache(capacity=3, device="cpu")
    app_state.configure(models)
    return models


def test_the_view_shows_the_librarys_split_for_the_tabs_class(cache, photos):
    *_, state = panel.analyze_image(str(CAT), "cifar10_resnet56", "DEFAULT", chart=False)
    summary, figure, picker, branch, shortcut = residuals_tab.evidence_views(state, "layer2.0")
    model = cache.get("cifar10_resnet56", "DEFAULT").model
    expected = evidence_split(model, CAT)
    assert expected.class_index == state["cam_class"] == 3  # the class Grad-CAM explains: the top-1, cat
    # The chart draws the library's numbers: one shortcut bar and one branch bar per block.
    (axes,) = figure.axes
    heights = [bar.get_height() for bar in axes.patches]
    assert heights == pytest.approx([e.shortcut for e in expected.blocks] + [e.branch for e in expected.blocks])
    assert f"{len(expected.through_shortcut())} of 27 blocks" in summary and "cat" in summary
    assert picker["value"] == "layer2.0" and picker["choices"] == model.block_names()
    want_branch, want_shortcut = evidence_maps(expected, "layer2.0")
    assert (read_png(branch) == want_branch).all() and (read_png(shortcut) == want_shortcut).all()
    # Computed once per analysis and class: a second block reuses the stored split.
    stored = app_state.results().get(state["token"])
    assert list(stored.evidence) == [3]
    assert residuals_tab.evidence_views(state, None)[2]["value"] == "layer3.8"  # default: the last block
    assert list(stored.evidence) == [3] and residuals_tab.evidence_views(None, None)[0] is not None


def test_a_plain_network_says_everything_is_in_the_branch(cache, photos):
    *_, state = panel.analyze_image(str(photos / "chelsea.png"), "plain18", RANDOM_INIT, chart=False)
    summary, *_ = residuals_tab.evidence_views(state, None)
    assert "plain network has no shortcuts" in summary and "random weights" not in summary.split("plain")[0]


@pytest.mark.browser
def test_through_gradio_client_and_in_chromium(served_app):
    """/analyze then /evidence in one client session equal the library; in Chromium, opening the Residuals tab
    after an analysis fills the evidence view, and picking a block redraws its maps."""
    expect = pytest.importorskip("playwright.sync_api").expect
    url = served_app
    client = Client(url, verbose=False)
    client.predict(handle_file(str(CAT)), "cifar10_resnet20", "DEFAULT", api_name="/analyze")
    summary, _, picker, branch, shortcut = client.predict("layer3.1", api_name="/evidence")
    expected = evidence_split(app_state.models().get("cifar10_resnet20", "DEFAULT").model, CAT)
    assert picker["value"] == "layer3.1" and f"{len(expected.through_shortcut())} of 9 blocks" in summary
    want_branch, want_shortcut = evidence_maps(expected, "layer3.1")
    assert (read_png(branch) == want_branch).all() and (read_png(shortcut) == want_shortcut).all()

    with chromium_page(url) as page:
        page.set_input_files("#photo input[type=file]", str(CAT))
        page.get_by_role("button", name="Analyze").click()
        expect(page.locator("#predictions")).to_contain_text("cat (3)", timeout=120_000)
        page.get_by_role("tab", name="Residuals").click()
        expect(page.locator("#evidence-summary")).to_contain_text("blocks pass most", timeout=60_000)
        expect(page.locator("#evidence-branch img")).to_have_count(1, timeout=60_000)
        before = page.locator("#evidence-branch img").get_attribute("src")
        page.locator("#evidence-block input").click()
        page.get_by_role("option", name="layer2.0", exact=True).click()
        expect(page.locator("#evidence-branch img")).not_to_have_attribute("src", before, timeout=60_000)
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "residuals_evidence.png"), full_page=True)
        assert "Error" not in page.locator("body").inner_text()
