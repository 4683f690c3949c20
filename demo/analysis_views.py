"""The views one analysis fills, registered by the tabs that show them.

One Analyze click runs one forward pass whose results land in several tabs. Each such tab registers a
:class:`View` in its ``build``: the components it fills, by a name of its own, and a function that draws their values
from the analysis (a :class:`Drawing`). The analysis panel knows no tab: it runs the analysis and sends what every
registered view draws; a tab left out of the app is a view nobody draws.

The /analyze API answers the same whichever tabs the page shows: its pictures (the crop, the feature grid, the
Grad-CAM, the residual chart and its summary) are drawn by the functions here, which the tabs use too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np
import torch
from matplotlib.figure import Figure

from resnet_core.explain.analysis import AnalysisResult
from resnet_core.render import cam_overlay, enlarge, enlargement, feature_grid, residual_figure

from .app_state import STAGE_OUTPUT, network_name, shown_stage, untrained_mark
from .sessions import Stored, TabState

__all__ = [
    "RETURNS",
    "SETTINGS",
    "AnalysisViews",
    "Drawing",
    "View",
    "block_choices",
    "cam_picture",
    "feature_of",
    "grid_picture",
    "residual_chart",
    "residual_summary",
    "shown_feature",
]

# The analysis's settings, by name, with the value each takes where no tab shows a control for it.
SETTINGS: dict[str, Any] = {
    "cam_layer": None,  # the stage Grad-CAM looks at (None: the last)
    "stage": None,  # the stage whose channels are drawn (None: the last)
    "block": STAGE_OUTPUT,  # ... or one of its blocks
    "channels": 32,  # how many channels the grid shows
    "sort": "mean",  # strongest channels first, or "index"
    "opacity": 0.5,  # the heat map's over the crop
    "channel": None,  # the channel shown large (None: 0)
}
# What /analyze returns between its status line and its session, by name: the components a tab registers under
# these names are the API's outputs.
RETURNS = ("crop", "grid", "cam", "residual_chart", "residual_md")


@dataclass(frozen=True)
class Drawing:
    """What a view draws from: the analysis just run, the settings it ran with, and the one it replaces."""

    state: TabState
    stored: Stored
    settings: Mapping[str, Any] = field(default_factory=lambda: dict(SETTINGS))
    previous: TabState | None = None  # None: the session's first analysis

    @property
    def result(self) -> AnalysisResult:
        return self.stored.result

    @property
    def same_network(self) -> bool:
        """Whether the analysis replaced was of this network and weights (long pick-lists need not be sent again)."""
        previous = self.previous
        return previous is not None and (previous["arch"], previous["weights"]) == (
            self.state["arch"],
            self.state["weights"],
        )


@dataclass(frozen=True)
class View:
    """Part of a tab that an analysis fills: its components by name, and the function that draws them.

    ``draw`` returns values by the names of ``outputs``; a name it leaves out keeps what is on screen. A view with
    ``when_open`` (a tab's TITLE) is drawn only while that tab is on screen: its tab draws it when opened.
    """

    outputs: Mapping[str, gr.components.Component]
    draw: Callable[[Drawing], Mapping[str, Any]]
    when_open: str | None = None


@dataclass
class AnalysisViews:
    """The registry: the views of the tabs in the app, the controls of the analysis's settings, the API's outputs."""

    views: list[View] = field(default_factory=list)
    settings: dict[str, gr.components.Component] = field(default_factory=dict)  # by a name of SETTINGS
    returns: dict[str, gr.components.Component] = field(default_factory=dict)  # by a name of RETURNS

    def register(self, view: View, settings: Mapping[str, gr.components.Component] | None = None) -> None:
        """Add ``view``, and the controls of ``settings`` its tab shows; outputs named as in :data:`RETURNS` are
        the /analyze API's. A setting or an API output registered twice is refused."""
        settings = dict(settings or {})
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise ValueError(f"unknown analysis settings {sorted(unknown)}; known: {list(SETTINGS)}")
        returned = {name: component for name, component in view.outputs.items() if name in RETURNS}
        for kind, known, new in (("setting", self.settings, settings), ("API output", self.returns, returned)):
            twice = set(known) & set(new)
            if twice:
                raise ValueError(f"the {kind}s {sorted(twice)} are registered already")
        self.views.append(view)
        self.settings.update(settings)
        self.returns.update(returned)

    def outputs(self) -> list[gr.components.Component]:
        """Every component a view fills, once each, in registration order."""
        return list(dict.fromkeys(component for view in self.views for component in view.outputs.values()))

    def drawn(self, drawing: Drawing, open_tab: str | None) -> dict[gr.components.Component, Any]:
        """Every view's values, by component: the views of tabs not on screen that wait for theirs are left out."""
        values: dict[gr.components.Component, Any] = {}
        for view in self.views:
            if view.when_open is None or view.when_open == open_tab:
                values.update({view.outputs[name]: value for name, value in view.draw(drawing).items()})
        return values


def block_choices(result: AnalysisResult, stage: str | None) -> list[str]:
    """The Block picker's choices for a stage: the stage itself, then its blocks."""
    stage = shown_stage(result, stage)
    return [STAGE_OUTPUT] + [name for name in result.blocks if result.stage_of[name] == stage]


def shown_feature(result: AnalysisResult, stage: str | None, block: str | None) -> tuple[str, str, torch.Tensor]:
    """The stage and block whose channels are shown for a pick of ``stage`` and ``block`` (the block kept where it
    is one of the stage's, else the stage's own output), and their feature map."""
    stage = shown_stage(result, stage)
    block = block if block in block_choices(result, stage) else STAGE_OUTPUT
    return stage, block, feature_of(result, stage, block)


def cam_picture(drawing: Drawing) -> np.ndarray:
    """The Grad-CAM of the analysis over the crop, at the opacity picked."""
    return cam_overlay(drawing.result.crop, drawing.stored.cam, drawing.settings["opacity"])


def feature_of(result: AnalysisResult, stage: str | None, block: str | None):
    """The feature map of a block of ``stage``, or of the stage itself."""
    if block in (None, STAGE_OUTPUT) or block not in result.blocks:
        return result.stages[shown_stage(result, stage)]
    return result.blocks[block].output


def grid_picture(feature, channels: int, sort: str) -> tuple[np.ndarray, list[int], int]:
    """The channel grid as the page shows it: ``feature_grid`` enlarged by whole pixels to at least 320 px (a click
    lands on the cell under it), the channel in each cell, and the enlargement."""
    grid, order = feature_grid(feature, channels, sort)
    factor = enlargement(max(grid.shape[:2]))
    return enlarge(grid, factor), order, factor


def residual_chart(result: AnalysisResult) -> Figure:
    """||F(x)|| / ||shortcut(x)|| of every block of the analysis: one bar per block, coloured by stage."""
    ratios = {name: stats.residual_ratio for name, stats in result.blocks.items()}
    mark = untrained_mark(result)
    name = network_name(result)
    title = f"{name}{f' ({mark})' if mark else ''}: each block's residual branch against its shortcut"
    return residual_figure({name: ratios}, result.stage_of, title)


_ZERO_BRANCH = (
    "A branch is zero where its last layer is zero (zero-initialised residuals start so: torchvision's "
    "zero_init_residual zeroes the last batch-norm scale; timm's zero_init_last and the untrained pre-activation "
    "networks here, the last convolution) or where its ReLUs let nothing through."
)


def _preact(result: AnalysisResult) -> bool:
    return result.card.arch.block.startswith("preact")


def residual_summary(result: AnalysisResult) -> str:
    """The residual ratios in a sentence or two: how many blocks nudge their input rather than replace it."""
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
        + (" Here W_s reads x after the block's own BN-ReLU (pre-activation)." if _preact(result) else "")
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
