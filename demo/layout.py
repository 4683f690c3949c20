"""The Blocks: a header, the analysis panel, and one line per tab; each tab builds and wires itself."""

from __future__ import annotations

import gradio as gr

from . import (
    about_tab,
    analysis_panel,
    compare_tab,
    concepts_tab,
    cost_tab,
    dataset_tab,
    degradation_tab,
    explain_tab,
    features_tab,
    gradcam_tab,
    live_tab,
    network_map_tab,
    paths_tab,
    residuals_tab,
)
from .shared import PRIVATE, Shared, Tab

__all__ = ["GUIDE", "PIXELATED", "TABS", "assemble", "build_demo"]

# In page order: the guided path first (GUIDE), then the rest. A new tab is a module with TITLE and
# build(shared, tab), and one line here (CONTRIBUTING.md).
TABS: list[Tab] = [
    features_tab,
    gradcam_tab,
    residuals_tab,
    degradation_tab,
    network_map_tab,
    compare_tab,
    cost_tab,
    explain_tab,
    dataset_tab,
    live_tab,
    paths_tab,  # the row shows eleven tabs at 1400 px; the rest are under its "..." menu
    concepts_tab,
    about_tab,
]
# A first visit's short path through the tabs, one sentence each on what to look for (steps of tabs left out are
# left out); a visitor who closes it does not see it again in that browser.
GUIDE: list[tuple[Tab | None, str]] = [
    (
        None,
        "click a **CIFAR-10 example** (under the predictions): the paper's trained cifar10_resnet56 answers at once",
    ),
    (
        features_tab,
        "what each stage responds to: early stages keep edges and colours, the last one coarse parts (click a "
        "channel to see it large)",
    ),
    (gradcam_tab, "where the network looked for its answer; pick another class to see where its evidence lies"),
    (
        residuals_tab,
        "each block's residual branch against its shortcut: most are well below 1, so a block nudges its input "
        "rather than replacing it, the paper's reason why depth does not hurt",
    ),
    (
        degradation_tab,
        "train a plain and a residual network on digits, live: the deeper plain one ends worse, the residual one "
        "does not",
    ),
]
GUIDE_CLOSED = "resnet-explorer-guide-closed"  # the browser's localStorage key


# A 32x32 or 28x28 input is shown enlarged with its pixels kept sharp, so the user sees what the net saw
# (Gradio 6 takes css at launch: demo.launch passes it).
PIXELATED = (
    ".pixelated img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }\n"
    ".pixelated-tiles img { image-rendering: pixelated; }\n"  # galleries and clickable pictures come at their size
    ".pixelated-tiles .caption-label { white-space: normal; max-width: 100%; }"  # a tile's caption wraps, not cut
)


def guide_text(pages: list[Tab]) -> str:
    steps = [f"**{tab.TITLE}**: {text}" if tab else text for tab, text in GUIDE if tab is None or tab in pages]
    lines = "\n".join(f"{number}. {step[0].upper()}{step[1:]}." for number, step in enumerate(steps, 1))
    return f"**New here? A short path:**\n\n{lines}"


def first_visit_guide(demo: gr.Blocks, pages: list[Tab]) -> gr.Group:
    """The guide, shown once the page knows this browser has not closed it (so a returning visitor sees no flash)."""
    closed = gr.BrowserState(False, storage_key=GUIDE_CLOSED)
    with gr.Group(visible=False, elem_id="guide") as guide:
        gr.Markdown(guide_text(pages), elem_id="guide-text")
        close = gr.Button("Got it: hide this", size="sm", elem_id="guide-close")
    close.click(lambda: (gr.Group(visible=False), True), None, [guide, closed], queue=False, **PRIVATE)
    demo.load(lambda was_closed: gr.Group(visible=not was_closed), closed, guide, queue=False, **PRIVATE)
    return guide


def opened_tab(event: gr.SelectData) -> str:
    return event.value


def assemble(tabs: list[Tab] | None = None) -> tuple[gr.Blocks, Shared, analysis_panel.Panel]:
    """The whole app (the header, the analysis panel, then every tab of ``tabs``, default :data:`TABS`), with what
    the tabs plug into and the panel's components, for a test that calls the page's handlers."""
    with gr.Blocks(title="ResNet Explorer") as demo:
        gr.Markdown(
            "# ResNet Explorer\nWhat a residual network sees, where it looks, and what each block costs. "
            "Upload a photo, pick a network, press **Analyze**."
        )
        pages = TABS if tabs is None else tabs
        first_visit_guide(demo, pages)
        shared, panel = analysis_panel.build(demo)
        shared.open_tab = gr.State(pages[0].TITLE if pages else None)
        with gr.Tabs() as tab_row:
            for tab in pages:
                with gr.Tab(tab.TITLE) as page:
                    tab.build(shared, page)
        tab_row.select(opened_tab, None, shared.open_tab, queue=False, api_visibility="private")
        analysis_panel.wire(shared, panel)  # the analysis fills views of several tabs: wired once they exist
    return demo, shared, panel


def build_demo(tabs: list[Tab] | None = None) -> gr.Blocks:
    """The whole app: the header, the analysis panel, then every tab of ``tabs`` (default: :data:`TABS`)."""
    return assemble(tabs)[0]
