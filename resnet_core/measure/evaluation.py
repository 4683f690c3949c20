"""Loss and error of a classifier over a labelled tensor set, in eval mode (shared by the lab, lesions, benches)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> tuple[float, float]:
    """Mean cross-entropy and error rate in eval mode (running BN statistics); the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        total_loss, errors = 0.0, 0
        for start in range(0, len(images), batch_size):
            logits = model(images[start : start + batch_size])
            target = labels[start : start + batch_size]
            total_loss += F.cross_entropy(logits, target, reduction="sum").item()
            errors += int((logits.argmax(dim=1) != target).sum())
    finally:
        model.train(was_training)
    return total_loss / len(images), errors / len(images)
