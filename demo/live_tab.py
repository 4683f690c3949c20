"""The Live camera tab: each webcam frame through the chosen network, its answer and attention as they move.

Gradio's webcam ``.stream`` sends a frame, waits for the answer, then sends the newest one, so a slow network sees
fewer frames rather than a growing queue. A frame that arrives while the model is busy with another request (its
lock is taken: another visitor, or an analysis in another tab) is dropped at once instead of waiting. The tab says
the frame rate it reaches and how many frames it dropped.
"""

from __future__ import annotations

import time
from typing import TypedDict

import gradio as gr
import numpy as np
from PIL import Image

from resnet_core.explain.analysis import analyze
from resnet_core.render import cam_overlay, feature_grid

from .app_state import models, prediction_label, untrained_mark, user_error, weight_choice
from .gpu import on_gpu
from .image_outputs import png_path
from .model_cache import ModelBusy
from .shared import PRIVATE, Shared, picture

__all__ = ["CHANNELS", "STREAM_EVERY", "TIME_LIMIT", "LiveMeter", "live_frame"]

TITLE = "Live camera"
STREAM_EVERY = 0.05  # seconds between frames the browser offers; the network's speed sets the real rate
TIME_LIMIT = 60  # seconds of streaming per start, so one visitor cannot hold the network forever
CHANNELS = 16  # strongest channels of the last stage shown per frame
WINDOW = 20  # frames the rate is measured over


class LiveMeter(TypedDict):
    """The stream's own counters (a ``gr.State``): when recent frames were answered, and how many were dropped."""

    answered: list[float]  # the last WINDOW answer times
    count: int  # frames answered since the stream started
    dropped: int


def build(shared: Shared, tab: gr.Tab) -> None:
    gr.Markdown(
        "**Point a webcam at things** and watch the network picked above answer frame after frame: its top-5, "
        "where it looks (Grad-CAM) and what its last stage sees. The trained CIFAR-10 nets work offline (CIFAR-10 "
        "knows 10 classes: plane, car, bird, cat, deer, dog, frog, horse, ship, truck); ImageNet nets where their "
        "weights are available. A slow network answers fewer frames rather than falling behind."
    )
    with gr.Row():
        webcam = gr.Image(
            sources=["webcam"], streaming=True, type="numpy", label="Camera", elem_id="live-camera", height=320
        )
        label = gr.Label(num_top_classes=5, label="Top-5", elem_id="live-predictions")
    with gr.Row():
        cam = picture("Grad-CAM of the top-1 class", elem_id="live-cam")
        grid = picture("Strongest channels of the last stage")
    rate = gr.Markdown(elem_id="live-rate")
    meter = gr.State(None)
    # Its own limit: one stream at a time beside the two network computations, so a camera never stalls them.
    webcam.stream(
        on_gpu(live_frame, "frame"),
        [webcam, shared.arch, shared.weights, meter],
        [label, cam, grid, rate, meter],
        stream_every=STREAM_EVERY,
        time_limit=TIME_LIMIT,
        concurrency_id="live",
        concurrency_limit=1,
        **PRIVATE,
    )


def live_frame(frame: np.ndarray | None, arch: str, weights: str, meter: LiveMeter | None):
    """One webcam frame: top-5, Grad-CAM at the last stage, the last stage's strongest channels, the frame rate."""
    meter = meter or LiveMeter(answered=[], count=0, dropped=0)
    if frame is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), meter
    weights = weight_choice(arch, weights)
    try:
        with models().using(arch, weights, wait=False) as loaded:
            result = analyze(loaded.model, Image.fromarray(frame.astype(np.uint8)), topk=5)
    except ModelBusy:  # busy with another request: drop this frame, never queue it
        meter = LiveMeter(answered=meter["answered"], count=meter["count"], dropped=meter["dropped"] + 1)
        return gr.skip(), gr.skip(), gr.skip(), rate_text(meter, arch), meter
    except ValueError as error:
        raise user_error(f"Could not read the camera frame: {error}") from None
    last = result.stages[result.cam_layer]
    recent = [*meter["answered"][-(WINDOW - 1) :], time.monotonic()]
    meter = LiveMeter(answered=recent, count=meter["count"] + 1, dropped=meter["dropped"])
    return (
        prediction_label(result),
        png_path(cam_overlay(result.crop, result.cam, 0.5)),
        png_path(feature_grid(last, CHANNELS)[0]),
        rate_text(meter, arch, untrained_mark(result)),
        meter,
    )


def rate_text(meter: LiveMeter, arch: str, mark: str = "") -> str:
    """The frame rate reached, and the untrained mark of the network answering (``mark``) where it has one."""
    answered = meter["answered"]
    rate = (len(answered) - 1) / (answered[-1] - answered[0]) if len(answered) > 1 and answered[-1] > answered[0] else 0
    dropped = f", {meter['dropped']} dropped while the network was busy" if meter["dropped"] else ""
    warning = f" **{mark}.**" if mark else ""
    return f"**{rate:.1f} frames/s** answered by {arch} ({meter['count']} frames so far{dropped}).{warning}"
