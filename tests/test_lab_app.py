"""The degradation lab in the app: its handlers, its endpoints, and its digit nets in the main views."""

from __future__ import annotations

import functools

import gradio as gr
import pytest
import torch
from gradio_client import Client
from PIL import Image

from demo import analysis_panel as panel
from demo import app_state, cost_tab, degradation_tab, settings
from demo.model_cache import ModelCache
from resnet_core import degradation
from resnet_core.degradation.data import load_mnist_5k

from .conftest import ROOT, read_png

DIGITS = ROOT / "assets" / "digits"


@pytest.fixture(scope="module", autouse=True)
def cache():
    app_state.configure(ModelCache(capacity=3, device="cpu"))


@functools.cache
def some_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Every 10th of the 5,000 digits (they are sorted by class, so 50 of each)."""
    images, labels = load_mnist_5k()
    return images[::10], labels[::10]


@pytest.fixture()
def short_runs(monkeypatch):
    """Live runs of 10 steps on 500 digits: what the tests check (streaming, the summary, refusals) needs neither 50
    steps nor the final errors over all 5,000."""
    monkeypatch.setattr(degradation_tab, "MIN_STEPS", 10)
    monkeypatch.setattr(degradation, "load_mnist_5k", some_digits)


def test_reference_run_is_shown_at_once():
    figure, text = degradation_tab.reference_view()
    assert len(figure.axes) == 2 and all(axis.lines for axis in figure.axes)
    for name in ("digits_plain20", "digits_plain56", "digits_resnet20", "digits_resnet56"):
        assert name in text
    assert "| 2 | digits_plain56 |" in text  # three seeds


@pytest.mark.slow
def test_gradient_view_plots_every_model():
    figure = degradation_tab.gradient_view()
    assert len(figure.axes[0].lines) == 4


def test_a_live_run_says_whether_it_shows_the_degradation_and_what_will():
    """50 steps of 20 against 32 layers once ended with plain-32 ahead of plain-20 (39.3% against 61.0% training
    error) under a tab that promises the opposite: the run's own numbers decide the sentence."""
    shown = {"digits_plain20": (0.01, 0.0), "digits_plain56": (0.17, 0.04),
             "digits_resnet20": (0.004, 0.0), "digits_resnet56": (0.003, 0.0)}  # fmt: skip
    assert degradation_tab.live_verdict(shown, 20, 56, 200).startswith("**This run shows it:** the 56-layer plain")
    early = {"digits_plain20": (1.61, 0.61), "digits_plain32": (1.12, 0.393),
             "digits_resnet20": (0.9, 0.3), "digits_resnet32": (0.8, 0.25)}  # fmt: skip
    verdict = degradation_tab.live_verdict(early, 20, 32, 50)
    assert verdict.startswith("**This run does not show it yet** (the deeper plain net is not worse): after 50 steps")
    assert "500 steps, 20 against 56 layers" in verdict and "18 to 31 times" in verdict


@pytest.mark.slow
def test_live_run_streams_then_summarises(short_runs):
    updates = list(degradation_tab.run_live(20, 32, 10))
    assert len(updates) >= 4
    assert "s left" in updates[0][1]
    final = updates[-1][1]
    assert "This run shows it" in final or "This run does not show it yet" in final
    assert final.startswith("done in") and all(
        n in final for n in ("digits_plain20", "digits_plain32", "digits_resnet20", "digits_resnet32")
    )
    with pytest.raises(gr.Error, match="two different depths"):
        next(degradation_tab.run_live(56, 20, 100))
    with pytest.raises(gr.Error, match="steps"):
        next(degradation_tab.run_live(20, 56, 5000))


@pytest.mark.slow
def test_digit_nets_open_in_the_feature_and_cam_views(page):
    outputs = panel.analyze_image(
        str(DIGITS / "digit_7.png"), "digits_resnet56", "digits_resnet56.lab", stage="layer4", cam_layer="layer4"
    )
    label, status, crop, _, cam, *_, state = outputs
    after = page.after(state, stage="layer4")
    block, cam_class, stage = after["block"], after["cam_class"], after["stage"]
    cost_md = cost_tab.cost_views("digits_resnet56", "digits_resnet56.lab")[0]
    assert next(iter(label)) == "7 (7)" and "UNTRAINED" not in status
    assert "MNIST digits, trained" in status and "shipped with ResNet Explorer: digits_resnet56.safetensors" in status
    assert Image.open(crop).size == (28, 28) and read_png(cam).shape == (28, 28, 3)
    assert cam_class["choices"][7] == "7: 7" and len(cam_class["choices"]) == 10
    assert block["choices"][1:] == [f"layer3.{i}" for i in range(9)]  # layer4 falls back to the deepest stage
    assert state["cam_layer"] == "layer3" and "28x28" in cost_md and stage["value"] == "layer3"
    weights_update = panel.on_arch("digits_plain56")
    assert weights_update["value"] == "digits_plain56.lab" and "training loss" in app_state.model_facts(
        "digits_plain56", "digits_plain56.lab"
    )


def test_live_training_is_off_on_a_space_unless_turned_on(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/resnet-explorer")
    monkeypatch.delenv(settings.ENV_LIVE_TRAINING, raising=False)
    with pytest.raises(gr.Error, match="Live training is off"):
        next(degradation_tab.run_live(20, 32, 50))
    monkeypatch.setenv(settings.ENV_LIVE_TRAINING, "1")
    assert settings.live_training()
    monkeypatch.delenv("SPACE_ID")
    monkeypatch.delenv(settings.ENV_LIVE_TRAINING)
    assert settings.live_training()


@pytest.mark.slow
def test_lab_endpoints_through_gradio_client(short_runs):
    from demo import launch as app_module

    from .conftest import free_port

    port = free_port()
    demo = app_module.serve(["--port", str(port), "--device", "cpu"], block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        _, table = client.predict(api_name="/lab_reference")
        assert "digits_resnet56" in table
        plot, status = client.predict(20, 32, 10, api_name="/lab_train")
        assert status.startswith("done in") and Image.open(plot).format == "PNG"
    finally:
        demo.close()
