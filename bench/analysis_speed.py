"""Cost of one analysis next to a bare forward pass, measured side by side (not a test: machines are noisy).

    python -m bench.analysis_speed [--reps 7] [--threads 2] [--archs ...] [--against DIR]

For resnet18/50/152 (random init: speed does not depend on the weights) the calls are interleaved, so slow
phases of a shared machine hit every variant alike; each figure is the median over ``--reps`` rounds. Two bare
forwards are the baselines: ``bare`` on the input tensor already made, and ``bare+pre`` with the photo's own
preprocessing (resize, crop, normalise) in front, which ``analyze`` does too and any app must do for a photo.

``--against DIR``: the same rounds, alternated with this checkout's, on another checkout's ``resnet_core`` (a
before / after in one run). Each checkout runs in a worker process of its own that this script feeds round by
round, so both see the same phases of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("layer1", "layer2", "layer3", "layer4")  # the ImageNet nets timed here have four
PHOTO = ROOT / "assets" / "photos" / "chelsea.png"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def worker(archs: list[str], threads: int) -> None:
    """Load the networks, then time one round per line read from stdin and write it as one JSON line."""
    import torch

    from resnet_core import create_model, load_image
    from resnet_core.explain.analysis import analyze, model_input
    from resnet_core.render import cam_overlay, feature_grid

    torch.set_num_threads(threads)
    image = load_image(PHOTO)
    models = {arch: create_model(arch) for arch in archs}
    inputs = {arch: model_input(m, image)[1] for arch, m in models.items()}
    results = {arch: analyze(m, image) for arch, m in models.items()}  # warm-up
    print(json.dumps({"torch": torch.__version__}), flush=True)
    for _ in sys.stdin:
        times: dict[str, float] = {}
        for arch, model in models.items():

            def bare(arch: str = arch, model=model) -> None:
                with torch.inference_mode():
                    model(inputs[arch])

            def bare_pre(model=model) -> None:
                with torch.inference_mode():
                    model(model_input(model, image)[1])

            def render(arch: str = arch) -> None:
                result = results[arch]
                for feature in result.stages.values():
                    feature_grid(feature, 64)
                cam_overlay(result.crop, result.cam, 0.5)

            times[f"{arch} bare"] = timed(bare)
            times[f"{arch} bare+pre"] = timed(bare_pre)
            for layer in model.stage_names:
                analysis = lambda model=model, layer=layer: analyze(model, image, cam_layer=layer)  # noqa: E731
                times[f"{arch} analyze@{layer}"] = timed(analysis)
            second = results[arch].topk[1][0]
            times[f"{arch} retarget"] = timed(lambda arch=arch, second=second: results[arch].cam_for(second))
            times[f"{arch} render"] = timed(render)
        print(json.dumps(times), flush=True)


def start_worker(root: Path, archs: list[str], threads: int) -> tuple[subprocess.Popen, str]:
    """This file run as a worker on ``root``'s resnet_core (the script's own folder comes first on sys.path, then
    ``root``); returns it and its torch version, once its networks are built."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, __file__, "--worker", "--threads", str(threads), "--archs", *archs]
    process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return process, json.loads(process.stdout.readline())["torch"]


def table(name: str, rounds: list[dict[str, float]], archs: list[str]) -> None:
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(f"\n{name}: medians in ms; ratios of analyze (CAM at layer4) and at earlier layers to bare / bare+pre")
    header = f"{'arch':<10} {'bare':>7} {'bare+pre':>8} {'analyze':>8} {'/bare':>6} {'/b+pre':>6} "
    print(header + " ".join(f"{'@' + layer:>8}" for layer in STAGES[:3]) + f" {'retarget':>9} {'render':>7}")
    for arch in archs:
        base, pre, analysis = (median[f"{arch} {key}"] for key in ("bare", "bare+pre", "analyze@layer4"))
        early = " ".join(f"{median[f'{arch} analyze@{layer}'] / base:>7.2f}x" for layer in STAGES[:3])
        print(
            f"{arch:<10} {base:>7.1f} {pre:>8.1f} {analysis:>8.1f} {analysis / base:>5.2f}x {analysis / pre:>5.2f}x "
            f"{early} {median[f'{arch} retarget'] / base:>8.3f}x {median[f'{arch} render']:>6.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50", "resnet152"])
    parser.add_argument("--against", type=Path, help="another checkout, timed in alternation with this one")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.archs, args.threads)
        return
    roots = {"this checkout": ROOT} | ({f"{args.against}": args.against.resolve()} if args.against else {})
    workers = {name: start_worker(root, args.archs, args.threads) for name, root in roots.items()}
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in roots}
    try:
        for rep in range(args.reps):
            order = list(workers) if rep % 2 == 0 else list(workers)[::-1]
            for name in order:  # one at a time: two at once would share the cores
                process, _ = workers[name]
                process.stdin.write("round\n")
                process.stdin.flush()
                rounds[name].append(json.loads(process.stdout.readline()))
    finally:
        for process, _ in workers.values():
            process.stdin.close()
            process.wait()
    versions = {version for _, version in workers.values()}
    print(f"torch {', '.join(sorted(versions))}, {args.threads} threads, {args.reps} interleaved rounds")
    for name in roots:
        table(name, rounds[name], args.archs)


if __name__ == "__main__":
    main()
