"""Event handlers: plain functions of plain values, so tests call them directly and the UI is a thin layer.

``analyze`` runs the one forward pass and keeps its result in the session (a ``gr.State``); every other
handler redraws from that result, so switching the feature stage, the Grad-CAM class or the opacity never
runs the network from the start again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache

import gradio as gr
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from resnet_core import load_image
from resnet_core.analysis import CAM_LAYERS, AnalysisResult, analyze
from resnet_core.capture import stage_modules
from resnet_core.complexity import CostTable, bottleneck_arithmetic
from resnet_core.render import cam_overlay, channel_figure, cost_figure, feature_grid
from resnet_core.weights import IMAGENET_CATEGORIES

from .catalog import ModelSource, architectures_of, source_of
from .service import ModelCache

STAGE_OUTPUT = "stage output"
CLASS_CHOICES = [f"{index}: {name}" for index, name in enumerate(IMAGENET_CATEGORIES)]

_cache: ModelCache | None = None
_cache_guard = threading.Lock()


def models() -> ModelCache:
    """The process-wide model cache, created on first use (nothing heavy at import time)."""
    global _cache
    with _cache_guard:
        if _cache is None:
            _cache = ModelCache()
        return _cache


def configure(cache: ModelCache) -> None:
    """Use ``cache`` (its size and device) for every later request."""
    global _cache
    with _cache_guard:
        _cache = cache


@dataclass
class Session:
    """What one browser tab keeps between events."""

    result: AnalysisResult
    lock: threading.Lock = field(repr=False)
    cam: np.ndarray
    cam_class: int
    cam_layer: str
    status: str


def _user_error(message: str) -> gr.Error:
    """A message for the user; no server-side traceback, since nothing is broken."""
    return gr.Error(message, print_exception=False)


# ---- model picker ----------------------------------------------------------------------------------------------


def _source(arch: str) -> ModelSource:
    source = source_of(arch)
    if source is None:
        raise _user_error(f"unknown architecture {arch!r}")
    return source


def costs(arch: str) -> CostTable:
    """Per-block cost of ``arch`` at the input size it is used at (224 for ImageNet nets, 28 for digit nets); each
    source caches its own tables."""
    return _source(arch).costs(arch)


@cache
def model_facts(arch: str, weights: str) -> str:
    """Published accuracy, parameters and GMACs of the choice (counted where nothing is published)."""
    return _source(arch).facts(arch, weights)


def on_family(family: str) -> tuple[dict, dict, str]:
    arch = architectures_of(family)[0]
    weights_update, facts = on_arch(arch)
    return gr.update(choices=architectures_of(family), value=arch), weights_update, facts


def on_arch(arch: str) -> tuple[dict, str]:
    source = _source(arch)
    choices, value = source.weight_choices(arch), source.default_choice(arch)
    return gr.update(choices=choices, value=value), model_facts(arch, value)


# ---- the main analysis -----------------------------------------------------------------------------------------


def _label(result: AnalysisResult) -> dict[str, float]:
    return {f"{name} ({index})": probability for index, name, probability in result.topk}


def _block_choices(result: AnalysisResult, stage: str) -> list[str]:
    stage = _stage(result, stage)
    return [STAGE_OUTPUT] + [name for name in result.blocks if name.split(".")[0] == stage]


def _stage(result: AnalysisResult, stage: str) -> str:
    """The requested stage, or the deepest one where a network has fewer stages (the lab's have three)."""
    return stage if stage in result.stages else list(result.stages)[-1]


def _class_choices(result: AnalysisResult) -> list[str]:
    categories = result.card.categories
    return CLASS_CHOICES if categories is IMAGENET_CATEGORIES else [f"{i}: {c}" for i, c in enumerate(categories)]


def _feature(result: AnalysisResult, stage: str, block: str):
    if block in (None, STAGE_OUTPUT) or block not in result.blocks:
        return result.stages[_stage(result, stage)]
    return result.blocks[block].output


def _class_index(choice: str | int | None, fallback: int) -> int:
    if choice is None or choice == "":
        return fallback
    if isinstance(choice, int):
        return choice
    head = str(choice).split(":", 1)[0].strip()
    if head.isdigit():
        return int(head)
    matches = [i for i, name in enumerate(IMAGENET_CATEGORIES) if name.lower() == str(choice).strip().lower()]
    if not matches:
        raise _user_error(f"unknown class {choice!r}: pick one of the 1000 ImageNet names or a number 0-999")
    return matches[0]


def _image_source(image: str | dict | Image.Image | None) -> str | Image.Image | None:
    """A path or PIL image from a handler argument; unprocessed Gradio payloads are ``{"path": ...}``."""
    if isinstance(image, dict):
        return image.get("path")
    return image


def analyze_image(
    image: str | dict | Image.Image | None,
    arch: str,
    weights: str,
    topk: int = 5,
    cam_layer: str = "layer4",
    stage: str = "layer4",
    block: str = STAGE_OUTPUT,
    channels: int = 32,
    sort: str = "mean",
    opacity: float = 0.5,
    progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 - Gradio's own idiom
):
    """Run the model once on the image and draw every view."""
    image = _image_source(image)
    if image is None:
        raise _user_error("Upload a photo (or pick an example) first.")
    choices = _source(arch).weight_choices(arch)
    if weights not in choices and weights != "DEFAULT":
        raise _user_error(f"{arch} has no weights named {weights!r}; choose one of {choices}")
    if cam_layer not in CAM_LAYERS:
        raise _user_error(f"Grad-CAM layer must be one of {CAM_LAYERS}")
    try:
        picture = load_image(image)
    except ValueError as error:
        raise _user_error(f"Could not read the image: {error}") from None
    progress(0.1, desc=f"loading {arch} ({weights})")
    loaded = models().get(arch, weights)
    progress(0.6, desc="forward pass")
    stages = list(stage_modules(loaded.model))  # the lab's nets have three stages: fall back to the deepest
    cam_layer = cam_layer if cam_layer in stages else stages[-1]
    with loaded.lock:
        result = analyze(loaded.model, picture, topk=int(topk), cam_layer=cam_layer)
    session = Session(result, loaded.lock, result.cam, result.cam_class, cam_layer, loaded.status)
    grid, _ = feature_grid(_feature(result, stage, block), int(channels), sort)
    label_title = f"Top-{int(topk)} predictions" + ("" if loaded.pretrained else " (UNTRAINED: meaningless)")
    choices = _class_choices(result)
    return (
        gr.update(value=_label(result), label=label_title),
        loaded.status,
        result.crop,
        grid,
        gr.update(choices=_block_choices(result, stage), value=STAGE_OUTPUT),
        cam_overlay(result.crop, result.cam, opacity),
        gr.update(choices=choices, value=choices[result.cam_class]),
        residual_rows(result),
        residual_summary(result),
        session,
    )


def residual_rows(result: AnalysisResult) -> pd.DataFrame:
    """||F(x)|| / ||x|| per block as a table; the browser draws the bar chart, the server renders nothing."""
    names = [name for name, stats in result.blocks.items() if stats.residual_ratio is not None]
    return pd.DataFrame(
        {
            "block": names,
            "stage": [name.split(".")[0] for name in names],
            "||F(x)|| / ||x||": [result.blocks[name].residual_ratio for name in names],
        }
    )


def cost_views(arch: str, weights: str):
    """Everything on the Cost tab; it depends on the architecture only, so it is not part of /analyze."""
    _source(arch)
    return cost_summary(arch, weights), cost_figure(costs(arch)), cost_rows(arch)


# ---- views redrawn from the session ----------------------------------------------------------------------------


def _need(session: Session | None) -> Session:
    if session is None:
        raise _user_error("Run an analysis first.")
    return session


def show_features(session: Session | None, stage: str, block: str, channels: int, sort: str):
    """Grid for a stage or block; switching stage resets the block list."""
    session = _need(session)
    choices = _block_choices(session.result, stage)
    block = block if block in choices else STAGE_OUTPUT
    grid, _ = feature_grid(_feature(session.result, stage, block), int(channels), sort)
    return grid, gr.update(choices=choices, value=block)


def channel_at(session: Session | None, stage: str, block: str, channels: int, sort: str, x: int, y: int) -> int:
    """The channel under pixel (x, y) of the grid that ``feature_grid`` drew with the same settings."""
    session = _need(session)
    feature = _feature(session.result, stage, block)
    grid, order = feature_grid(feature, int(channels), sort)
    cols = int(np.ceil(np.sqrt(len(order))))
    cell = (grid.shape[1] - 2) / cols
    index = int(y // cell) * cols + int(x // cell)
    return order[min(max(index, 0), len(order) - 1)]


def on_grid_select(session, stage, block, channels, sort, event: gr.SelectData):
    x, y = event.index
    channel = channel_at(session, stage, block, channels, sort, x, y)
    return channel, show_channel(session, stage, block, channel)


def show_channel(session: Session | None, stage: str, block: str, channel: int) -> Figure:
    session = _need(session)
    feature = _feature(session.result, stage, block)
    channel = min(max(int(channel), 0), feature.shape[0] - 1)
    where = stage if block in (None, STAGE_OUTPUT) else block
    return channel_figure(feature, channel, f"{where}, channel {channel} of {feature.shape[0]}")


def retarget_cam(session: Session | None, class_choice: str, cam_layer: str, opacity: float):
    """Grad-CAM for another class or layer from the stored activations: no new forward pass."""
    session = _need(session)
    index = _class_index(class_choice, session.cam_class)
    if cam_layer not in CAM_LAYERS:
        raise _user_error(f"Grad-CAM layer must be one of {CAM_LAYERS}")
    with session.lock:  # the tail of the network runs on the shared module
        session.cam = session.result.cam_for(index, cam_layer)
    session.cam_class, session.cam_layer = index, cam_layer
    return cam_overlay(session.result.crop, session.cam, opacity), session


def set_opacity(session: Session | None, opacity: float) -> np.ndarray:
    session = _need(session)
    return cam_overlay(session.result.crop, session.cam, opacity)


# ---- cost and residual views -----------------------------------------------------------------------------------


def cost_rows(arch: str) -> list[list]:
    return [
        [row.name, row.params, row.macs, row.flops, "x".join(map(str, row.output_shape)),
         round(100 * row.params_share, 2), round(100 * row.flops_share, 2)]
        for row in costs(arch).rows
    ]  # fmt: skip


COST_HEADERS = ["block", "parameters", "MACs", "FLOPs", "output shape", "% params", "% FLOPs"]


@cache
def cost_summary(arch: str, weights: str) -> str:
    table = costs(arch)
    lines = [
        f"**Counted** (torch.utils.flop_counter, {table.input_size}x{table.input_size}): "
        f"{table.total_params:,} parameters, "
        f"{table.total_macs / 1e9:.3f} GMACs = {table.total_flops / 1e9:.3f} GFLOPs "
        "(one multiply-add is two FLOPs; the paper's 'FLOPs' are multiply-adds)."
    ]
    entry = _source(arch).published(arch, weights)
    if entry is not None and entry.num_params:
        lines.append(f"**Published** ({entry.origin}): {entry.num_params:,} parameters, {entry.gmacs:.3f} GMACs.")
    stages = table.stages()
    lines.append(
        "Per stage: "
        + ", ".join(f"{name} {100 * total['flops_share']:.1f}% of FLOPs" for name, total in stages.items())
        + "."
    )
    numbers = bottleneck_arithmetic(256)
    lines.append(
        f"**Why bottlenecks:** at 256 channels a bottleneck (1x1 to 64, 3x3 at 64, 1x1 back to 256) has "
        f"{numbers['bottleneck']:,} convolution weights; two 3x3 convolutions at 256 would have "
        f"{numbers['two_3x3']:,}, {numbers['two_3x3'] / numbers['bottleneck']:.0f}x as many."
    )
    return "\n\n".join(lines)


def residual_summary(result: AnalysisResult) -> str:
    ratios = [s.residual_ratio for s in result.blocks.values() if s.residual_ratio is not None]
    if not ratios:
        return "A plain network has no shortcuts, so there is no residual to compare: each block rewrites its input."
    small = sum(r < 1 for r in ratios)
    if not result.card.pretrained:
        return (
            f"In {small} of {len(ratios)} blocks F(x) is smaller than x (median ratio {np.median(ratios):.2f}). "
            "These are random weights, so this shows the initialisation, not what training makes of it: "
            "in trained ResNets most residual branches are much smaller than their shortcuts."
        )
    return (
        f"In {small} of {len(ratios)} blocks the residual branch F(x) is smaller than the shortcut x "
        f"(median ratio {np.median(ratios):.2f}): those blocks nudge their input rather than replace it, "
        "which is the paper's reason why adding layers to a residual network does not hurt."
    )
