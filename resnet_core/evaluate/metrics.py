"""The per-image metrics an evaluation can add to its rows, by name (``--metrics NAME ...``).

A :class:`Metric` declares its columns (name and type) and computes them for a batch: ``compute(batch)`` gets a
:class:`MetricBatch` (the network, the normalised inputs, the class of each image to explain, which is its top-1,
and a seed per image) and returns one value per image for each column. What several metrics need is made once per
batch by the :class:`MetricBatch` (the Grad-CAM maps). A new metric is one entry in :data:`METRICS`.

The explanation metrics explain the project's Grad-CAM (the app's default method: last stage, top-1 class):

* ``average_drop``, ``increase_in_confidence``: Chattopadhyay et al. (2018) as TorchCAM's ``ClassificationMetric``
  defines them (:func:`~resnet_core.explain.sanity.confidence_change`); a share in [0, 1], and 1.0 or 0.0.
* ``deletion``, ``insertion``: the areas under the curves of the batch's
  :class:`~resnet_core.explain.sanity.Protocol`, named as ``python -m resnet_core sanity`` names them
  (``deletion_auc``, ``random_deletion_auc``, ...), the random ranking seeded by the image's seed as ``sanity
  --seed`` seeds it; and whether the protocol is valid for the image (``deletion_valid``; where not,
  ``deletion_void_reason`` says why: :func:`~resnet_core.explain.sanity.void_reason`). A void curve keeps its
  numbers in the row; the summary leaves it out.
* ``randomization``: the first step of Adebayo et al.'s cascade alone, the head (pooling and classifier)
  re-initialised from the image's seed: Spearman and SSIM of the new map against the trained one, what ``sanity``
  reports as the ``head`` step of ``randomization`` with that seed (near 0: the map depends on the classifier's
  weights, as a faithful map must). The whole cascade costs a map per stage and image; the head alone costs one.
  Spearman is None where the new map is constant.

Every seeded metric (``deletion``, ``insertion``, ``randomization``) adds the ``seed`` column it used.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

from torch import Tensor

from ..explain.saliency import gradcam_maps
from ..explain.sanity import (
    Mode,
    Protocol,
    cascading_randomization,
    confidence_change,
    perturbation_curves,
    void_reason,
)
from ..zoo.create import card
from ..zoo.models import ResNet

__all__ = [
    "ALL",
    "METRICS",
    "NONE",
    "SEED",
    "Metric",
    "MetricBatch",
    "Versus",
    "image_seed",
    "metric_columns",
    "resolve_metrics",
]

ALL, NONE = "all", "none"
SEED = 0  # the base of every image's seed
Values = Tensor | Sequence[float | int | bool | str | None]


@dataclass
class MetricBatch:
    """A batch of readable images as every metric sees it, and what metrics share, made on first use.

    ``inputs`` ``(N, C, H, W)`` normalised as the network expects; ``classes`` ``(N,)`` the class to explain;
    ``seeds`` one per image (see :func:`image_seed`), so a random baseline is the same
    whichever batch the image falls in; ``protocol`` the deletion/insertion protocol (its mode is set per metric).
    """

    model: ResNet
    inputs: Tensor
    classes: Tensor
    seeds: Sequence[int]
    protocol: Protocol = field(default_factory=Protocol)

    @cached_property
    def gradcam(self) -> tuple[Tensor, Tensor]:
        """Each image's Grad-CAM map for its class ``(N, H, W)``, and its class probability ``(N,)`` from the same
        forward."""
        maps, logits = gradcam_maps(self.model, self.inputs, self.classes)
        return maps, logits.float().softmax(-1).gather(1, self.classes.view(-1, 1))[:, 0]

    @cached_property
    def num_classes(self) -> int:
        return len(card(self.model).categories)

    @cached_property
    def confidence(self) -> tuple[Tensor, Tensor]:
        """Average Drop and Increase in Confidence of the Grad-CAM maps, per image."""
        maps, probabilities = self.gradcam
        return confidence_change(self.model, self.inputs, self.classes, maps, probabilities)


@dataclass(frozen=True)
class Versus:
    """How a summary compares a curve's area with its random baseline's: the two columns, and the column that says
    whether the protocol holds for the image (only those images count). Lower is better for deletion."""

    mode: Mode
    score: str
    random: str
    valid: str


@dataclass(frozen=True)
class Metric:
    """Columns and how to compute them. ``columns`` maps each column's name to its type: ``float`` (stored as
    float32), ``int`` (int64), ``bool`` or ``str``; metrics may share a column (``seed``). ``compute(batch)`` returns
    a value per image for each, a tensor or a list. ``versus``: for a score with a random baseline, how the summary
    compares them."""

    columns: Mapping[str, type]
    compute: Callable[[MetricBatch], Mapping[str, Values]]
    versus: Versus | None = None


def _average_drop(batch: MetricBatch) -> dict[str, Values]:
    return {"average_drop": batch.confidence[0]}


def _increase_in_confidence(batch: MetricBatch) -> dict[str, Values]:
    return {"increase_in_confidence": batch.confidence[1].float()}


def _curves(mode: Mode) -> Metric:
    """The ``deletion`` or ``insertion`` metric: map and random curves, and whether the protocol holds."""
    auc, random, valid, reason = f"{mode}_auc", f"random_{mode}_auc", f"{mode}_valid", f"{mode}_void_reason"

    def compute(batch: MetricBatch) -> dict[str, Values]:
        protocol = replace(batch.protocol, mode=mode)
        chunk = max(len(batch.inputs), protocol.steps + 1)  # as many perturbed images a forward as the batch holds
        common = (batch.model, batch.inputs, batch.classes)
        ranked = perturbation_curves(*common, batch.gradcam[0], protocol, batch.seeds, chunk)
        baseline = perturbation_curves(*common, None, protocol, batch.seeds, chunk)
        reasons = [void_reason(end, batch.num_classes, mode) for end in ranked.end().tolist()]
        return {
            auc: ranked.auc,
            random: baseline.auc,
            valid: [r is None for r in reasons],
            reason: reasons,
            "seed": batch.seeds,
        }

    versus = Versus(mode, auc, random, valid)
    return Metric({auc: float, random: float, valid: bool, reason: str, "seed": int}, compute, versus)


def _randomization(batch: MetricBatch) -> dict[str, Values]:
    maps = batch.gradcam[0].cpu().numpy()
    heads = [
        cascading_randomization(
            batch.model, batch.inputs[i : i + 1], int(batch.classes[i]), "gradcam", seed, maps[i], steps=1
        )[0]
        for i, seed in enumerate(batch.seeds)
    ]
    return {
        "randomization_head_spearman": [head.spearman for head in heads],
        "randomization_head_ssim": [head.ssim for head in heads],
        "seed": batch.seeds,
    }


METRICS: dict[str, Metric] = {
    "deletion": _curves("deletion"),
    "insertion": _curves("insertion"),
    "average_drop": Metric({"average_drop": float}, _average_drop),
    "increase_in_confidence": Metric({"increase_in_confidence": float}, _increase_in_confidence),
    "randomization": Metric(
        {"randomization_head_spearman": float, "randomization_head_ssim": float, "seed": int}, _randomization
    ),
}


def metric_columns(names: Sequence[str]) -> dict[str, type]:
    """The columns the metrics ``names`` add to a row, in order."""
    return {column: kind for name in names for column, kind in METRICS[name].columns.items()}


def resolve_metrics(names: Sequence[str] | None) -> tuple[bool, tuple[str, ...]]:
    """Whether residual ratios are recorded, and which metrics: by default (``None``) the ratios alone; ``none``
    neither (predictions only: a bare forward, no hooks); ``all`` the ratios and every metric; else the ratios and
    the metrics named. Raises ``ValueError`` for a name that is not registered."""
    if names is None:
        return True, ()
    if NONE in names:
        if len(names) > 1:
            raise ValueError(f"--metrics {NONE} means predictions only: give it alone")
        return False, ()
    if ALL in names:
        return True, tuple(METRICS)
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(
            f"unknown metric {', '.join(map(repr, unknown))}; available: {', '.join(METRICS)} "
            f"(or {ALL}, or {NONE} for predictions only)"
        )
    return True, tuple(dict.fromkeys(names))


def image_seed(path: str) -> int:
    """The seed of an image's random baselines: :data:`SEED` plus a hash of its path (its key in the source), the
    same in every run, batch and process (Python's ``hash`` of a string is not), so rows are reproducible and a
    resumed run adds the same rows. ``python -m resnet_core sanity --seed`` with it gives the row's numbers."""
    return SEED + zlib.crc32(path.encode("utf-8"))
