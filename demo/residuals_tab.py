"""The Residuals tab: how big each block's residual branch is next to its shortcut, and how much of the class's
evidence each block passes on through the shortcut, on the photo analysed."""

from __future__ import annotations

import gradio as gr

from resnet_core.explain.evidence import EvidenceSplit
from resnet_core.render import evidence_figure, evidence_maps

from .analysis_views import Drawing, View, residual_chart, residual_summary
from .app_state import network_name, stored_analysis, stored_evidence, untrained_mark
from .gpu import on_gpu
from .image_outputs import png_figures, png_path
from .sessions import TabState
from .shared import NETWORK, PRIVATE, SESSION_BOUND, Shared, chart, picture

TITLE = "Residuals"
EVIDENCE = ("evidence_md", "evidence_chart", "evidence_block", "branch_map", "shortcut_map")  # evidence_views' outputs


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
    shared.views.register(View({"residual_md": residual_md}, summary_view))
    shared.views.register(
        View({"residual_chart": residual_plot, **dict(zip(EVIDENCE, evidence_outputs, strict=True))}, open_view, TITLE)
    )
    # Both cost a forward (the evidence) or a quarter of a second (the chart): a click on Analyze does not wait for
    # them unless this tab is on screen (the /analyze API returns the chart, drawn, as before).
    tab.select(png_figures(shown_chart), shared.session, residual_plot, **PRIVATE)
    evidence = png_figures(on_gpu(evidence_views, "analysis"))
    tab.select(evidence, [shared.session, block], evidence_outputs, **PRIVATE, **NETWORK)
    block.input(evidence, [shared.session, block], evidence_outputs, api_name="evidence", **SESSION_BOUND, **NETWORK)


def shown_chart(state: TabState | None):
    """The chart of the tab's analysis, for a tab being opened: nothing to draw before an analysis."""
    return residual_chart(stored_analysis(state)[1].result) if state else gr.skip()


def summary_view(drawing: Drawing) -> dict:
    """After an analysis: the residual ratios in a sentence or two."""
    return {"residual_md": residual_summary(drawing.result)}


def open_view(drawing: Drawing) -> dict:
    """After an analysis, where this tab is on screen (else drawn when it is opened): the chart and the evidence."""
    evidence = dict(zip(EVIDENCE, evidence_views(drawing.state, None), strict=True))
    return {"residual_chart": residual_chart(drawing.result), **evidence}


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
    if split.card.arch.block.startswith("preact"):
        text += " " + CLEAN_IDENTITY
    if not split.card.pretrained:
        text += " These are random weights: this shows the initialisation, not what training makes of it."
    return text


CLEAN_IDENTITY = (
    "This is a pre-activation network (He et al. 2016): nothing follows a block's sum, so what its identity "
    "shortcut carries reaches the next block unchanged, a clean path from the stem to the last stage; in the "
    "paper's block a ReLU after the sum filters it at every block."
)
