"""The per-batch function of an evaluation: one network, a batch of preprocessed images in, one row per image out.

A callable class, the shape Ray Data's ``map_batches`` takes for an actor pool: the network is built in ``__init__``
(once per actor, from a picklable :class:`Network`), and ``__call__`` maps a batch of columns to columns of rows.
The local loop (:func:`~resnet_core.evaluate.run.evaluate_dataset`) calls the very same object, so both give the
same rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import torch

from ..explain.analysis import topk_classes, topk_rows
from ..explain.sanity import Protocol, as_protocol
from ..measure.residual_stats import residual_stats
from ..zoo.architectures import get_arch
from ..zoo.checkpoints import inspect_checkpoint, load_checkpoint
from ..zoo.create import card, create_model
from ..zoo.models import ResNet
from ..zoo.weights import weights_or_default
from .metrics import METRICS, MetricBatch, image_seed, metric_columns

__all__ = ["Batch", "BatchEvaluator", "Network"]


@dataclass(frozen=True)
class Network:
    """A network as data, not a module: small enough to send to a worker, which builds it there."""

    arch: str | None = None
    weights: str | None = None  # None: DEFAULT where weights are published, else untrained
    checkpoint: str | None = None  # a user's own file or hf-hub:OWNER/NAME (``arch`` then only breaks ties)
    labels: str | None = None  # the checkpoint's class names (a file)
    key: str | None = None  # which state dict of a checkpoint that holds several ("ema", "state.model")
    # How the checkpoint's network was fed in training, as Preprocess.changed takes it (crop, resize, mean, std,
    # normalize), where its architecture's default is not it: pairs, so a Network stays hashable.
    feeding: tuple[tuple[str, object], ...] = ()

    def build(self, device: str | torch.device | None = None, progress: bool = False) -> ResNet:
        """The network, as ``create_model`` or ``load_checkpoint`` gives it."""
        if self.checkpoint:
            if self.weights is not None:
                raise ValueError("a checkpoint brings its own weights: give a checkpoint or weights, not both")
            preprocess = None
            if self.feeding:  # the checkpoint's own default (its architecture's weights' or its hub config's), changed
                info = inspect_checkpoint(self.checkpoint, labels=self.labels, arch=self.arch, key=self.key)
                changes: dict[str, Any] = dict(self.feeding)
                preprocess = info.preprocess.changed(**changes) if info.preprocess else None
            return load_checkpoint(
                self.checkpoint, self.labels, self.arch, preprocess=preprocess, device=device, key=self.key
            )
        if self.labels or self.key or self.feeding:
            raise ValueError(
                "labels, a key and how the network was fed (crop, resize, mean, std, normalisation) describe a "
                "checkpoint: give the checkpoint too"
            )
        if self.arch is None:
            raise ValueError("name an architecture or give a checkpoint")
        get_arch(self.arch)
        weights = weights_or_default(self.arch, self.weights)
        return create_model(self.arch, weights=weights, progress=progress, device=device)


class Batch(TypedDict):
    """The columns :class:`BatchEvaluator` takes: lists and a tensor from the local loop
    (:class:`~resnet_core.evaluate.loader.Collate`), numpy arrays from Ray Data."""

    path: Sequence[str] | np.ndarray
    label_index: Sequence[int | None] | np.ndarray
    error: Sequence[str | None] | np.ndarray
    inputs: torch.Tensor | np.ndarray


class BatchEvaluator:
    """``__call__(batch) -> rows`` for one network.

    A batch holds the columns ``path``, ``label_index`` (the network's class index, or None), ``inputs``
    (N, C, H, W, normalised as the network's weights expect) and ``error`` (None, or why an image could not be
    read; its inputs are ignored). Rows are columns too: ``network``, ``path``, ``label``, ``label_index``,
    ``topk`` (the command line's ``[{"index", "label", "probability"}]``), ``correct``, ``residual_ratios`` (one
    per block, in ``blocks`` order; None in a plain block, and the whole list None without ``residuals``),
    ``error``, then the columns of each metric (see :mod:`~resnet_core.evaluate.metrics`). ``protocol`` is
    the deletion/insertion protocol, or its name in :data:`~resnet_core.explain.sanity.PROTOCOLS`.
    """

    def __init__(
        self,
        network: Network | ResNet,
        residuals: bool = True,
        metrics: Sequence[str] = (),
        topk: int = 5,
        device: str | torch.device | None = None,
        protocol: str | Protocol = "default",
    ) -> None:
        self.model = network.build(device) if isinstance(network, Network) else network
        self.card = card(self.model)
        self.name = self.card.name
        self.blocks = self.model.block_names()
        self.residuals = residuals
        self.metrics = tuple(metrics)
        self.columns = metric_columns(self.metrics)
        self.protocol = as_protocol(protocol)
        self.topk = topk
        self.device = next(self.model.parameters()).device

    def __call__(self, batch: Batch) -> dict[str, list]:
        count = len(batch["path"])
        good = [row for row in range(count) if batch["error"][row] is None]
        categories = self.card.categories
        label_index = [None if label is None else int(label) for label in batch["label_index"]]
        # On the CPU, convolutions take channels-last input about 1.4x faster (oneDNN's own layout, measured).
        layout = torch.channels_last if self.device.type == "cpu" else torch.preserve_format
        inputs = torch.as_tensor(batch["inputs"])[good].to(self.device, memory_format=layout)
        rows = {
            "network": [self.name] * count,
            "path": list(batch["path"]),
            "label": [None if label is None else categories[label] for label in label_index],
            "label_index": label_index,
            "topk": [None] * count,
            "correct": [None] * count,
            "residual_ratios": [None] * count,
            "error": list(batch["error"]),
            **{column: [None] * count for column in self.columns},
        }
        if not good:
            return rows
        with torch.inference_mode():
            if self.residuals:
                with residual_stats(self.model) as recorder:
                    logits = self.model(inputs)
                ratios = torch.stack([stats.ratio for stats in recorder.result().values()], 1).tolist()
            else:
                logits = self.model(inputs)  # predictions only: a bare forward, no hooks
            probabilities = logits.float().softmax(-1).cpu()
        top1 = probabilities.argmax(-1)
        seeds = [image_seed(batch["path"][row]) for row in good]
        shared = MetricBatch(self.model, inputs, top1.to(self.device), seeds, self.protocol)
        values = {}
        for name in self.metrics:
            computed = METRICS[name].compute(shared)
            values.update({column: _as_list(computed[column]) for column in METRICS[name].columns})
        for position, row in enumerate(good):
            rows["topk"][row] = topk_rows(topk_classes(probabilities[position], categories, self.topk))
            if label_index[row] is not None:
                rows["correct"][row] = rows["topk"][row][0]["index"] == label_index[row]
            if self.residuals:
                rows["residual_ratios"][row] = [None if r != r else r for r in ratios[position]]  # NaN: no shortcut
            for name, value in values.items():
                rows[name][row] = value[position]
        return rows


def _as_list(values: torch.Tensor | Sequence) -> list:
    return values.tolist() if isinstance(values, torch.Tensor) else list(values)
