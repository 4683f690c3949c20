"""Results computed once per set of weights and kept on disk between runs (data-set probes, feature
visualizations): where each kind goes, and the key that changes with any weight."""

from __future__ import annotations

import hashlib
from pathlib import Path

from torch import Tensor, nn

from .settings import cache_root

__all__ = ["cache_dir", "fingerprint", "weights_digest"]


def cache_dir(kind: str) -> Path:
    """``kind``'s own folder (``probes``, ``feature_vis``) under ``$RESNET_EXPLORER_CACHE`` or
    ``~/.cache/resnet-explorer``, read when called so a changed setting takes effect."""
    return cache_root() / kind


def weights_digest(model: nn.Module) -> hashlib._Hash:
    """A sha256 fed with the architecture's name and every state-dict tensor. Callers extend it with what else
    their result depends on, then take ``hexdigest()``."""
    digest = hashlib.sha256()
    model_card = getattr(model, "card", None)
    digest.update((model_card.arch.name if model_card else type(model).__name__).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest


def fingerprint(model: nn.Module, *inputs: Tensor) -> str:
    """A short key (24 hex digits) that changes with any weight of ``model`` or any value of ``inputs``."""
    digest = weights_digest(model)
    for tensor in inputs:
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]
