"""The Network map tab: the network picked, drawn stem to head from its own description and coloured by a number
per block; a click on a block shows its numbers and, after an analysis, its feature maps."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import gradio as gr
import torch

from resnet_core.diagram import NetworkMap, draw_network_map
from resnet_core.render import feature_grid
from resnet_core.zoo.architectures import ArchSpec
from resnet_core.zoo.architectures import build as build_model
from resnet_core.zoo.models import ResNet

from . import catalog
from .app_state import costs, results, settled_weights
from .image_outputs import png_path
from .residuals_tab import stored_evidence
from .sessions import Stored, TabState
from .shared import NETWORK, PRIVATE, SESSION_BOUND, Shared, picture

TITLE = "Network map"

RESIDUAL_RATIO = "residual ratio ||F(x)|| / ||shortcut(x)|| (photo)"
# Per-block numbers a map can be coloured by: (needs an analysis of this network, log scale).
OVERLAYS: dict[str, tuple[bool, bool]] = {
    "multiply-adds": (False, True),
    "parameters": (False, True),
    "receptive field (px)": (False, False),
    RESIDUAL_RATIO: (True, True),
    "evidence through the shortcut (photo)": (True, False),
}


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
    inputs = [shared.arch, shared.weights, overlay, shared.session]
    # The named event first: a private one registered before it would take the function's name.
    overlay.input(network_map, inputs, [diagram, note], api_name="network_map", **SESSION_BOUND, **NETWORK)
    tab.select(network_map, inputs, [diagram, note], **PRIVATE, **NETWORK)
    gr.on([shared.weights.change], map_if_open, [*inputs, shared.open_tab], [diagram, note], **PRIVATE, **NETWORK)
    diagram.select(on_map_click, inputs, [details, features], **PRIVATE)


@lru_cache(maxsize=64)
def _structure(spec: ArchSpec) -> ResNet:
    """The network's modules on the meta device: its layout without a byte of weights."""
    with torch.device("meta"):
        return build_model(spec)


def _analysis(arch: str, weights: str, state: TabState | None) -> Stored | None:
    """The tab's stored analysis where it is of the network on the map."""
    if not state or (state["arch"], state["weights"]) != (arch, weights):
        return None
    return results().get(state["token"])


def _values(name: str, arch: str, weights: str, state: TabState | None) -> dict[str, float | None]:
    needs_analysis, _ = OVERLAYS[name]
    if not needs_analysis:
        table = costs(arch, weights)
        read: Callable = {
            "multiply-adds": lambda row: row.macs,
            "parameters": lambda row: row.params,
            "receptive field (px)": lambda row: row.receptive_field,
        }[name]
        return {row.name: read(row) for row in table.rows}
    stored = _analysis(arch, weights, state)
    if stored is None:
        return {}
    if name == RESIDUAL_RATIO:
        return {block: stats.residual_ratio for block, stats in stored.result.blocks.items()}
    return {entry.block: entry.shortcut_share for entry in stored_evidence(state).blocks}


def drawn_map(arch: str, weights: str, overlay: str, state: TabState | None) -> tuple[NetworkMap, str]:
    """The map of the picked network coloured by ``overlay``, and a note on what the colours show."""
    if overlay not in OVERLAYS:
        raise gr.Error(f"Unknown overlay {overlay!r}; expected one of {list(OVERLAYS)}.")
    weights, _ = settled_weights(arch, weights)
    values = _values(overlay, arch, weights, state)
    needs_analysis, log_scale = OVERLAYS[overlay]
    title = f"{arch}: {overlay}"
    drawn = draw_network_map(_structure(catalog.spec(arch, weights)), values, overlay, title, log_scale)
    if needs_analysis and not values:
        note = f"Analyze a photo with {arch} ({weights}) to colour its blocks by this; the map shows its layout."
    elif needs_analysis:
        note = f"On the photo analysed with {arch} ({weights}); plain blocks (no shortcut) are grey."
    else:
        note = f"Counted for {arch} at the size its weights expect; the head's average pool sees the whole input."
    return drawn, note


def network_map(arch: str, weights: str, overlay: str, state: TabState | None = None) -> tuple[str, str]:
    """A diagram of a network (stem, every block of every stage, the head; shortcut arcs, thick where the block
    changes shape) with each block coloured by a number, as a PNG.

    Args:
        arch: the architecture, e.g. "resnet50".
        weights: "DEFAULT", a weight name, or "random init".
        overlay: what colours the blocks: one of "multiply-adds", "parameters", "receptive field (px)", or, after
            an analysis in this session, "residual ratio ||F(x)|| / ||shortcut(x)|| (photo)" and "evidence through
            the shortcut (photo)".
    """
    drawn, note = drawn_map(arch, weights, overlay, state)
    return png_path(drawn.image), note


def map_if_open(arch: str, weights: str, overlay: str, state: TabState | None, open_tab: str):
    """After a change of network: the new map where this tab is on screen (else it is drawn when opened)."""
    return network_map(arch, weights, overlay, state) if open_tab == TITLE else (gr.skip(), gr.skip())


def on_map_click(arch: str, weights: str, overlay: str, state: TabState | None, event: gr.SelectData):
    drawn, _ = drawn_map(arch, weights, overlay, state)
    name = drawn.at(*event.index)
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
    stored = _analysis(arch, weights, state)
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
