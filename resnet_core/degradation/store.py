"""The lab's results on disk: curves as JSON per seed, trained nets as safetensors with their config inside."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from functools import cache
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..assets import ASSETS_DIR
from ..zoo.architectures import ArchSpec
from ..zoo.create import create_model
from ..zoo.models import ResNet
from .training import LabConfig, LabRun, _depth, _plain, lab_spec, model_name

__all__ = [
    "REFERENCE_DIR",
    "describe_reference",
    "load_lab_model",
    "load_lab_models",
    "load_runs",
    "reference_models",
    "reference_spec",
    "save_run",
    "save_weights",
]

REFERENCE_DIR = ASSETS_DIR / "degradation"


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


def reference_spec(name: str, out_dir: Path = REFERENCE_DIR) -> ArchSpec:
    """The architecture of the shipped net ``name``, read from its weights file's metadata (no tensors loaded)."""
    config, depth, plain = _saved_config(reference_models(out_dir)[name])
    return lab_spec(depth, plain, config)


def load_lab_model(path: Path) -> tuple[str, ResNet]:
    """Rebuild a model saved by :func:`save_weights`; returns its name and the model in eval mode.

    The model carries a ``card`` like :func:`resnet_core.create_model`'s (digit preprocessing, labels 0-9), so
    the analysis and the app treat it like any other trained network.
    """
    config, depth, plain = _saved_config(path)
    return model_name(depth, plain), create_model(lab_spec(depth, plain, config), weights=path)


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
