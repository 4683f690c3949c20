"""The Residuals tab: how big each block's residual branch is next to its shortcut, on the photo analysed."""

from __future__ import annotations

import gradio as gr
import numpy as np
from matplotlib.figure import Figure

from resnet_core.explain.analysis import AnalysisResult
from resnet_core.render import residual_figure

from .app_state import network_name, stored_analysis, untrained_mark
from .image_outputs import png_figures
from .sessions import TabState
from .shared import PRIVATE, Shared, chart

TITLE = "Residuals"


def build(shared: Shared, tab: gr.Tab) -> None:
    residual_md = gr.Markdown()
    residual_plot = chart("Size of each block's residual branch relative to its shortcut", elem_id="residual-chart")
    shared.views.update(residual_chart=residual_plot, residual_md=residual_md)
    # The chart costs a quarter of a second to draw: a click on Analyze does not wait for it unless it is on screen
    # (the /analyze API returns it, drawn, as before).
    tab.select(png_figures(shown_chart), shared.session, residual_plot, **PRIVATE)


def shown_chart(state: TabState | None):
    """The chart of the tab's analysis, for a tab being opened: nothing to draw before an analysis."""
    return residual_chart(stored_analysis(state)[1].result) if state else gr.skip()


def chart_if_open(state: TabState | None, open_tab: str):
    """After an analysis: the chart, where this tab is the one on screen (else it is drawn when opened)."""
    return shown_chart(state) if open_tab == TITLE else gr.skip()


def residual_chart(result: AnalysisResult) -> Figure:
    """||F(x)|| / ||shortcut(x)|| of every block of the analysis: one bar per block, coloured by stage."""
    ratios = {name: stats.residual_ratio for name, stats in result.blocks.items()}
    mark = untrained_mark(result)
    name = network_name(result)
    title = f"{name}{f' ({mark})' if mark else ''}: each block's residual branch against its shortcut"
    return residual_figure({name: ratios}, result.stage_of, title)


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
