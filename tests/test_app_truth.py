"""The app tells the truth on every screen: charts draw their data, results never mix two requests or go stale
unmarked, an untrained network is marked in every output, and no text shows the server's file system."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
import threading
import urllib.request
import zipfile

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from bench.browser import chromium_page
from demo import analysis_panel as panel
from demo import (
    analysis_views,
    app_state,
    compare_tab,
    cost_tab,
    degradation_tab,
    explain_tab,
    gradcam_tab,
    live_tab,
    report,
)
from demo.catalog import RANDOM_INIT
from demo.image_outputs import figure_path
from demo.model_cache import ModelCache
from resnet_core import WEIGHTS, create_model
from resnet_core.data import cifar10
from resnet_core.explain.analysis import analyze
from resnet_core.hooks import forward_hooks
from resnet_core.render import cam_overlay, feature_grid

from .conftest import ROOT, read_png

SCREENSHOTS = ROOT / "screenshots"
CAT = next(path for path in sorted(cifar10.GALLERY_DIR.glob("cat_*.png")))
DEPTH_PRESET = "depth (CIFAR-10, trained)"
DEAD = "cifar10_resnet32.akamaster"
# An absolute path: a slash that starts a word (not a URL's "//", not "1/2"), then at least one named segment.
ABSOLUTE_PATH = re.compile(r"(?<![\w.~$:/<])/[\w.-]+(/[\w.-]+)*")


@pytest.fixture()
def cache():
    models = ModelCache(capacity=3, device="cpu")
    app_state.configure(models)
    return models


@pytest.fixture()
def dead_weights(tmp_path, monkeypatch):
    """cifar10_resnet32's published weights, unavailable by construction on any machine: not shipped under this
    file name, and its URL a file:// address of nothing."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    gone = (tmp_path / "gone" / "resnet32-0badf11e.th").as_uri()
    monkeypatch.setitem(WEIGHTS, DEAD, dataclasses.replace(WEIGHTS[DEAD], url=gone, shipped=None))
    return DEAD


def pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# ---- charts draw their data ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_residual_chart_draws_one_bar_per_block_of_the_analysis(cache):
    *_, chart, summary, state = panel.analyze_image(str(CAT), "cifar10_resnet56", "DEFAULT")
    result = app_state.results().get(state["token"]).result
    (axes,) = chart.axes
    assert [bar.get_height() for bar in axes.patches] == pytest.approx(
        [stats.residual_ratio for stats in result.blocks.values()]
    )
    assert len(axes.patches) == 27 and "27 of 27 blocks" in summary
    colours = {bar.get_facecolor() for bar in axes.patches}
    assert len(colours) == 3  # coloured by stage: layer1, layer2, layer3
    assert pixels(figure_path(chart)).std() > 0


def test_branches_that_output_zero_are_explained_not_shown_as_an_empty_chart():
    """Zero-initialised residuals (every block's last BN scale and shift zero): the branches output nothing, the
    chart's bars have no height, and the summary says why instead of 'median ratio 0.00'."""

    model = create_model("cifar10_resnet20", weights=None)
    with torch.no_grad():
        for name in model.block_names():
            for part in ("bn2.weight", "bn2.bias"):
                model.get_parameter(f"{name}.{part}").zero_()
    summary = analysis_views.residual_summary(analyze(model, CAT))
    assert summary.startswith("Every residual branch outputs exactly zero on this photo (ratio 0 in all 9 blocks)")
    assert "median ratio" not in summary and "zero_init_residual" in summary
    with torch.no_grad():
        model.get_parameter("layer3.2.bn2.weight").fill_(1.0)  # one branch back
    summary = analysis_views.residual_summary(analyze(model, CAT))
    assert "In 8 block(s) the branch outputs exactly zero" in summary


@pytest.mark.slow
def test_compare_chart_draws_one_named_line_per_network(cache):
    archs = ["cifar10_resnet20", "cifar10_resnet56", "digits_plain56"]
    *_, chart, _, payload = compare_tab.compare_networks(str(CAT), archs)
    (axes,) = chart.axes
    lines = {line.get_label(): line for line in axes.lines if not line.get_label().startswith("_")}
    assert set(lines) == {"cifar10_resnet20", "cifar10_resnet56"}  # a plain net has no shortcut: no line
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["cifar10_resnet20", "cifar10_resnet56"]
    for column in payload["networks"][:2]:
        line = lines[column["arch"]]
        assert list(line.get_ydata()) == pytest.approx(list(column["residual_ratios"].values()))
        assert list(line.get_xdata()) == list(range(1, len(column["residual_ratios"]) + 1))  # numbered from the input
    assert pixels(figure_path(chart)).std() > 0


@pytest.mark.slow
def test_png_charts_are_not_blank():
    charts = [degradation_tab.reference_view()[0], degradation_tab.gradient_view()]
    *charts_of_checks, _, _ = explain_tab.check_explanation(str(CAT), "cifar10_resnet20", "DEFAULT")
    for path in [*map(figure_path, charts), *charts_of_checks]:
        assert pixels(path).std() > 0, path


# ---- one request never sees another's tensors ---------------------------------------------------------------------


@pytest.mark.slow
def test_retargeting_waits_for_an_analysis_of_the_same_model(cache, photos):
    """Thread A analyses a photo and is held inside its forward pass, hooks registered; thread B re-targets the
    Grad-CAM of another analysis of the same model meanwhile. B must wait for A: each gets what it gets alone."""
    coffee, chelsea = str(photos / "coffee.png"), str(photos / "chelsea.png")
    *_, state_b = panel.analyze_image(coffee, "resnet18", RANDOM_INIT)
    model = cache.get("resnet18", RANDOM_INIT).model
    alone_a, alone_b = analyze(model, chelsea), analyze(model, coffee)
    inside_a, b_finished = threading.Event(), threading.Event()

    def hold_a(module, args, output):  # at the classifier: A has recorded every stage, its hooks are still on
        if threading.current_thread().name == "A" and not inside_a.is_set():
            inside_a.set()
            b_finished.wait(timeout=1.0)  # B gets a second to run in the middle of A, if nothing stops it

    outputs = {}

    def run_a():
        outputs["a"] = panel.analyze_image(chelsea, "resnet18", RANDOM_INIT)

    def run_b():
        inside_a.wait(timeout=30)
        outputs["b"] = gradcam_tab.retarget_cam(state_b, "7", "layer3", 0.5)
        b_finished.set()

    with forward_hooks(model, [("fc", hold_a)]):
        threads = [threading.Thread(target=run_a, name="A"), threading.Thread(target=run_b, name="B")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    stored_a = app_state.results().get(outputs["a"][-1]["token"]).result
    for stage, tensor in alone_a.stages.items():
        assert torch.equal(stored_a.stages[stage], tensor), stage
    assert np.array_equal(read_png(outputs["a"][3]), feature_grid(alone_a.stages["layer4"], 32)[0])
    assert np.array_equal(read_png(outputs["a"][4]), cam_overlay(alone_a.crop, alone_a.cam, 0.5))
    assert np.array_equal(read_png(outputs["b"][0]), cam_overlay(alone_b.crop, alone_b.cam_for(7, "layer3"), 0.5))


def test_a_small_network_runs_on_one_thread_and_a_large_one_on_all(photos):
    """A 32 px network's layers are too small to split: it runs on one thread (2.1x faster for a feature
    visualisation here), in this request's thread only; an ImageNet network keeps every thread."""
    models = ModelCache(capacity=2, device="cpu")
    before = torch.get_num_threads()
    seen = {}
    for arch, weights in (("cifar10_resnet20", "cifar10_resnet20.akamaster"), ("resnet18", RANDOM_INIT)):
        with models.using(arch, weights):
            seen[arch] = torch.get_num_threads()
        assert torch.get_num_threads() == before  # restored
    assert seen == {"cifar10_resnet20": 1, "resnet18": before}


def test_stored_analyses_do_not_keep_their_model(cache, photos):
    *_, state = panel.analyze_image(str(photos / "coffee.png"), "resnet18", RANDOM_INIT)
    stored = app_state.results().get(state["token"]).result
    assert stored._model is None  # the model cache alone decides which networks stay in memory
    with pytest.raises(ValueError, match="no longer holds its model"):
        stored.cam_for(3)
    # The library's own result keeps its model, so result.cam_for(...) works as the README shows.
    result = analyze(cache.get("resnet18", RANDOM_INIT).model, photos / "coffee.png")
    assert result.cam_for(3).shape == (224, 224)


# ---- untrained is said everywhere, and the same photo gets the same answer -----------------------------------------


@pytest.mark.slow
def test_random_init_is_seeded_so_a_photo_gets_the_same_answer_twice(photos):
    first, second = create_model("resnet18"), create_model("resnet18")
    assert all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    create_model("resnet18")
    assert torch.equal(torch.rand(3), before)  # the caller's generator is left as it was
    answers = []
    for _ in range(2):
        app_state.configure(ModelCache(capacity=1, device="cpu"))  # a fresh cache builds the network again
        answers.append(panel.analyze_image(str(photos / "chelsea.png"), "resnet18", RANDOM_INIT)[0])
    assert answers[0] == answers[1]


def test_outputs_that_overflowed_say_so_and_where(photos):
    """An untrained cifar10_resnet1202 gave NaN probabilities shown as 0% with no word why. Here a block made to
    overflow float32 (its last convolution and BN scaled by 1e30 each): the result names the first block whose
    activations are no longer numbers, and the status says so in one sentence."""
    from demo.catalog import LoadedModel

    model = create_model("cifar10_resnet20", weights=None)
    trained = analyze(model, CAT)
    assert trained.overflow is None and "not numbers" not in panel.status_text(trained, LoadedModel(model, "ok."))
    with torch.no_grad():
        model.get_submodule("layer2.1.conv2").weight.mul_(1e30)
        model.get_submodule("layer2.1.bn2").weight.mul_(1e30)
    result = analyze(model, CAT)
    assert result.overflow == "layer2.1" and not torch.isfinite(result.probabilities).any()
    status = panel.status_text(result, LoadedModel(model, "ok."))
    assert "**Its outputs are not numbers:** the activations overflowed float32 from layer2.1 on" in status
    assert "an untrained network of 9 blocks" in status


def test_a_ten_class_network_on_a_photo_unlike_its_data_says_100_percent_is_not_certainty(cache, photos):
    """A cat photo on the digit net: the answer is one of ten digits, said with near-certainty; the status says what
    that is worth. A CIFAR-10 test image on the CIFAR-10 net, and any photo on an ImageNet net: no such sentence."""
    label, status, *_ = panel.analyze_image(str(photos / "chelsea.png"), "digits_resnet56", "DEFAULT")
    assert next(iter(label)).split()[0] in "0123456789"  # a cat, called a digit
    assert "**digits_resnet56 knows only its 10 classes** and must call every image one of them" in status
    assert "unlike its 28x28 training images, even 100% is not certainty" in status
    _, status, *_ = panel.analyze_image(str(CAT), "cifar10_resnet56", "DEFAULT")
    assert "knows only" not in status
    _, status, *_ = panel.analyze_image(str(photos / "chelsea.png"), "resnet18", RANDOM_INIT)
    assert "knows only" not in status


@pytest.mark.slow
def test_weights_that_fail_to_load_are_marked_in_every_output(cache, dead_weights, photos, page):
    chelsea = str(photos / "chelsea.png")
    _, status, *_, chart, summary, state = panel.analyze_image(chelsea, "cifar10_resnet32", dead_weights)
    assert "UNTRAINED" in status and "could not be loaded" in status
    assert "<details>" in status and "To fix" in status.split("<details>")[1]  # the operator's part, collapsed
    after = page.after(state)
    facts, caption = after["facts"], after["cam_caption"]
    assert facts.startswith(f"**{dead_weights} could not be loaded: this network runs untrained.**")
    assert "UNTRAINED" in caption and "the map means nothing" in caption
    assert "UNTRAINED" in chart.axes[0].get_title() and "random weights" in summary
    *_, verdict, numbers = explain_tab.check_explanation(chelsea, "cifar10_resnet32", dead_weights)
    assert "Untrained" in verdict.splitlines()[0] and numbers["pretrained"] is False
    assert "trained one" not in verdict
    frame = np.asarray(Image.open(chelsea).convert("RGB"))
    *_, rate, _ = live_tab.live_frame(frame, "cifar10_resnet32", dead_weights, None)
    assert "UNTRAINED" in rate


def test_comparisons_say_above_the_results_which_weights_they_could_not_load(cache, dead_weights, photos):
    *_, summary, payload = compare_tab.compare_networks(
        str(photos / "chelsea.png"), ["cifar10_resnet32", "cifar10_resnet20"], f"{dead_weights}, {RANDOM_INIT}"
    )
    first = summary.split("\n\n")[0]
    assert first.startswith("**Warning:**") and f"{dead_weights} could not be loaded" in first
    assert "cifar10_resnet20" not in first  # random init was asked for: nothing to warn about
    assert "All of these networks are untrained" in summary and "agree closely" not in summary
    assert [column["pretrained"] for column in payload["networks"]] == [False, False]


def test_the_depth_preset_runs_four_trained_networks_offline(cache, torch_home):
    archs, _ = compare_tab.on_preset(DEPTH_PRESET)
    *_, summary, payload = compare_tab.compare_networks(str(CAT), archs)
    assert [column["pretrained"] for column in payload["networks"]] == [True] * 4
    assert [column["source"].split(":")[0] for column in payload["networks"]] == ["shipped with ResNet Explorer"] * 4
    assert "Warning" not in summary and "untrained" not in summary


# ---- no click order sends a network's name with another's weights ------------------------------------------------


def test_analyze_settles_weights_left_over_from_the_previous_network(cache):
    label, status, *_, state = panel.analyze_image(str(CAT), "cifar10_resnet20", "cifar10_resnet56.akamaster")
    assert state["weights"] == "cifar10_resnet20.akamaster" and "used cifar10_resnet20.akamaster" in status
    assert next(iter(label)).startswith("cat")
    with pytest.raises(gr.Error, match="has no weights named 'v9'"):
        panel.analyze_image(str(CAT), "cifar10_resnet20", "v9")  # a name no network has is still an error


def test_a_new_network_starts_at_its_own_last_stage(cache, photos, page):
    *_, cifar = panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT")
    assert cifar["cam_layer"] == "layer3"
    # The pickers still show the CIFAR net's last stage: for resnet18 that is not the last one, nor was it chosen.
    outputs = panel.analyze_image(str(CAT), "resnet18", RANDOM_INIT, 5, "layer3", "layer3", previous=cifar)
    assert outputs[-1]["cam_layer"] == "layer4"
    block = page.after(outputs[-1])["block"]
    assert block["choices"][1:] == ["layer4.0", "layer4.1"]
    same = panel.analyze_image(str(CAT), "resnet18", RANDOM_INIT, 5, "layer2", "layer2", previous=outputs[-1])
    assert same[-1]["cam_layer"] == "layer2"  # the same network: the picks are the user's


def test_results_are_marked_stale_once_the_photo_or_network_changes(cache, photos, page):
    *_, state = panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT")
    assert panel.mark_stale(None, str(CAT), "resnet50") == ""  # nothing on screen yet
    assert panel.mark_stale(state, state["image"], "cifar10_resnet20") == ""
    photo = panel.mark_stale(state, {"path": str(photos / "coffee.png")}, "cifar10_resnet20")
    assert "The photo changed" in photo and CAT.name in photo and "Analyze" in photo
    assert "The photo and network changed" in panel.mark_stale(state, str(photos / "coffee.png"), "resnet50")
    assert page.after(state)["stale"] == ""  # a finished analysis clears the notice


# ---- the app starts on a network that works -------------------------------------------------------------------------


def test_offline_the_app_starts_on_a_trained_network_and_says_why(torch_home, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty Hugging Face cache
    monkeypatch.delenv("RESNET_EXPLORER_WEIGHTS", raising=False)
    arch, note = app_state.start_network()
    assert arch == "cifar10_resnet56" and note.count(". ") == 0 and "resnet50" in note
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / WEIGHTS["resnet50.tv2_in1k"].file_name).write_bytes(b"x")  # found by name; nothing is read
    assert app_state.start_network() == ("resnet50", "")


# ---- no server path in any text the app produces --------------------------------------------------------------------


def texts(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in texts(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in texts(item)]
    return []


@pytest.mark.slow
def test_no_text_output_names_a_server_path(cache, dead_weights, tmp_path, monkeypatch, photos, page):
    folder = tmp_path / "my weights"
    folder.mkdir()
    torch.save(create_model("resnet34").state_dict(), folder / "resnet34.tv_in1k.pth")
    monkeypatch.setenv("RESNET_EXPLORER_WEIGHTS", str(folder))
    shown = []
    for arch, weights in (("cifar10_resnet20", "DEFAULT"), ("cifar10_resnet32", dead_weights), ("resnet34", "DEFAULT")):
        _, status, *_, summary, state = panel.analyze_image(str(photos / "chelsea.png"), arch, weights)
        shown += [
            status,
            summary,
            *texts(page.words(page.after(state))),
            cost_tab.cost_views(arch, weights)[0],
        ]
        with zipfile.ZipFile(report.analysis_report(state)) as archive:
            shown.append(archive.read("analysis.json").decode())
    assert any("local folder" in text and "resnet34.tv_in1k.pth" in text for text in shown)  # which file, not where
    _, table, _, summary, payload = compare_tab.compare_networks(
        str(photos / "chelsea.png"), ["cifar10_resnet20", "cifar10_resnet32"], f"DEFAULT, {dead_weights}"
    )
    shown += [summary, json.dumps(payload), table.to_csv()]
    with pytest.raises(gr.Error) as refused:
        panel.analyze_image(str(tmp_path / "missing.png"), "cifar10_resnet20", "DEFAULT")
    shown.append(str(refused.value))
    found = [match.group(0) for text in shown for match in ABSOLUTE_PATH.finditer(text)]
    assert found == []
    for place in (str(ROOT), str(tmp_path), str(torch.hub.get_dir())):
        assert [text for text in shown if place in text] == [], place


# ---- what the layout shows before anything is computed -------------------------------------------------------------


@pytest.mark.slow
def test_no_label_covers_a_picture_and_no_empty_box_waits(cache):
    from demo.layout import build_demo

    demo = build_demo()
    pictures = [block for block in demo.blocks.values() if isinstance(block, gr.Image | gr.Gallery)]
    outputs = [block for block in pictures if not block.interactive and block.elem_id != "live-camera"]
    assert outputs and all(not block.show_label for block in outputs)
    (report_box,) = [block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "report-file"]
    assert report_box.visible is False
    about = (ROOT / "demo" / "about.md").read_text()
    for term in ("acc@1", "MACs", "FLOPs", "ResNet-A / B / C / D", "Spearman", "SSIM", "AUC"):
        assert term in about.split("## Glossary")[1], term


# ---- in a real browser -----------------------------------------------------------------------------------------------


def bar_count(png: bytes) -> int:
    """How many bars a residual chart draws: coloured runs along a row just above its x axis."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    coloured = (rgb.max(-1) - rgb.min(-1)) > 60  # the stage colours; text, grid and frame are grey or black
    axis = np.flatnonzero((rgb.max(-1) < 80).mean(1) > 0.5).max()  # the lowest row that is dark across the plot
    return int(np.count_nonzero(np.diff(coloured[axis - 3].astype(int)) == 1))


def test_bar_count_counts_the_bars_of_a_residual_chart(cache):
    *_, chart, _, _ = panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT")
    with open(figure_path(chart), "rb") as handle:
        assert bar_count(handle.read()) == 9


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_every_view_follows_the_analysis_in_a_real_browser(served_app, tmp_path, monkeypatch, photos):
    """A CIFAR-10 example click: 27 bars in Residuals, the Cost tab names cifar10_resnet56. A new photo marks the
    results stale; Analyze on it: 27 bars again, the notice gone."""
    monkeypatch.chdir(tmp_path)  # Gradio caches examples under ./.gradio
    expect = pytest.importorskip("playwright.sync_api").expect
    SCREENSHOTS.mkdir(exist_ok=True)
    url = served_app

    def residual_bars(page, previous: str | None = None) -> tuple[int, str]:
        page.get_by_role("tab", name="Residuals").click()
        chart = page.locator("#residual-chart img")
        expect(chart).to_have_count(1, timeout=60_000)
        if previous is not None:
            expect(chart).not_to_have_attribute("src", previous, timeout=60_000)
        source = chart.get_attribute("src")
        with urllib.request.urlopen(source if source.startswith("http") else url + source.lstrip("/")) as response:
            return bar_count(response.read()), source

    with chromium_page(url) as page:
        page.locator(f"#cifar10-examples img[src*='{CAT.name}']").click()
        expect(page.locator("#predictions")).to_contain_text("cat (3)", timeout=120_000)
        bars, shown = residual_bars(page)
        assert bars == 27
        page.screenshot(path=str(SCREENSHOTS / "residuals_after_example.png"), full_page=True)
        page.get_by_role("tab", name="Cost").click()
        expect(page.locator("body")).to_contain_text("cifar10_resnet56, counted", timeout=60_000)
        page.set_input_files("#photo input[type=file]", str(photos / "coffee.png"))
        expect(page.locator("#stale-notice")).to_contain_text("The photo changed", timeout=30_000)
        page.screenshot(path=str(SCREENSHOTS / "stale_notice.png"), full_page=True)
        page.get_by_role("button", name="Analyze").click()
        expect(page.locator("#stale-notice")).not_to_contain_text("changed", timeout=120_000)
        bars, shown = residual_bars(page, previous=shown)
        assert bars == 27
        page.screenshot(path=str(SCREENSHOTS / "residuals_after_analyze.png"), full_page=True)
        # With the Residuals tab on screen, Analyze redraws its chart too (it is not waited for elsewhere).
        page.set_input_files("#photo input[type=file]", str(photos / "rocket.jpg"))
        page.get_by_role("button", name="Analyze").click()
        chart = page.locator("#residual-chart img")
        expect(chart).not_to_have_attribute("src", shown, timeout=120_000)
        assert "Error" not in page.locator("body").inner_text()
