"""The paper's degradation experiment on CIFAR-10 itself (section 4.2, Fig. 6): its training recipe, for the plain
and residual CIFAR nets.

The recipe as the paper states it: SGD with momentum 0.9 and weight decay 1e-4, mini-batches of 128, learning rate
0.1 divided by 10 at 32k and 48k iterations, stopped at 64k; each training image padded by 4 pixels on every side,
a random 32x32 crop of it or of its mirror image; the test images seen as they are. The lab trains on digits in
minutes on a CPU; this needs a GPU for the paper's 64k iterations (about an hour for plain-56 on one), and runs on
anything for a few steps, which is how the tests check it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.cifar10 import to_batch
from ..zoo.models import ResNet

__all__ = ["PaperRecipe", "augment", "train_cifar10"]


@dataclass(frozen=True)
class PaperRecipe:
    """Section 4.2's hyper-parameters (the defaults); fewer ``iterations`` keep the schedule's shape."""

    iterations: int = 64_000
    batch_size: int = 128
    lr: float = 0.1
    milestones: tuple[int, ...] = (32_000, 48_000)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    padding: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.batch_size < 1:
            raise ValueError(f"iterations and batch size must be at least 1, got {self.iterations}, {self.batch_size}")

    def learning_rate(self, iteration: int) -> float:
        """``lr`` divided by 10 at each milestone passed."""
        return self.lr * 0.1 ** sum(iteration >= milestone for milestone in self.milestones)

    def scaled(self, iterations: int) -> PaperRecipe:
        """The same recipe over ``iterations``, its milestones at the same fractions (1/2 and 3/4 of the run)."""
        milestones = tuple(round(milestone * iterations / self.iterations) for milestone in self.milestones)
        return PaperRecipe(**{**asdict(self), "iterations": iterations, "milestones": milestones})

    def as_dict(self) -> dict:
        return asdict(self)


def augment(images: np.ndarray, generator: np.random.Generator, padding: int = 4) -> np.ndarray:
    """Each (32, 32, 3) uint8 image padded with ``padding`` black pixels on every side, a random crop of its own
    size, mirrored left to right with probability 1/2: the paper's augmentation."""
    count: int  # typed, so that numpy's stubs give an array (not a scalar) of ``count`` draws below
    count, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    tops = generator.integers(0, 2 * padding + 1, count)
    lefts = generator.integers(0, 2 * padding + 1, count)
    flips = generator.random(count) < 0.5
    out = np.empty_like(images)
    for index, (top, left, flip) in enumerate(zip(tops, lefts, flips, strict=True)):
        crop = padded[index, top : top + height, left : left + width]
        out[index] = crop[:, ::-1] if flip else crop
    return out


def train_cifar10(
    model: ResNet, images: np.ndarray, labels: np.ndarray, recipe: PaperRecipe = PaperRecipe()
) -> Iterator[tuple[int, float]]:
    """Train ``model`` (a ``create_model`` network: its card says how to normalise) in place on uint8 HWC
    ``images`` and their labels, yielding ``(iteration, minibatch loss)``; a generator, so a caller can log, stop,
    or save as it goes. Epochs are reshuffled from ``recipe.seed``; the model is left in eval mode."""
    generator = np.random.default_rng(recipe.seed)
    device = next(model.parameters()).device
    mean, std = model.card.preprocess.mean, model.card.preprocess.std
    model.requires_grad_(True)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )
    targets = torch.as_tensor(labels, dtype=torch.long)
    order, position = generator.permutation(len(images)), 0
    model.train()
    try:
        for iteration in range(recipe.iterations):
            if position + recipe.batch_size > len(order):  # a new epoch, freshly shuffled
                order, position = generator.permutation(len(images)), 0
            batch = order[position : position + recipe.batch_size]
            position += recipe.batch_size
            inputs = to_batch(augment(images[batch], generator, recipe.padding), mean, std).to(device)
            for group in optimizer.param_groups:
                group["lr"] = recipe.learning_rate(iteration)
            loss = F.cross_entropy(model(inputs), targets[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            yield iteration, loss.item()
    finally:
        model.eval().requires_grad_(False)
