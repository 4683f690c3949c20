"""The About tab: the paper in one page, and a glossary of the words the other tabs use."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .shared import Shared

TITLE = "About"


def build(shared: Shared, tab: gr.Tab) -> None:
    gr.Markdown(Path(__file__).with_name("about.md").read_text())
