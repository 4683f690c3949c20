"""Reproduce the degradation lab (He et al. 2015, section 4.2) on 5,000 digits and check both claims per seed.

    python -m bench.degradation                  # seeds 0 1 2, 2 threads: about 22 minutes on 2 quiet cores
    python -m bench.degradation --write-assets   # also rewrite the reference run in assets/degradation/
    python -m bench.degradation --out runs/      # write the curves, plot and seed 0's weights elsewhere

Claims checked on the final training loss (whole set, eval mode): digits_plain56 >= 5x digits_plain20 on every
seed (deeper plain fits worse), and digits_resnet56 <= digits_resnet20 on every seed (deeper residual fits at least
as well). Exit status 1 if a claim fails on any seed. ``bench.degradation_seeds`` asks how often each claim holds
over many seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from resnet_core.degradation import REFERENCE_DIR, LabConfig, LabRun, run_experiment, summary_table

PLAIN_RATIO = 5.0


def claim_ratios(run: LabRun) -> tuple[float, float]:
    """``(digits_plain56 / digits_plain20, digits_resnet56 / digits_resnet20)`` of final training losses: the claims
    hold at >= 5 and <= 1."""
    loss = {name: model.final_loss for name, model in run.models.items()}
    return loss["digits_plain56"] / loss["digits_plain20"], loss["digits_resnet56"] / loss["digits_resnet20"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--write-assets", action="store_true", help=f"rewrite {REFERENCE_DIR}")
    target.add_argument("--out", type=Path, default=None, help="write curves, plot and seed 0's weights here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    out_dir = REFERENCE_DIR if args.write_assets else args.out
    runs = run_experiment(LabConfig(), args.seeds, out_dir, weights=out_dir is not None, progress=print)
    total = time.perf_counter() - start

    print(f"\n{summary_table(runs)}\n")
    ratios = [claim_ratios(run) for run in runs]
    for run, (plain, residual) in zip(runs, ratios, strict=True):
        print(f"seed {run.config.seed}: plain 56/20 = {plain:.1f}x, residual 56/20 = {residual:.2f}x")
    plain_holds = all(plain >= PLAIN_RATIO for plain, _ in ratios)
    residual_seeds = sum(residual <= 1.0 for _, residual in ratios)
    residual_holds = residual_seeds == len(ratios)
    print(f"digits_plain56 >= {PLAIN_RATIO:g}x digits_plain20 on every seed: {plain_holds}")
    print(f"digits_resnet56 <= digits_resnet20 on every seed: {residual_holds} ({residual_seeds} of {len(ratios)})")
    print(f"total {total:.0f} s on {torch.get_num_threads()} threads, torch {torch.__version__}")
    return 0 if plain_holds and residual_holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
