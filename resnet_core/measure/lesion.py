"""Lesion study (Veit et al., 2016): delete residual blocks, or swap them, at test time and measure what is lost.

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

__all__ = ["LesionStudy", "interchangeable", "lesion_study", "lesioned", "reordered"]


def _residual_block(model: ResNet, block: str) -> _ResidualBlock:
    if block not in model.block_names():
        raise ValueError(f"{block!r} is not a block; expected one of {model.block_names()}")
    found = model.get_submodule(block)
    if not isinstance(found, _ResidualBlock):
        raise TypeError(f"{block!r} is a {type(found).__name__}, not a residual block")
    return found


@contextmanager
def _replaced(model: ResNet, modules: dict[str, torch.nn.Module]) -> Iterator[ResNet]:
    """Blocks (by name) replaced by ``modules`` for the ``with`` block; every original goes back in ``finally``, so
    the model is whole again even if the body raises."""
    originals = {block: _residual_block(model, block) for block in modules}
    try:
        for block, module in modules.items():
            parent, _, index = block.rpartition(".")  # a module path: the block is child `index` of `parent`
            model.get_submodule(parent).register_module(index, module)
        yield model
    finally:
        for block, original in originals.items():
            parent, _, index = block.rpartition(".")
            model.get_submodule(parent).register_module(index, original)


@contextmanager
def lesioned(model: ResNet, *blocks: str) -> Iterator[ResNet]:
    """Delete ``blocks`` at test time, each replaced by its shortcut path (:meth:`shortcut_path`): the identity, or
    for a block that changes shape its projection or zero padding, which a zeroed branch alone would not give."""
    with _replaced(model, {block: _residual_block(model, block).shortcut_path() for block in blocks}):
        yield model


def interchangeable(model: ResNet) -> list[list[str]]:
    """The groups of blocks that can take each other's place: those that keep their input's shape (identity
    shortcut), grouped by width. A block that changes shape fits nowhere but where it is."""
    groups: dict[int, list[str]] = {}
    for name in model.block_names():
        block = _residual_block(model, name)
        if block.stride == 1 and block.in_planes == block.out_planes:
            groups.setdefault(block.out_planes, []).append(name)
    return [names for names in groups.values() if len(names) > 1]


@contextmanager
def reordered(model: ResNet, swaps: Sequence[tuple[str, str]]) -> Iterator[ResNet]:
    """Swap blocks at test time, one pair after another (Veit et al. 2016, section 4.3); the pairs must be
    :func:`interchangeable`."""
    allowed = {name: index for index, names in enumerate(interchangeable(model)) for name in names}
    placed = {name: name for pair in swaps for name in pair}  # position -> the block that sits there now
    for a, b in swaps:
        if a not in allowed or allowed[a] != allowed.get(b):
            raise ValueError(f"{a} and {b} do not have the same shape: they cannot take each other's place")
        placed[a], placed[b] = placed[b], placed[a]
    with _replaced(model, {where: _residual_block(model, block) for where, block in placed.items()}):
        yield model


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
