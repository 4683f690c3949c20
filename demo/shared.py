"""What every tab plugs into: the photo, the network picked, the tab's analysis, and the event settings.

A tab is a module with a ``TITLE`` and a ``build(shared, tab)`` that creates its components and wires its own
events, as gradio's own demos do. The analysis panel at the top runs one forward pass whose outputs land in several
tabs: a tab that shows some registers them in ``shared.views`` (:class:`demo.analysis_views.AnalysisViews`) with the
function that draws them, so the panel knows no tab and any tab can be left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import gradio as gr

from .analysis_views import AnalysisViews

__all__ = ["NETWORK", "PRIVATE", "SESSION_BOUND", "VIEW_ONLY", "Shared", "Tab", "caption", "chart", "picture"]

# Every event that runs a network shares one limit, so "two at a time" holds across the whole app; events that
# only redraw stored results are cheap and keep Gradio's default.
NETWORK: dict[str, Any] = {"concurrency_id": "network", "concurrency_limit": 2}
# UI plumbing: neither in the API page nor callable by name.
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
# Redraws of the caller's own last analysis, and minutes of training: callable by gradio_client, but neither in the
# API docs nor MCP tools (an agent's call has no session to redraw, and must not occupy the CPU).
SESSION_BOUND: dict[str, Any] = {"api_visibility": "undocumented"}
# A picture the page's Analyze waits for and nobody downloads from here (the report has the exact PNG): its
# handlers send image_outputs.view_path JPEGs, and it offers no download button.
VIEW_ONLY: dict[str, Any] = {"format": "jpeg", "buttons": ["fullscreen"]}


@dataclass
class Shared:
    """The components every tab may read, and the registry of the views an analysis fills."""

    demo: gr.Blocks
    image: gr.Image
    family: gr.Dropdown
    arch: gr.Dropdown
    weights: gr.Dropdown
    session: gr.State  # the tab's plain state (demo.sessions.TabState), None before an analysis
    views: AnalysisViews = field(default_factory=AnalysisViews)
    open_tab: gr.State | None = None  # the TITLE of the tab on screen: views only it shows are drawn when opened


class Tab(Protocol):
    """A tab module."""

    TITLE: str

    def build(self, shared: Shared, tab: gr.Tab) -> None: ...


def caption(text: str = "", **options) -> gr.Markdown:
    """A picture's title above it: Gradio's own label floats over the picture's top-left corner and hides pixels."""
    return gr.Markdown(f"**{text}**" if text else "", elem_classes="caption", **options)


def picture(label: str, view_only: bool = False, clickable: bool = False, **options) -> gr.Image:
    """An output image of the analysis: PNG, shown enlarged with sharp pixels (a 32x32 crop stays readable);
    ``view_only``: as :data:`VIEW_ONLY`. A ``clickable`` picture is not enlarged by the browser: its handlers send
    it enlarged by whole pixels (``resnet_core.render.enlarge``), since Gradio maps a click to image pixels as if
    a picture were never shown larger than it is."""
    with gr.Column():
        caption(label)
        kept = VIEW_ONLY if view_only else {"format": "png"}
        sharp = "pixelated-tiles" if clickable else "pixelated"
        options = {"height": 320, "elem_classes": sharp, **kept, **options}
        return gr.Image(label=label, show_label=False, interactive=False, **options)


def chart(label: str, **options) -> gr.Image:
    """A chart: a matplotlib figure sent as a PNG file (handlers wrapped in ``png_figures``), with a download button."""
    with gr.Column():
        caption(label)
        return gr.Image(label=label, show_label=False, interactive=False, format="png", **options)
