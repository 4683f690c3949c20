"""What a channel wants to see: an image optimised to excite one channel (Olah et al. 2017), in the app.

The optimisation takes seconds on the CIFAR-10 and digit nets and tens of seconds on ImageNet nets, so it runs on
request with a progress bar and a step budget; results are cached on disk per (weights, layer, channel, settings),
so a second visitor asking for the same channel gets it at once.
"""

from __future__ import annotations

import gradio as gr

from resnet_core.cache import cache_dir
from resnet_core.explain.feature_vis import layer_channels, visualize_channel
from resnet_core.zoo.create import card

from .app_state import STAGE_OUTPUT, models, shown_stage, stored_analysis, user_error, weight_choice
from .image_outputs import png_path
from .sessions import TabState

__all__ = ["MAX_STEPS", "visualize", "visualize_selected"]

MAX_STEPS = 512
DISPLAY = 224  # small inputs (32 px, 28 px) are shown enlarged with sharp pixels


def visualize(
    arch: str,
    weights: str,
    layer: str,
    channel: int,
    steps: int = 128,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's own idiom
):
    """Optimise an image that excites one channel of one layer of a ResNet as much as possible.

    Returns the image and a line on how strongly it excites the channel and what it cost.

    Args:
        arch: the architecture, e.g. "cifar10_resnet56" or "resnet50".
        weights: "DEFAULT", a weight name, or "random init".
        layer: a stage ("layer3") or a block ("layer3.8"), or "stem".
        channel: the channel's number in that layer.
        steps: the optimisation's step budget (1 to 512).
    """
    weights = weight_choice(arch, weights)
    if channel is None or not 1 <= int(steps) <= MAX_STEPS:
        raise user_error(f"Give a channel number and a step budget of 1 to {MAX_STEPS}.")

    def report(step: int, total: int, value: float) -> None:
        progress((step, total), desc=f"step {step} of {total}: mean activation {value:.2f}")

    with models().using(arch, weights) as loaded:
        channels = layer_channels(loaded.model)
        if layer not in channels:
            raise user_error(f"{arch} has no layer {layer!r}; choose the stem, a stage or a block such as layer3.0.")
        if not 0 <= int(channel) < channels[layer]:
            raise user_error(f"{layer} of {arch} has channels 0 to {channels[layer] - 1}.")
        kept = None if card(loaded.model).checkpoint is not None else cache_dir("feature_vis")  # a visitor's: not kept
        result = visualize_channel(loaded.model, layer, int(channel), int(steps), progress=report, cache_dir=kept)
    image = result.image
    if image.size[0] < DISPLAY:
        image = image.resize((DISPLAY, DISPLAY), resample=0)  # nearest: the pixels the network was given
    cost = "from the cache" if result.from_cache else f"{result.steps} steps of {1000 * result.seconds_per_step:.0f} ms"
    trained = (
        "" if card(loaded.model).pretrained else " These are random weights: what an untrained channel responds to."
    )
    text = (
        f"Channel {int(channel)} of {layer} in {arch}: mean activation **{result.activation:.2f}** on this image "
        f"({cost}).{trained}"
    )
    return png_path(image), text


def visualize_selected(
    state: TabState | None,
    stage: str | None,
    block: str | None,
    channel: int,
    steps: int,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's own idiom
):
    """The same for the channel picked in the Feature maps tab, of the network the tab last analysed."""
    state, stored = stored_analysis(state)
    layer = shown_stage(stored.result, stage) if block in (None, STAGE_OUTPUT) else block
    return visualize(state["arch"], state["weights"], layer, channel, steps, progress)
