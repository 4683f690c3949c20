"""Residual networks as ensembles of short paths (Veit, Wilber and Belongie, NeurIPS 2016).

Unravelled, a network of n residual blocks is 2^n paths from its stem to its head, one for each choice, at every
block, between the residual branch and the shortcut; C(n, k) of them pass through exactly k branches. Three
measurements on a trained network and labelled images show how much it relies on them:

- :func:`deletion_curve`: the error with k random blocks deleted at test time (each replaced by its shortcut),
  k = 0 ... n. A residual network degrades smoothly; a plain one, which has a single path, collapses.
- :func:`reordering_curve`: the error after swapping k random pairs of blocks of the same shape.
- :func:`path_gradients`: the gradient that reaches the input through one path of length k, times the number of
  such paths. The lengths that carry most of the total are the network's *effective* paths: Veit et al. found
  5 to 17 of ResNet-110's 54 blocks.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..data import cifar10
from ..degradation.data import load_mnist_5k
from ..hooks import eval_mode, forward_hooks
from ..measure.evaluation import evaluate
from ..measure.lesion import interchangeable, lesioned, reordered
from ..zoo.models import ResNet

__all__ = [
    "EFFECTIVE_SHARE",
    "Curve",
    "PathGradients",
    "deletion_curve",
    "labelled_test_images",
    "path_gradients",
    "reordering_curve",
]

EFFECTIVE_SHARE = 0.9  # the effective path lengths: the narrowest range of lengths that carries this much gradient


@dataclass(frozen=True)
class Curve:
    """An error rate after k changes (k deleted blocks, or k swapped pairs), one value per seeded draw."""

    change: str  # what k counts: "deleted blocks" or "swapped pairs"
    errors: dict[int, tuple[float, ...]]  # k -> the error of each draw (one where only one choice exists)
    images: int

    def mean(self) -> dict[int, float]:
        return {k: float(np.mean(values)) for k, values in self.errors.items()}

    def std(self) -> dict[int, float]:
        """The spread over draws (0 where a single choice exists)."""
        return {k: float(np.std(values)) for k, values in self.errors.items()}

    def rows(self) -> list[dict[str, float]]:
        """One row per k: its mean error, the spread and the number of draws (JSON-ready)."""
        std = self.std()
        return [{"k": k, "mean": mean, "std": std[k], "draws": len(self.errors[k])} for k, mean in self.mean().items()]


@dataclass(frozen=True)
class PathGradients:
    """The input gradient through paths of each length 0 ... n of a network of n residual blocks."""

    per_path: tuple[float, ...]  # mean over images of ||dLoss/dinput|| through one path of length k, k = 0 ... n
    samples: tuple[int, ...]  # how many paths of each length were measured (all of them where they are few)

    @property
    def blocks(self) -> int:
        return len(self.per_path) - 1

    @property
    def counts(self) -> tuple[int, ...]:
        """How many paths have each length: C(n, k), the binomial distribution the unravelled view predicts."""
        return tuple(math.comb(self.blocks, k) for k in range(self.blocks + 1))

    @property
    def total(self) -> tuple[float, ...]:
        """The gradient that all paths of each length carry together: per path times their number."""
        return tuple(per * count for per, count in zip(self.per_path, self.counts, strict=True))

    def effective(self, share: float = EFFECTIVE_SHARE) -> tuple[int, int]:
        """The narrowest range of path lengths (first, last) that carries ``share`` of the total gradient."""
        total = np.asarray(self.total, dtype=np.float64)
        needed = share * total.sum()
        best = (0, self.blocks)
        for first in range(len(total)):
            carried = np.cumsum(total[first:])
            enough = np.nonzero(carried >= needed)[0]
            if enough.size and enough[0] < best[1] - best[0]:
                best = (first, first + int(enough[0]))
        return best


def labelled_test_images(model: ResNet, limit: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``limit`` of the network's own test images as its input batch, their labels, and which they are: the first
    of CIFAR-10's (all 10,000 where configured, else the 500 shipped, both in the test set's shuffled order) for a
    CIFAR-10 network; for a digit network, evenly spaced among the 5,000 shipped digits, which are sorted by class
    (a prefix would be a few classes)."""
    key = model.card.label_space.key
    if key == "cifar10":
        images, labels, described = cifar10.available_test_images()
        batch = cifar10.to_batch(images[:limit], model.card.preprocess.mean, model.card.preprocess.std)
        shown = described if limit >= len(images) else f"the first {limit:,} of {described}"
        return batch, torch.from_numpy(labels[:limit]).long(), shown
    if key == "digits":
        digits, classes = load_mnist_5k()
        step = max(1, len(digits) // limit)
        shown = f"every {step}th of " if step > 1 else ""
        shown += "the 5,000 shipped MNIST digits (the lab's training set)"
        return digits[::step][:limit], classes[::step][:limit], shown
    raise ValueError(
        f"measuring the paths needs labelled test images of {model.card.arch.name}'s classes: they ship for the "
        "CIFAR-10 and the digit networks"
    )


def _choices(n: int, k: int, draws: int, rng: random.Random) -> list[tuple[int, ...]]:
    """``draws`` seeded random k-subsets of n, or every one of them where there are no more than ``draws``."""
    if math.comb(n, k) <= draws:
        return list(itertools.combinations(range(n), k))
    return [tuple(sorted(rng.sample(range(n), k))) for _ in range(draws)]


def deletion_curve(
    model: ResNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int] | None = None,
    draws: int = 10,
    seed: int = 0,
    batch_size: int = 1000,
) -> Curve:
    """The error with k random blocks deleted at test time, for each k of ``ks`` (default 0 ... n): ``draws`` seeded
    draws of k blocks, or every choice where there are fewer. k = 0 is the network's own error."""
    blocks = model.block_names()
    rng = random.Random(seed)
    errors = {}
    for k in range(len(blocks) + 1) if ks is None else ks:
        if not 0 <= k <= len(blocks):
            raise ValueError(f"k must lie between 0 and {len(blocks)} (the network's blocks), got {k}")
        errors[k] = tuple(
            _error(model, images, labels, batch_size, lesioned, *(blocks[i] for i in chosen))
            for chosen in _choices(len(blocks), k, draws, rng)
        )
    return Curve("deleted blocks", errors, len(images))


def reordering_curve(
    model: ResNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    ks: Sequence[int] | None = None,
    draws: int = 10,
    seed: int = 0,
    batch_size: int = 1000,
) -> Curve:
    """The error after k swaps of two random blocks of the same shape (:func:`interchangeable`), one after another,
    for each k of ``ks`` (default 0 up to the number of such blocks), over ``draws`` seeded draws."""
    groups = interchangeable(model)
    if not groups:
        raise ValueError("no two blocks of this network have the same shape: there is nothing to re-order")
    rng = random.Random(seed)
    errors = {}
    for k in range(sum(map(len, groups)) + 1) if ks is None else ks:
        if k < 0:
            raise ValueError(f"k counts swaps, so it is at least 0, got {k}")
        runs = 1 if k == 0 else draws
        errors[k] = tuple(
            _error(model, images, labels, batch_size, reordered, [_pair(groups, rng) for _ in range(k)])
            for _ in range(runs)
        )
    return Curve("swapped pairs", errors, len(images))


def _pair(groups: list[list[str]], rng: random.Random) -> tuple[str, str]:
    """Two random blocks of one group, the group chosen with a weight of how many pairs it holds."""
    group = rng.choices(groups, weights=[math.comb(len(g), 2) for g in groups])[0]
    first, second = rng.sample(group, 2)
    return first, second


def _error(model: ResNet, images, labels, batch_size: int, change: Callable, *arguments) -> float:
    with change(model, *arguments):
        return evaluate(model, images, labels, batch_size)[1]


@contextmanager
def _through(model: ResNet, branches: set[str]) -> Iterator[None]:
    """The backward pass of every block goes through its residual branch alone where the block is in ``branches``,
    else through its shortcut alone; the forward values stay as they are. A path of the unravelled network."""

    def gate(block: str):
        def hook(module, inputs, output):
            residual, shortcut = inputs
            if block in branches:
                return residual + shortcut.detach()
            return residual.detach() + shortcut

        return hook

    with forward_hooks(model, [(f"{block}.residual_add", gate(block)) for block in model.block_names()]):
        yield


def path_gradients(
    model: ResNet, images: torch.Tensor, labels: torch.Tensor, samples: int = 8, seed: int = 0
) -> PathGradients:
    """The gradient of the loss at the input through paths of each length (Veit et al. 2016, section 5): for each
    length k, ``samples`` seeded random paths (every one where there are fewer), each measured as the mean over
    ``images`` of ``||dLoss_i / dimage_i||``, with the backward pass through the k chosen blocks' branches and the
    other blocks' shortcuts only. A plain network has a single path and is refused."""
    if not model.shortcut:
        raise ValueError("a plain network has a single path through every layer: it has no path lengths to compare")
    blocks = model.block_names()
    rng = random.Random(seed)
    per_path, measured = [], []
    with eval_mode(model):
        for k in range(len(blocks) + 1):
            norms = []
            for chosen in _choices(len(blocks), k, samples, rng):
                with _through(model, {blocks[i] for i in chosen}):
                    norms.append(_input_gradient_norm(model, images, labels))
            per_path.append(float(np.mean(norms)))
            measured.append(len(norms))
    return PathGradients(tuple(per_path), tuple(measured))


def _input_gradient_norm(model: ResNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    inputs = images.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(inputs), labels, reduction="sum")  # summed: each image's gradient is its own loss's
    (gradient,) = torch.autograd.grad(loss, inputs)
    return float(gradient.flatten(1).norm(dim=1).mean())
