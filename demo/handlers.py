"""Event handlers: plain functions of plain values, so tests call them directly and the UI is a thin layer.

``analyze`` runs the one forward pass, keeps its result in the bounded :class:`~demo.sessions.AnalysisStore` and
gives the tab a plain :class:`~demo.sessions.TabState`; every other handler redraws from the stored result, so
switching the feature stage, the Grad-CAM class or the opacity never runs the network from the start again. An
expired result is recomputed from the tab's state, transparently.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

import gradio as gr
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from resnet_core import default_weights
from resnet_core.analysis import AnalysisResult, analyze
from resnet_core.complexity import CostTable, bottleneck_arithmetic
from resnet_core.preprocess import load_image
from resnet_core.render import cam_overlay, channel_figure, cost_figure, feature_grid, grid_index, residual_figure
from resnet_core.weights import locally_available

from .catalog import FAMILIES, RANDOM_INIT, SOURCES, LoadedModel, ModelSource, architectures_of, source_of
from .image_outputs import png_path
from .model_cache import ModelCache
from .public_text import without_paths
from .sessions import AnalysisStore, Stored, TabState, new_token

STAGE_OUTPUT = "stage output"
DEFAULT_ARCH = "resnet50"  # where the app starts when its ImageNet weights are on this machine
OFFLINE_ARCH = "cifar10_resnet56"  # ... and where it starts otherwise: trained, shipped with the app

_models: ModelCache | None = None
_results: AnalysisStore | None = None
_guard = threading.Lock()


def _shared() -> tuple[ModelCache, AnalysisStore]:
    """The process-wide model cache and analysis store, created on first use (nothing heavy at import time)."""
    global _models, _results
    with _guard:
        if _models is None:
            _models = ModelCache()
        if _results is None:  # not `or`: an empty store is falsy (it has a length)
            _results = AnalysisStore()
        return _models, _results


def models() -> ModelCache:
    return _shared()[0]


def results() -> AnalysisStore:
    return _shared()[1]


def configure(cache: ModelCache, store: AnalysisStore | None = None) -> None:
    """Use ``cache`` (its size and device) and a fresh or given result store for every later request."""
    global _models, _results
    with _guard:
        _models = cache
        _results = store or AnalysisStore()


def user_error(message: str) -> gr.Error:
    """A message for the user (no server path in it); no server-side traceback, since nothing is broken."""
    return gr.Error(without_paths(message), print_exception=False)


def start_network() -> tuple[str, str]:
    """The network the app opens on, and why, when it is not the usual one.

    resnet50 where its recommended ImageNet weights are on this machine (a Space preloads them; a laptop has them
    after the first download); else the trained CIFAR-10 ResNet-56 that ships with the app, rather than an
    untrained resnet50 calling a cat a shark. Nothing is downloaded to decide.
    """
    if locally_available(default_weights(DEFAULT_ARCH)):
        return DEFAULT_ARCH, ""
    return OFFLINE_ARCH, (
        f"Started on **{OFFLINE_ARCH}**, trained on CIFAR-10 and shipped with the app, because {DEFAULT_ARCH}'s "
        f"ImageNet weights are not on this machine yet: pick {DEFAULT_ARCH} to download them (about 100 MB)."
    )


# ---- model picker ----------------------------------------------------------------------------------------------


def _source(arch: str) -> ModelSource:
    source = source_of(arch)
    if source is None:
        raise user_error(f"Unknown architecture {arch!r}: pick one from the Depth / variant list.")
    return source


def weight_choice(arch: str, weights: str | None) -> str:
    """A weight choice of ``arch``; ``DEFAULT`` (or nothing) means the recommended one, random init if none."""
    source = _source(arch)
    if weights in (None, "", "DEFAULT"):
        return source.default_choice(arch)
    choices = source.weight_choices(arch)
    if weights not in choices:
        raise user_error(f"{arch} has no weights named {weights!r}; choose one of: {', '.join(choices)}.")
    return weights


@cache
def _every_weight_choice() -> frozenset[str]:
    return frozenset(
        choice
        for source in SOURCES
        for family in source.families
        for arch in source.architectures(family)
        for choice in source.weight_choices(arch)
    )


def settled_weights(arch: str, weights: str | None) -> tuple[str, str]:
    """The weights an Analyze click means, and a note when they differ from what was sent.

    A click right after picking a network can still carry the previous network's weights (the Weights box follows
    the pick a moment later). Weights that belong to another network can only mean that, so ``arch``'s recommended
    ones are used and the status says so; a name no network has is still an error.
    """
    stale = weights not in (None, "", "DEFAULT") and weights not in _source(arch).weight_choices(arch)
    if stale and weights in _every_weight_choice():
        chosen = weight_choice(arch, "DEFAULT")
        return chosen, f"(The Weights box still showed {weights}, of another network: used {chosen}.)"
    return weight_choice(arch, weights), ""


def costs(arch: str, weights: str) -> CostTable:
    """Per-block cost of ``arch`` at the size the chosen weights are evaluated at; each source caches its tables."""
    return _source(arch).costs(arch, weight_choice(arch, weights))


@cache
def model_facts(arch: str, weights: str) -> str:
    """Published accuracy, parameters and GMACs of the choice (counted where nothing is published)."""
    return _source(arch).facts(arch, weight_choice(arch, weights))


def on_family(family: str):
    """The family's networks, its first one picked, and that network's weights."""
    if family not in FAMILIES:
        raise user_error(f"Unknown family {family!r}; choose one of: {', '.join(FAMILIES)}.")
    arch = architectures_of(family)[0]
    return gr.update(choices=architectures_of(family), value=arch), on_arch(arch)


def on_example(family: str, arch: str):
    """The pickers for an example that carries its own network: that family's list, that network, its weights."""
    if family not in FAMILIES or arch not in architectures_of(family):
        raise user_error(f"Unknown example network {family} / {arch}.")
    return gr.update(choices=architectures_of(family), value=arch), on_arch(arch)


def on_arch(arch: str):
    """The weight choices of a newly picked network, its recommended one picked: at once, before its facts.

    The stage pick-lists do not change here: they describe the analysis on screen, and follow it
    (:func:`refresh_controls`).
    """
    source = _source(arch)
    return gr.update(choices=source.weight_choices(arch), value=source.default_choice(arch))


# ---- the main analysis -----------------------------------------------------------------------------------------


def image_path(image: str | dict | None) -> str:
    """A path from a handler argument; unprocessed Gradio payloads are ``{"path": ...}``."""
    if isinstance(image, dict):
        image = image.get("path")
    if not image:
        raise user_error("Upload a photo (or pick an example) first.")
    return str(image)


def load_photo(image: str | dict | None) -> Image.Image:
    """The photo of a handler argument, decoded by ``resnet_core.load_image`` (its limits), or one sentence."""
    try:
        return load_image(image_path(image))
    except ValueError as error:
        raise user_error(f"Could not read the image: {error}") from None


def _run(state: TabState) -> tuple[Stored, LoadedModel]:
    """Load the model, run the one forward pass, store the result under the tab's token; also the loaded model."""
    photo = load_photo(state["image"])  # decoded before taking the lock: other requests need not wait for it
    with models().using(state["arch"], state["weights"]) as loaded:
        stages = [stage.name for stage in loaded.model.feature_info]
        if state["cam_layer"] not in stages:
            state["cam_layer"] = stages[-1]
        result = analyze(loaded.model, photo, topk=state["topk"], cam_layer=state["cam_layer"])
        cam = result.cam
        if state["cam_class"] < 0:  # a new analysis explains its top-1 class
            state["cam_class"] = result.cam_class
        elif state["cam_class"] != result.cam_class:
            cam = result.cam_for(state["cam_class"], state["cam_layer"], model=loaded.model)
    return results().put(state["token"], result, cam), loaded


def stored_analysis(state: TabState | None) -> tuple[TabState, Stored]:
    """The tab's analysis: from the store, or recomputed once it has expired."""
    if not state:
        raise user_error("Run an analysis first.")
    stored = results().get(state["token"])
    return state, stored if stored is not None else _run(state)[0]


def prediction_label(result: AnalysisResult) -> dict[str, float]:
    """The top-k as ``gr.Label`` takes it: ``"name (index)"`` -> probability."""
    return {f"{name} ({index})": probability for index, name, probability in result.topk}


def untrained_mark(result: AnalysisResult) -> str:
    """What every output of an untrained network carries ("" for a trained one)."""
    return "" if result.card.pretrained else "UNTRAINED (random weights): predictions are meaningless"


def status_text(result: AnalysisResult, loaded: LoadedModel, note: str = "") -> str:
    """One line on what ran and from where (plus ``note``); the operator's detail collapsed below it."""
    card = result.card
    trained = "trained" if card.pretrained else "**UNTRAINED**"
    text = f"Results for **{card.label}** ({card.label_space.name}, {trained}). {loaded.status}"
    text += f" {note}" if note else ""
    if loaded.details:
        text += f"\n\n<details><summary>Details</summary>\n\n{loaded.details}\n\n</details>"
    return text


def analyze_image(
    image: str | dict | None,
    arch: str,
    weights: str = "DEFAULT",
    topk: int = 5,
    cam_layer: str | None = None,
    stage: str | None = None,
    block: str = STAGE_OUTPUT,
    channels: int = 32,
    sort: str = "mean",
    opacity: float = 0.5,
    previous: TabState | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's own idiom
):
    """Classify a photo with one ResNet and draw every view from one forward pass.

    Returns the top-k classes with probabilities, a status line (which weights, from where), the crop the network
    saw, the feature-map grid, the Grad-CAM overlay, the residual ratio per block and its summary.

    Args:
        image: the photo (any common format; the network sees its own centred, resized square crop).
        arch: the architecture, e.g. "resnet50", "resnext50_32x4d", "cifar10_resnet56" or "resnet-56" (digits).
        weights: "DEFAULT" for the recommended published weights, a weight name, or "random init".
        topk: how many classes to return (1 to 100).
        cam_layer: the stage Grad-CAM looks at ("layer1" ... "layer4"); empty for the last stage.
        stage: the stage whose feature maps are drawn; empty for the last stage.
        block: "stage output" or a block of that stage, e.g. "layer3.2".
        channels: how many feature-map channels to draw.
        sort: "mean" (strongest channels first) or "index".
        opacity: the heat map's opacity over the crop, 0 to 1.
        previous: the tab's last analysis (a session state, not an API parameter): where it was of another
            network, its stage and layer picks are that network's, so the new one starts at its own last stage.
    """
    if previous and previous["arch"] != arch:
        cam_layer = stage = None
        block = STAGE_OUTPUT
    path = image_path(image)
    weights, note = settled_weights(arch, weights)
    if not 1 <= int(topk) <= 100:
        raise user_error(f"Top-k must lie between 1 and 100, got {topk}.")
    progress(0.1, desc=f"loading {arch} ({weights})")
    state = _new_state(path, arch, weights, int(topk), cam_layer)
    progress(0.5, desc="forward pass")
    stored, loaded = _run(state)
    result = stored.result
    grid, _ = feature_grid(_feature(result, stage, block), int(channels), sort)
    # Images leave as PNG files replaced atomically: identical concurrent outputs never tear each other's download.
    return (
        prediction_label(result),
        status_text(result, loaded, note),
        png_path(result.crop),
        png_path(grid),
        png_path(cam_overlay(result.crop, stored.cam, opacity)),
        residual_chart(result),
        residual_summary(result),
        state,
    )


def analyze_example(image: str, family: str, arch: str, weights: str):
    """An example that belongs to one network (a digit, a CIFAR-10 test image), analysed with that network.

    Gradio caches these outputs per example, so a cached result is always the example's own network and weights.
    The session is not among them (Gradio does not cache state): :func:`example_controls` gives the tab its own.
    """
    return analyze_image(image, arch, weights)[:-1]


def example_controls(image: str, family: str, arch: str, weights: str):
    """After an example ran or came from the cache: a session of this tab's own, and the pickers of its network.

    The session's analysis is run once here (these nets take milliseconds), so Grad-CAM re-targeting and the
    CIFAR-10 tab work on a cached example as on any other analysis.
    """
    state = _new_state(image_path(image), arch, weight_choice(arch, weights))
    stored_analysis(state)  # nothing stored under the new token yet: runs the analysis, and records its class
    return (state, *refresh_controls(state, None, None), *on_example(family, arch))


def _new_state(path: str, arch: str, weights: str, topk: int = 5, cam_layer: str | None = None) -> TabState:
    return TabState(
        token=new_token(), arch=arch, weights=weights, image=path, topk=topk, cam_class=-1, cam_layer=cam_layer or ""
    )


def refresh_controls(state: TabState | None, stage: str | None, channel: float | None):
    """UI plumbing after an analysis: every control follows the network on screen, not the pickers.

    The stage, layer, block, channel and class lists of the model that ran; the facts panel, now that it is known
    whether the weights loaded; the Grad-CAM caption with its class (and the untrained mark); no stale notice.
    """
    state, stored = stored_analysis(state)
    result = stored.result
    classes = class_choices(result)
    stage = shown_stage(result, stage)
    blocks = list(result.blocks) if result.card.label_space.key == "cifar10" else []  # the CIFAR-10 tab's picker
    return (
        gr.update(choices=_block_choices(result, stage), value=STAGE_OUTPUT),
        gr.update(choices=classes, value=classes[state["cam_class"]]),
        gr.update(choices=blocks, value=blocks[-1] if blocks else None),
        gr.update(choices=list(result.stages), value=stage),
        gr.update(choices=list(result.stages), value=state["cam_layer"]),
        _channel_update(result.stages[stage], channel),
        analysis_facts(state, result),
        cam_caption(result, state["cam_class"], state["cam_layer"]),
        "",  # the results on screen are this analysis's: nothing is stale
    )


def analysis_facts(state: TabState, result: AnalysisResult) -> str:
    """The facts of the network that ran, headed by a warning where its weights could not be loaded."""
    facts = model_facts(state["arch"], state["weights"])
    if result.card.pretrained or state["weights"] == RANDOM_INIT:
        return facts
    return f"**{state['weights']} could not be loaded: this network runs untrained.** Published figures:  \n{facts}"


def cam_caption(result: AnalysisResult, class_index: int, layer: str) -> str:
    """What the Grad-CAM picture shows: which class, which stage, which network; marked when untrained."""
    mark = untrained_mark(result)
    text = (
        f'**Grad-CAM of "{result.card.categories[class_index]}"** at {layer} of {result.card.arch.name}, on the '
        "crop the network saw"
    )
    return text + (f". **{mark}: the map means nothing.**" if mark else ".")


def current_cam_caption(state: TabState | None) -> str:
    """The Grad-CAM caption of the tab's analysis, after its class or layer changed."""
    state, stored = stored_analysis(state)
    return cam_caption(stored.result, state["cam_class"], state["cam_layer"])


def mark_stale(state: TabState | None, image: str | dict | None, arch: str | None) -> str:
    """A notice while the photo or network on screen differs from the one the results below were computed for."""
    if not state:
        return ""
    photo = image.get("path") if isinstance(image, dict) else image
    changed = []
    if photo and photo != state["image"]:
        changed.append("photo")
    if arch and arch != state["arch"]:
        changed.append("network")
    if not changed:
        return ""
    return (
        f"**The {' and '.join(changed)} changed since these results**, which are for {Path(state['image']).name} "
        f"with {state['arch']}: press **Analyze** to update them."
    )


def class_choices(result: AnalysisResult) -> list[str]:
    return _class_choices(result.card.categories)


@cache
def _class_choices(categories: tuple[str, ...]) -> list[str]:
    return [f"{index}: {name}" for index, name in enumerate(categories)]


def shown_stage(result: AnalysisResult, stage: str | None) -> str:
    """The requested stage; the deepest one when none is given (or the tab still shows another model's)."""
    return stage if stage in result.stages else list(result.stages)[-1]


def _block_choices(result: AnalysisResult, stage: str | None) -> list[str]:
    stage = shown_stage(result, stage)
    return [STAGE_OUTPUT] + [name for name in result.blocks if name.split(".")[0] == stage]


def _feature(result: AnalysisResult, stage: str | None, block: str | None):
    if block in (None, STAGE_OUTPUT) or block not in result.blocks:
        return result.stages[shown_stage(result, stage)]
    return result.blocks[block].output


def _class_index(choice: str | int | None, fallback: int, categories: tuple[str, ...]) -> int:
    if choice is None or choice == "":
        index = fallback
    elif isinstance(choice, int):
        index = choice
    else:
        head = str(choice).split(":", 1)[0].strip()
        if head.lstrip("-").isdigit():
            index = int(head)
        else:
            names = [i for i, name in enumerate(categories) if name.lower() == str(choice).strip().lower()]
            if not names:
                raise user_error(f"Unknown class {choice!r}: pick one of the {len(categories)} names or a number.")
            index = names[0]
    if not 0 <= index < len(categories):
        raise user_error(f"Class {index} does not exist: this network has classes 0 to {len(categories) - 1}.")
    return index


def residual_chart(result: AnalysisResult) -> Figure:
    """||F(x)|| / ||shortcut(x)|| of every block of the analysis: one bar per block, coloured by stage."""
    ratios = {name: stats.residual_ratio for name, stats in result.blocks.items()}
    mark = untrained_mark(result)
    title = f"{result.card.arch.name}{f' ({mark})' if mark else ''}: each block's residual branch against its shortcut"
    return residual_figure({result.card.arch.name: ratios}, {name: name.split(".")[0] for name in ratios}, title)


def cost_views(arch: str, weights: str):
    """Parameters, multiply-adds and FLOPs of every block of an architecture, counted at the size its weights expect.

    Returns a summary (with the published figures where they exist), a chart and a table with one row per block.

    Args:
        arch: the architecture, e.g. "resnet50" or "cifar10_resnet20".
        weights: "DEFAULT", a weight name, or "random init" (costs are counted at that weight's evaluation size).
    """
    weights = weight_choice(arch, weights)
    table = costs(arch, weights)
    return cost_summary(arch, weights), cost_figure(table), cost_rows(table)


# ---- views redrawn from the session ----------------------------------------------------------------------------


def show_features(state: TabState | None, stage: str, block: str, channels: int, sort: str, channel: float | None):
    """Grid for a stage or block; switching stage resets the block list, and the channel stays one it has."""
    _, stored = stored_analysis(state)
    choices = _block_choices(stored.result, stage)
    block = block if block in choices else STAGE_OUTPUT
    feature = _feature(stored.result, stage, block)
    grid, _ = feature_grid(feature, _channels(channels), sort)
    return png_path(grid), gr.update(choices=choices, value=block), _channel_update(feature, channel)


def _channel_update(feature, channel: float | None):
    """The channel picker for a feature map: its range, and the channel kept where the map has it (else 0)."""
    count = feature.shape[0]
    kept = int(channel) if channel is not None and 0 <= int(channel) < count else 0
    return gr.update(value=kept, maximum=count - 1, label=f"Channel (0 to {count - 1})")


def _channels(channels: float | None) -> int:
    if channels is None or not int(channels) >= 1:
        raise user_error("Channels shown must be a whole number of at least 1.")
    return int(channels)


def channel_at(state: TabState | None, stage: str, block: str, channels: int, sort: str, x: int, y: int) -> int | None:
    """The channel under pixel (x, y) of the grid that ``feature_grid`` drew with the same settings; None on a gap."""
    _, stored = stored_analysis(state)
    _, order = feature_grid(_feature(stored.result, stage, block), _channels(channels), sort)
    index = grid_index(len(order), x, y)
    return None if index is None else order[index]


def on_grid_select(state, stage, block, channels, sort, event: gr.SelectData):
    x, y = event.index
    channel = channel_at(state, stage, block, channels, sort, x, y)
    if channel is None:  # a click on the white gutter between cells selects nothing
        return gr.skip(), gr.skip()
    return channel, show_channel(state, stage, block, channel)


def show_channel(state: TabState | None, stage: str, block: str, channel: float | None) -> Figure:
    _, stored = stored_analysis(state)
    feature = _feature(stored.result, stage, block)
    if channel is None:
        raise user_error(f"Type a channel number from 0 to {feature.shape[0] - 1}.")
    channel = min(max(int(channel), 0), feature.shape[0] - 1)
    where = shown_stage(stored.result, stage) if block in (None, STAGE_OUTPUT) else block
    return channel_figure(feature, channel, f"{where}, channel {channel} of {feature.shape[0]}")


def retarget_cam(state: TabState | None, class_choice: str | int | None, cam_layer: str, opacity: float):
    """Grad-CAM for another class or layer from the stored activations: no new forward pass.

    The network is the one the tab last analysed (its results say which), whatever the pickers show now.
    """
    state, stored = stored_analysis(state)
    result = stored.result
    index = _class_index(class_choice, state["cam_class"], result.card.categories)
    cam_layer = cam_layer or state["cam_layer"]
    if cam_layer not in result.cam_layers:
        raise user_error(f"{result.card.arch.name} has no stage {cam_layer!r}; choose one of {result.cam_layers}.")
    # Only the tail after cam_layer runs, but on the shared module: another request's hooks must not see it.
    with models().using(state["arch"], state["weights"]) as loaded:
        cam = result.cam_for(index, cam_layer, model=loaded.model)
    state = TabState(**{**state, "cam_class": index, "cam_layer": cam_layer})
    results().put(state["token"], result, cam)
    return png_path(cam_overlay(result.crop, cam, opacity)), state


def set_opacity(state: TabState | None, opacity: float) -> str:
    _, stored = stored_analysis(state)
    return png_path(cam_overlay(stored.result.crop, stored.cam, opacity))


# ---- cost and residual views -----------------------------------------------------------------------------------


def cost_rows(table: CostTable) -> list[list]:
    return [
        [row.name, row.params, row.macs, row.flops, "x".join(map(str, row.output_shape)),
         round(100 * row.params_share, 2), round(100 * row.flops_share, 2)]
        for row in table.rows
    ]  # fmt: skip


COST_HEADERS = ["block", "parameters", "MACs", "FLOPs", "output shape", "% params", "% FLOPs"]


@cache
def cost_summary(arch: str, weights: str) -> str:
    source = _source(arch)
    table = source.costs(arch, weights)
    size = table.input_size
    lines = [
        f"**{arch}**, counted (torch.utils.flop_counter, {size}x{size}, the size these weights are evaluated at): "
        f"{table.total_params:,} parameters, "
        f"{table.total_macs / 1e9:.3f} GMACs = {table.total_flops / 1e9:.3f} GFLOPs "
        "(one multiply-add is two FLOPs; the paper's 'FLOPs' are multiply-adds)."
    ]
    entry = source.published(arch, weights)
    if entry is not None and entry.num_params:
        lines.append(f"**Published** ({entry.origin}, 224x224): {entry.num_params:,} parameters, "
                     f"{entry.gmacs:.3f} GMACs.")  # fmt: skip
    elif size != 224 and source.spec(arch).labels == "imagenet":
        at_224 = source.costs(arch, RANDOM_INIT)
        lines.append(f"At the usual 224x224: {at_224.total_macs / 1e9:.3f} GMACs.")
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
    projections = sum(s.projection for s in result.blocks.values())
    where = (
        f" In the {projections} block(s) that change shape the shortcut is not x itself but x brought to the new "
        "shape (the projection W_s·x, or option A's subsampled, zero-padded x)."
        if projections
        else ""
    )
    head = (
        f"In {small} of {len(ratios)} blocks the residual branch F(x) is smaller than its shortcut "
        f"(median ratio {np.median(ratios):.2f}).{where}"
    )
    if not result.card.pretrained:
        return head + " These are random weights, so this shows the initialisation, not what training makes of it."
    return head + (
        " A block whose ratio is well below 1 nudges its input rather than replacing it, which is the paper's "
        "reason why adding layers to a residual network does not hurt; where it is above 1 the branch does more "
        "than nudge."
    )
