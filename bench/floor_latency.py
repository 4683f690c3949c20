"""Click -> every output, ours against the plain Gradio app doing the same forward, in one Chromium, interleaved.

    python -m bench.floor_latency [--runs 3] [--clicks 15] [--archs resnet18 resnet50 cifar10_resnet56] [--root DIR]

Launches ``python app.py`` and ``python -m bench.plain_app`` side by side, opens each in a tab of one headless
Chromium and, per network, alternates a click on each (a different photo uploaded before every click, the order
swapped every click), timing from the click until the predictions, the feature grid and the overlay all show the
new photo's results and no progress indicator is left. Random weights (the time does not depend on them); one
warm-up click each. Prints, per run and network, both medians and their ratio (ours / plain). ``--root`` runs
another checkout's app.py as ours (the plain app is always this one's), for a before / after in one session.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.app_speed import ROOT, free_port, start_server
from bench.browser import chromium_page
from bench.browser_latency import click, pick, pick_network


def start_plain(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.plain_app", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                if response.status == 200:
                    return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("bench.plain_app exited before answering") from None
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=15)
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50", "cifar10_resnet56"])
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    ours_port, plain_port = free_port(), free_port()
    server, _ = start_server(ours_port, root=args.root)
    plain = start_plain(plain_port)
    try:
        with chromium_page(f"http://127.0.0.1:{ours_port}/", height=1000) as ours:
            theirs = ours.context.browser.new_page(viewport={"width": 1400, "height": 1000})
            theirs.goto(f"http://127.0.0.1:{plain_port}/")
            ours.get_by_label("Depth / variant").wait_for(timeout=60_000)
            ours.get_by_role("tab", name="Grad-CAM").click()
            ours.get_by_role("tab", name="Feature maps").click()
            print("| run | network | ours | plain app | ours / plain |\n|---|---|---:|---:|---:|")
            for run in range(1, args.runs + 1):
                for arch in args.archs:
                    pick_network(ours, arch)
                    pick(theirs, "Network", arch)
                    click(ours, 0), click(theirs, 0)  # warm-up: loads the model
                    times: dict[str, list[float]] = {"ours": [], "plain": []}
                    for rep in range(1, args.clicks + 1):
                        pages = [("ours", ours), ("plain", theirs)]
                        for name, page in pages if rep % 2 else pages[::-1]:
                            times[name].append(click(page, rep))
                    a, b = statistics.median(times["ours"]), statistics.median(times["plain"])
                    print(f"| {run} | {arch} | {a:.3f} s | {b:.3f} s | {a / b:.2f}x |", flush=True)
    finally:
        for process in (server, plain):
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
