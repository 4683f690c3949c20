"""The Live camera tab: the stream handler on a sequence of frames, and a fake camera in Chromium."""

from __future__ import annotations

import shutil

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from bench.browser import FAKE_CAMERA, chromium_page
from demo import app_state, live_tab
from demo.model_cache import ModelCache
from resnet_core.data import cifar10

from .conftest import ROOT, hooks_left


@pytest.fixture(autouse=True)
def cache():
    app_state.configure(ModelCache(capacity=3, device="cpu"))


def frames(count: int) -> list[np.ndarray]:
    """Camera-sized frames (640x480) of the shipped CIFAR-10 test images, one class after another: what the
    benchmark's fake camera plays."""
    from bench.live_fps import clip_frames

    return clip_frames(count)


def test_each_frame_is_answered_and_leaves_no_hooks():
    meter = None
    answers = []
    for frame in frames(5):
        label, cam, grid, rate, meter = live_tab.live_frame(frame, "cifar10_resnet56", "DEFAULT", meter)
        answers.append(next(iter(label)))
        assert Image.open(cam).size == (32, 32) and Image.open(grid).size[0] > 0
    assert len(meter["answered"]) == 5 and meter["count"] == 5 and meter["dropped"] == 0
    assert "frames/s** answered by cifar10_resnet56" in rate
    assert len(set(answers)) > 1  # different frames, different answers: the stream really follows the camera
    model = app_state.models().get("cifar10_resnet56", "cifar10_resnet56.akamaster").model
    assert hooks_left(model) == 0


def test_a_frame_that_finds_the_network_busy_is_dropped_not_queued():
    frame = frames(1)[0]
    *_, meter = live_tab.live_frame(frame, "cifar10_resnet20", "DEFAULT", None)
    with app_state.models().using("cifar10_resnet20", "cifar10_resnet20.akamaster"):  # another request holds the model
        label, cam, grid, rate, meter = live_tab.live_frame(frame, "cifar10_resnet20", "DEFAULT", meter)
    assert all(isinstance(output, dict) and output.get("__type__") == "update" for output in (label, cam, grid))
    assert meter["dropped"] == 1 and meter["count"] == 1 and len(meter["answered"]) == 1
    assert "1 dropped while the network was busy" in rate
    *_, meter = live_tab.live_frame(frame, "cifar10_resnet20", "DEFAULT", meter)  # free again: answered
    assert len(meter["answered"]) == 2


def test_no_frame_yet_changes_nothing():
    outputs = live_tab.live_frame(None, "cifar10_resnet20", "DEFAULT", None)
    assert outputs[-1] == {"answered": [], "count": 0, "dropped": 0}
    with pytest.raises(gr.Error, match="Unknown architecture"):
        live_tab.live_frame(frames(1)[0], "resnet999", "DEFAULT", None)


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_a_fake_camera_streams_through_the_network_in_chromium(served_app, tmp_path, monkeypatch):
    """Chromium's fake camera plays a clip of CIFAR-10 test images into the Live camera tab: answers keep coming."""
    from bench.live_fps import answered, clip_frames, start_live_stream, write_y4m

    monkeypatch.chdir(tmp_path)
    playwright = pytest.importorskip("playwright.sync_api")
    clip = write_y4m(clip_frames(6), tmp_path / "clip.y4m")
    url = served_app
    fake_camera = [*FAKE_CAMERA, f"--use-file-for-fake-video-capture={clip}"]
    with chromium_page(url, fake_camera) as page:
        page.get_by_label("Family").click()
        page.get_by_role("option", name="CIFAR-10", exact=True).click()
        playwright.expect(page.get_by_label("Depth / variant")).to_have_value("cifar10_resnet20")
        start_live_stream(page)
        page.wait_for_function(
            "() => /\\((\\d+) frames so far/.test(document.querySelector('#live-rate')?.innerText ?? '') && "
            "Number(document.querySelector('#live-rate').innerText.match(/\\((\\d+) frames so far/)[1]) >= 3",
            timeout=60_000,
        )
        rate = page.locator("#live-rate").inner_text()
        assert answered(rate) >= 3 and "answered by cifar10_resnet20" in rate
        predictions = page.locator("#live-predictions").inner_text()
        assert any(name in predictions for name in cifar10.CLASSES)
        page.wait_for_selector("#live-cam img", timeout=10_000)
        SCREENSHOTS = ROOT / "screenshots"
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "live_camera.png"), full_page=True)
        assert "Error" not in page.locator("body").inner_text()
