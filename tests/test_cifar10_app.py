"""The paper's trained CIFAR-10 nets in the app: offline, every view filled, and the test-set views computed."""

from __future__ import annotations

import shutil

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from bench.browser import answer_to, chromium_page
from demo import across_data, app_state, cost_tab, gradcam_tab
from demo import analysis_panel as panel
from demo import launch as app_module
from demo.model_cache import ModelCache
from resnet_core import create_model
from resnet_core.data import cifar10
from resnet_core.explain.analysis import analyze
from resnet_core.measure.dataset_probe import probe_dataset
from resnet_core.measure.lesion import lesioned

from .conftest import ROOT, free_port, read_png

SCREENSHOTS = ROOT / "screenshots"  # git-ignored: look at them after a run
CAT = next(path for path in sorted(cifar10.GALLERY_DIR.glob("cat_*.png")))
SHIPPED = "the 500 CIFAR-10 test images shipped with the app"  # the Data set tab's first data choice


@pytest.fixture(scope="module", autouse=True)
def cache():
    app_state.configure(ModelCache(capacity=3, device="cpu"))


def test_trained_net_loads_offline_and_sees_a_cat(photos, torch_home):
    """No network, an empty TORCH_HOME: the shipped copy delivers, hash-checked."""
    model = create_model("cifar10_resnet56", weights="DEFAULT")
    assert model.card.pretrained and model.card.source.startswith("shipped with ResNet Explorer")
    assert not any(torch_home.rglob("*.th"))
    result = analyze(model, photos / "chelsea.png")
    assert result.topk[0][1] == "cat" and result.crop.size == (32, 32)


def test_every_view_for_a_cat_example(page):
    label, status, crop, grid, cam, chart, summary, state = panel.analyze_image(str(CAT), "cifar10_resnet56", "DEFAULT")
    assert max(label, key=label.get).startswith("cat") and "UNTRAINED" not in status
    assert read_png(crop).shape == (32, 32, 3) and read_png(cam).shape == (32, 32, 3) and read_png(grid).size
    assert len(chart.axes[0].patches) == 27 and "27 blocks" in summary  # 3 stages of 9 residual blocks: 27 bars
    cost_md, _, cost_rows = cost_tab.cost_views("cifar10_resnet56", "DEFAULT")
    assert "32x32" in cost_md and len(cost_rows) == 29  # stem, 27 blocks, head
    after = page.after(state)
    block, classes, examples = after["block"], after["cam_class"], after["example_block"]
    assert classes["value"] == "3: cat" and block["choices"][-1] == "layer3.8" and examples["value"] == "layer3.8"


def test_test_set_views_come_from_one_probe_of_the_shipped_images():
    *_, state = panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT")
    figure, text = across_data.residual_view(state, SHIPPED)
    images, _, _ = cifar10.load_subset()
    model = app_state.models().get("cifar10_resnet20", "DEFAULT").model
    probe = probe_dataset(model, cifar10.to_batch(images, model.card.preprocess.mean, model.card.preprocess.std))
    medians = probe.median_ratios()
    median_line, photo_line = (line for line in figure.axes[0].lines if not line.get_label().startswith("_"))
    assert list(median_line.get_xdata()) == list(medians)  # one network: the x axis names its blocks
    assert list(median_line.get_ydata()) == pytest.approx(list(medians.values()))
    photo = app_state.results().get(state["token"]).result
    assert list(photo_line.get_ydata()) == pytest.approx([photo.blocks[name].residual_ratio for name in medians])
    assert "500 CIFAR-10 test images" in text and "layer3" in text
    # Independent check of one block's ratio: F(x) and x recomputed by hand for image 0.
    block = model.layer2[1]
    with torch.no_grad():
        x = model.layer2[0](model.layer1(model.stem(cifar10.to_batch(images[:1], *_norm(model)))))
        residual = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    assert float(probe.residual_ratios["layer2.1"][0]) == pytest.approx(float(residual.norm() / x.norm()), rel=1e-4)

    most, _, text = across_data.examples_view(state, SHIPPED, None, [], "layer3.2", 5)
    top, bottom = probe.extremes("layer3.2", 5)
    means = probe.channel_means["layer3.2"][:, 5]
    assert means[top[0]] == means.max() and means[bottom[0]] == means.min()
    tiles = read_png(most)
    assert np.array_equal(tiles[2:98, 2:98], images[top[0]].repeat(3, 0).repeat(3, 1))
    with pytest.raises(gr.Error, match="channels 0 to 63"):
        across_data.examples_view(state, SHIPPED, None, [], "layer3.2", 64)


@pytest.mark.slow
def test_lesion_view_measures_accuracy_with_each_block_deleted():
    *_, state = panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT")
    figure, text = across_data.lesion_view(state, SHIPPED)
    model = app_state.models().get("cifar10_resnet20", "DEFAULT").model
    images, _, _ = cifar10.load_subset()
    inputs = cifar10.to_batch(images[:100], *_norm(model))
    accuracy = dict(zip(figure.axes[0].lines[0].get_xdata(), figure.axes[0].lines[0].get_ydata(), strict=True))
    assert len(accuracy) == 9 and "intact" in text
    # A deleted downsampling block really changes the answers (its shortcut alone cannot stand in for it).
    with torch.no_grad(), lesioned(model, "layer2.0"):
        lesioned_predictions = model(inputs).argmax(1)
    with torch.no_grad():
        assert (model(inputs).argmax(1) != lesioned_predictions).any()
    assert min(accuracy.values()) < 0.9 * max(accuracy.values())


def test_an_imagenet_network_on_cifar10_deletes_blocks_only_where_the_labels_fit(photos, page):
    *_, state = panel.analyze_image(str(photos / "coffee.png"), "resnet18", "random init")
    assert page.after(state)["example_block"]["choices"][-1] == "layer4.1"  # any network's blocks to pick
    with pytest.raises(gr.Error, match="airplane"):  # CIFAR-10's class names are not ImageNet's
        across_data.lesion_view(state, SHIPPED)


@pytest.mark.slow
def test_cifar10_through_gradio_client(served_app):
    url = served_app
    client = Client(url, verbose=False)
    label, *_ = client.predict(handle_file(str(CAT)), "cifar10_resnet56", "DEFAULT", api_name="/analyze")
    assert label["label"] == "cat (3)"
    overlay = client.predict("5: dog", "layer2", 0.5, api_name="/cam")
    assert read_png(overlay).shape == (32, 32, 3)
    plot, text = client.predict(SHIPPED, None, api_name="/data_residuals")
    assert "cifar10_resnet56" in text and Image.open(plot).format == "PNG"
    most, _, text = client.predict(SHIPPED, None, "layer3.8", 0, api_name="/data_examples")
    assert Image.open(most).size == (300, 300) and "Most:" in text


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_cifar10_in_a_real_browser(served_app, tmp_path):
    """Pick CIFAR-10 / cifar10_resnet56, click a cat example, Analyze: top-1 cat, every tab filled, no error."""
    pytest.importorskip("playwright.sync_api")
    SCREENSHOTS.mkdir(exist_ok=True)
    url = served_app
    with chromium_page(url) as page:
        for label, value in (("Family", "CIFAR-10"), ("Depth / variant", "cifar10_resnet56")):
            box = page.get_by_label(label)
            box.click()
            page.get_by_role("option", name=value, exact=True).click()
        page.wait_for_function("() => document.body.innerText.includes('cifar10_resnet56 · CIFAR-10')",
                               timeout=30_000)  # fmt: skip
        example = page.locator(f"img[src*='{CAT.name}']").first  # the example in the CIFAR-10 gallery
        answer_to(page, "#predictions", example.click, "cat (3)")
        # The example's answer is on screen: wait for Analyze's own, read in the same step.
        analyze = page.get_by_role("button", name="Analyze")
        lines = answer_to(page, "#predictions", analyze.click, "cat (3)").split()
        assert lines[:3] == ["Predictions", "cat", "(3)"] and lines[5] == "100%"  # headline, then top-1 at p = 1.00
        page.wait_for_selector("#feature-grid img", timeout=60_000)
        shots = []
        for tab in ("Grad-CAM", "Cost", "Residuals", "Data set"):
            page.get_by_role("tab", name=tab).click()
            if tab == "Grad-CAM":
                page.wait_for_selector("#cam img", timeout=60_000)
                assert page.locator("#cam img").evaluate("img => img.naturalWidth") == 32
            if tab == "Data set":
                page.get_by_role("button", name="Residual ratios: the data vs your photo").click()
                page.wait_for_function("() => document.body.innerText.includes('Median per stage')",
                                       timeout=120_000)  # fmt: skip
            shots.append(SCREENSHOTS / f"cifar10_{tab.replace(' ', '_')}.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
        assert "Error" not in page.locator("body").inner_text()
        assert all(Image.open(shot).size[0] == 1400 for shot in shots)


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_an_answer_is_the_clicks_own_not_what_was_shown_before():
    """The race test_cifar10_in_a_real_browser once lost: the example's answer already satisfied the wait for
    Analyze's, and the read after the wait caught Analyze's progress timer. A page that shows the same answer, a
    progress timer, then a new answer: waiting on the text and reading after returns what was there before the
    click; ``answer_to`` returns the click's answer."""
    pytest.importorskip("playwright.sync_api")
    page_html = """<div id="predictions">Predictions cat (3) 100%</div>
    <button onclick="const p = document.getElementById('predictions');
      setTimeout(() => { p.innerHTML = 'Predictions cat (3) <span class=progress-text>0.6s</span>'; }, 300);
      setTimeout(() => { p.innerHTML = 'Predictions cat (3) 97%'; }, 2000);">Analyze</button>"""
    with chromium_page("about:blank") as page:
        page.set_content(page_html)
        page.get_by_role("button", name="Analyze").click()
        page.wait_for_function("() => document.querySelector('#predictions').innerText.includes('cat (3)')"
                               " && !document.querySelector('#predictions .progress-text')")  # fmt: skip
        assert page.locator("#predictions").inner_text() != "Predictions cat (3) 97%"  # the old wait: not the answer
        page.set_content(page_html)
        shown = answer_to(page, "#predictions", page.get_by_role("button", name="Analyze").click, "cat (3)")
        assert shown == "Predictions cat (3) 97%"


def _norm(model):
    return model.card.preprocess.mean, model.card.preprocess.std


def test_browsing_the_test_set_by_class():
    classes = across_data.classes_of(SHIPPED, None, [])
    assert classes["choices"] == sorted(cifar10.CLASSES) and classes["value"] == "airplane"
    items, text = across_data.browse(SHIPPED, None, [], "cat", 2)
    images, labels, _ = cifar10.load_subset()
    cats = np.flatnonzero(labels == 3)
    assert len(items) == min(20, len(cats) - 20) and "page 2 of 3" in text
    assert all(
        np.array_equal(read_png(path), images[index]) for (path, _), index in zip(items, cats[20:40], strict=True)
    )
    clicked = across_data.pick_image(SHIPPED, None, [], "cat", 2, gr.SelectData(None, {"index": 1, "value": None}))
    assert np.array_equal(read_png(clicked), images[cats[21]])
    with pytest.raises(gr.Error, match="Pick one of the data's classes: airplane, automobile"):
        across_data.browse(SHIPPED, None, [], "unicorn", 1)


def test_an_example_that_carries_its_network_switches_to_it_and_runs(page):
    outputs = panel.analyze_example(str(CAT), "CIFAR-10", "cifar10_resnet56", "DEFAULT")
    label, status = outputs[:2]
    assert len(outputs) == 7 and next(iter(label)) == "cat (3)" and "cifar10_resnet56.akamaster" in status
    controls = page.example(str(CAT), "CIFAR-10", "cifar10_resnet56", "DEFAULT")
    state, block, cam_class, stage = (controls[name] for name in ("session", "block", "cam_class", "stage"))
    facts, caption, stale = controls["facts"], controls["cam_caption"], controls["stale"]
    arch, weights = controls["arch"], controls["weights"]
    assert state["arch"] == "cifar10_resnet56" and state["weights"] == "cifar10_resnet56.akamaster"
    assert arch["value"] == "cifar10_resnet56" and "cifar10_resnet20" in arch["choices"]
    assert weights["value"] == "cifar10_resnet56.akamaster" and "cifar10_resnet56" in facts
    assert cam_class["value"] == "3: cat" and "layer3.8" in block["choices"] and stage["value"] == "layer3"
    assert '"cat"' in caption and stale == ""
    # Every visitor of a cached example gets a session of their own: re-targeting one leaves the other alone.
    other = page.example(str(CAT), "CIFAR-10", "cifar10_resnet56", "DEFAULT")["session"]
    assert state["token"] != other["token"]
    gradcam_tab.retarget_cam(state, "5: dog", "layer3", 0.5)
    assert app_state.results().get(other["token"]).cam is not app_state.results().get(state["token"]).cam


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_owned_examples_run_on_click_with_their_own_network(tmp_path, monkeypatch):
    """With resnet50 picked, a click on a CIFAR-10 test image switches to cifar10_resnet56 and shows its answer,
    without Analyze; a second click comes from the example cache; a digit switches to the lab's digits_resnet56."""
    monkeypatch.chdir(tmp_path)  # Gradio caches examples under ./.gradio
    playwright = pytest.importorskip("playwright.sync_api")
    expect = playwright.expect
    port = free_port()
    demo = app_module.serve(["--port", str(port), "--device", "cpu"], block=False)
    digit = ROOT / "assets" / "digits" / "digit_7.png"
    try:
        with chromium_page(f"http://127.0.0.1:{port}/") as page:
            page.get_by_label("Family").click()
            page.get_by_role("option", name="ResNet-B", exact=True).click()
            expect(page.get_by_label("Depth / variant")).to_have_value("resnet50", timeout=30_000)

            def predictions_show(text: str) -> None:
                page.wait_for_function(
                    f"() => document.querySelector('#predictions')?.innerText.includes('{text}')", timeout=120_000
                )

            for attempt in range(2):  # the first click computes, the second is served from the cache
                page.locator(f"#cifar10-examples img[src*='{CAT.name}']").click()
                predictions_show("cat (3)")
                expect(page.get_by_label("Weights")).to_have_value("cifar10_resnet56.akamaster", timeout=30_000)
                expect(page.get_by_label("Family")).to_have_value("CIFAR-10")
                expect(page.get_by_label("Depth / variant")).to_have_value("cifar10_resnet56")
                if attempt == 0:
                    page.get_by_label("Family").click()  # move away, so the second click has to switch back
                    page.get_by_role("option", name="ResNet-D", exact=True).click()
                    page.wait_for_function("() => document.body.innerText.includes('resnet18d ·')")
            page.locator(f"#digit-examples img[src*='{digit.name}']").click()
            predictions_show("7 (7)")
            expect(page.get_by_label("Depth / variant")).to_have_value("digits_resnet56", timeout=30_000)
            assert "Error" not in page.locator("body").inner_text()
    finally:
        demo.close()
