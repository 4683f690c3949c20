"""Sanity checks for saliency maps: does a map depend on the model, and does it point at pixels the model uses?

A map can look convincing and still explain nothing: guided backpropagation, for instance, draws nearly the same
edges for a network with random weights (Adebayo et al., 2018). Two checks, for any method of :mod:`.saliency`:

* **Cascading randomization** (Adebayo et al., 2018): re-initialise a copy of the model from the classifier down,
  one stage at a time, and compare each new map with the original (Spearman rank correlation and SSIM). A map that
  survives the loss of the weights it claims to explain is explaining the image, not the model. New weights are
  one random draw: the steps a verdict reads (the head, then the head and the last stage) run over several seeds,
  reported as median and range (:class:`RandomizationSpread`).
* **Deletion and insertion** (Petsiuk et al., 2018, RISE): remove the pixels in the order the map ranks them and
  follow the class probability (a good map makes it fall fast: low area under the curve), or reveal them onto a
  blurred copy (a good map makes it rise fast: high area). A random ranking under the same :class:`Protocol` is the
  baseline; the protocol matters as much as the method (a zero fill is itself a signal the model reacts to), so
  every figure carries :meth:`Protocol.describe`. :data:`PROTOCOLS` names the ones to compare with others': ours,
  and TorchCAM's ``DeletionInsertionMetric`` (zero fill, ties in raster order, its 20 steps).
* **Average Drop and Increase in Confidence** (Chattopadhyay et al., 2018, Grad-CAM++): the image multiplied by its
  map, against the image, as TorchCAM's ``ClassificationMetric`` computes them (:func:`confidence_change`).

A curve is void for an image when its fully perturbed end still carries the class (:func:`void_reason`): then the
area measures the fill, not the map. The curves and both confidence measures run over a batch of images at once
(:func:`perturbation_curves`), which is how ``evaluate`` computes them over a data set.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from ..hooks import forward_hooks
from ..measure.metrics import spearman, ssim
from ..zoo.create import card
from ..zoo.models import ResNet
from .analysis import check_class, model_input
from .saliency import BLUR_SIGMA, FILLS, METHODS, Fill, Method, filled, saliency_map

__all__ = [
    "PATCHES",
    "PROTOCOLS",
    "RANDOMIZATION_ROUND",
    "RANDOMIZATION_SEEDS",
    "RANDOMIZED_ENOUGH",
    "SEPARATES_SHARE",
    "SPREAD_STEPS",
    "VOID_FACTOR",
    "Curve",
    "Curves",
    "Mode",
    "Protocol",
    "RandomizationSpread",
    "RandomizationStep",
    "SanityReport",
    "as_protocol",
    "cascading_randomization",
    "confidence_change",
    "measured_map",
    "median_rank",
    "perturbation_curve",
    "perturbation_curves",
    "protocol_setting",
    "randomization_order",
    "randomization_spread",
    "reinitialize",
    "sanity_check",
    "separates",
    "spearman",
    "ssim",
    "void_reason",
]

Mode = Literal["deletion", "insertion"]
# Draws of the re-initialised weights for the steps a verdict reads, in rounds until the median's 95% interval
# leaves RANDOMIZED_ENOUGH behind or the draws run out. Five draws (the rule "every draw below" and "none") gave the
# same verdict from seeds 0-4 and 5-9 on 17 of 30 CIFAR-10 test images; the interval of the median with rounds of
# 10 up to 30 gives it on 28 of 30 from seeds 0-29 and 30-59, never a pass against a fail, in 12.5 draws on average.
RANDOMIZATION_SEEDS = 30
RANDOMIZATION_ROUND = 10
SPREAD_STEPS = 2  # the head, then the head and the last stage
RANDOMIZED_ENOUGH = 0.5  # Spearman after the head and the last stage are re-initialised: below it, the map follows them
Ties = Literal["random", "raster"]
Schedule = Literal["equal", "ceil"]
VOID_FACTOR = 2  # a fully perturbed image may keep the class at up to twice chance before its curve is void


@dataclass(frozen=True)
class Protocol:
    """How a curve perturbs the image: what replaces removed pixels, in which units, in how many steps.

    ``mode="deletion"`` replaces the most salient pixels by ``fill`` first; ``"insertion"`` starts from the fill and
    puts the most salient pixels back first. ``patch`` > 1 ranks ``patch`` x ``patch`` squares by their mean saliency
    instead of single pixels. ``ties="random"`` breaks equal saliency in a seeded random order (a constant map is
    then a random ranking); ``"raster"`` in reading order, as TorchCAM does. ``schedule="equal"`` changes
    ``round(k * units / steps)`` units by step ``k``; ``"ceil"`` changes ``ceil(units / steps)`` units a step, the
    last step what is left (TorchCAM's), which can mean fewer than ``steps`` steps. All the images of a curve run
    through the model as one batch.
    """

    mode: Mode = "deletion"
    fill: Fill = "blur"
    patch: int = 1
    steps: int = 16
    ties: Ties = "random"
    schedule: Schedule = "equal"

    def __post_init__(self) -> None:
        if self.mode not in ("deletion", "insertion"):
            raise ValueError(f"unknown mode {self.mode!r}; expected 'deletion' or 'insertion'")
        if self.fill not in FILLS:
            raise ValueError(f"unknown fill {self.fill!r}; expected one of {FILLS}")
        if self.patch < 1 or self.steps < 1:
            raise ValueError(f"patch and steps must be at least 1, got {self.patch} and {self.steps}")
        if self.ties not in ("random", "raster") or self.schedule not in ("equal", "ceil"):
            raise ValueError(f"unknown ties {self.ties!r} or schedule {self.schedule!r}")

    def counts(self, units: int) -> list[int]:
        """How many units are changed at each point of a curve, from 0 to ``units``."""
        if self.schedule == "equal":
            return [round(units * step / self.steps) for step in range(self.steps + 1)]
        size = -(-units // self.steps)
        return [*range(0, units, size), units]

    def describe(self) -> str:
        """One sentence for the caption of any figure this protocol produced."""
        units = "pixels" if self.patch == 1 else f"{self.patch}x{self.patch} patches (ranked by mean saliency)"
        fill = (
            f"a gaussian-blurred copy of the input (sigma = side / {1 / BLUR_SIGMA:g})"
            if self.fill == "blur"
            else "zeros after normalisation (the mean colour)"
        )
        if self.mode == "deletion":
            action = f"{units} are replaced by {fill}, most salient first"
            better = "lower is better"
        else:
            action = f"{units} of the input are put back onto {fill}, most salient first"
            better = "higher is better"
        ties = "ties in random order" if self.ties == "random" else "ties in raster order"
        steps = (
            f"in {self.steps} equal steps"
            if self.schedule == "equal"
            else f"in steps of 1/{self.steps} of them rounded up (the last one shorter)"
        )
        return (
            f"{self.mode.capitalize()}: {action}, {ties}, {steps}; the score is the "
            f"area under the class probability over the fraction changed (0 to 1, {better})."
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "description": self.describe()}


PATCHES = (1, 4, 8)  # the ranking units the app offers (pixels, then squares), each in the shipped verdict table

PROTOCOLS: dict[str, Protocol] = {
    "default": Protocol(),  # what ``sanity`` and the app use
    "torchcam": Protocol(fill="zero", steps=20, ties="raster", schedule="ceil"),  # its DeletionInsertionMetric
}


def as_protocol(protocol: str | Protocol) -> Protocol:
    """A protocol given by its name in :data:`PROTOCOLS` or as itself; a ``ValueError`` that lists the names for
    an unknown one."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def protocol_setting(protocol: str | Protocol) -> str | dict:
    """How a run's settings record a protocol (the mode aside, which each curve sets): its name where it is one of
    :data:`PROTOCOLS`, else its fields, so the same protocol given either way is the same setting."""
    fields = replace(as_protocol(protocol), mode="deletion")
    named = [name for name, known in PROTOCOLS.items() if replace(known, mode="deletion") == fields]
    return named[0] if named else {key: value for key, value in asdict(fields).items() if key != "mode"}


@dataclass(frozen=True)
class Curve:
    """Class probability after each step of a :class:`Protocol`, and the area under it (trapezoid rule)."""

    protocol: Protocol
    ranking: str  # "map" or "random"
    fractions: tuple[float, ...]  # share of pixels changed, 0 ... 1
    probabilities: tuple[float, ...]
    auc: float

    def as_dict(self) -> dict:
        return {
            "protocol": self.protocol.as_dict(),
            "ranking": self.ranking,
            "fractions": list(self.fractions),
            "probabilities": list(self.probabilities),
            "auc": self.auc,
        }


def _unit_ranks(scores: Tensor, patch: int, generator: torch.Generator, ties: Ties = "random") -> Tensor:
    """Per pixel, the position of its unit (pixel or patch) in the removal order: 0 goes first.

    Units are sorted by decreasing score; equal scores keep the order of a random permutation (``ties="random"``),
    so a constant map is a random ranking rather than raster order (which would delete the top rows first).
    """
    height, width = scores.shape
    units = F.avg_pool2d(scores[None, None], patch, ceil_mode=True)[0, 0] if patch > 1 else scores
    flat = units.flatten()
    if ties == "random":
        shuffle = torch.randperm(flat.numel(), generator=generator)
        order = shuffle[torch.argsort(flat[shuffle], descending=True, stable=True)]
    else:
        order = torch.argsort(flat, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())
    ranks = ranks.view(units.shape)
    if patch > 1:
        ranks = ranks.repeat_interleave(patch, 0).repeat_interleave(patch, 1)[:height, :width]
    return ranks


def _ranks(saliency: Tensor | None, size: tuple[int, int], protocol: Protocol, seed: int) -> Tensor:
    """One image's removal order: by its map, or (``None``) by seeded random scores, ties broken from that seed."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(size, generator=generator) if saliency is None else saliency.detach().float().cpu()
    return _unit_ranks(scores, protocol.patch, generator, protocol.ties)


@dataclass(frozen=True)
class Curves:
    """The curves of a batch of images under one protocol: ``fractions`` and ``probabilities`` ``(N, points)`` and
    ``auc`` ``(N,)``, on the CPU."""

    protocol: Protocol
    ranking: str  # "map" or "random"
    fractions: Tensor
    probabilities: Tensor
    auc: Tensor

    def end(self) -> Tensor:
        """Per image, the class probability of the fully perturbed image (deletion's last point, insertion's first)."""
        return self.probabilities[:, -1 if self.protocol.mode == "deletion" else 0]

    def curve(self, index: int) -> Curve:
        fractions, probabilities = self.fractions[index], self.probabilities[index]
        return Curve(
            self.protocol,
            self.ranking,
            tuple(fractions.tolist()),
            tuple(probabilities.tolist()),
            float(self.auc[index]),
        )


def perturbation_curves(
    model: nn.Module,
    inputs: Tensor,
    classes: Tensor,
    saliency: Tensor | None,
    protocol: Protocol = Protocol(),
    seeds: Sequence[int] | None = None,
    chunk: int | None = None,
) -> Curves:
    """:func:`perturbation_curve` of every image of a batch ``(N, C, H, W)``, each for its class in ``classes``
    ``(N,)``, ranked by its map in ``saliency`` ``(N, H, W)`` (``None``: seeded random rankings) with its seed in
    ``seeds`` (default: all 0). Each curve is the one its image alone would get; the perturbed images go through the
    model ``chunk`` at a time (default: all at once).
    """
    count, (height, width) = inputs.shape[0], inputs.shape[-2:]
    size = (height, width)
    seeds = [0] * count if seeds is None else list(seeds)
    if saliency is not None and tuple(saliency.shape) != (count, *size):
        raise ValueError(f"saliency maps are {tuple(saliency.shape)}, the inputs {(count, *size)}")
    if len(seeds) != count or len(classes) != count:
        raise ValueError(f"{count} images, {len(classes)} classes and {len(seeds)} seeds: give one of each per image")
    orders = [_ranks(None if saliency is None else saliency[i], size, protocol, seed) for i, seed in enumerate(seeds)]
    ranks = torch.stack(orders).to(inputs.device)
    counts = torch.tensor(protocol.counts(int(ranks[0].max()) + 1), device=inputs.device)
    masks = ranks[:, None] < counts[:, None, None]  # (N, points, H, W): True = filled
    if protocol.mode == "insertion":
        masks = ~masks  # point k reveals the units deletion would have removed by point k; the rest stays filled
    points = masks.shape[1]
    image = torch.arange(count, device=inputs.device).repeat_interleave(points)
    masks, targets = masks.flatten(0, 1), classes.to(inputs.device)[image]
    probabilities = torch.empty(count * points)
    chunk = chunk or count * points
    with torch.inference_mode():
        background = filled(inputs, protocol.fill)
        for start in range(0, count * points, chunk):
            part = slice(start, start + chunk)
            batch = torch.where(masks[part, None], background[image[part]], inputs[image[part]])
            output = model(batch).softmax(-1)
            probabilities[part] = output.gather(1, targets[part, None])[:, 0].float().cpu()
    changed = masks.flatten(1).float().mean(1).cpu().view(count, points)
    fractions = changed if protocol.mode == "deletion" else 1.0 - changed
    probabilities = probabilities.view(count, points)
    auc = torch.trapezoid(probabilities, fractions, dim=-1)
    return Curves(protocol, "random" if saliency is None else "map", fractions, probabilities, auc)


def perturbation_curve(
    model: nn.Module,
    inputs: Tensor,
    class_index: int,
    saliency: np.ndarray | None,
    protocol: Protocol = Protocol(),
    seed: int = 0,
) -> Curve:
    """The deletion or insertion curve of ``saliency`` (``(H, W)``; ``None``: a seeded random ranking) on ``inputs``.

    ``inputs`` is one normalised image ``(1, C, H, W)``, as the model sees it. Deletion starts at the intact image's
    probability and ends at the fully filled image's; insertion runs the other way.
    """
    if inputs.ndim != 4 or inputs.shape[0] != 1:
        raise ValueError(f"expected one image as a (1, C, H, W) tensor, got shape {tuple(inputs.shape)}")
    size = tuple(inputs.shape[-2:])
    if saliency is not None and saliency.shape != size:
        raise ValueError(f"saliency map is {saliency.shape}, the input {size}")
    maps = None if saliency is None else torch.as_tensor(saliency, dtype=torch.float32)[None]
    classes = torch.tensor([class_index])
    return perturbation_curves(model, inputs, classes, maps, protocol, [seed]).curve(0)


def void_reason(probability: float, num_classes: int, mode: Mode) -> str | None:
    """Why a curve whose fully perturbed image keeps ``probability`` of its class says nothing of the map, or
    ``None`` if it may count: above :data:`VOID_FACTOR` times chance, the fill itself still shows the class, and
    the area measures how the network sees the fill."""
    limit = VOID_FACTOR / num_classes
    if probability <= limit:
        return None
    state = "everything deleted" if mode == "deletion" else "insertion start"
    return (
        f"protocol void for this image: p(class | {state}) = {probability:.3f} > {VOID_FACTOR}/{num_classes} "
        f"({VOID_FACTOR} x chance): the fill still shows the class"
    )


SEPARATES_SHARE = 0.75  # of a data set's valid images on which the map must beat random


def separates(versus: Mapping[str, Any]) -> bool:
    """Whether a protocol tells a map from a random ranking over a data set (a summary's ``against_random`` entry):
    the map beats random on at least :data:`SEPARATES_SHARE` of the valid images, and the 95% interval of the mean
    gap lies wholly on the better side of 0. Only then does one image's pass or fail mean something."""
    share, interval = versus.get("beats_random"), (versus.get("gap_to_random") or {}).get("ci95")
    if share is None or interval is None:
        return False
    low, high = interval
    return share >= SEPARATES_SHARE and (high < 0 if versus.get("better") == "lower" else low > 0)


def confidence_change(
    model: nn.Module, inputs: Tensor, classes: Tensor, saliency: Tensor, probabilities: Tensor
) -> tuple[Tensor, Tensor]:
    """Average Drop and Increase in Confidence (Chattopadhyay et al., 2018) per image, as TorchCAM's
    ``ClassificationMetric`` defines them: each image ``(N, C, H, W)`` is multiplied by its map ``(N, H, W)`` in the
    normalised space the model sees (what the map leaves out becomes the mean colour), and the class probability
    ``o`` of that image is compared with ``p`` of the whole one (``probabilities``, ``(N,)``). Returns the drop
    ``max(0, p - o) / (p + 1e-7)``, a share (the paper averages it in percent), and whether ``o > p``.
    """
    with torch.inference_mode():
        masked = model(saliency[:, None] * inputs).softmax(-1).gather(1, classes.view(-1, 1))[:, 0]
    return torch.relu(probabilities - masked) / (probabilities + 1e-7), probabilities < masked


def randomization_order(model: ResNet) -> list[tuple[str, tuple[str, ...]]]:
    """The cascade as (step name, submodules): the head, then every stage from the last to the stem."""
    stages = [(stage.name, stage.parts or (stage.module,)) for stage in reversed(model.feature_info)]
    return [("head", tuple(model.head_parts)), *stages]


def reinitialize(model: nn.Module, parts: Sequence[str]) -> None:
    """Re-initialise, in place, every module under ``parts`` with its own ``reset_parameters()``.

    For BatchNorm that also resets the running statistics (mean 0, variance 1); ``requires_grad`` flags stay as
    they are. Draws from torch's global generator: seed it (or fork it) for a repeatable result.
    """
    for part in parts:
        for module in model.get_submodule(part).modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()


@dataclass(frozen=True)
class RandomizationStep:
    """The map after re-initialising ``step`` (and everything after it) against the trained model's map."""

    step: str
    spearman: float | None
    ssim: float
    seconds: float  # re-initialising plus one new map
    saliency: np.ndarray | None = field(default=None, repr=False, compare=False)  # the map itself, for a strip view

    def as_dict(self) -> dict:
        return {"step": self.step, "spearman": self.spearman, "ssim": self.ssim, "seconds": self.seconds}


def cascading_randomization(
    model: ResNet,
    inputs: Tensor,
    class_index: int,
    method: Method = "gradcam",
    seed: int = 0,
    original: np.ndarray | None = None,
    steps: int | None = None,
    **options,
) -> list[RandomizationStep]:
    """Adebayo et al.'s cascade on a deep copy of ``model`` (the caller's model, shared by the app, is untouched).

    One entry per step of :func:`randomization_order`, each re-initialising one more part, so the last entry has
    no trained weight left; ``steps`` stops after that many (1: the head alone). ``options`` go to
    :func:`~resnet_core.explain.saliency.saliency_map`; ``original`` is the trained model's map if already computed.
    Seeded through a forked generator: repeatable, and the caller's global random state is left as it was.
    """
    if original is None:
        original = saliency_map(model, inputs, class_index, method, **options)
    randomized = copy.deepcopy(model)
    results = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, parts in randomization_order(model)[:steps]:
            start = time.perf_counter()
            reinitialize(randomized, parts)
            current = saliency_map(randomized, inputs, class_index, method, **options)
            seconds = time.perf_counter() - start
            results.append(
                RandomizationStep(name, spearman(original, current), ssim(original, current), seconds, current)
            )
    return results


@dataclass(frozen=True)
class RandomizationSpread:
    """One step of the cascade over several draws of the new weights (``seeds``), each against the trained map.

    ``spearman`` is None for a draw whose map came out constant (no ranking to correlate).
    """

    step: str
    seeds: tuple[int, ...]
    spearman: tuple[float | None, ...]
    ssim: tuple[float, ...]

    @property
    def ranked(self) -> list[float]:
        """The Spearman values of the draws whose map was not constant, in seed order."""
        return [value for value in self.spearman if value is not None]

    def spearman_range(self) -> tuple[float, float, float] | None:
        """Median, lowest and highest Spearman over the ranked draws; None where every draw's map was constant."""
        ranked = self.ranked
        return (float(np.median(ranked)), min(ranked), max(ranked)) if ranked else None

    def median_interval(self) -> tuple[float, float]:
        """A distribution-free interval for the median Spearman over the draws (order statistics, at least 95%
        where there are 6 draws or more; lowest to highest below that), a constant map counted as -1 (fallen
        apart entirely)."""
        values = sorted(-1.0 if value is None else value for value in self.spearman)
        k = median_rank(len(values))
        return values[k - 1], values[len(values) - k]

    def verdict(self, below: float = RANDOMIZED_ENOUGH) -> Literal["passes", "fails", "undecided"]:
        """``passes`` where the median's interval lies below ``below``, ``fails`` where it lies at or above it,
        ``undecided`` where it holds ``below``: then more draws, not another set of them, would decide."""
        low, high = self.median_interval()
        return "passes" if high < below else "fails" if low >= below else "undecided"

    def as_dict(self) -> dict:
        summary = self.spearman_range()
        median, low, high = summary if summary else (None, None, None)
        interval = self.median_interval()
        return {
            "step": self.step,
            "seeds": list(self.seeds),
            "spearman": list(self.spearman),
            "ssim": list(self.ssim),
            "median_spearman": median,
            "median_spearman_interval": list(interval),
            "min_spearman": low,
            "max_spearman": high,
            "median_ssim": float(np.median(self.ssim)),
            "verdict": self.verdict(),
        }


def median_rank(count: int, level: float = 0.95) -> int:
    """The rank k (1-based) whose order statistics ``x(k)`` and ``x(count - k + 1)`` bound the median of ``count``
    draws with at least ``level`` confidence (the binomial sign-test interval); 1 (lowest to highest) where no
    narrower pair reaches it."""
    tail = (1 - level) / 2
    rank, below = 1, 0.0
    for k in range(1, count // 2 + 1):
        below += math.comb(count, k - 1) / 2**count  # P(at most k - 1 draws fall below the median)
        if below > tail:
            break
        rank = k
    return rank


def randomization_spread(
    model: ResNet,
    inputs: Tensor,
    class_index: int,
    cascade: Sequence[RandomizationStep],
    seed: int = 0,
    seeds: int = RANDOMIZATION_SEEDS,
    method: Method = "gradcam",
    original: np.ndarray | None = None,
    steps: int = SPREAD_STEPS,
    round_size: int = RANDOMIZATION_ROUND,
    **options,
) -> list[RandomizationSpread]:
    """The first ``steps`` steps of the cascade over draws of new weights: ``seed`` (``cascade``, already run with
    it) and the seeds after it, in rounds of ``round_size`` draws until the last step's verdict is no longer
    undecided or ``seeds`` draws are made (a seed's first steps are the same whether or not the cascade goes on).
    Costs ``steps`` maps per draw after the first."""
    if original is None:
        original = saliency_map(model, inputs, class_index, method, **options)
    runs = [list(cascade[:steps])]

    def spreads() -> list[RandomizationSpread]:
        return [
            RandomizationSpread(
                draws[0].step,
                tuple(range(seed, seed + len(runs))),
                tuple(draw.spearman for draw in draws),
                tuple(draw.ssim for draw in draws),
            )
            for draws in zip(*runs, strict=True)
        ]

    while len(runs) < seeds:
        for other in range(seed + len(runs), seed + min(seeds, len(runs) - len(runs) % round_size + round_size)):
            runs.append(cascading_randomization(model, inputs, class_index, method, other, original, steps, **options))
        if spreads()[-1].verdict() != "undecided":
            break
    return spreads()


def measured_map(
    model: ResNet, inputs: Tensor, class_index: int, method: Method = "gradcam", **options
) -> tuple[np.ndarray, int, float]:
    """:func:`~resnet_core.explain.saliency.saliency_map` and what it cost: images through the network, and seconds."""
    passes = [0]

    def count(module: nn.Module, args: tuple, output: Tensor) -> None:
        passes[0] += len(args[0])

    start = time.perf_counter()
    with forward_hooks(model, [("", count)]):  # "" is the model itself: every image it is given
        saliency = saliency_map(model, inputs, class_index, method, **options)
    return saliency, passes[0], time.perf_counter() - start


@dataclass(frozen=True)
class SanityReport:
    """Both checks for one image, one class and one method (what ``python -m resnet_core sanity`` prints)."""

    arch: str
    method: str
    class_index: int
    class_name: str
    probability: float
    randomization: list[RandomizationStep]
    randomization_spread: list[RandomizationSpread]  # the first steps over several seeds (median and range)
    deletion: Curve
    random_deletion: Curve
    insertion: Curve
    random_insertion: Curve
    forward_passes: int  # images through the model for one map of this method
    options: dict = field(default_factory=dict)  # what the map was made with: layer, or window and stride
    pretrained: bool = True  # False: the network was untrained to begin with, so no map of it explains anything
    saliency: np.ndarray | None = field(default=None, repr=False, compare=False)  # the model's map as loaded
    crop: Image.Image | None = field(default=None, repr=False, compare=False)  # what the model saw, for overlays

    def as_dict(self) -> dict:
        return {
            "arch": self.arch,
            "pretrained": self.pretrained,
            "method": self.method,
            "options": self.options,
            "class": self.class_name,
            "class_index": self.class_index,
            "probability": self.probability,
            "forward_passes": self.forward_passes,
            "randomization": [step.as_dict() for step in self.randomization],
            "randomization_seeds": [spread.as_dict() for spread in self.randomization_spread],
            "deletion_auc": self.deletion.auc,
            "random_deletion_auc": self.random_deletion.auc,
            "insertion_auc": self.insertion.auc,
            "random_insertion_auc": self.random_insertion.auc,
            "protocol": self.deletion.protocol.describe(),
            "insertion_protocol": self.insertion.protocol.describe(),
            "curves": {
                name: getattr(self, name).as_dict()
                for name in ("deletion", "random_deletion", "insertion", "random_insertion")
            },
        }


def sanity_check(
    model: ResNet,
    image: Image.Image | str | Path,
    method: Method = "gradcam",
    class_index: int | None = None,
    protocol: Protocol = Protocol(),
    seed: int = 0,
    seeds: int = RANDOMIZATION_SEEDS,
    **options,
) -> SanityReport:
    """Both checks on the crop ``model`` sees of ``image``, for ``class_index`` (default: the top-1 class).

    ``protocol`` sets the deletion curve; the insertion curve uses the same fill, units and steps. The cascade runs
    with ``seed``; its first :data:`SPREAD_STEPS` steps also with the next ``seeds - 1`` seeds.
    ``options`` go to :func:`~resnet_core.explain.saliency.saliency_map` (``layer``, ``window``, ``stride``, ``fill``).
    """
    model_card = card(model)
    crop, inputs = model_input(model, image)
    with torch.inference_mode():
        probabilities = model(inputs).softmax(-1)[0].float().cpu()
    if class_index is None:
        class_index = int(probabilities.argmax())
    else:
        check_class(class_index, len(probabilities))

    original, passes, _ = measured_map(model, inputs, class_index, method, **options)
    height, width = inputs.shape[-2:]
    deletion, insertion = replace(protocol, mode="deletion"), replace(protocol, mode="insertion")
    curves = [
        perturbation_curve(model, inputs, class_index, saliency, chosen, seed)
        for chosen in (deletion, insertion)
        for saliency in (original, None)
    ]
    cascade = cascading_randomization(model, inputs, class_index, method, seed, original, **options)
    spread = randomization_spread(model, inputs, class_index, cascade, seed, seeds, method, original, **options)
    return SanityReport(
        arch=model_card.arch.name,
        method=method,
        class_index=class_index,
        class_name=model_card.categories[class_index],
        probability=float(probabilities[class_index]),
        randomization=cascade,
        randomization_spread=spread,
        deletion=curves[0],
        random_deletion=curves[1],
        insertion=curves[2],
        random_insertion=curves[3],
        forward_passes=passes,
        options=_resolved(model, method, (height, width), options),
        pretrained=model_card.pretrained,
        saliency=original,
        crop=crop,
    )


def _resolved(model: ResNet, method: Method, size: tuple[int, int], options: dict) -> dict:
    """The options a map was made with, defaults filled in, so a report says which layer or window it used."""
    given = {key: value for key, value in options.items() if value is not None}
    return {**given, **METHODS[method].defaults(model, size, given)}
