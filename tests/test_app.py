"""The app three ways: handlers called directly, the launched server through gradio_client, a real browser."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app as app_module
from demo import catalog
from demo import handlers as h
from demo.catalog import RANDOM_INIT
from demo.service import ModelCache
from resnet_core import ARCHITECTURES, default_weights
from resnet_core import degradation as lab
from resnet_core.analysis import analyze
from resnet_core.render import cam_overlay, feature_grid

from .conftest import ROOT, free_port, read_png


@pytest.fixture(scope="module")
def cache():
    models = ModelCache(capacity=3, device="cpu")
    h.configure(models)
    return models


def test_handlers_agree_with_the_library(cache, photos):
    outputs = h.analyze_image(str(photos / "chelsea.png"), "resnet18", RANDOM_INIT, opacity=0.4)
    label, status, crop, grid, block, cam, cam_class, residual_rows, residual_md, session = outputs
    model = cache.get("resnet18", RANDOM_INIT).model
    expected = analyze(model, photos / "chelsea.png")
    assert label["value"] == {f"{name} ({i})": p for i, name, p in expected.topk}
    assert "UNTRAINED" in label["label"] and "random init" in status
    assert np.array_equal(np.asarray(crop), np.asarray(expected.crop))
    assert np.array_equal(grid, feature_grid(expected.stages["layer4"], 32)[0])
    assert np.array_equal(cam, cam_overlay(expected.crop, expected.cam, 0.4))
    assert cam_class["value"] == h.CLASS_CHOICES[expected.topk[0][0]]
    assert block["choices"] == ["stage output", "layer4.0", "layer4.1"]
    assert list(residual_rows["block"]) == list(expected.blocks) and "blocks" in residual_md
    ratios = [stats.residual_ratio for stats in expected.blocks.values()]
    assert list(residual_rows["||F(x)|| / ||x||"]) == pytest.approx(ratios)
    cost_md, cost_plot, cost_rows = h.cost_views("resnet18", RANDOM_INIT)
    assert "1.814 GMACs" in cost_md and "69,632" in cost_md and "1,179,648" in cost_md
    assert [row[0] for row in cost_rows][:2] == ["stem", "layer1.0"] and cost_plot.axes

    overlay, session = h.retarget_cam(session, "7: cock", "layer3", 0.4)
    assert np.array_equal(overlay, cam_overlay(expected.crop, expected.cam_for(7, "layer3"), 0.4))
    assert (session.cam_class, session.cam_layer) == (7, "layer3")
    _, session = h.retarget_cam(session, "tabby", "layer4", 0.4)  # a name typed in the box
    assert session.cam_class == 281
    assert np.array_equal(h.set_opacity(session, 0.0), np.asarray(expected.crop))
    grid, block = h.show_features(session, "layer2", "layer2.1", 16, "index")
    assert np.array_equal(grid, feature_grid(expected.blocks["layer2.1"].output, 16, "index")[0])
    assert block["value"] == "layer2.1"


def test_clicking_a_grid_cell_selects_its_channel(cache, photos):
    *_, session = h.analyze_image(str(photos / "coffee.png"), "resnet18", RANDOM_INIT)
    _, order = feature_grid(session.result.stages["layer1"], 16, "mean")
    # 4x4 grid of 56-pixel cells with 2-pixel gutters: the centre of cell (row 2, col 3) is index 11.
    assert h.channel_at(session, "layer1", "stage output", 16, "mean", x=3 * 58 + 30, y=2 * 58 + 30) == order[11]
    assert h.show_channel(session, "layer1", "stage output", order[11]).axes


def test_catalog_offers_every_architecture_once_from_its_own_source():
    offered = [arch for family in catalog.FAMILIES for arch in catalog.architectures_of(family)]
    assert sorted(offered) == sorted([*ARCHITECTURES, *lab.reference_models()])
    assert len(offered) == len(set(offered))
    for arch in offered:
        source = catalog.source_of(arch)
        assert source.default_choice(arch) in source.weight_choices(arch)
        assert isinstance(source, catalog.DigitNets) == (arch in lab.reference_models())
    assert catalog.source_of("resnet50").default_choice("resnet50") == default_weights("resnet50").name
    assert catalog.source_of("plain34").weight_choices("plain34") == [RANDOM_INIT]
    assert catalog.source_of("resnet-56").weight_choices("resnet-56") == [catalog.LAB_WEIGHTS]
    assert catalog.source_of("resnet9") is None
    with pytest.raises(ValueError, match="unknown architecture"):
        ModelCache(capacity=1, device="cpu").get("resnet9", RANDOM_INIT)


def test_model_picker_and_cache(cache):
    arch_update, weights_update, facts = h.on_family("ResNet-D")
    assert arch_update["value"] == "resnet18d" and weights_update["value"] == "resnet18d.ra2_in1k"
    assert "73.79%" in facts and "GMACs" in facts
    weights_update, facts = h.on_arch("plain50")
    assert weights_update["choices"] == [RANDOM_INIT] and "random weights" in facts
    small = ModelCache(capacity=2, device="cpu")
    for arch in ("resnet18", "resnet34", "resnet18d"):
        small.get(arch, RANDOM_INIT)
    assert small.keys() == [("resnet34", RANDOM_INIT), ("resnet18d", RANDOM_INIT)]


def test_unavailable_weights_fall_back_visibly(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    loaded = ModelCache(capacity=1, device="cpu").get("resnet18", "resnet18.tv_in1k")
    assert not loaded.pretrained and not loaded.model.card.pretrained
    assert "could not be loaded" in loaded.status and "predictions are meaningless" in loaded.status
    assert "torchvision URL" in loaded.status and "To fix" in loaded.status


def test_bad_requests_give_messages(cache, tmp_path):
    import gradio as gr

    text = tmp_path / "notes.png"
    text.write_text("hello")
    for args, message in (
        ((None, "resnet18", RANDOM_INIT), "Upload a photo"),
        ((str(text), "resnet18", RANDOM_INIT), "Could not read the image"),
        ((str(ROOT / "assets/photos/chelsea.png"), "resnet9", RANDOM_INIT), "unknown architecture"),
        ((str(ROOT / "assets/photos/chelsea.png"), "resnet18", "resnet50.tv_in1k"), "has no weights named"),
    ):
        with pytest.raises(gr.Error, match=message):
            h.analyze_image(*args)


@pytest.fixture(scope="module")
def server(cache):
    port = free_port()
    demo = app_module.serve(["--port", str(port), "--cache-size", "3", "--device", "cpu"], block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_launched_app_through_gradio_client(server, photos):
    client = Client(server, verbose=False)
    photo = photos / "rocket.jpg"
    outputs = client.predict(handle_file(str(photo)), "resnet18", RANDOM_INIT, api_name="/analyze")
    label, _, crop, grid, _, cam = outputs[:6]
    model = h.models().get("resnet18", RANDOM_INIT).model  # the server runs in this process: same cache
    expected = analyze(model, photo)
    assert [c["label"] for c in label["value"]["confidences"]][:5] == [f"{n} ({i})" for i, n, _ in expected.topk]
    assert label["value"]["confidences"][0]["confidence"] == pytest.approx(expected.topk[0][2], rel=1e-5)
    assert np.array_equal(read_png(crop), np.asarray(expected.crop))
    assert np.array_equal(read_png(cam), cam_overlay(expected.crop, expected.cam, 0.5))
    assert np.array_equal(read_png(grid), feature_grid(expected.stages["layer4"], 32)[0])

    # Switch the CAM class in the same session: the server re-targets without a new forward pass.
    overlay = client.predict("817: sports car, sport car", "layer4", 0.5, api_name="/cam")
    assert np.array_equal(read_png(overlay), cam_overlay(expected.crop, expected.cam_for(817), 0.5))

    # Switch the model.
    outputs = client.predict(handle_file(str(photo)), "plain18", RANDOM_INIT, api_name="/analyze")
    expected = analyze(h.models().get("plain18", RANDOM_INIT).model, photo)
    assert outputs[0]["value"]["label"] == f"{expected.topk[0][1]} ({expected.topk[0][0]})"
    assert "no shortcuts" in outputs[8]


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_real_browser_renders_every_view(server, photos, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]  # fmt: skip
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=shutil.which("chromium"), args=flags)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server)
            page.get_by_label("Depth / variant").wait_for(timeout=60_000)
            page.set_input_files("input[type=file]", str(photos / "chelsea.png"))
            page.wait_for_selector("img[src*='chelsea'], img[src*='gradio_api/file']", timeout=30_000)
            page.get_by_role("button", name="Analyze").click()
            page.wait_for_selector("#predictions .output-class", timeout=120_000)
            page.wait_for_selector("#feature-grid img", timeout=60_000)
            page.get_by_role("tab", name="Grad-CAM").click()
            page.wait_for_selector("#cam img", timeout=60_000)
            assert page.locator("#cam img").evaluate("img => img.naturalWidth") == 224
            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=True)
            assert Image.open(shot).size[0] == 1400
        finally:
            browser.close()
