"""Click Analyze -> every output shown, in a real browser (headless Chromium) on loopback.

    python -m bench.browser_latency [--archs resnet50 resnet152] [--reps 5] [--root DIR]

Launches ``python app.py`` from ``--root`` (default: this checkout; point it at another checkout to compare
versions side by side in one run), uploads a different photo before each click, and times from the click until
the predictions, the feature grid and the Grad-CAM overlay all show the new image's results. Random weights (the
time does not depend on them); medians of ``--reps`` clicks after one warm-up. Needs Debian's chromium and
playwright.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench.app_speed import ROOT, free_port, start_server
from bench.browser import chromium_page

PHOTOS = ["chelsea.png", "coffee.png", "rocket.jpg", "grace_hopper.jpg", "astronaut.png", "camera.png"]
# Every output's image source, joined: it changes once all of them show the new analysis.
SOURCES = """() => ['#feature-grid img', '#cam img'].map(s => document.querySelector(s)?.src || '').join('|')
                + '|' + (document.querySelector('#predictions')?.innerText || '')"""


def pick(page, label: str, value: str) -> None:
    box = page.get_by_label(label)
    box.click()
    box.fill(value)
    page.keyboard.press("Enter")


def pick_network(page, arch: str) -> None:
    """Our app on ``arch`` with random weights, the way a person picks: the network, then (once the app has filled
    in that network's weights) the weights, then away from the box. Typing into Weights within milliseconds of the
    network pick, before the app's answer, sometimes left Gradio's Dropdown (allow_custom_value) firing change
    events several times a second until the next pick: hundreds of events that slowed every click."""
    pick(page, "Depth / variant", arch)
    page.wait_for_timeout(1000)
    pick(page, "Weights", "random init")
    page.keyboard.press("Tab")
    page.wait_for_timeout(1000)
    shown = page.get_by_label("Weights").input_value()
    if shown != "random init":
        raise RuntimeError(f"the Weights box shows {shown!r}, not 'random init'")


def click(page, rep: int) -> float:
    """Upload the rep-th photo, click Analyze, and return the seconds until every output shows it."""
    page.set_input_files("#photo input[type=file]", str(ROOT / "assets" / "photos" / PHOTOS[rep % len(PHOTOS)]))
    page.wait_for_timeout(500)  # let the upload settle: it is not part of the click
    before = page.evaluate(SOURCES)
    start = time.perf_counter()
    page.get_by_role("button", name="Analyze").click()
    page.wait_for_function(
        f"""(before) => {{ const now = ({SOURCES})();
            return now !== before && !now.split('|').slice(0, 2).includes('')
                   && !document.querySelector('.progress-text, .eta-bar'); }}""",
        arg=before,
        timeout=120_000,
        polling=10,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archs", nargs="+", default=["resnet50", "resnet152"])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    port = free_port()
    server, _ = start_server(port, root=args.root)
    try:
        with chromium_page(f"http://127.0.0.1:{port}/", height=1000) as page:
            page.get_by_label("Depth / variant").wait_for(timeout=60_000)
            page.get_by_role("tab", name="Grad-CAM").click()
            page.get_by_role("tab", name="Feature maps").click()
            for arch in args.archs:
                pick_network(page, arch)
                click(page, 0)  # the first click loads the model
                times = [click(page, rep) for rep in range(1, args.reps + 1)]
                print(f"{arch}: click -> every output shown, median of {args.reps}: {statistics.median(times):.3f} s "
                      f"(min {min(times):.3f}, max {max(times):.3f})")  # fmt: skip
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
