"""Models for the app: built on first use, kept in a small LRU cache, one lock per model.

Loading never fails the request: when no source delivers the weights, the user gets the random-init model and
a status that says why, in plain words. The lock matters because an analysis puts hooks on the shared module (and
the checks re-initialise it, a lesion swaps its blocks): two requests on one model take turns, requests on
different models run side by side. The lock has one owner: :meth:`ModelCache.using` is the only way to run a
cached network, so no caller can forget it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from . import catalog, settings
from .catalog import LoadedModel
from .sessions import release_memory

__all__ = ["ModelBusy", "ModelCache"]

# A network whose input is this small (CIFAR-10's 32 px, the digits' 28) runs on one CPU thread: its layers are too
# small to split, and a second thread costs more than it saves, alone or beside another request (BENCHMARKS.md,
# "Two users at once": a 32 px feature visualisation 2.1x faster on one thread than on two). ImageNet-sized inputs
# keep every thread (--threads): there two threads win, even with two users at once.
SMALL_INPUT = 64


class ModelBusy(RuntimeError):
    """The model is running another request, and the caller asked not to wait (a live camera frame)."""


class ModelCache:
    """Least-recently-used cache of ``(arch, weights) -> LoadedModel``; failures are not cached."""

    def __init__(self, capacity: int | None = None, device: torch.device | str | None = None) -> None:
        self.capacity = max(1, capacity or settings.cache_size())
        self.device = torch.device(device) if device is not None else settings.device()
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        self._guard = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def keys(self) -> list[tuple[str, str]]:
        with self._guard:
            return list(self._models)

    def __contains__(self, key: tuple[str, str]) -> bool:
        """Whether ``(arch, weights)`` is loaded, so a request for it waits for no build."""
        with self._guard:
            return key in self._models

    def _cached(self, key: tuple[str, str]) -> LoadedModel | None:
        with self._guard:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        return None

    def forget(self, weights: str) -> None:
        """Drop every model holding ``weights`` (a visitor's checkpoint whose session ended)."""
        with self._guard:
            for key in [key for key in self._models if key[1] == weights]:
                del self._models[key]
        release_memory()

    @contextmanager
    def using(self, arch: str, weights: str, wait: bool = True) -> Iterator[LoadedModel]:
        """The model for ``arch`` with ``weights``, held under its lock for the ``with`` block.

        With ``wait=False`` a model busy with another request raises :class:`ModelBusy` instead of waiting.
        """
        loaded = self.get(arch, weights)
        if not loaded._lock.acquire(blocking=wait):
            raise ModelBusy(f"{arch} is busy with another request")
        threads = torch.get_num_threads()
        small = self.device.type == "cpu" and loaded.model.card.preprocess.crop_size <= SMALL_INPUT
        try:
            if small:
                torch.set_num_threads(1)  # this request's thread only: the others keep theirs
            yield loaded
        finally:
            if small:
                torch.set_num_threads(threads)
            loaded._lock.release()

    def get(self, arch: str, weights: str) -> LoadedModel:
        """The model for ``arch`` with ``weights`` (one of its source's weight choices), to read, not to run:
        running it takes :meth:`using`."""
        key = (arch, weights)
        cached = self._cached(key)
        if cached is not None:
            return cached
        with self._guard:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # two sessions asking for the same new model build it once
            cached = self._cached(key)
            if cached is not None:
                return cached
            evicted = False
            try:
                loaded = self._load(arch, weights)
                if loaded.delivered:
                    with self._guard:  # inserted before the loading lock is dropped: no third build
                        self._models[key] = loaded
                        while len(self._models) > self.capacity:
                            self._models.popitem(last=False)
                            evicted = True
            finally:
                with self._guard:
                    self._loading.pop(key, None)
        if evicted:
            release_memory()
        return loaded

    def _load(self, arch: str, weights: str) -> LoadedModel:
        if not catalog.offers(arch, weights):
            raise ValueError(f"unknown architecture {arch!r}")
        return catalog.load(arch, weights, self.device)
