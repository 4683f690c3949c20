"""The Explanation checks tab: handlers, the /sanity endpoint through gradio_client, and the view in Chromium."""

from __future__ import annotations

import dataclasses
import shutil

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from bench.browser import chromium_page
from demo import analysis_panel as panel
from demo import app_state, explain_tab, feature_vis_view
from demo.model_cache import ModelCache
from resnet_core import create_model
from resnet_core.data import cifar10
from resnet_core.explain.saliency import FILLS
from resnet_core.explain.sanity import PATCHES, Protocol, SanityReport, sanity_check, separates

from .conftest import ROOT

SCREENSHOTS = ROOT / "screenshots"
CAT = next(path for path in sorted(cifar10.GALLERY_DIR.glob("cat_*.png")))


@pytest.fixture(autouse=True)
def cache():
    app_state.configure(ModelCache(capacity=3, device="cpu"))


def test_the_tab_reports_the_library_checks_with_their_protocol():
    strip, curves, verdict, numbers = explain_tab.check_explanation(str(CAT), "cifar10_resnet20", "DEFAULT")
    expected = sanity_check(create_model("cifar10_resnet20", weights="DEFAULT"), CAT).as_dict()
    assert numbers["deletion_auc"] == pytest.approx(expected["deletion_auc"])

    def without_time(steps: list[dict]) -> list[tuple]:
        return [(step["step"], step["spearman"], step["ssim"]) for step in steps]

    assert without_time(numbers["randomization"]) == without_time(expected["randomization"])
    assert [step["step"] for step in numbers["randomization"]] == ["head", "layer3", "layer2", "layer1", "stem"]
    assert numbers["randomization_seeds"] == expected["randomization_seeds"]  # the draws of the first two steps
    spread = numbers["randomization_seeds"][1]
    assert f"{spread['median_spearman']:.2f} (median of {len(spread['seeds'])} draws of the new weights" in verdict
    assert verdict.startswith("**Grad-CAM** of **cat**") and "gaussian-blurred copy" in verdict
    deletion_line = next(line for line in verdict.splitlines() if line.startswith("- Deletion"))
    assert f"AUC {numbers['deletion_auc']:.3f} against {numbers['random_deletion_auc']:.3f}" in deletion_line
    assert Image.open(strip).size[0] > 5 * Image.open(strip).size[1] / 2  # six maps side by side
    assert Image.open(curves).mode in ("RGB", "RGBA")


@pytest.fixture(scope="module")
def cat_report():
    return sanity_check(create_model("cifar10_resnet20", weights="DEFAULT"), CAT)


def figures(share: float, interval: tuple[float, float], better: str) -> dict:
    gap = {"mean": sum(interval) / 2, "ci95": list(interval), "images": 400}
    versus = {"beats_random": share, "gap_to_random": gap, "better": better, "valid_images": 400}
    return {**versus, "separates": separates(versus)}


def test_a_curve_gets_a_verdict_only_where_the_data_set_says_one_image_can_decide(cat_report, monkeypatch):
    """The four cases, from the same report: void for the image, figures that separate, figures that do not, none."""
    deletion, random = cat_report.deletion.auc, cat_report.random_deletion.auc
    entry = {"protocol": "default", "deletion": figures(0.9, (-0.2, -0.1), "lower")}
    monkeypatch.setattr(explain_tab, "verdict_table", lambda: {"cifar10_resnet20": [entry]})
    end = cat_report.deletion.probabilities[-1]
    classes = 10 if end <= 0.2 else 1  # a class count for which the image's protocol is valid (chance = 1/classes)
    line = explain_tab.curve_verdict(cat_report, "deletion", classes, "cifar10_resnet20")
    assert ("passes" in line) == (deletion < random) and "90% of the 400 valid images" in line
    entry["deletion"] = figures(0.54, (-0.05, 0.01), "lower")
    line = explain_tab.curve_verdict(cat_report, "deletion", classes, "cifar10_resnet20")
    assert "one image cannot decide" in line and "passes" not in line and "fails" not in line and "54%" in line
    void = explain_tab.curve_verdict(cat_report, "deletion", 10**6, "cifar10_resnet20")  # chance is tiny: void
    assert "protocol void for this image" in void and "says nothing of the map" in void
    other = explain_tab.curve_verdict(cat_report, "deletion", classes, "cifar10_resnet56")
    assert "no data-set figures for this network" in other
    patches = dataclasses.replace(cat_report.deletion, protocol=Protocol(patch=4))  # a protocol the table lacks
    with_patches = dataclasses.replace(cat_report, deletion=patches)
    assert "no data-set figures" in explain_tab.curve_verdict(with_patches, "deletion", classes, "cifar10_resnet20")
    assert separates(figures(0.8, (0.1, 0.3), "higher")) and not separates(figures(0.8, (-0.1, 0.3), "higher"))
    assert not separates(figures(0.7, (0.1, 0.3), "higher")) and not separates(figures(0.9, (0.1, 0.3), "lower"))


def test_the_shipped_table_covers_every_protocol_the_tab_offers():
    """Every shipped CIFAR-10 network has figures for each fill and patch side the tab offers, in both modes, and
    each separates flag follows from the figures beside it (the rule, not a copy)."""
    table = explain_tab.verdict_table()
    assert set(table) == {f"cifar10_resnet{depth}" for depth in (20, 32, 44, 56)}
    for network in table:
        for fill in FILLS:
            for patch in PATCHES:
                for mode in ("deletion", "insertion"):
                    versus = explain_tab.data_set_figures(network, Protocol(mode=mode, fill=fill, patch=patch))
                    assert versus is not None, (network, fill, patch, mode)
                    assert versus["separates"] == separates(versus) and 0 < versus["valid_share"] <= 1
                    units = f"{patch}x{patch} patches" if patch > 1 else "pixels"
                    filler = "gaussian-blurred" if fill == "blur" else "zeros"
                    assert units in versus["protocol"] and filler in versus["protocol"]


def test_the_randomization_verdict_reads_the_medians_interval(cat_report):
    """The line gives the median over the draws with its 95% interval and range; it passes where the interval lies
    below the bar, fails where it lies above, and is undecided where it holds the bar."""
    spread = cat_report.randomization_spread[1]
    median, low, high = spread.spearman_range()
    inside, outside = spread.median_interval()
    line = explain_tab.randomization_verdict(cat_report)
    draws = len(spread.seeds)
    assert (
        f"{median:.2f} (median of {draws} draws of the new weights, 95% interval {inside:.2f} to {outside:.2f}" in line
    )
    assert f"range {low:.2f} to {high:.2f}" in line and spread.step in line and draws in (10, 20, 30)

    def with_draws(*values: float | None) -> SanityReport:
        seeds = tuple(range(len(values)))
        drawn = dataclasses.replace(spread, seeds=seeds, spearman=values, ssim=(0.0,) * len(values))
        return dataclasses.replace(cat_report, randomization_spread=[cat_report.randomization_spread[0], drawn])

    ten = (0.1, -0.2, 0.4, 0.3, 0.2, 0.0, 0.1, 0.45, 0.2, 0.3)  # the interval x(2)..x(9) = [-0.0, 0.4]
    assert "; passes;" in explain_tab.randomization_verdict(with_draws(*ten))
    assert "**fails**" in explain_tab.randomization_verdict(with_draws(*(value + 0.6 for value in ten)))
    close = (0.1, 0.7, 0.2, 0.6, 0.55, 0.45, 0.3, 0.8, 0.52, 0.4)
    assert "**undecided** after 10 draws" in explain_tab.randomization_verdict(with_draws(*close))
    flat = explain_tab.randomization_verdict(with_draws(0.1, None, 0.2))
    assert "median of 3 draws of the new weights" in flat and "1 of 3 draws gave a constant map" in flat
    assert "constant in all 2 draws: passes" in explain_tab.randomization_verdict(with_draws(None, None))


@pytest.mark.slow
def test_untrained_networks_are_said_to_explain_nothing():
    *_, verdict, numbers = explain_tab.check_explanation(str(CAT), "cifar10_resnet20", "random init", "gradcam")
    first = verdict.splitlines()[0]
    assert "Untrained" in first and "these are random weights, so no map explains anything" in first
    assert numbers["arch"] == "cifar10_resnet20" and numbers["pretrained"] is False


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"method": "lime"}, "Unknown method 'lime'"),
        ({"fill": "noise"}, "Fill must be one of"),
        ({"arch": "resnet999"}, "Unknown architecture 'resnet999'"),
    ],
)
def test_bad_requests_are_one_sentence(arguments, message):
    request = {"image": str(CAT), "arch": "cifar10_resnet20", "weights": "DEFAULT", **arguments}
    with pytest.raises(gr.Error, match=message):
        explain_tab.check_explanation(**request)


@pytest.mark.slow
def test_sanity_through_gradio_client_and_in_a_browser(served_app, tmp_path, monkeypatch):
    url = served_app
    client = Client(url, verbose=False)
    strip, curves, verdict, numbers = client.predict(
        handle_file(str(CAT)), "cifar10_resnet20", "DEFAULT", "occlusion", 8, "blur", 4, api_name="/sanity"
    )
    assert numbers["method"] == "occlusion" and numbers["options"] == {"window": 8, "stride": 4}
    assert numbers["forward_passes"] == 50  # (32 - 8) / 4 + 1 = 7 positions per side, 49 windows, and the base
    assert "4x4 patches" in numbers["protocol"] and "**Occlusion** of **cat**" in verdict
    assert np.asarray(Image.open(strip)).ndim == 3 and Image.open(curves).size[0] > 0
    image, text = client.predict("cifar10_resnet20", "DEFAULT", "layer2", 3, 16, api_name="/visualize")
    assert Image.open(image).size == (224, 224) and "Channel 3 of layer2" in text
    if shutil.which("chromium") is None:
        return
    monkeypatch.chdir(tmp_path)
    playwright = pytest.importorskip("playwright.sync_api")
    SCREENSHOTS.mkdir(exist_ok=True)
    with chromium_page(url) as page:
        page.locator(f"#cifar10-examples img[src*='{CAT.name}']").click()  # switches to cifar10_resnet56
        playwright.expect(page.get_by_label("Depth / variant")).to_have_value("cifar10_resnet56", timeout=60_000)
        page.get_by_role("tab", name="Explanation checks").click()
        page.get_by_role("button", name="Run the checks").click()
        page.wait_for_function(
            "() => document.querySelector('#sanity-verdict')?.innerText.includes('Deletion: AUC')", timeout=180_000
        )
        page.wait_for_selector("#sanity-strip img", timeout=30_000)
        assert "cifar10_resnet56" in page.locator("#sanity-verdict").inner_text()
        page.screenshot(path=str(SCREENSHOTS / "explanation_checks.png"), full_page=True)
        # What the selected channel wants to see, in the Feature maps tab of the same session.
        page.get_by_role("tab", name="Feature maps").click()
        page.get_by_role("button", name="Optimise an image for this channel").first.click()
        page.wait_for_function(
            "() => document.querySelector('#feature-vis-text')?.innerText.includes('mean activation')",
            timeout=180_000,
        )
        page.wait_for_selector("#feature-vis img", timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "feature_visualization.png"), full_page=True)
        # The analysis as a download: a zip appears in the report box.
        page.get_by_role("button", name="Download this analysis (PNGs + JSON)").click()
        page.wait_for_function(
            "() => document.querySelector('#report-file')?.innerText.includes('.zip')", timeout=60_000
        )
        assert "Error" not in page.locator("body").inner_text()


def test_what_a_channel_wants_to_see_is_optimised_once_then_cached():
    image, text = feature_vis_view.visualize("cifar10_resnet20", "DEFAULT", "layer3.2", 5, 16)
    assert Image.open(image).size == (224, 224)  # the 32x32 result, enlarged with its pixels kept
    assert "Channel 5 of layer3.2 in cifar10_resnet20" in text and "16 steps of" in text
    again, text = feature_vis_view.visualize("cifar10_resnet20", "DEFAULT", "layer3.2", 5, 16)
    assert "from the cache" in text
    assert np.array_equal(np.asarray(Image.open(image)), np.asarray(Image.open(again)))
    # The Feature maps tab's pick: the network the tab analysed, the block (or the stage) and channel shown.
    *_, state = panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT")
    _, text = feature_vis_view.visualize_selected(state, "layer3", app_state.STAGE_OUTPUT, 5, 16)
    assert "Channel 5 of layer3 in cifar10_resnet20" in text
    with pytest.raises(gr.Error, match="has no layer 'layer4'"):
        feature_vis_view.visualize("cifar10_resnet20", "DEFAULT", "layer4", 0, 16)
    with pytest.raises(gr.Error, match="channels 0 to 63"):
        feature_vis_view.visualize("cifar10_resnet20", "DEFAULT", "layer3.2", 64, 16)
