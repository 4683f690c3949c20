"""The app's structure holds: tabs plug in, one owner of the model lock, memory bounded by the model cache."""

from __future__ import annotations

import ast
import gc
import graphlib
import inspect
import itertools
import urllib.request
import weakref
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

from demo import analysis_panel as panel
from demo import app_state, layout
from demo.model_cache import ModelCache
from demo.sessions import AnalysisStore
from resnet_core import create_model
from resnet_core.data import cifar10

from .conftest import ROOT, free_port

CAT = next(path for path in sorted(cifar10.GALLERY_DIR.glob("cat_*.png")))


def test_a_new_tab_is_one_module_and_one_line():
    def build(shared, tab):
        gr.Markdown("A throwaway tab, here to prove that a tab plugs in.", elem_id="throwaway-text")
        shared.arch.change(lambda arch: arch, shared.arch, None, api_visibility="private")

    throwaway = SimpleNamespace(TITLE="Throwaway", build=build)
    demo = layout.build_demo([*layout.TABS, throwaway])
    titles = [block.label for block in demo.blocks.values() if isinstance(block, gr.Tab)]
    assert titles == [tab.TITLE for tab in layout.TABS] + ["Throwaway"]
    texts = [block.value for block in demo.blocks.values() if getattr(block, "elem_id", None) == "throwaway-text"]
    assert texts == ["A throwaway tab, here to prove that a tab plugs in."]
    assert len(inspect.getsource(layout.assemble).splitlines()) <= 60


TAB_MODULES = {f"demo.{tab.__name__.split('.')[-1]}" for tab in layout.TABS}


def test_no_tab_imports_another_and_neither_the_panel_nor_the_report_imports_a_tab():
    """Results several tabs show are services of the app's kernel (demo.analysis_views, demo.network_map,
    demo.lab_results, app_state), so any tab can be left out."""
    graph = import_graph("demo")
    leaning = {
        module: sorted(targets & TAB_MODULES - {module})
        for module, targets in graph.items()
        if module in TAB_MODULES or module.split(".")[-1] in ("analysis_panel", "report")
    }
    assert {module: tabs for module, tabs in leaning.items() if tabs} == {}
    assert len(leaning) == len(layout.TABS) + 2


# The fast lane builds alone the tabs that fill part of an Analyze click, and one that fills none; the slow lane all.
ALONE_FAST = {"Feature maps", "Grad-CAM", "Residuals", "Data set", "About"}
EACH_TAB_ALONE = [
    pytest.param(tab, id=tab.TITLE, marks=[] if tab.TITLE in ALONE_FAST else [pytest.mark.slow]) for tab in layout.TABS
]


@pytest.mark.parametrize("tab", EACH_TAB_ALONE)
def test_each_tab_alone_builds_and_analyze_fills_what_it_registered(tab):
    """The app with one tab: it builds, and the page's Analyze returns the panel's answer and that tab's views."""
    from .app_page import Page

    page = Page([tab])
    titles = [block.label for block in page.demo.blocks.values() if isinstance(block, gr.Tab)]
    assert titles == [tab.TITLE]
    outputs = page.click(str(CAT), "cifar10_resnet20", "DEFAULT", open_tab=tab.TITLE)
    assert next(iter(outputs["label"])).startswith("cat") and outputs["stale"] == ""
    registered = {name for view in page.shared.views.views for name in view.outputs}
    assert set(outputs) == {"label", "status", "session", "facts", "stale", *registered}


@pytest.mark.slow
@pytest.mark.parametrize("left_out", layout.TABS, ids=lambda tab: tab.TITLE)
def test_every_tab_but_one_builds_and_analyzes(left_out):
    from .app_page import Page

    page = Page([tab for tab in layout.TABS if tab is not left_out])
    outputs = page.click(str(CAT), "cifar10_resnet20", "DEFAULT", open_tab=layout.TABS[0].TITLE)
    assert next(iter(outputs["label"])).startswith("cat")


@pytest.mark.slow
@pytest.mark.parametrize("tab", layout.TABS, ids=lambda tab: tab.TITLE)
def test_each_tab_alone_serves_the_page_and_the_analyze_api(tab, tmp_path, monkeypatch):
    from gradio_client import Client, handle_file

    from demo import launch

    monkeypatch.chdir(tmp_path)  # Gradio caches examples under the working directory
    port = free_port()
    demo = launch.serve(["--port", str(port), "--device", "cpu"], block=False, tabs=[tab])
    try:
        url = f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
        client = Client(url, verbose=False)
        label, *_ = client.predict(handle_file(str(CAT)), "cifar10_resnet20", api_name="/analyze")
        assert label["label"].startswith("cat")
    finally:
        demo.close()


def test_no_module_but_the_model_cache_takes_a_models_lock():
    for path in sorted((ROOT / "demo").glob("*.py")):
        source = path.read_text()
        takers = [
            node
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute)
            and node.attr in ("_lock", "lock")
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")  # an object's own lock
            and path.name != "model_cache.py"
        ]
        assert takers == [], path.name  # a model's lock is taken by ModelCache.using alone
    for folder in ("demo", "resnet_core"):
        assert not [p for p in (ROOT / folder).rglob("*.py") if "fmt: skip" in Path(p).read_text()]


@pytest.mark.slow
def test_stored_analyses_keep_no_network_alive(photos):
    """Cache size 3, six networks analysed, eight analyses stored: at most three networks stay in memory."""
    models = ModelCache(capacity=3, device="cpu")
    app_state.configure(models, AnalysisStore(capacity=8, ttl=600))
    alive = []
    archs = [
        "cifar10_resnet20",
        "cifar10_resnet32",
        "cifar10_resnet44",
        "cifar10_resnet56",
        "digits_resnet20",
        "digits_plain20",
    ]
    for arch in [*archs, "cifar10_resnet20", "cifar10_resnet56"]:
        *_, state = panel.analyze_image(str(CAT), arch, "DEFAULT")
        alive.append(weakref.ref(models.get(arch, state["weights"]).model))
    assert len(app_state.results()) == 8
    gc.collect()
    assert sum(ref() is not None for ref in alive) <= 3


def test_a_new_saliency_method_is_one_entry(monkeypatch, capsys):
    """A throwaway method (every pixel the same) with an option of its own shows up in the command line (its option
    too, passed through to the map), the Explanation checks tab and the sanity checks, from one entry in METHODS."""
    import numpy as np

    from resnet_core.__main__ import build_parser
    from resnet_core.__main__ import main as cli
    from resnet_core.explain.saliency import METHODS, Option, SaliencyMethod
    from resnet_core.explain.sanity import sanity_check

    levels = []

    def flat(model, inputs, class_index, level=None):
        levels.append(level)
        return np.full(tuple(inputs.shape[-2:]), 0.5, dtype=np.float32)

    level = Option("level", int, "how flat")
    monkeypatch.setitem(METHODS, "flat", SaliencyMethod("Flat", (level,), flat, lambda model, size, o: {}))
    sanity = build_parser()._subparsers._group_actions[0].choices["sanity"]
    (method,) = [action for action in sanity._actions if action.dest == "method"]
    assert "flat" in method.choices
    demo = layout.build_demo()
    radios = [block for block in demo.blocks.values() if isinstance(block, gr.Radio) and block.label == "Method"]
    assert ("Flat", "flat") in [tuple(choice) for choice in radios[0].choices]
    report = sanity_check(create_model("cifar10_resnet20", weights="DEFAULT"), CAT, "flat")
    assert report.method == "flat" and report.randomization[0].spearman is None  # a flat map has no ranking
    levels.clear()
    args = ["sanity", str(CAT), "--arch", "cifar10_resnet20", "--method", "flat", "--level", "3", "--steps", "2"]
    assert cli([*args, "--seeds", "1", "--json"]) == 0, capsys.readouterr().err
    assert set(levels) == {3} and '"method": "flat"' in capsys.readouterr().out


def test_the_library_has_no_import_cycle():
    """Module-level imports between resnet_core's modules (type-checking ones included) form no cycle."""
    package = ROOT / "resnet_core"
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        graph[module] = set()
        for node in ast.parse(path.read_text()).body:
            for statement in [node, *ast.walk(node)] if isinstance(node, ast.If) else [node]:
                if isinstance(statement, ast.ImportFrom) and statement.level:
                    base = module.split(".")[: -statement.level + (path.name == "__init__.py")]
                    target = ".".join([*base, *(statement.module or "").split(".")]).strip(".")
                    graph[module].add(target)
    # Importing a package runs its __init__, so an edge into a subpackage's module goes through it as well.
    cycles = []

    def visit(module: str, trail: tuple[str, ...]) -> None:
        for target in graph.get(module, ()):
            if target in trail:
                cycles.append((*trail[trail.index(target) :], target))
            elif target in graph and len(trail) < 30:
                visit(target, (*trail, target))

    for module in graph:
        visit(module, (module,))
    # A package's __init__ importing its own modules is no cycle; a module importing its package's __init__ back is.
    nested = [all(a.startswith(b) or b.startswith(a) for a, b in itertools.pairwise(cycle)) for cycle in cycles]
    real = [cycle for cycle, inside in zip(cycles, nested, strict=True) if not inside]
    assert real == []

    # Between the parts (zoo, measure, explain, data, the lab, and each top-level module) the arrows go one way too.
    def part(module: str) -> str:
        return ".".join(module.split(".")[:2])

    parts = {part(m): set() for m in graph if m != "resnet_core"}
    for module, targets in graph.items():
        outside = {part(target) for target in targets} - {part(module), "resnet_core"}
        parts.setdefault(part(module), set()).update(outside)
    order = list(graphlib.TopologicalSorter(parts).static_order())  # raises CycleError on a cycle between parts
    assert {"resnet_core.zoo", "resnet_core.measure", "resnet_core.explain", "resnet_core.data"} <= set(order)


def import_graph(package: str) -> dict[str, set[str]]:
    """Every relative import of a package's modules, wherever it stands (inside a function too: resolved later, it
    still closes a circle), ``from . import x`` as an edge to ``x``."""
    graph: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        graph[module] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = module.split(".")[: -node.level + (path.name == "__init__.py")]
                target = ".".join([*base, *(node.module or "").split(".")]).strip(".")
                names = [f"{target}.{alias.name}" for alias in node.names] if node.module is None else [target]
                graph[module].update(names)
    return graph


@pytest.mark.parametrize("package", ["resnet_core", "demo"])
def test_no_import_circle_counting_imports_inside_functions(package):
    """``demo`` had one (app_state -> catalog -> uploads -> app_state, the last at call time); a module-level view
    missed it."""
    graph = import_graph(package)
    circles = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        for target in graph.get(module, ()):
            if target in trail:
                circle = trail[trail.index(target) :]
                circles.add(circle)
            elif target in graph and len(trail) < 12:
                visit(target, (*trail, target))

    for module in graph:
        visit(module, (module,))
    # A package's __init__ importing its own modules is no circle; a module importing its package's __init__ is.
    real = [c for c in circles if not all(a.startswith(b) or b.startswith(a) for a, b in itertools.pairwise(c))]
    assert real == []


def test_each_part_of_the_library_says_what_it_is_for():
    for init in (ROOT / "resnet_core").glob("*/__init__.py"):
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        lines = (docstring or "").splitlines()
        assert lines and lines[0] and (len(lines) == 1 or lines[1] == ""), init  # a one-line summary (PEP 257)


def test_no_event_can_leave_a_spinner_on_the_facts_panel():
    """The facts panel once stayed greyed under a frozen spinner for minutes after a pick then Analyze. Every event
    that writes it either answers outside the queue with no progress shown, or shows its progress elsewhere (Analyze:
    on the predictions alone)."""
    demo = layout.build_demo()
    (facts,) = [b for b in demo.blocks.values() if isinstance(b, gr.Markdown) and "weighted layers" in str(b.value)]
    writers = [fn for fn in demo.fns.values() if any(output is facts for output in fn.outputs)]
    assert len(writers) >= 3  # a pick, Analyze, the examples' follow-up
    for fn in writers:
        shown_elsewhere = fn.show_progress_on is not None and all(b is not facts for b in fn.show_progress_on)
        unqueued_and_silent = fn.queue is False and fn.show_progress == "hidden"
        assert shown_elsewhere or unqueued_and_silent or fn.show_progress == "hidden", fn.name


@pytest.mark.parametrize("old", sorted(__import__("resnet_core.moved", fromlist=["MOVED"]).MOVED))
def test_a_moved_modules_old_path_still_imports_with_a_warning_naming_the_new(old):
    """Scripts written against the README of a month ago: ``import resnet_core.analysis`` and ``from
    resnet_core.analysis import analyze`` run, give the module at its new path (imported once), and warn."""
    import importlib
    import sys

    from resnet_core.moved import MOVED

    new = importlib.import_module(MOVED[old])
    sys.modules.pop(f"resnet_core.{old}", None)
    vars(sys.modules["resnet_core"]).pop(old, None)
    with pytest.warns(FutureWarning, match=f"resnet_core.{old} moved to {MOVED[old]}"):
        module = importlib.import_module(f"resnet_core.{old}")
    assert module is new and sys.modules[f"resnet_core.{old}"] is new


def test_registries_refuse_a_name_given_twice():
    """A second line of data with a taken name fails at import, instead of silently replacing the first."""
    from resnet_core.registry import registry
    from resnet_core.zoo import architectures, label_spaces, weights

    with pytest.raises(ValueError, match="two architectures are named 'resnet50'"):
        registry([*architectures._specs(), architectures.ARCHITECTURES["resnet50"]], lambda s: s.name, "architectures")
    assert list(architectures.ARCHITECTURES) == [spec.name for spec in architectures._specs()]  # nothing dropped
    assert list(weights.WEIGHTS) == [entry.name for entry in weights._ENTRIES]
    assert list(label_spaces.LABEL_SPACES) == ["imagenet", "cifar10", "digits"]
