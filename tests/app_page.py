"""The app as a test calls it: the page's Analyze click and what follows an analysis, with values named as the
views that registered them name them, so a test reads ``values["cam_class"]``, not a position in a tuple."""

from __future__ import annotations

from typing import Any

import gradio as gr

from demo import analysis_panel, app_state, layout
from demo.analysis_views import SETTINGS, Drawing
from demo.sessions import TabState
from demo.shared import Tab


class Page:
    """An app built from ``tabs`` (default: every tab), its components named."""

    def __init__(self, tabs: list[Tab] | None = None) -> None:
        self.demo, self.shared, self.panel = layout.assemble(tabs)
        shared, panel = self.shared, self.panel
        own = {"session": shared.session, "facts": panel.facts, "stale": panel.stale}
        own.update(label=panel.label, status=panel.status, arch=shared.arch, weights=shared.weights)
        self.names = {component: name for name, component in own.items()}
        for view in shared.views.views:
            for name, component in view.outputs.items():
                assert name not in self.names.values(), f"two views name an output {name!r}"
                self.names[component] = name

    def named(self, values: dict) -> dict[str, Any]:
        return {self.names[component]: value for component, value in values.items()}

    def words(self, named: dict[str, Any]) -> dict[str, Any]:
        """The values of ``named`` a visitor reads (not pictures, not the session's state)."""
        kinds = {name: component for component, name in self.names.items()}
        return {name: value for name, value in named.items() if not isinstance(kinds[name], gr.Image | gr.State)}

    def after(
        self, state: TabState, previous: TabState | None = None, open_tab: str | None = None, **chosen
    ) -> dict[str, Any]:
        """What follows the analysis ``state`` (run with the settings ``chosen``) on the page."""
        state, stored = app_state.stored_analysis(state)
        drawing = Drawing(state, stored, analysis_panel.picks_for(state["arch"], previous, chosen), previous)
        return self.named(analysis_panel.after_analysis(self.shared, self.panel, drawing, open_tab))

    def example(self, image: str, family: str, arch: str, weights: str, open_tab: str | None = None) -> dict[str, Any]:
        """What follows a click on an example that carries its own network."""
        controls = analysis_panel.example_controls(self.shared, self.panel, image, family, arch, weights, open_tab)
        return self.named(controls)

    def click(
        self,
        image: str,
        arch: str,
        weights: str,
        previous: TabState | None = None,
        open_tab: str | None = None,
        topk: int = 5,
        **chosen,
    ) -> dict[str, Any]:
        """The page's Analyze click with these picks and settings (the others at their defaults)."""
        shared = self.shared
        values: dict = {shared.image: image, shared.arch: arch, shared.weights: weights, self.panel.topk: topk}
        values.update({shared.session: previous, shared.open_tab: open_tab})
        settings = {**SETTINGS, **chosen}
        values.update({component: settings[name] for name, component in shared.views.settings.items()})
        return self.named(analysis_panel.analyze_page(shared, self.panel, values))
