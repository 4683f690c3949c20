"""The per-image metrics an evaluation can add to its rows, by name (``--metrics NAME ...``).

A metric is ``metric(model, inputs, classes) -> values``: a batch of normalised inputs (N, C, H, W) and the class
of each image to explain (its top-1), one float per image back, which becomes a column of that name. A new metric
is one entry in :data:`METRICS`; none is registered yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from ..zoo.models import ResNet

__all__ = ["ALL", "METRICS", "NONE", "Metric", "resolve_metrics"]

Metric = Callable[[ResNet, Tensor, Tensor], Tensor]
METRICS: dict[str, Metric] = {}
ALL, NONE = "all", "none"


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
        available = ", ".join(METRICS) or "none is implemented yet"
        raise ValueError(
            f"unknown metric {', '.join(map(repr, unknown))}; available: {available} "
            f"(or {ALL}, or {NONE} for predictions only)"
        )
    return True, tuple(dict.fromkeys(names))
