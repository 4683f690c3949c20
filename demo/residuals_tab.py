"""The Residuals tab: how big each block's residual branch is next to its shortcut, and how much of the class's
evidence each block passes on through the shortcut, on the photo analysed."""

from __future__ import annotations

import gradio as gr
import numpy as np
from matplotlib.figure import Figure

from resnet_core.explain.analysis import AnalysisResult
from resnet_core.explain.evidence import EvidenceSplit
from resnet_core.render import evidence_figure, evidence_maps, residual_figure

from .app_state import network_name, stored_analysis, stored_evidence, untrained_mark
from .gpu import on_gpu
from .image_outputs import png_figures, png_path
from .sessions import TabState
from .shared import NETWORK, PRIVATE, SESSION_BOUND, Shared, chart, picture

TITLE = "Residuals"


def build(shared: Shared, tab: gr.Tab) -> None:
    residual_md = gr.Markdown()
    residual_plot = chart("Size of each block's residual branch relative to its shortcut", elem_id="residual-chart")
    gr.Markdown("### What flows through the shortcut")
    evidence_md = gr.Markdown(elem_id="evidence-summary")
    evidence_plot = chart("Evidence for the class at each block: carried by the shortcut or added by the branch")
    # Choices come with the analysis; an API caller names a block before the page ever listed one.
    block = gr.Dropdown(
        [], label="Block: where its evidence sits on the crop", allow_custom_value=True, elem_id="evidence-block"
    )
    with gr.Row():
        branch_map = picture("Added by the branch F(x) (red: for the class, blue: against)", elem_id="evidence-branch")
        shortcut_map = picture("Carried by the shortcut (same scale)", elem_id="evidence-shortcut")
    evidence_outputs = [evidence_md, evidence_plot, block, branch_map, shortcut_map]
    shared.views.update(residual_chart=residual_plot, residual_md=residual_md, evidence_outputs=evidence_outputs)
    # Both cost a forward (the evidence) or a quarter of a second (the chart): a click on Analyze does not wait for
    # them unless this tab is on screen (the /analyze API returns the chart, drawn, as before).
    tab.select(png_figures(shown_chart), shared.session, residual_plot, **PRIVATE)
    evidence = png_figures(on_gpu(evidence_views, "analysis"))
    tab.select(evidence, [shared.session, block], evidence_outputs, **PRIVATE, **NETWORK)
    block.input(evidence, [shared.session, block], evidence_outputs, api_name="evidence", **SESSION_BOUND, **NETWORK)


def shown_chart(state: TabState | None):
    """The chart of the tab's analysis, for a tab being opened: nothing to draw before an analysis."""
    return residual_chart(stored_analysis(state)[1].result) if state else gr.skip()


def chart_if_open(state: TabState | None, open_tab: str):
    """After an analysis: the chart and the evidence split, where this tab is the one on screen (else they are
    drawn when it is opened)."""
    if open_tab != TITLE:
        return (gr.skip(),) * 6
    return shown_chart(state), *evidence_views(state, None)


def evidence_views(state: TabState | None, block: str | None):
    """How much of the class's evidence each block of the analysed network passes on through its shortcut, and
    where on the crop a block's two parts sit.

    The class is the one the Grad-CAM tab explains (the top-1 after an analysis). Returns a summary, a chart with
    one stacked bar per block, the block picker, and the block's branch and shortcut maps (one scale for both).

    Args:
        state: the tab's session (from an analysis).
        block: the block whose maps to draw, e.g. "layer3.2" (default: the last block).
    """
    if not state:
        return (gr.skip(),) * 5
    split = stored_evidence(state)
    names = [entry.block for entry in split.blocks]
    block = block if block in names else names[-1]
    branch, shortcut = evidence_maps(split, block)
    picker = gr.update(choices=names, value=block)
    return evidence_summary(split), evidence_chart(split), picker, png_path(branch), png_path(shortcut)


def evidence_chart(split: EvidenceSplit):
    mark = untrained_mark(split)
    title = f"{network_name(split)}{f' ({mark})' if mark else ''}: evidence for '{split.class_name}' at each block"
    return evidence_figure(split, title)


def evidence_summary(split: EvidenceSplit) -> str:
    """The split in a sentence or two: how many blocks pass most of their evidence on through the shortcut."""
    head = (
        f'**Evidence for "{split.class_name}"** (logit {split.logit:.2f}), to first order: at each block\'s sum '
        "z = F(x) + shortcut(x), <dS/dz, F(x)> is what the branch added and <dS/dz, shortcut(x)> what came "
        "through the skip; together they are <dS/dz, z>. "
    )
    if not any(entry.has_shortcut for entry in split.blocks):
        return head + "A plain network has no shortcuts, so all of every block's evidence is in its branch."
    through = split.through_shortcut()
    text = head + (
        f"**{len(through)} of {len(split.blocks)} blocks** pass most of their evidence on through the shortcut "
        "(the residual ratio says how big the branch is; this says how much it matters for the answer)."
    )
    if not split.card.pretrained:
        text += " These are random weights: this shows the initialisation, not what training makes of it."
    return text


def residual_chart(result: AnalysisResult) -> Figure:
    """||F(x)|| / ||shortcut(x)|| of every block of the analysis: one bar per block, coloured by stage."""
    ratios = {name: stats.residual_ratio for name, stats in result.blocks.items()}
    mark = untrained_mark(result)
    name = network_name(result)
    title = f"{name}{f' ({mark})' if mark else ''}: each block's residual branch against its shortcut"
    return residual_figure({name: ratios}, result.stage_of, title)


_ZERO_BRANCH = (
    "A branch is zero where its last batch-norm scale is zero (zero-initialised residuals, torchvision's "
    "zero_init_residual and timm's zero_init_last, start so) or where its ReLUs let nothing through."
)


def residual_summary(result: AnalysisResult) -> str:
    ratios = [s.residual_ratio for s in result.blocks.values() if s.residual_ratio is not None]
    if not ratios:
        return "A plain network has no shortcuts, so there is no residual to compare: each block rewrites its input."
    silent = [name for name, stats in result.blocks.items() if stats.residual_ratio == 0]
    if len(silent) == len(ratios):
        return (
            f"Every residual branch outputs exactly zero on this photo (ratio 0 in all {len(ratios)} blocks), so each "
            f"block passes its shortcut through unchanged and the chart's bars have no height. {_ZERO_BRANCH}"
        )
    small = sum(r < 1 for r in ratios)
    projections = sum(s.projection for s in result.blocks.values())
    where = (
        f" In the {projections} block(s) that change shape the shortcut is not x itself but x brought to the new "
        "shape (the projection W_s·x, or option A's subsampled, zero-padded x)."
        if projections
        else ""
    )
    zeros = (
        f" In {len(silent)} block(s) the branch outputs exactly zero, so the block passes its shortcut through "
        f"unchanged. {_ZERO_BRANCH}"
        if silent
        else ""
    )
    head = (
        f"In {small} of {len(ratios)} blocks the residual branch F(x) is smaller than its shortcut "
        f"(median ratio {np.median(ratios):.2f}).{where}{zeros}"
    )
    if not result.card.pretrained:
        return head + " These are random weights, so this shows the initialisation, not what training makes of it."
    return head + (
        " A block whose ratio is well below 1 nudges its input rather than replacing it, which is the paper's "
        "reason why adding layers to a residual network does not hurt; where it is above 1 the branch does more "
        "than nudge."
    )
