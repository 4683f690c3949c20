"""The Blocks: a header, the analysis panel, and one line per tab; each tab builds and wires itself."""

from __future__ import annotations

import gradio as gr

from . import (
    about_tab,
    analysis_panel,
    cifar10_tab,
    compare_tab,
    cost_tab,
    dataset_tab,
    degradation_tab,
    explain_tab,
    features_tab,
    gradcam_tab,
    live_tab,
    network_map_tab,
    residuals_tab,
)
from .shared import Tab

__all__ = ["PIXELATED", "TABS", "build_demo"]

# In page order. A new tab is a module with TITLE and build(shared, tab), and one line here (CONTRIBUTING.md).
TABS: list[Tab] = [
    features_tab,
    gradcam_tab,
    explain_tab,
    cost_tab,
    residuals_tab,
    network_map_tab,
    live_tab,
    compare_tab,
    cifar10_tab,
    dataset_tab,
    degradation_tab,
    about_tab,
]
# A 32x32 or 28x28 input is shown enlarged with its pixels kept sharp, so the user sees what the net saw
# (Gradio 6 takes css at launch: demo.launch passes it).
PIXELATED = (
    ".pixelated img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }\n"
    ".pixelated-tiles img { image-rendering: pixelated; }\n"  # galleries and clickable pictures come at their size
    ".pixelated-tiles .caption-label { white-space: normal; max-width: 100%; }"  # a tile's caption wraps, not cut
)


def opened_tab(event: gr.SelectData) -> str:
    return event.value


def build_demo(tabs: list[Tab] | None = None) -> gr.Blocks:
    """The whole app: the header, the analysis panel, then every tab of ``tabs`` (default: :data:`TABS`)."""
    with gr.Blocks(title="ResNet Explorer") as demo:
        gr.Markdown(
            "# ResNet Explorer\nWhat a residual network sees, where it looks, and what each block costs. "
            "Upload a photo, pick a network, press **Analyze**."
        )
        shared, panel = analysis_panel.build(demo)
        pages = TABS if tabs is None else tabs
        shared.open_tab = gr.State(pages[0].TITLE)
        with gr.Tabs() as tab_row:
            for tab in pages:
                with gr.Tab(tab.TITLE) as page:
                    tab.build(shared, page)
        tab_row.select(opened_tab, None, shared.open_tab, queue=False, api_visibility="private")
        analysis_panel.wire(shared, panel)  # the analysis fills views of several tabs: wired once they exist
    return demo
