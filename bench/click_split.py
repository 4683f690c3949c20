"""Where an Analyze click's time goes, on the server and around it, in one process with a real browser.

    python -m bench.click_split [--clicks 9] [--archs resnet18 resnet50 cifar10_resnet56] [--plain]

The app runs in this process (as ``python app.py`` builds it) with timers wrapped around the pieces the page's
Analyze click calls; headless Chromium clicks (a new photo before each click, random weights) and waits until the
predictions, the feature grid and the overlay show the new photo. The clocks are this process's, so one timeline
splits the click: from the click to the handler's start (request, queue, Gradio's preprocessing), the handler and
its pieces (reading the photo, the analysis, each rendering and PNG encoding, the store), and from the handler's end
to the browser showing every output (Gradio's postprocessing, the stream, the image downloads, the page's
rendering). Medians per network, in ms. ``--plain``: the same split of ``bench.plain_app`` (its one handler),
the floor ``bench.floor_latency`` measures ours against.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import threading
import time
from collections import defaultdict

import torch

from bench.app_speed import free_port
from bench.browser import chromium_page
from bench.browser_latency import click, pick, pick_network

# (module, name) of every piece timed: looked up at call time, so wrapping the module attribute times each call.
PIECES = [
    ("demo.app_state", "load_photo"),
    ("demo.app_state", "analyze"),
    ("demo.analysis_views", "feature_grid"),
    ("demo.analysis_views", "cam_overlay"),
    ("demo.features_tab", "png_path"),
    ("demo.features_tab", "view_path"),
    ("demo.gradcam_tab", "view_path"),  # the same name, timed together
    ("demo.residuals_tab", "residual_summary"),
    ("demo.analysis_panel", "after_analysis"),
]
HANDLER = ("demo.analysis_panel", "analyze_page")  # wired at build time: wrapped before the app is built


class Timeline:
    """Start and end times of every wrapped call, this process's clock; one list per name."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[float, float]]] = defaultdict(list)
        self.lock = threading.Lock()

    def wrap(self, module: str, name: str) -> None:
        target = __import__(module, fromlist=[name])
        original = getattr(target, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                with self.lock:
                    self.calls[name].append((start, time.perf_counter()))

        setattr(target, name, timed)

    def between(self, name: str, start: float, end: float) -> list[tuple[float, float]]:
        with self.lock:
            return [call for call in self.calls[name] if start <= call[0] <= end]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=9)
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50", "cifar10_resnet56"])
    parser.add_argument("--plain", action="store_true", help="split bench.plain_app's click instead of ours")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    timeline = Timeline()
    port = free_port()
    if args.plain:
        handler, pieces = "run", []
        timeline.wrap("bench.plain_app", handler)
        from bench import plain_app

        torch.set_num_threads(os.cpu_count() or 1)  # as python app.py does
        demo = plain_app.build()
        demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    else:
        handler, pieces = HANDLER[1], PIECES
        for module, name in [*PIECES, HANDLER]:
            timeline.wrap(module, name)
        from demo import launch

        demo = launch.serve(["--port", str(port), "--device", "cpu"], block=False)
    try:
        with chromium_page(f"http://127.0.0.1:{port}/", height=1000) as page:
            if not args.plain:
                page.get_by_label("Depth / variant").wait_for(timeout=60_000)
                page.get_by_role("tab", name="Grad-CAM").click()
                page.get_by_role("tab", name="Feature maps").click()
            print(f"torch threads {torch.get_num_threads()}; medians of {args.clicks} clicks, ms\n")
            for arch in args.archs:
                if args.plain:
                    pick(page, "Network", arch)
                else:
                    pick_network(page, arch)
                click(page, 0)  # loads the model
                rows: dict[str, list[float]] = defaultdict(list)
                for rep in range(1, args.clicks + 1):
                    seconds = click(page, rep)
                    shown = time.perf_counter()
                    clicked = shown - seconds
                    page.wait_for_timeout(300)  # the follow-up events finish before the next upload
                    [(start, end)] = timeline.between(handler, clicked, shown)
                    rows["click -> every output shown"].append(shown - clicked)
                    rows["click -> handler starts (request, queue, preprocess)"].append(start - clicked)
                    rows["handler"].append(end - start)
                    for name in dict.fromkeys(name for _, name in pieces):
                        calls = timeline.between(name, start, end)
                        rows[f"  {name} (x{len(calls)})"].append(sum(b - a for a, b in calls))
                    rows["handler ends -> shown (postprocess, stream, downloads, page)"].append(shown - end)
                print(f"{arch}")
                for name, values in rows.items():
                    print(f"  {name:<66} {1000 * statistics.median(values):8.1f}")
                print(flush=True)
    finally:
        demo.close()


if __name__ == "__main__":
    main()
