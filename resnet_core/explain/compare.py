"""Several networks on one photo: one analysis each, and where they agree.

The paper argues by comparison (plain against residual, 18 against 152 layers, the ResNet-B/C/D tricks), so this puts
networks side by side on the same photo. Each network runs its own one-pass
:func:`~resnet_core.explain.analysis.analyze` on the crop its own weights expect; agreement is measured where it means
something: class answers only between networks of one label space, Grad-CAMs on the part of the original photo that
every network saw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..measure.complexity import cost_table
from ..measure.metrics import pearson
from ..zoo.models import ResNet
from ..zoo.preprocess import load_image
from .analysis import AnalysisResult, analyze, topk_rows

__all__ = ["MAX_NETWORKS", "MIN_NETWORKS", "Agreement", "Comparison", "column", "compare", "photo_cams"]

MIN_NETWORKS, MAX_NETWORKS = 2, 5
AGREEMENT_GRID = 64  # CAMs are resampled onto this many points per side of the shared region


@dataclass(frozen=True)
class Agreement:
    """Where the networks agree. Class answers are compared only within one label space (else None)."""

    label_spaces: tuple[str, ...]
    same_top1: bool | None
    common_topk: tuple[str, ...] | None  # classes in every network's top-k
    cam_correlation: float | None  # mean pairwise Pearson correlation over the shared region; None if undefined
    cam_pairs: dict[tuple[str, str], float | None]
    region: tuple[float, float, float, float]  # the part of the photo every network saw (left, top, right, bottom)

    @property
    def one_label_space(self) -> bool:
        return len(set(self.label_spaces)) == 1

    def sentence(self, names: Sequence[str], top1: Sequence[str], k: int = 5, untrained: Sequence[str] = ()) -> str:
        """What a newcomer should take away, in plain words; untrained networks first, since they void the rest."""
        count = len(names)
        parts = []
        if untrained:
            if len(untrained) == count:
                who = "All of these networks are"
            else:
                who = f"{', '.join(untrained)} {'is' if len(untrained) == 1 else 'are'}"
            parts.append(f"{who} untrained (random weights): answers are noise, and agreement with them means nothing.")
        if not self.one_label_space:
            spaces = ", ".join(dict.fromkeys(self.label_spaces))
            parts.append(
                f"These networks answer in different label spaces ({spaces}), so their classes and probabilities "
                "are not compared."
            )
        elif self.same_top1:
            both = "Both networks give" if count == 2 else f"All {count} networks give"
            parts.append(f'{both} the same top-1 class, "{top1[0]}".')
        else:
            answers = ", ".join(f'{name}: "{label}"' for name, label in zip(names, top1, strict=True))
            parts.append(f"The networks disagree on the top-1 class ({answers}).")
        if self.common_topk is not None:
            quoted = ", ".join(f'"{name}"' for name in self.common_topk)
            shared = f" ({quoted})" if quoted else ""
            parts.append(f"{len(self.common_topk)} classes are in every network's top-{k}{shared}.")
        if self.cam_correlation is None:
            parts.append("Their Grad-CAMs cannot be correlated (a map without any variation has no pattern to share).")
        else:
            value = self.cam_correlation
            strength = "closely" if value >= 0.7 else "partly" if value >= 0.3 else "hardly"
            agree = f"agree {strength}" if len(untrained) < count else "correlate"
            parts.append(
                f"Their Grad-CAMs {agree}: correlation {value:.2f} on average (1 = the same heat map, 0 = unrelated), "
                "over the part of the photo all of them saw."
            )
        return " ".join(parts)


@dataclass
class Comparison:
    """The photo as loaded, one analysis per network (in the order given), and their agreement."""

    photo: Image.Image
    results: list[AnalysisResult]
    agreement: Agreement

    @classmethod
    def of(cls, photo: Image.Image, results: Sequence[AnalysisResult]) -> Comparison:
        """Compare analyses that were run on ``photo`` (by :func:`compare`, or one at a time under locks)."""
        results = list(results)
        names = [result.card.arch.name for result in results]
        spaces = tuple(result.card.label_space.name for result in results)
        one_space = len(set(spaces)) == 1
        same_top1 = common = None
        if one_space:
            same_top1 = len({result.topk[0][0] for result in results}) == 1
            shared = set.intersection(*({index for index, _, _ in result.topk} for result in results))
            common = tuple(name for index, name, _ in results[0].topk if index in shared)
        cams, region = photo_cams(photo.size, results)
        pairs = {(names[a], names[b]): pearson(cams[a], cams[b]) for a, b in combinations(range(len(cams)), 2)}
        defined = [value for value in pairs.values() if value is not None]
        mean = float(np.mean(defined)) if defined else None
        return cls(photo, results, Agreement(spaces, same_top1, common, mean, pairs, region))

    def summary(self) -> str:
        names = [result.card.arch.name for result in self.results]
        top1 = [result.topk[0][1] for result in self.results]
        untrained = [name for name, result in zip(names, self.results, strict=True) if not result.card.pretrained]
        k = min(len(result.topk) for result in self.results)
        return self.agreement.sentence(names, top1, k, untrained)

    def as_dict(self) -> dict:
        """JSON-ready: one object per network (see :func:`column`) and the agreement."""
        agreement = self.agreement
        return {
            "networks": [column(result) for result in self.results],
            "agreement": {
                "label_spaces": list(agreement.label_spaces),
                "same_top1": agreement.same_top1,
                "common_topk": None if agreement.common_topk is None else list(agreement.common_topk),
                "cam_correlation": agreement.cam_correlation,
                "cam_pairs": [{"a": a, "b": b, "correlation": value} for (a, b), value in agreement.cam_pairs.items()],
                "shared_region": [round(value, 1) for value in agreement.region],
                "summary": self.summary(),
            },
        }


def column(result: AnalysisResult) -> dict:
    """One network's column as plain values: answers, weights, costs at the size it saw, residual ratios."""
    card = result.card
    size = card.preprocess.crop_size
    table = cost_table(card.arch, size)
    return {
        "arch": card.arch.name,
        "label_space": card.label_space.name,
        "weights": card.label,
        "pretrained": card.pretrained,
        "source": card.source,
        "topk": topk_rows(result.topk),
        "acc1": card.weights.acc1 if card.weights is not None else None,
        "params": table.total_params,
        "gmacs": table.gmacs,
        "input_size": size,
        "cam_layer": result.cam_layer,
        "residual_ratios": {name: stats.residual_ratio for name, stats in result.blocks.items()},
    }


def compare(
    models: Sequence[ResNet], image: Image.Image | str | Path, topk: int = 5, cam_layer: str | None = None
) -> Comparison:
    """Analyse ``image`` with 2 to 5 networks, one after another, and measure where they agree.

    Each result equals what :func:`~resnet_core.explain.analysis.analyze` gives for that network alone; ``cam_layer``
    defaults to each network's last stage.
    """
    if not MIN_NETWORKS <= len(models) <= MAX_NETWORKS:
        raise ValueError(f"compare takes {MIN_NETWORKS} to {MAX_NETWORKS} networks, got {len(models)}")
    photo = load_image(image)
    return Comparison.of(photo, [analyze(model, photo, topk=topk, cam_layer=cam_layer) for model in models])


def photo_cams(
    size: tuple[int, int], results: Sequence[AnalysisResult], points: int = AGREEMENT_GRID
) -> tuple[list[np.ndarray], tuple[float, float, float, float]]:
    """Every Grad-CAM resampled onto one grid over the part of the photo (of ``size``) that every network saw.

    Each network saw its own centred square (its weights' resize and crop); the shared region is their
    intersection, and each map is sampled there bilinearly through its own crop's geometry.
    """
    boxes = [result.card.preprocess.crop_box(size) for result in results]
    region = (max(b[0] for b in boxes), max(b[1] for b in boxes), min(b[2] for b in boxes), min(b[3] for b in boxes))
    xs = np.linspace(region[0], region[2], points + 1)[:-1] + (region[2] - region[0]) / (2 * points)
    ys = np.linspace(region[1], region[3], points + 1)[:-1] + (region[3] - region[1]) / (2 * points)
    cams = []
    for result, (left, top, right, bottom) in zip(results, boxes, strict=True):
        # grid_sample's coordinates: -1 and 1 are the outer edges of the crop (align_corners=False).
        u = torch.as_tensor((xs - left) / (right - left) * 2 - 1, dtype=torch.float32)
        v = torch.as_tensor((ys - top) / (bottom - top) * 2 - 1, dtype=torch.float32)
        grid = torch.stack(torch.meshgrid(v, u, indexing="ij")[::-1], dim=-1).unsqueeze(0)
        cam = torch.as_tensor(result.cam, dtype=torch.float32)[None, None]
        cams.append(F.grid_sample(cam, grid, mode="bilinear", align_corners=False)[0, 0].numpy())
    return cams, region
