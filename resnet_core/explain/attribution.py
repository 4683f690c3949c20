"""Grad-CAM through captum's ``LayerGradCam`` (with ``relu_attributions=True``, as in the paper).

captum registers its hook inside ``attribute`` and removes it in ``finally``, and takes gradients with
``torch.autograd.grad`` on the captured activation, so frozen parameters stay frozen and no ``.grad`` is left.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import Tensor, nn

__all__ = ["grad_cam", "normalize_cam"]


def grad_cam(
    forward_func: Callable[[Tensor], Tensor],
    layer: nn.Module,
    inputs: Tensor,
    size: tuple[int, int],
) -> np.ndarray:
    """Grad-CAM of ``forward_func``'s scalar output (one per sample) at ``layer``, upsampled to ``size``.

    ``forward_func`` returns the score to explain, already selected, which lets the caller pick the class
    during the same forward pass that computes the logits (the default "top-1" is unknown before it).
    """
    # Callers may sit under no_grad or inference_mode (a web handler, a notebook); the gradient is needed here.
    with torch.inference_mode(False), torch.enable_grad():
        attribution = LayerGradCam(forward_func, layer).attribute(inputs, relu_attributions=True)
    upsampled = LayerAttribution.interpolate(attribution.detach(), size, interpolate_mode="bilinear")
    return normalize_cam(upsampled[0, 0].float().cpu().numpy())


def normalize_cam(cam: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the maximum; an all-zero map (no positive evidence anywhere) stays zero."""
    cam = np.clip(cam, 0.0, None)
    top = float(cam.max())
    return cam / top if top > 0 else np.zeros_like(cam)
