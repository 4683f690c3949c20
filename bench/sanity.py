"""Sanity checks of saliency maps on CIFAR-10 test images: deletion / insertion against random, and randomization.

    python -m bench.sanity [--images 200] [--arch cifar10_resnet56] [--data DIR] [--threads 2] [--json]

Images: every k-th of the 500 shipped test images (``resnet_core.data.cifar10.load_subset``), or of the full test set
from ``--data`` / ``$RESNET_EXPLORER_CIFAR10`` (see ``bench/cifar10_accuracy.py``). Each map explains the model's top-1
class. For every method (Grad-CAM at the last stage, Guided Grad-CAM, Occlusion with a 4x4 window at stride 2): mean
area under the deletion and insertion curves under several :class:`~resnet_core.explain.sanity.Protocol` choices, next
to a seeded random ranking under the same protocol (seed = the image's index, so each image gets its own); mean Spearman
/ SSIM against the trained model's map after each step of the cascading randomization; seconds and forward passes per
map and per randomization step. Prints Markdown for BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from resnet_core import create_model, default_weights
from resnet_core.data.cifar10 import load_subset, load_test_set, to_batch
from resnet_core.explain.saliency import METHODS
from resnet_core.explain.sanity import (
    RANDOMIZATION_SEEDS,
    RANDOMIZED_ENOUGH,
    Protocol,
    cascading_randomization,
    measured_map,
    perturbation_curve,
    randomization_spread,
)
from resnet_core.settings import ENV_TEST_SET

METHOD_NAMES = {key: method.title for key, method in METHODS.items()}
PROTOCOLS = {
    "deletion, blur, pixels (default)": Protocol(),
    "deletion, zero, pixels": Protocol(fill="zero"),
    "deletion, blur, 4x4 patches": Protocol(patch=4),
    "deletion, zero, 4x4 patches": Protocol(fill="zero", patch=4),
    "insertion, blur, pixels": Protocol("insertion"),
}


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (0 for a single value)."""
    array = np.asarray(values, dtype=float)
    se = float(array.std(ddof=1) / np.sqrt(len(array))) if len(array) > 1 else 0.0
    return float(array.mean()), se


def load_images(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """``args.images`` images, every k-th of the full test set if one is given, else of the shipped subset."""
    if args.data is not None or os.environ.get(ENV_TEST_SET):
        images, _ = load_test_set(args.data)
        where = "the CIFAR-10 test set"
    else:
        images, _, _ = load_subset()
        where = "the 500 shipped CIFAR-10 test images"
    step = max(1, len(images) // args.images)
    return images[::step][: args.images], f"one in {step} of {where}"


def measure(args: argparse.Namespace) -> dict:
    model = create_model(args.arch, weights="DEFAULT" if default_weights(args.arch) else None)
    images, where = load_images(args)
    batch = to_batch(images, model.card.preprocess.mean, model.card.preprocess.std)
    with torch.inference_mode():
        top1 = model(batch).argmax(1).tolist()
    options = {"gradcam": {}, "guided": {}, "occlusion": {"window": args.window, "stride": args.stride}}
    auc: dict[str, dict[str, list[float]]] = {name: {} for name in PROTOCOLS}
    beats: dict[str, dict[str, list[bool]]] = {name: {} for name in PROTOCOLS}
    steps: dict[str, dict[str, dict[str, list]]] = {method: {} for method in args.methods}
    spreads: dict[str, dict[str, dict[str, list]]] = {method: {} for method in args.methods}
    cost: dict[str, dict[str, list[float]]] = {method: {"seconds": [], "passes": []} for method in args.methods}
    start = time.perf_counter()
    for index, class_index in enumerate(top1):
        inputs = batch[index : index + 1]
        random = {
            name: perturbation_curve(model, inputs, class_index, None, p, index).auc for name, p in PROTOCOLS.items()
        }
        for name, value in random.items():
            auc[name].setdefault("random", []).append(value)
        for method in args.methods:
            saliency, passes, seconds = measured_map(model, inputs, class_index, method, **options[method])
            cost[method]["seconds"].append(seconds)
            cost[method]["passes"].append(passes)
            for name, protocol in PROTOCOLS.items():
                value = perturbation_curve(model, inputs, class_index, saliency, protocol, index).auc
                auc[name].setdefault(method, []).append(value)
                better = value > random[name] if protocol.mode == "insertion" else value < random[name]
                beats[name].setdefault(method, []).append(better)
            cascade = cascading_randomization(model, inputs, class_index, method, 0, saliency, **options[method])
            for step in cascade:
                row = steps[method].setdefault(step.step, {"spearman": [], "ssim": [], "seconds": []})
                row["spearman"].append(step.spearman)
                row["ssim"].append(step.ssim)
                row["seconds"].append(step.seconds)
            spread = randomization_spread(
                model, inputs, class_index, cascade, 0, args.seeds, method, saliency, **options[method]
            )
            for entry in spread:
                row = spreads[method].setdefault(entry.step, {"per_seed": [[] for _ in entry.seeds], "verdicts": []})
                for draws, value in zip(row["per_seed"], entry.spearman, strict=True):
                    if value is not None:
                        draws.append(value)
                row["verdicts"].append(entry.verdict())
        if args.progress and (index + 1) % 10 == 0:
            print(f"{index + 1}/{len(top1)} images, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return {
        "arch": args.arch,
        "weights": model.card.label,
        "images": len(top1),
        "where": where,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - start, 1),
        "occlusion": {"window": args.window, "stride": args.stride},
        "protocols": {name: protocol.describe() for name, protocol in PROTOCOLS.items()},
        "auc": {name: {key: mean_se(values) for key, values in row.items()} for name, row in auc.items()},
        "beats_random": {name: {key: float(np.mean(v)) for key, v in row.items()} for name, row in beats.items()},
        "randomization": {
            method: {
                step: {
                    "spearman": mean_se([v for v in row["spearman"] if v is not None]),
                    "undefined": sum(v is None for v in row["spearman"]),  # the new map was constant
                    "ssim": mean_se(row["ssim"]),
                    "seconds": float(np.mean(row["seconds"])),
                }
                for step, row in by_step.items()
            }
            for method, by_step in steps.items()
        },
        "seeds": args.seeds,
        "randomization_seeds": {
            method: {
                step: {
                    "mean_spearman_per_seed": [float(np.mean(draws)) if draws else None for draws in row["per_seed"]],
                    **{
                        verdict: row["verdicts"].count(verdict) / len(row["verdicts"])
                        for verdict in ("passes", "undecided", "fails")
                    },
                }
                for step, row in by_step.items()
            }
            for method, by_step in spreads.items()
        },
        "cost": {
            method: {"seconds_per_map": float(np.mean(row["seconds"])), "passes_per_map": float(np.mean(row["passes"]))}
            for method, row in cost.items()
        },
    }


def markdown(result: dict, methods: list[str]) -> str:
    occlusion = result["occlusion"]
    label = {
        **METHOD_NAMES,
        "occlusion": f"Occlusion {occlusion['window']}x{occlusion['window']}/{occlusion['stride']}",
    }
    lines = [
        f"{result['arch']} ({result['weights']}), {result['images']} images ({result['where']}), top-1 class, "
        f"{result['threads']} threads, torch {result['torch']}, {result['seconds']:.0f} s in all.",
        "",
        "Area under the curve, mean ± standard error over images (deletion: lower is better; insertion: higher is "
        "better); in brackets, the share of images on which the map beats the random ranking.",
        "",
        "| protocol | random | " + " | ".join(label[m] for m in methods) + " |",
        "|---|---:|" + "---:|" * len(methods),
    ]
    for name in PROTOCOLS:
        row = result["auc"][name]
        cells = [f"{row[m][0]:.3f} ± {row[m][1]:.3f} ({100 * result['beats_random'][name][m]:.0f}%)" for m in methods]
        lines.append(f"| {name} | {row['random'][0]:.3f} ± {row['random'][1]:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "Protocols:", *[f"- {name}: {text}" for name, text in result["protocols"].items()], ""]
    lines += [
        "Cascading randomization: Spearman (SSIM) of the trained model's map against the map after re-initialising "
        "every part down to the one named (head first); mean over images, with the images whose new map was "
        "constant (Spearman undefined) counted apart.",
        "",
        "| randomized down to | " + " | ".join(label[m] for m in methods) + " |",
        "|---|" + "---:|" * len(methods),
    ]
    for step in result["randomization"][methods[0]]:
        cells = []
        for method in methods:
            row = result["randomization"][method][step]
            undefined = f", {row['undefined']} constant" if row["undefined"] else ""
            cells.append(f"{row['spearman'][0]:+.2f} ({row['ssim'][0]:+.2f}){undefined}")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"The same steps over {result['seeds']} draws of the new weights: the mean Spearman over images for each "
        f"seed (median [lowest, highest] of those means), and the share of images whose median's 95% interval lies "
        f"below {RANDOMIZED_ENOUGH} (passes), above it (fails), or holds it (undecided):",
        "",
        "| randomized down to | method | mean Spearman per seed | passes | undecided | fails |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for method in methods:
        for step, row in result["randomization_seeds"][method].items():
            means = [value for value in row["mean_spearman_per_seed"] if value is not None]
            spread = f"{np.median(means):+.2f} [{min(means):+.2f}, {max(means):+.2f}]" if means else "constant"
            shares = " | ".join(f"{100 * row[key]:.0f}%" for key in ("passes", "undecided", "fails"))
            lines.append(f"| {step} | {label[method]} | {spread} | {shares} |")
    lines += [
        "",
        "| cost | " + " | ".join(label[m] for m in methods) + " |",
        "|---|" + "---:|" * len(methods),
        "| images through the network per map | "
        + " | ".join(f"{result['cost'][m]['passes_per_map']:.0f}" for m in methods)
        + " |",
        "| seconds per map | " + " | ".join(f"{result['cost'][m]['seconds_per_map']:.3f}" for m in methods) + " |",
        "| seconds per randomization step (re-init + map) | "
        + " | ".join(f"{np.mean([row['seconds'] for row in result['randomization'][m].values()]):.3f}" for m in methods)
        + " |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--arch", default="cifar10_resnet56")
    parser.add_argument("--data", type=Path, default=None, help=f"the test set's folder (default ${ENV_TEST_SET})")
    parser.add_argument("--methods", nargs="+", choices=list(METHOD_NAMES), default=list(METHOD_NAMES))
    parser.add_argument("--window", type=int, default=4, help="occlusion window side")
    parser.add_argument("--stride", type=int, default=2, help="occlusion stride")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=RANDOMIZATION_SEEDS, help="draws for the verdict's steps")
    parser.add_argument("--progress", action="store_true", help="a line on stderr every 10 images")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON instead of Markdown")
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error("--images must be at least 1")
    torch.set_num_threads(args.threads)
    try:
        result = measure(args)
    except FileNotFoundError as error:
        parser.error(str(error))
    print(json.dumps(result, indent=1) if args.json else markdown(result, args.methods))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
