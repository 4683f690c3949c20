"""Cost of one analysis next to a bare forward pass, measured side by side (not a test: machines are noisy).

    python -m bench.analysis_speed [--reps 7] [--threads 2]

For resnet18/50/152 (random init: speed does not depend on the weights) the calls are interleaved, so slow
phases of a shared machine hit every variant alike; each figure is the median over ``--reps`` rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from resnet_core import create_model, load_image
from resnet_core.explain.analysis import analyze
from resnet_core.render import cam_overlay, feature_grid

STAGES = ("layer1", "layer2", "layer3", "layer4")  # the ImageNet nets timed here have four
PHOTO = Path(__file__).resolve().parents[1] / "assets" / "photos" / "chelsea.png"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50", "resnet152"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = load_image(PHOTO)
    models = {arch: create_model(arch) for arch in args.archs}
    inputs = {arch: m.card.preprocess(image)[None] for arch, m in models.items()}
    results = {arch: analyze(m, image) for arch, m in models.items()}  # warm-up
    times: dict[tuple[str, str], list[float]] = {}

    def bare(arch: str) -> None:
        with torch.inference_mode():
            models[arch](inputs[arch])

    for _ in range(args.reps):
        for arch, model in models.items():
            times.setdefault((arch, "bare"), []).append(timed(lambda arch=arch: bare(arch)))
            for layer in model.stage_names:
                ms = timed(lambda model=model, layer=layer: analyze(model, image, cam_layer=layer))
                times.setdefault((arch, f"analyze@{layer}"), []).append(ms)
            second = results[arch].topk[1][0]
            ms = timed(lambda arch=arch, second=second: results[arch].cam_for(second))
            times.setdefault((arch, "retarget@layer4"), []).append(ms)

            def render(arch: str = arch) -> None:
                result = results[arch]
                for feature in result.stages.values():
                    feature_grid(feature, 64)
                cam_overlay(result.crop, result.cam, 0.5)

            times.setdefault((arch, "render"), []).append(timed(render))

    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"torch {torch.__version__}, {args.threads} threads, {args.reps} interleaved rounds, medians in ms")
    header = (
        f"{'arch':<10} {'bare':>8} {'analyze':>8} {'ratio':>6} "
        + " ".join(f"{'@' + layer:>8}" for layer in STAGES[:3])
        + f" {'retarget':>9} {'render':>7}"
    )
    print(header)
    for arch in models:
        base = median[(arch, "bare")]
        layer4 = median[(arch, "analyze@layer4")]
        early = " ".join(f"{median[(arch, f'analyze@{layer}')] / base:>7.2f}x" for layer in STAGES[:3])
        print(
            f"{arch:<10} {base:>8.1f} {layer4:>8.1f} {layer4 / base:>5.2f}x {early} "
            f"{median[(arch, 'retarget@layer4')] / base:>8.3f}x {median[(arch, 'render')]:>6.1f}"
        )
    if "resnet50" in models:
        ratio = median[("resnet50", "render")] / median[("resnet50", "bare")]
        print(f"rendering five 64-channel stage grids + the overlay (resnet50) = {ratio:.2f}x a resnet50 bare forward")


if __name__ == "__main__":
    main()
