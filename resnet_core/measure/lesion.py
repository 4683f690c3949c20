"""Lesion study (Veit et al., 2016): delete one residual block at test time and measure what is lost.

A residual net behaves like an ensemble of paths of many lengths, so removing one block's residual branch while
keeping its shortcut costs little, except at the blocks that change resolution; a plain net has a single path and
collapses. Works on any :class:`~resnet_core.zoo.models.ResNet`, whatever its stages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..zoo.models import ResNet, _ResidualBlock
from .evaluation import evaluate

__all__ = ["LesionStudy", "lesion_study", "lesioned"]


@contextmanager
def lesioned(model: ResNet, block: str) -> Iterator[ResNet]:
    """Delete one block at test time by swapping in its shortcut path (:meth:`shortcut_path`).

    The original block goes back in ``finally``, so the model is whole again even if the body raises.
    """
    if block not in model.block_names():
        raise ValueError(f"{block!r} is not a block; expected one of {model.block_names()}")
    parent, _, index = block.rpartition(".")  # a module path: the block is child `index` of `parent`
    stage = model.get_submodule(parent)
    original = stage.get_submodule(index)
    if not isinstance(original, _ResidualBlock):
        raise TypeError(f"{block!r} is a {type(original).__name__}, not a residual block")
    stage.register_module(index, original.shortcut_path())
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
    model: ResNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    blocks: Sequence[str] | None = None,
    batch_size: int = 1000,
) -> LesionStudy:
    """Delete each of ``blocks`` (default: all) alone and measure accuracy in eval mode."""
    accuracy = {}
    for block in model.block_names() if blocks is None else blocks:
        with lesioned(model, block):
            accuracy[block] = 1.0 - evaluate(model, images, labels, batch_size)[1]
    return LesionStudy(1.0 - evaluate(model, images, labels, batch_size)[1], accuracy)
