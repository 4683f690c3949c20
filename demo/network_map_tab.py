"""The Network map tab: the network picked, drawn stem to head from its own description and coloured by a number
per block; a click on a block shows its numbers and, after an analysis, its feature maps. Below, how far one unit
of a stage sees on the photo: its theoretical receptive field and its effective one, beside its plain twin's."""

from __future__ import annotations

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageDraw

from resnet_core.diagram import draw_network_map
from resnet_core.explain.analysis import AnalysisResult
from resnet_core.explain.effective_field import UnitField, unit_field
from resnet_core.render import cam_overlay, enlarge, enlargement, feature_grid, field_overlay

from . import catalog
from .app_state import costs, load_photo, models, settled_weights, stored_analysis, user_error
from .gpu import on_gpu
from .image_outputs import png_path
from .network_map import OVERLAYS, drawn_map, stored_analysis_of, structure
from .sessions import TabState
from .shared import NETWORK, PRIVATE, SESSION_BOUND, Shared, picture

TITLE = "Network map"


def build(shared: Shared, tab: gr.Tab) -> None:
    overlay = gr.Radio(list(OVERLAYS), value="multiply-adds", label="Colour the blocks by")
    note = gr.Markdown(elem_id="network-map-note")
    diagram = gr.Image(
        label="Network map (click a block)",
        show_label=False,
        interactive=False,
        format="png",
        elem_id="network-map",
    )
    with gr.Row():
        details = gr.Markdown("Click a block of the map.", elem_id="network-map-block")
        features = picture("The block's output on the photo (strongest channels first)", elem_id="network-map-features")
    gr.Markdown(
        "### How far a unit sees\nClick a unit of a stage's feature map: the white square is its theoretical "
        "receptive field (every input pixel that can reach it), the heat map its effective field (how much each "
        "pixel does: the unit's input gradient, Luo et al. 2016), beside the same unit of the plain twin."
    )
    with gr.Row():
        stage = gr.Dropdown([], label="Stage", allow_custom_value=True, elem_id="field-stage")
        row = gr.Number(0, label="Unit row", precision=0, minimum=0, elem_id="field-row")
        col = gr.Number(0, label="Unit column", precision=0, minimum=0, elem_id="field-col")
    with gr.Row():
        units = picture("The stage's mean activation on the crop (click a unit)", clickable=True, elem_id="field-units")
        field = picture("This network: effective field in its theoretical field", elem_id="field-network")
        twin = picture("Its plain twin, same unit", elem_id="field-twin")
    field_md = gr.Markdown(elem_id="field-text")
    fields = on_gpu(field_views, "analysis")
    field_inputs, field_outputs = [shared.session, stage, row, col], [field_md, field, twin]
    # The named events first: a private one registered before it would take the function's name.
    for submitted in (row.submit, col.submit):
        submitted(fields, field_inputs, field_outputs, api_name="receptive_field", **SESSION_BOUND, **NETWORK)
    tab.select(unit_views, [shared.session, stage], [stage, units], **PRIVATE)
    stage.input(unit_views, [shared.session, stage], [stage, units], **PRIVATE)
    units.select(on_unit_click, [shared.session, stage], [row, col, units, *field_outputs], **PRIVATE, **NETWORK)

    inputs = [shared.arch, shared.weights, overlay, shared.session]
    # The named event first: a private one registered before it would take the function's name.
    overlay.input(network_map, inputs, [diagram, note], api_name="network_map", **SESSION_BOUND, **NETWORK)
    tab.select(network_map, inputs, [diagram, note], **PRIVATE, **NETWORK)
    gr.on([shared.weights.change], map_if_open, [*inputs, shared.open_tab], [diagram, note], **PRIVATE, **NETWORK)
    diagram.select(on_map_click, inputs, [details, features], **PRIVATE)


def network_map(arch: str, weights: str, overlay: str, state: TabState | None = None) -> tuple[str, str]:
    """A diagram of a network (stem, every block of every stage, the head; shortcut arcs, thick where the block
    changes shape) with each block coloured by a number, as a PNG.

    Args:
        arch: the architecture, e.g. "resnet50".
        weights: "DEFAULT", a weight name, or "random init".
        overlay: what colours the blocks: "multiply-adds", "parameters", "receptive field (px)"; after an analysis
            in this session "residual ratio ||F(x)|| / ||shortcut(x)|| (photo)" or "evidence through the shortcut
            (photo)"; after the CIFAR-10 tab's lesion study or Fig. 7, the accuracy lost without each block or the
            std of its last 3x3 response.
    """
    drawn, note = drawn_map(arch, weights, overlay, state)
    return png_path(drawn.image), note


def map_if_open(arch: str, weights: str, overlay: str, state: TabState | None, open_tab: str):
    """After a change of network: the new map where this tab is on screen (else it is drawn when opened)."""
    return network_map(arch, weights, overlay, state) if open_tab == TITLE else (gr.skip(), gr.skip())


def on_map_click(arch: str, weights: str, overlay: str, state: TabState | None, event: gr.SelectData):
    weights, _ = settled_weights(arch, weights)
    # The boxes depend on the network alone, not on the colours: hit-test its layout, no overlay recomputed.
    name = draw_network_map(structure(catalog.choice(arch, weights).spec)).at(*event.index)
    if name is None:  # a click between boxes
        return gr.skip(), gr.skip()
    return block_details(arch, weights, name, state)


def block_details(arch: str, weights: str, name: str, state: TabState | None) -> tuple[str, str | None]:
    """A block's numbers (costs, receptive field; residual statistics after an analysis) and its feature maps."""
    weights, _ = settled_weights(arch, weights)
    (row,) = [row for row in costs(arch, weights).rows if row.name == name]
    shape = "x".join(map(str, row.output_shape))
    field = f"{row.receptive_field} px" if row.receptive_field else "the whole input"
    lines = [
        f"**{name}** ({row.stage}) of {arch}: {row.params:,} parameters, {row.macs:,} multiply-adds, output "
        f"{shape}, receptive field {field}."
    ]
    stored = stored_analysis_of(arch, weights, state)
    if stored is None:
        lines.append("Analyze a photo with this network to see this block's output and statistics.")
        return "\n\n".join(lines), None
    result = stored.result
    stats = result.blocks.get(name)
    if stats is not None and stats.residual_ratio is not None:
        lines.append(
            f"On the photo: ||F(x)|| / ||shortcut(x)|| = {stats.residual_ratio:.3f}, cosine {stats.cosine:+.2f}, "
            f"{100 * stats.zero_fraction:.0f}% zeros after the final ReLU."
        )
    elif stats is not None:
        lines.append(f"On the photo: a plain block (no shortcut); {100 * stats.zero_fraction:.0f}% zeros after it.")
    evidence = stored.evidence.get(state["cam_class"])
    if evidence is not None and stats is not None:
        entry = evidence.block(name)
        lines.append(
            f'Evidence for "{evidence.class_name}": {entry.shortcut:+.3f} through the shortcut, {entry.branch:+.3f} '
            "added by the branch."
        )
    output = stats.output if stats is not None else result.stages.get(name)
    return "\n\n".join(lines), png_path(feature_grid(output, 32)[0]) if output is not None else None


def _field_stage(result: AnalysisResult, stage: str | None) -> str:
    """The stage asked for, else the first after the stem: its units' fields are small enough to see on the crop."""
    return stage if stage in result.stages else list(result.stages)[min(1, len(result.stages) - 1)]


def unit_views(state: TabState | None, stage: str | None):
    """The stage picker and the stage's mean activation over the crop, where a click picks a unit."""
    if not state:
        return gr.skip(), gr.skip()
    _, stored = stored_analysis(state)
    stage = _field_stage(stored.result, stage)
    return gr.update(choices=list(stored.result.stages), value=stage), png_path(_units_picture(stored.result, stage))


def _units_picture(result: AnalysisResult, stage: str, unit: tuple[int, int] | None = None) -> np.ndarray:
    """The stage's mean activation, each unit a block of the crop's pixels (nearest), enlarged by whole pixels so a
    click picks the unit under it; ``unit`` (row, column), where one was picked, outlined in white."""
    activation = result.stages[stage].float().mean(0)
    span = activation.max() - activation.min()
    scaled = (activation - activation.min()) / span if span > 0 else activation * 0
    blocks = torch.nn.functional.interpolate(scaled[None, None], size=result.crop.size[::-1], mode="nearest")
    factor = _units_factor(result)
    picture = enlarge(cam_overlay(result.crop, blocks[0, 0].numpy(), 0.6, cmap="viridis"), factor)
    if unit is not None:
        (rows, cols), (width, height) = result.stages[stage].shape[-2:], result.crop.size
        row, col = unit
        box = [factor * col * width // cols, factor * row * height // rows]
        box += [factor * (col + 1) * width // cols - 1, factor * (row + 1) * height // rows - 1]
        image = Image.fromarray(picture)
        ImageDraw.Draw(image).rectangle(box, outline=(255, 255, 255), width=max(1, factor // 4))
        picture = np.asarray(image)
    return picture


def _units_factor(result: AnalysisResult) -> int:
    """How much the units map is enlarged, by whole pixels (a click must land on the unit under it)."""
    return enlargement(max(result.crop.size))


def on_unit_click(state: TabState | None, stage: str, event: gr.SelectData):
    """A click on the stage's map: the unit under it (the map is the crop, each unit a block of its pixels),
    outlined on the map, and how far it sees."""
    _, stored = stored_analysis(state)
    result = stored.result
    stage = _field_stage(result, stage)
    grid_rows, grid_cols = result.stages[stage].shape[-2:]
    width, height = result.crop.size
    factor = _units_factor(result)
    x, y = (int(value) // factor for value in event.index)  # a pixel of the crop
    row, col = min(y * grid_rows // height, grid_rows - 1), min(x * grid_cols // width, grid_cols - 1)
    marked = png_path(_units_picture(result, stage, (row, col)))
    return row, col, marked, *field_views(state, stage, row, col)


def field_views(state: TabState | None, stage: str, row: float, col: float):
    """How far unit (row, col) of ``stage`` sees on the analysed photo: its theoretical receptive field (a square)
    and its effective field (the unit's input gradient), for the network and its plain twin where comparable.

    Args:
        state: the tab's session (from an analysis).
        stage: "stem", "layer1", ...
        row: the unit's row in the stage's output.
        col: the unit's column in the stage's output.
    """
    state, _ = stored_analysis(state)
    photo = load_photo(state["image"])
    row, col = int(row or 0), int(col or 0)

    def measured(arch: str, weights: str) -> UnitField:
        with models().using(arch, weights) as loaded:
            try:
                return unit_field(loaded.model, photo, stage, row, col)
            except ValueError as error:
                raise user_error(str(error)) from None

    own = measured(state["arch"], state["weights"])
    twin, why = catalog.plain_twin(state["arch"], state["weights"])
    other = measured(*twin) if twin is not None else None
    lines = [
        f"**{stage} unit ({row}, {col})** of {state['arch']} (a {own.grid[0]}x{own.grid[1]} grid): theoretical field "
        f"**{own.size} px** (columns {own.box[0]}-{own.box[2] - 1}, rows {own.box[1]}-{own.box[3] - 1} of the "
        f"{own.crop.size[0]} px crop); half of its input gradient lies within a **{own.half_mass_side()} px** square."
    ]
    if other is not None:
        lines.append(
            f"{why}: theoretical field {other.size} px, half of its gradient within **{other.half_mass_side()} px**."
        )
    else:
        lines.append(why)
    pictures = [png_path(field_overlay(f.crop, f.gradient, f.box)) if f else None for f in (own, other)]
    return "\n\n".join(lines), *pictures
