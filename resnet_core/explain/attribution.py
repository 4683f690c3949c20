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

__all__ = ["grad_cam", "grad_cams", "normalize_cam", "normalize_cams"]


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
    return grad_cams(forward_func, layer, inputs, size)[0].cpu().numpy()


def grad_cams(
    forward_func: Callable[[Tensor], Tensor],
    layer: nn.Module,
    inputs: Tensor,
    size: tuple[int, int],
) -> Tensor:
    """:func:`grad_cam` of every sample of a batch at once, ``(N, *size)`` float32 where the model is.

    One forward and one backward for the batch: in eval mode the samples do not interact, so each map is the one
    its image alone would get.
    """
    # Callers may sit under no_grad or inference_mode (a web handler, a notebook); the gradient is needed here.
    with torch.inference_mode(False), torch.enable_grad():
        attribution = LayerGradCam(forward_func, layer).attribute(inputs, relu_attributions=True)
    upsampled = LayerAttribution.interpolate(attribution.detach(), size, interpolate_mode="bilinear")
    return normalize_cams(upsampled[:, 0].float())


def normalize_cam(cam: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the maximum; an all-zero map (no positive evidence anywhere) stays zero."""
    return normalize_cams(torch.from_numpy(cam)[None])[0].numpy()


def normalize_cams(cams: Tensor) -> Tensor:
    """:func:`normalize_cam` of each map of a batch ``(N, H, W)``, each by its own maximum."""
    cams = cams.clamp(min=0.0)
    top = cams.flatten(1).amax(1)[:, None, None]
    return cams / torch.where(top > 0, top, torch.ones_like(top))  # an all-zero map stays zero
