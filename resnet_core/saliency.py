"""Saliency maps of one image by several methods, all through captum, so every method faces the same sanity checks.

Every method answers the same question in the same form: one value in [0, 1] per input pixel for one class.
``gradcam`` is the app's Grad-CAM (:func:`~resnet_core.attribution.grad_cam`, the class logit at a stage);
``guided`` is captum's Guided Grad-CAM (guided backpropagation times the upsampled Grad-CAM); ``occlusion`` is
captum's Occlusion on the class log-odds, a window at a time replaced by a fill (its cost grows with the number
of window positions: see :func:`occlusion_passes`).

Guided backpropagation rewrites the gradient of every ``nn.ReLU`` module with hooks, and our blocks call one ReLU
module twice (three times in a bottleneck). captum copes: its module hooks attach tensor hooks to the input and output
of each call, so every use is rewritten with its own input (no module swap or model copy is needed).
``tests/test_sanity.py`` checks the result, exactly, against a copy of the network whose ReLUs are replaced by an
autograd function that applies the rule directly, so a captum release that changed this would fail there. captum
still warns on every call that it sets hooks; that warning says nothing about our models and is silenced here.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import torch
import torchvision.transforms.functional as TF
from captum.attr import GuidedGradCam, Occlusion
from torch import Tensor

from .attribution import grad_cam, normalize_cam
from .models import ResNet

__all__ = [
    "BLUR_SIGMA",
    "FILLS",
    "METHODS",
    "Fill",
    "Method",
    "filled",
    "log_odds",
    "occlusion_passes",
    "occlusion_window",
    "saliency_map",
]

Method = Literal["gradcam", "guided", "occlusion"]
METHODS: tuple[Method, ...] = ("gradcam", "guided", "occlusion")
Fill = Literal["blur", "zero"]
FILLS: tuple[Fill, ...] = ("blur", "zero")
# A strong blur: sigma 1/8 of the side (4 px on CIFAR-10's 32, 28 px on a 224 crop) removes the object's detail but
# keeps the colours and the layout, so a deleted region does not look like a new object (a black square does).
BLUR_SIGMA = 1 / 8


def filled(inputs: Tensor, fill: Fill) -> Tensor:
    """What replaces removed pixels, in the normalised space the model sees.

    ``"blur"``: a gaussian-blurred copy (blurring commutes with the per-channel normalisation, so this is the blurred
    photo, normalised). ``"zero"``: zeros, that is the dataset's mean colour after normalisation.
    """
    if fill == "zero":
        return torch.zeros_like(inputs)
    if fill == "blur":
        height, width = inputs.shape[-2:]
        sigmas = [width * BLUR_SIGMA, height * BLUR_SIGMA]  # torchvision's order: x, then y
        kernel = [2 * int(2 * sigma) + 1 for sigma in sigmas]  # +-2 sigma; reflect padding stays inside the image
        return TF.gaussian_blur(inputs, kernel, sigmas)
    raise ValueError(f"unknown fill {fill!r}; expected one of {FILLS}")


def log_odds(logits: Tensor, class_index: int) -> Tensor:
    """``log p / (1 - p)`` of one class, from logits: a monotone function of its probability ``p``, so it ranks
    perturbations as the probability drop would, but float32 does not round a confident network's p to 1.0 (which
    makes every occluded window a tie, and the log-probability 0)."""
    others = torch.cat([logits[:, :class_index], logits[:, class_index + 1 :]], dim=1)
    return logits[:, class_index] - torch.logsumexp(others, dim=1)


def occlusion_window(size: tuple[int, int], window: int | None = None, stride: int | None = None) -> tuple[int, int]:
    """Occlusion's window side and stride for an image of ``size`` (height, width): by default 1/8 of the shorter
    side (4 px on CIFAR-10, 28 on a 224 crop) and half of that, so neighbouring windows overlap by half."""
    window = window or max(1, min(size) // 8)
    stride = stride or max(1, window // 2)
    if not 1 <= window <= min(size) or stride < 1:
        raise ValueError(f"occlusion needs 1 <= window <= {min(size)} and stride >= 1, got {window} and {stride}")
    return window, stride


def occlusion_passes(size: tuple[int, int], window: int | None = None, stride: int | None = None) -> int:
    """Images through the model for one occlusion map: one per window position, plus the intact image."""
    window, stride = occlusion_window(size, window, stride)
    return ((size[0] - window) // stride + 1) * ((size[1] - window) // stride + 1) + 1


def saliency_map(
    model: ResNet,
    inputs: Tensor,
    class_index: int,
    method: Method = "gradcam",
    layer: str | None = None,
    window: int | None = None,
    stride: int | None = None,
    fill: Fill = "blur",
    batch_size: int = 64,
) -> np.ndarray:
    """Where ``model`` finds evidence for ``class_index`` in ``inputs`` (one normalised image, ``(1, C, H, W)``).

    Returns ``(H, W)`` float32 in [0, 1], higher = more important. ``layer`` is the stage Grad-CAM and Guided
    Grad-CAM look at (default: the last). Occlusion slides a ``window`` x ``window`` square by ``stride`` (defaults:
    :func:`occlusion_window`) and replaces it by ``fill`` (see :func:`filled`); each pixel gets
    the mean drop in the class log-odds (:func:`log_odds`) of the windows that cover it, min-max scaled (a rise,
    below zero, ranks last).
    Guided Grad-CAM is signed per colour channel; its magnitude summed over channels ranks the pixels.
    Frozen models work: the gradients are taken with respect to the input or the layer, never the weights.
    """
    if inputs.ndim != 4 or inputs.shape[0] != 1:
        raise ValueError(f"expected one image as a (1, C, H, W) tensor, got shape {tuple(inputs.shape)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    stage = model.stage(layer or model.feature_info[-1].name)
    size = tuple(inputs.shape[-2:])
    # A handler or notebook may sit under inference_mode: gradients need a normal tensor and grad mode.
    with torch.inference_mode(False), torch.enable_grad():
        inputs = inputs.detach().clone()
        if method == "gradcam":
            return grad_cam(lambda x: model(x)[:, class_index], model.get_submodule(stage.module), inputs, size)
        if method == "guided":
            explainer = GuidedGradCam(model, model.get_submodule(stage.module))
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
                warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
                attribution = explainer.attribute(inputs, target=class_index, interpolate_mode="bilinear")
            return normalize_cam(attribution[0].detach().abs().sum(0).float().cpu().numpy())
    window, stride = occlusion_window(size, window, stride)
    channels = inputs.shape[1]
    with torch.inference_mode():
        drop = Occlusion(lambda x: log_odds(model(x), class_index)).attribute(
            inputs,
            sliding_window_shapes=(channels, window, window),
            strides=(channels, stride, stride),
            baselines=filled(inputs, fill),
            perturbations_per_eval=batch_size,
        )
    drop = drop[0].mean(0).float().cpu().numpy()
    low, high = float(drop.min()), float(drop.max())
    return (drop - low) / (high - low) if high > low else np.zeros_like(drop)
