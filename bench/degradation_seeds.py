"""How often does each half of the degradation claim hold, over many seeds and run lengths?

    python -m bench.degradation_seeds --seeds 0 1 2 3 --steps 300 500          # CPU, slow (about 4 min per run)
    python -m bench.degradation_seeds --device cuda --seeds $(seq 0 23) --steps 300 500 800 --workers 12

``bench.degradation`` checks the lab's setting on seeds 0-2, bit-exactly, on the CPU. This script asks the
statistical question behind it: over many seeds, on how many does digits_plain56 end with >= 5x digits_plain20's
training loss, and digits_resnet56 at or below digits_resnet20's? Each (seed, steps) pair trains the four nets of
``LabConfig`` in its own process and prints its ``LabRun`` as one JSON line when it finishes (``--out`` also
appends them to a file), then a summary per run length. On a GPU the numbers are not bit-identical to the CPU's,
so a seed's verdict can differ there; the proportions are what transfer.
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from bench.degradation import PLAIN_RATIO, claim_ratios
from resnet_core.degradation import LabConfig, LabRun, build_lab_models, default_warmup, load_mnist_5k, run_lab


def run_one(seed: int, steps: int, device: str) -> LabRun:
    """Train the four nets of one seed for ``steps`` on ``device``, measured as the lab measures them."""
    torch.set_num_threads(1)
    config = replace(LabConfig(), seed=seed, steps=steps, warmup=default_warmup(steps))
    images, labels = (tensor.to(device) for tensor in load_mnist_5k())
    models = {name: model.to(device) for name, model in build_lab_models(config).items()}
    return run_lab(models, images, labels, config)


def summarise(runs: list[LabRun]) -> str:
    """One line per run length: on how many seeds each claim holds, and how far the ratios spread."""
    lines = []
    for steps in sorted({run.config.steps for run in runs}):
        rows = sorted((run for run in runs if run.config.steps == steps), key=lambda run: run.config.seed)
        plain, residual = (np.array(column) for column in zip(*map(claim_ratios, rows), strict=True))
        failing = [run.config.seed for run, ratio in zip(rows, residual, strict=True) if ratio > 1.0]
        lines.append(
            f"{steps} steps, {len(rows)} seeds: digits_plain56 >= {PLAIN_RATIO:g}x digits_plain20 on "
            f"{(plain >= PLAIN_RATIO).sum()}/{len(rows)} (min {plain.min():.1f}x, median {np.median(plain):.1f}x); "
            f"digits_resnet56 <= digits_resnet20 on {(residual <= 1.0).sum()}/{len(rows)} "
            f"(median {np.median(residual):.2f}x, max {residual.max():.2f}x; fails on seeds {failing})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, nargs="+", default=[LabConfig.steps])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1, help="processes training in parallel")
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line per (seed, steps) here")
    args = parser.parse_args(argv)

    jobs = [(seed, steps) for steps in args.steps for seed in args.seeds]
    runs = []
    # CUDA cannot be used in a forked child once initialised; spawn is safe everywhere.
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_one, seed, steps, args.device) for seed, steps in jobs]
        for future in as_completed(futures):
            runs.append(future.result())
            line = json.dumps(runs[-1].to_json())
            print(line, flush=True)
            if args.out is not None:
                with args.out.open("a") as handle:
                    handle.write(line + "\n")
    print(summarise(runs))
    print(f"torch {torch.__version__}, device {args.device}, {args.workers} workers, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
