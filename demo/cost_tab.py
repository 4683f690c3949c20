"""The Cost tab: parameters, multiply-adds and FLOPs of every block of the network picked, at its weights' size."""

from __future__ import annotations

from functools import lru_cache

import gradio as gr

from resnet_core.measure.complexity import CostTable, bottleneck_arithmetic, cost_table
from resnet_core.render import cost_figure

from . import catalog
from .app_state import costs, settled_weights
from .image_outputs import png_figures
from .shared import PRIVATE, Shared, chart

TITLE = "Cost"
COST_HEADERS = ["block", "parameters", "MACs", "FLOPs", "output shape", "% params", "% FLOPs", "receptive field (px)"]


def build(shared: Shared, tab: gr.Tab) -> None:
    cost_md = gr.Markdown()
    cost_plot = chart("Multiply-adds and parameters per block")
    cost_table = gr.Dataframe(headers=COST_HEADERS, label="Per block", interactive=False)
    # Drawn when the tab is opened, and on a change of network or weights (a pick, or an example that carries its
    # own) only while it is on screen: a chart nobody looks at would take the cores from the next Analyze (three
    # redraws per pick, measured). /costs answers any network for gradio_client and MCP.
    outputs, inputs = [cost_md, cost_plot, cost_table], [shared.arch, shared.weights]
    api = gr.Button(visible=False)
    api.click(png_figures(cost_views), inputs, outputs, api_name="costs")
    tab.select(png_figures(cost_views), inputs, outputs, **PRIVATE)
    changes = [shared.arch.change, shared.weights.change]
    gr.on(changes, png_figures(costs_if_open), [*inputs, shared.open_tab], outputs, **PRIVATE)


def cost_views(arch: str, weights: str):
    """Parameters, multiply-adds and FLOPs of every block of an architecture, counted at the size its weights expect.

    Returns a summary (with the published figures where they exist), a chart and a table with one row per block.

    Args:
        arch: the architecture, e.g. "resnet50" or "cifar10_resnet20".
        weights: "DEFAULT", a weight name, or "random init" (costs are counted at that weight's evaluation size).
    """
    weights, _ = settled_weights(arch, weights)  # a change of network can arrive before its weights do
    table = costs(arch, weights)
    return cost_summary(arch, weights), cost_figure(table), cost_rows(table)


def costs_if_open(arch: str, weights: str, open_tab: str):
    """After a change of network or weights: the new costs where this tab is on screen (else drawn when opened)."""
    return cost_views(arch, weights) if open_tab == TITLE else (gr.skip(),) * 3


def cost_rows(table: CostTable) -> list[list]:
    return [
        [
            row.name,
            row.params,
            row.macs,
            row.flops,
            "x".join(map(str, row.output_shape)),
            round(100 * row.params_share, 2),
            round(100 * row.flops_share, 2),
            row.receptive_field,
        ]
        for row in table.rows
    ]


@lru_cache(maxsize=256)  # bounded: visitors' checkpoints add choices as they come
def cost_summary(arch: str, weights: str) -> str:
    table = catalog.costs(arch, weights)
    size = table.input_size
    lines = [
        f"**{arch}**, counted (torch.utils.flop_counter, {size}x{size}, the size these weights are evaluated at): "
        f"{table.total_params:,} parameters, "
        f"{table.total_macs / 1e9:.3f} GMACs = {table.total_flops / 1e9:.3f} GFLOPs "
        "(one multiply-add is two FLOPs; the paper's 'FLOPs' are multiply-adds)."
    ]
    entry = catalog.choice(arch, weights).published
    if entry is not None and entry.num_params:
        lines.append(
            f"**Published** ({entry.origin}, 224x224): {entry.num_params:,} parameters, {entry.gmacs:.3f} GMACs."
        )
    elif size != 224 and catalog.choice(arch, weights).spec.labels == "imagenet":
        at_224 = cost_table(catalog.choice(arch, weights).spec, 224)  # not the weights' own size, whatever they are
        lines.append(f"At the usual 224x224: {at_224.total_macs / 1e9:.3f} GMACs.")
    stages = table.stages()
    lines.append(
        "Per stage: "
        + ", ".join(f"{name} {100 * total['flops_share']:.1f}% of FLOPs" for name, total in stages.items())
        + "."
    )
    fields = [f"{name} {total['receptive_field']} px" for name, total in stages.items() if total["receptive_field"]]
    lines.append(
        "**Receptive field** (the input pixels one unit of a stage's output can see, per side, from the network's "
        f"own layers): {', '.join(fields)}; the head's average pool sees the whole input."
    )
    numbers = bottleneck_arithmetic(256)
    lines.append(
        f"**Why bottlenecks:** at 256 channels a bottleneck (1x1 to 64, 3x3 at 64, 1x1 back to 256) has "
        f"{numbers['bottleneck']:,} convolution weights; two 3x3 convolutions at 256 would have "
        f"{numbers['two_3x3']:,}, {numbers['two_3x3'] / numbers['bottleneck']:.0f}x as many."
    )
    return "\n\n".join(lines)
