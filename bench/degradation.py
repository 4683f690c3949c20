"""Reproduce the degradation lab (He et al. 2015, section 4.2) on 5,000 digits and check both claims per seed.

    python -m bench.degradation                  # seeds 0 1 2, 2 threads: about 12 minutes on 2 quiet cores
    python -m bench.degradation --write-assets   # also rewrite the reference run in assets/degradation/

Claims checked on the final training loss (whole set, eval mode): plain-56 >= 5x plain-20 on every seed (deeper
plain fits worse), and resnet-56 <= resnet-20 on the mean over seeds (deeper residual fits at least as well; it is
printed per seed too, where the two residual nets are close enough for one seed to flip). Exit status 1 if a
claim fails.
"""

from __future__ import annotations

import argparse
import time

import torch

from resnet_core.degradation import REFERENCE_DIR, LabConfig, run_experiment, summary_table

PLAIN_RATIO = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-assets", action="store_true", help=f"rewrite {REFERENCE_DIR}")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    out_dir = REFERENCE_DIR if args.write_assets else None
    runs = run_experiment(LabConfig(), args.seeds, out_dir, weights=args.write_assets, progress=print)
    total = time.perf_counter() - start

    print(f"\n{summary_table(runs)}\n")
    loss = [{name: model.final_loss for name, model in run.models.items()} for run in runs]
    for run, final in zip(runs, loss, strict=True):
        print(
            f"seed {run.config.seed}: plain-56/plain-20 = {final['plain-56'] / final['plain-20']:.1f}x, "
            f"resnet-56/resnet-20 = {final['resnet-56'] / final['resnet-20']:.2f}x"
        )
    plain_holds = all(final["plain-56"] >= PLAIN_RATIO * final["plain-20"] for final in loss)
    residual_seeds = sum(final["resnet-56"] <= final["resnet-20"] for final in loss)
    residual_mean = {name: sum(final[name] for final in loss) / len(loss) for name in ("resnet-20", "resnet-56")}
    residual_holds = residual_mean["resnet-56"] <= residual_mean["resnet-20"]
    print(f"plain-56 >= {PLAIN_RATIO:g}x plain-20 on every seed: {plain_holds}")
    print(
        f"resnet-56 <= resnet-20 on {residual_seeds} of {len(loss)} seeds; mean over seeds "
        f"{residual_mean['resnet-56']:.4f} vs {residual_mean['resnet-20']:.4f}: {residual_holds}"
    )
    print(f"total {total:.0f} s on {torch.get_num_threads()} threads, torch {torch.__version__}")
    return 0 if plain_holds and residual_holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
