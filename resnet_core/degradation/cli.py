"""``python -m resnet_core degradation``: run the lab for several seeds and write curves, plot and weights."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from .data import load_mnist_5k
from .plots import plot_curves, summary_table
from .store import save_run, save_weights
from .training import LabConfig, LabRun, build_lab_models, default_warmup, run_lab

__all__ = ["configure_parser", "run_cli", "run_experiment"]


def run_experiment(
    base: LabConfig,
    seeds: Sequence[int],
    out_dir: Path | None = None,
    weights: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[LabRun]:
    """Run the lab once per seed; with ``out_dir``, write each seed's curves, a plot of all seeds and, with
    ``weights``, the first seed's trained models."""
    images, labels = load_mnist_5k()
    runs = []
    for seed in seeds:
        config = replace(base, seed=seed)
        models = build_lab_models(config)
        runs.append(run_lab(models, images, labels, config, progress))
        if out_dir is not None:
            save_run(runs[-1], out_dir)
            if weights and seed == seeds[0]:
                save_weights(models, config, out_dir)
    if out_dir is not None:
        plot_curves(runs).savefig(out_dir / "curves.png", dpi=110)
    return runs


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m resnet_core degradation``; defaults are :class:`LabConfig`'s."""
    parser.add_argument("--depths", type=int, nargs="+", default=list(LabConfig.depths), help="6n+2 depths")
    parser.add_argument("--widths", type=int, nargs=3, default=list(LabConfig.widths), help="channels per stage")
    parser.add_argument(
        "--shortcut", choices=("A", "B"), default=LabConfig.shortcut, help="A: zero-padding identity, B: projection"
    )
    parser.add_argument("--steps", type=int, default=LabConfig.steps, help="SGD steps per model")
    parser.add_argument("--warmup", type=int, default=None, help="linear warm-up steps (default: steps/6, at most 50)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[LabConfig.seed], help="one run per seed")
    parser.add_argument("--out", type=Path, default=Path("degradation_out"), help="where to write curves and plot")
    parser.add_argument("--weights", action="store_true", help="also save the first seed's trained models")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def run_cli(args: argparse.Namespace) -> int:
    """Train, print one line per model and a summary table, and write the results into ``args.out``."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    base = LabConfig(
        depths=tuple(args.depths),
        widths=tuple(args.widths),
        shortcut=args.shortcut,
        steps=args.steps,
        warmup=default_warmup(args.steps) if args.warmup is None else args.warmup,
    )
    runs = run_experiment(base, args.seeds, args.out, weights=args.weights, progress=print)
    print(summary_table(runs))
    print(f"wrote {args.out}")
    return 0
