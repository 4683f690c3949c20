"""What a browser tab keeps, and the analyses behind it.

A tab's ``gr.State`` holds plain data only (which model and weights, which image, which class and layer), a few
hundred bytes whatever the model. The heavy part of an analysis (activations of every block, the model they came
from) lives here, in one store bounded in count and in time: the last analyses stay so that retargeting Grad-CAM
right after an analysis needs no new forward pass, and an expired one is recomputed from the tab's plain state.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import TypedDict

import numpy as np

from resnet_core.explain.analysis import AnalysisResult
from resnet_core.explain.evidence import EvidenceSplit

from . import settings

__all__ = ["AnalysisStore", "Stored", "TabState", "new_token", "release_memory"]


class TabState(TypedDict):
    """The ``gr.State`` of one tab: what to recompute an analysis from."""

    token: str
    arch: str
    weights: str
    image: str
    topk: int
    cam_class: int
    cam_layer: str


def new_token() -> str:
    return uuid.uuid4().hex


@dataclass
class Stored:
    result: AnalysisResult
    cam: np.ndarray  # the Grad-CAM currently shown (class and layer of the tab's state)
    expires: float
    evidence: dict[int, EvidenceSplit] = field(default_factory=dict)  # class -> its split, once asked for


class AnalysisStore:
    """``token -> Stored``: at most ``capacity`` analyses, each for at most ``ttl`` seconds after its last use."""

    def __init__(self, capacity: int | None = None, ttl: float | None = None) -> None:
        self.capacity = max(1, capacity or settings.results())
        self.ttl = ttl if ttl is not None else settings.results_ttl()
        self._items: OrderedDict[str, Stored] = OrderedDict()
        self._guard = threading.Lock()

    def __len__(self) -> int:
        with self._guard:
            return len(self._items)

    def get(self, token: str) -> Stored | None:
        """The stored analysis, its lifetime renewed; None once it expired or was pushed out."""
        with self._guard:
            dropped = self._expire()
            stored = self._items.get(token)
            if stored is not None:
                stored.expires = time.monotonic() + self.ttl
                self._items.move_to_end(token)
        if dropped:
            release_memory()
        return stored

    def put(self, token: str, result: AnalysisResult, cam: np.ndarray) -> Stored:
        """File ``result`` under ``token``, its tensors in host memory: a GPU may be lent only for one request.

        The model is not kept: a stored analysis must not keep an evicted network alive (the model cache alone
        decides which networks stay in memory); re-targeting takes the model from the cache.
        """
        stored = Stored(replace(result.cpu(), _model=None), cam, time.monotonic() + self.ttl)
        with self._guard:
            self._items[token] = stored
            self._items.move_to_end(token)
            dropped = self._expire()
        if dropped:
            release_memory()
        return stored

    def clear(self) -> None:
        with self._guard:
            self._items.clear()
        release_memory()

    def discard(self, source: str) -> None:
        """Drop every analysis of the network whose weights came from ``source`` (a visitor's checkpoint whose
        session ended), and any that expired: nothing waits for the next request to be freed."""
        with self._guard:
            for token in [t for t, stored in self._items.items() if stored.result.card.source == source]:
                del self._items[token]
            self._expire()
        release_memory()

    def _expire(self) -> int:
        now, dropped = time.monotonic(), 0
        for token in [token for token, stored in self._items.items() if stored.expires <= now]:
            del self._items[token]
            dropped += 1
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
            dropped += 1
        return dropped


_libc = ctypes.CDLL(ctypes.util.find_library("c")) if os.name == "posix" and ctypes.util.find_library("c") else None


def release_memory() -> None:
    """Give freed tensors' memory back to the system.

    Dropping the last reference frees a tensor (no ``gc.collect``: it costs a quarter of a second on a loaded
    server, and nothing here is held by a cycle), but glibc keeps freed heap pages for reuse, so the process's RSS
    would not show that an evicted model or analysis is gone; ``malloc_trim`` returns them.
    """
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
