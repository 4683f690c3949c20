"""``create_model``: an architecture plus its weights, carrying what callers must not guess."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .architectures import ArchSpec, build, get_arch
from .models import ResNet
from .preprocess import Preprocess
from .weights import IMAGENET_CATEGORIES, WeightEntry, default_weights, get_weights, load_file_into, load_state_dict

__all__ = ["ModelCard", "card", "create_model"]

UNTRAINED = "untrained: predictions are meaningless"


@dataclass(frozen=True)
class ModelCard:
    """What travels with a model: its architecture, weights, the source that delivered them, preprocessing, labels."""

    arch: ArchSpec
    weights: WeightEntry | None
    source: str
    preprocess: Preprocess
    categories: list[str]

    @property
    def pretrained(self) -> bool:
        return self.source != UNTRAINED

    @property
    def label(self) -> str:
        if self.weights is not None:
            return self.weights.name
        return f"{self.arch.name} ({'own checkpoint' if self.pretrained else 'random init'})"


def create_model(
    name: str,
    weights: str | Path | WeightEntry | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> ResNet:
    """Build an architecture in eval mode, with weights loaded strictly.

    ``weights``: ``None`` for random init (kaiming, labelled untrained), ``"DEFAULT"``, a weight name
    (``"tv2_in1k"``, ``"resnet50.tv2_in1k"``, ``"IMAGENET1K_V2"``), a :class:`WeightEntry` (e.g. one served
    from a mirror URL), or a path to a .pth / .safetensors file.
    Raises ``ValueError`` for unknown names and ``WeightsUnavailableError`` when no source can deliver.
    The returned module has a ``card`` attribute (:class:`ModelCard`).
    """
    spec = get_arch(name)
    model = build(name)
    entry: WeightEntry | None = None
    if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
        source = UNTRAINED
    elif isinstance(weights, WeightEntry):
        if weights.arch != name:
            raise ValueError(f"weights {weights.name} belong to {weights.arch}, not {name}")
        entry = weights
        source = load_state_dict(model, entry, progress=progress)
    elif isinstance(weights, Path) or Path(str(weights)).suffix in (".pth", ".pt", ".bin", ".safetensors"):
        source = load_file_into(model, weights, name)
    else:
        entry = get_weights(name, str(weights))
        source = load_state_dict(model, entry, progress=progress)
    fallback = default_weights(name)
    preprocess = (entry or fallback).preprocess if (entry or fallback) else Preprocess()
    model.card = ModelCard(spec, entry, source, preprocess, IMAGENET_CATEGORIES)
    model.requires_grad_(False)
    return model.to(device).eval() if device is not None else model.eval()


def card(model: torch.nn.Module) -> ModelCard:
    """The card of a model from ``create_model``; a bare module gets ImageNet defaults, marked untrained."""
    found = getattr(model, "card", None)
    if isinstance(found, ModelCard):
        return found
    spec = getattr(model, "arch", None)
    if not isinstance(spec, ArchSpec):
        spec = ArchSpec(type(model).__name__, "custom", "basic", ())
    return ModelCard(spec, None, UNTRAINED, Preprocess(), IMAGENET_CATEGORIES)
