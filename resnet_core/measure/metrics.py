"""How alike two maps are: Pearson and Spearman correlation, and structural similarity (SSIM).

One home for the measures that Compare (Grad-CAMs of several networks) and the sanity checks (a map before and after
randomization) both use, as pytorch-grad-cam keeps its metrics apart from its methods.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pearson", "spearman", "ssim"]


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two maps of one shape; None when either is constant (it has no pattern to share)."""
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 1e-12 else None


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks: tied values share the mean of their positions (Grad-CAM maps have many tied zeros)."""
    _, inverse, counts = np.unique(values.ravel(), return_inverse=True, return_counts=True)
    return (np.cumsum(counts) - (counts - 1) / 2)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two maps; ``None`` where one is constant (no ranking to compare)."""
    return pearson(_ranks(a), _ranks(b))


def ssim(a: np.ndarray, b: np.ndarray, window: int = 11, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al., 2004) of two maps in [0, 1]: a gaussian ``window``, the usual constants.

    Averaged over the positions where the window fits (no padding); the window shrinks to fit a small map.
    """
    x, y = (torch.as_tensor(np.asarray(m, dtype=np.float64))[None, None] for m in (a, b))
    window = min(window, *x.shape[-2:])
    gauss = torch.signal.windows.gaussian(window, std=sigma, dtype=torch.float64)
    kernel = torch.outer(gauss, gauss)[None, None] / gauss.sum() ** 2

    def mean(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel)

    mu_x, mu_y = mean(x), mean(y)
    var_x, var_y, cov = mean(x * x) - mu_x**2, mean(y * y) - mu_y**2, mean(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2  # (K * data range)^2 with K1 = 0.01, K2 = 0.03, range 1
    index = (2 * mu_x * mu_y + c1) * (2 * cov + c2) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(index.mean())
