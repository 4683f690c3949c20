"""Models for the app: built on first use, kept in a small LRU cache, one lock per model.

Loading never fails the request: when no source delivers the weights, the user gets the random-init model and
a status that says why, in plain words. The lock matters because an analysis puts hooks on the shared module:
two requests on one model take turns, requests on different models run side by side.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from resnet_core import WeightsUnavailableError, create_model, list_weights
from resnet_core import degradation as lab
from resnet_core.models import ResNet

__all__ = ["LAB_FAMILY", "LAB_WEIGHTS", "RANDOM_INIT", "LoadedModel", "ModelCache", "default_device", "weight_choices"]

RANDOM_INIT = "random init"
# The degradation lab's trained digit networks: the one pretrained family that needs no download.
LAB_FAMILY = "Digits (degradation lab)"
LAB_WEIGHTS = "lab reference run (seed 0)"
ENV_DEVICE = "RESNET_EXPLORER_DEVICE"
ENV_CACHE_SIZE = "RESNET_EXPLORER_CACHE_SIZE"


def default_device() -> torch.device:
    """``$RESNET_EXPLORER_DEVICE`` if set, else the GPU when there is one, else the CPU."""
    chosen = os.environ.get(ENV_DEVICE)
    if chosen:
        return torch.device(chosen)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def weight_choices(arch: str) -> list[str]:
    """Every published weight of ``arch`` (recommended first), then the explicit random init."""
    if arch in lab.reference_models():
        return [LAB_WEIGHTS]
    return [entry.name for entry in list_weights(arch)] + [RANDOM_INIT]


@dataclass
class LoadedModel:
    model: ResNet
    status: str
    pretrained: bool
    lock: threading.Lock


class ModelCache:
    """Least-recently-used cache of ``(arch, weights) -> LoadedModel``; failures are not cached."""

    def __init__(self, capacity: int | None = None, device: torch.device | str | None = None) -> None:
        self.capacity = max(1, capacity or int(os.environ.get(ENV_CACHE_SIZE, "3")))
        self.device = torch.device(device) if device is not None else default_device()
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._guard = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def keys(self) -> list[tuple[str, str]]:
        with self._guard:
            return list(self._models)

    def get(self, arch: str, weights: str) -> LoadedModel:
        """The model for ``arch`` with ``weights`` (an entry name, ``DEFAULT`` or ``RANDOM_INIT``)."""
        key = (arch, weights)
        with self._guard:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # two sessions asking for the same new model build it once
            with self._guard:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
            try:
                loaded = self._load(arch, weights)
            finally:
                with self._guard:
                    self._loading.pop(key, None)
            if loaded.pretrained or weights == RANDOM_INIT:
                with self._guard:
                    self._models[key] = loaded
                    while len(self._models) > self.capacity:
                        self._models.popitem(last=False)
            return loaded

    def _load(self, arch: str, weights: str) -> LoadedModel:
        if arch in lab.reference_models():
            path = lab.reference_models()[arch]
            model = lab.load_lab_model(path)[1].requires_grad_(False).to(self.device)
            status = f"**{arch}** trained in the degradation lab on the 5,000 MNIST digits, loaded from {path.name}."
            return LoadedModel(model, status, True, threading.Lock())
        if weights == RANDOM_INIT:
            model = create_model(arch, weights=None, device=self.device)
            status = f"**{arch}, random init** (kaiming). Untrained: predictions are meaningless."
            return LoadedModel(model, status, False, threading.Lock())
        try:
            model = create_model(arch, weights=weights, device=self.device)
        except WeightsUnavailableError as error:
            model = create_model(arch, weights=None, device=self.device)
            tried = "\n".join(f"- {source}: {reason}" for source, reason in error.attempts)
            status = (
                f"**Pretrained weights {error.weight} could not be loaded**, so this is **{arch} with random "
                f"weights: untrained, predictions are meaningless.**\n\nSources tried:\n{tried}\n\n{error.hint}"
            )
            return LoadedModel(model, status, False, threading.Lock())
        card = model.card
        status = f"**{card.label}** loaded from {card.source}. Preprocessing: {card.preprocess.describe()}."
        return LoadedModel(model, status, True, threading.Lock())
