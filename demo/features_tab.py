"""The Feature maps tab: the crop the network saw, every stage's or block's channels, one channel large, and what
a channel wants to see."""

from __future__ import annotations

import gradio as gr
from matplotlib.figure import Figure

from resnet_core.render import channel_figure, grid_index

from . import feature_vis_view
from .analysis_views import Drawing, View, block_choices, feature_of, grid_picture, shown_feature
from .app_state import STAGE_OUTPUT, shown_stage, stored_analysis, user_error
from .gpu import on_gpu
from .image_outputs import png_figures, png_path, view_path
from .sessions import TabState
from .shared import NETWORK, PRIVATE, Shared, chart, picture

TITLE = "Feature maps"


def build(shared: Shared, tab: gr.Tab) -> None:
    with gr.Row():
        stage = gr.Dropdown([], value=None, label="Stage", allow_custom_value=True, elem_id="feature-stage")
        block = gr.Dropdown([STAGE_OUTPUT], value=STAGE_OUTPUT, label="Block")
        channels = gr.Slider(1, 256, value=32, step=1, label="Channels shown", elem_id="feature-channels")
        sort = gr.Radio(["mean", "index"], value="mean", label="Order channels by")
    with gr.Row():
        crop = picture("What the network saw (after resize and crop)", view_only=True)
        grid = picture("Channels, strongest mean activation first (click one)", clickable=True, elem_id="feature-grid")
    with gr.Row():
        channel = gr.Number(0, label="Channel", precision=0, minimum=0, elem_id="feature-channel")
        channel_plot = chart("Selected channel with its value scale", elem_id="channel-plot")
    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown(
                "**What does this channel want to see?** An image optimised to excite the selected channel as much "
                "as possible (Olah et al. 2017: Fourier-space pixels, decorrelated colour, jitter, scale and "
                "rotation). Seconds on the CIFAR-10 nets, tens of seconds on ImageNet ones; cached per channel."
            )
            vis_steps = gr.Slider(16, feature_vis_view.MAX_STEPS, value=128, step=16, label="Steps")
            vis_run = gr.Button("Optimise an image for this channel")
            vis_md = gr.Markdown(elem_id="feature-vis-text")
            vis_layer = gr.Textbox(visible=False)  # the /visualize endpoint's layer parameter
            vis_api = gr.Button(visible=False)
        vis_image = picture("What the channel wants to see", elem_id="feature-vis")
    shown = {
        "crop": crop,
        "grid": grid,
        "stage": stage,
        "block": block,
        "channel": channel,
        "channel_plot": channel_plot,
    }
    settings = {"stage": stage, "block": block, "channels": channels, "sort": sort, "channel": channel}
    shared.views.register(View(shown, analysis_view), settings)

    session = shared.session
    inputs = [session, stage, block, channels, sort]
    for control in (stage, block, channels, sort):
        control.input(png_figures(show_features), [*inputs, channel], [grid, block, channel, channel_plot], **PRIVATE)
    grid.select(png_figures(on_grid_select), inputs, [channel, channel_plot], **PRIVATE)
    channel.submit(png_figures(show_channel), [session, stage, block, channel], channel_plot, **PRIVATE)
    vis_run.click(
        on_gpu(feature_vis_view.visualize_selected, "visualize"),
        [session, stage, block, channel, vis_steps],
        [vis_image, vis_md],
        **PRIVATE,
        **NETWORK,
    )
    # The same for any network, layer and channel, without a session: for gradio_client and MCP (an event with
    # components, not gr.api, so the image comes back as a file the client can download).
    vis_api.click(
        on_gpu(feature_vis_view.visualize, "visualize"),
        [shared.arch, shared.weights, vis_layer, channel, vis_steps],
        [vis_image, vis_md],
        api_name="visualize",
        **NETWORK,
    )


def analysis_view(drawing: Drawing) -> dict:
    """After an analysis: the crop, the grid of the stage or block picked (the block kept where the stage has it),
    the pickers of the network that ran, and no channel plot of an analysis no longer on screen."""
    stage, block, feature = shown_feature(drawing.result, drawing.settings["stage"], drawing.settings["block"])
    grid, _, _ = grid_picture(feature, _channels(drawing.settings["channels"]), drawing.settings["sort"])
    return {
        "crop": view_path(drawing.result.crop),
        "grid": png_path(grid),
        "stage": gr.update(choices=list(drawing.result.stages), value=stage),
        "block": gr.update(choices=block_choices(drawing.result, stage), value=block),
        "channel": channel_update(feature, drawing.settings["channel"]),
        "channel_plot": None,
    }


def show_features(state: TabState | None, stage: str, block: str, channels: int, sort: str, channel: float | None):
    """Grid for a stage or block; switching stage resets the block list, the channel stays one it has (else 0), and
    the selected channel's plot follows."""
    _, stored = stored_analysis(state)
    stage, block, feature = shown_feature(stored.result, stage, block)
    grid, _, _ = grid_picture(feature, _channels(channels), sort)
    plot = show_channel(state, stage, block, kept_channel(feature, channel))
    choices = block_choices(stored.result, stage)
    return png_path(grid), gr.update(choices=choices, value=block), channel_update(feature, channel), plot


def kept_channel(feature, channel: float | None) -> int:
    """``channel`` where the feature map has it, else 0."""
    return int(channel) if channel is not None and 0 <= int(channel) < feature.shape[0] else 0


def channel_update(feature, channel: float | None):
    """The channel picker for a feature map: the channel kept, and its range in the label. Not as the Number's
    ``maximum``: one pick on the Stage dropdown sends two requests with the old channel, and Gradio refuses the
    second's value once the first has lowered the maximum ("Value 42 is greater than maximum value 31")."""
    count = feature.shape[0]
    return gr.update(value=kept_channel(feature, channel), label=f"Channel (0 to {count - 1})")


def _channels(channels: float | None) -> int:
    if channels is None or not int(channels) >= 1:
        raise user_error("Channels shown must be a whole number of at least 1.")
    return int(channels)


def channel_at(state: TabState | None, stage: str, block: str, channels: int, sort: str, x: int, y: int) -> int | None:
    """The channel under pixel (x, y) of the grid shown with the same settings (:func:`grid_picture`); None on a
    gutter."""
    _, stored = stored_analysis(state)
    _, order, factor = grid_picture(feature_of(stored.result, stage, block), _channels(channels), sort)
    index = grid_index(len(order), x // factor, y // factor)
    return None if index is None else order[index]


def on_grid_select(state, stage, block, channels, sort, event: gr.SelectData):
    x, y = event.index
    channel = channel_at(state, stage, block, channels, sort, x, y)
    if channel is None:  # a click on the white gutter between cells selects nothing
        return gr.skip(), gr.skip()
    return channel, show_channel(state, stage, block, channel)


def show_channel(state: TabState | None, stage: str, block: str, channel: float | None) -> Figure:
    _, stored = stored_analysis(state)
    feature = feature_of(stored.result, stage, block)
    if channel is None:
        raise user_error(f"Type a channel number from 0 to {feature.shape[0] - 1}.")
    channel = min(max(int(channel), 0), feature.shape[0] - 1)
    where = shown_stage(stored.result, stage) if block in (None, STAGE_OUTPUT) else block
    return channel_figure(feature, channel, f"{where}, channel {channel} of {feature.shape[0]}")
