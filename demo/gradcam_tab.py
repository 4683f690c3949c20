"""The Grad-CAM tab: any class of the network's label space at any of its stages, from the stored activations."""

from __future__ import annotations

from functools import cache

import gradio as gr

from resnet_core.explain.analysis import AnalysisResult
from resnet_core.render import cam_overlay
from resnet_core.zoo.label_spaces import class_index_of

from .analysis_views import Drawing, View, cam_picture
from .app_state import models, network_name, results, stored_analysis, untrained_mark, user_error
from .gpu import on_gpu
from .image_outputs import png_path, view_path
from .sessions import TabState
from .shared import NETWORK, PRIVATE, SESSION_BOUND, VIEW_ONLY, Shared

TITLE = "Grad-CAM"


def build(shared: Shared, tab: gr.Tab) -> None:
    with gr.Row():
        cam_class = gr.Dropdown(
            [], label="Explain class (type to search)", filterable=True, allow_custom_value=True, elem_id="cam-class"
        )
        cam_layer = gr.Dropdown([], value=None, label="Layer", allow_custom_value=True)
        opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Heat-map opacity")
    cam_caption = gr.Markdown("**Grad-CAM on the crop the network saw**", elem_id="cam-caption")
    cam = gr.Image(
        label="Grad-CAM on the crop the network saw",
        show_label=False,
        interactive=False,
        **VIEW_ONLY,  # the page's Analyze sends a JPEG; the report has the PNG
        height=320,
        elem_classes="pixelated",
        elem_id="cam",
    )
    shown = {"cam": cam, "cam_class": cam_class, "cam_layer": cam_layer, "cam_caption": cam_caption}
    shared.views.register(View(shown, analysis_view), {"cam_layer": cam_layer, "opacity": opacity})

    retarget = on_gpu(retarget_cam, "analysis")
    inputs, outputs = [shared.session, cam_class, cam_layer, opacity], [cam, shared.session]
    for retargeted in (
        cam_class.input(retarget, inputs, outputs, api_name="cam", **SESSION_BOUND, **NETWORK),
        cam_layer.input(retarget, inputs, outputs, **PRIVATE, **NETWORK),
    ):
        retargeted.success(current_cam_caption, shared.session, cam_caption, queue=False, **PRIVATE)
    opacity.input(set_opacity, [shared.session, opacity], cam, **PRIVATE)


def analysis_view(drawing: Drawing) -> dict:
    """After an analysis: its Grad-CAM, the class and layer it explains (the class list only for a new network:
    a thousand names on ImageNet), and the caption saying so."""
    result, state = drawing.result, drawing.state
    classes = class_choices(result)
    class_list = {} if drawing.same_network else {"choices": classes}
    return {
        "cam": view_path(cam_picture(drawing)),
        "cam_class": gr.update(**class_list, value=classes[state["cam_class"]]),
        "cam_layer": gr.update(choices=list(result.stages), value=state["cam_layer"]),
        "cam_caption": cam_caption(result, state["cam_class"], state["cam_layer"]),
    }


def cam_caption(result: AnalysisResult, class_index: int, layer: str) -> str:
    """What the Grad-CAM picture shows: which class, which stage, which network; marked when untrained."""
    mark = untrained_mark(result)
    text = (
        f'**Grad-CAM of "{result.card.categories[class_index]}"** at {layer} of {network_name(result)}, on the '
        "crop the network saw"
    )
    return text + (f". **{mark}: the map means nothing.**" if mark else ".")


def current_cam_caption(state: TabState | None) -> str:
    """The Grad-CAM caption of the tab's analysis, after its class or layer changed."""
    state, stored = stored_analysis(state)
    return cam_caption(stored.result, state["cam_class"], state["cam_layer"])


def class_choices(result: AnalysisResult) -> list[str]:
    return _class_choices(result.card.categories)


@cache
def _class_choices(categories: tuple[str, ...]) -> list[str]:
    return [f"{index}: {name}" for index, name in enumerate(categories)]


def _class_index(choice: str | int | None, fallback: int, categories: tuple[str, ...]) -> int:
    if choice is None or choice == "":
        return fallback
    try:
        return class_index_of(choice, categories)
    except ValueError as error:
        message = str(error)
        raise user_error(message[0].upper() + message[1:] + ("" if message.endswith("?") else ".")) from None


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
