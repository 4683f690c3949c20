"""Saliency maps of one image by several methods, all through captum, so every method faces the same sanity checks.

Every method answers the same question in the same form: one value in [0, 1] per input pixel for one class.
``gradcam`` is the app's Grad-CAM (:func:`~resnet_core.explain.attribution.grad_cam`, the class logit at a stage);
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

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torchvision.transforms.functional as TF
from captum.attr import GuidedGradCam, Occlusion
from torch import Tensor

from ..zoo.models import ResNet
from .attribution import grad_cams, normalize_cam

__all__ = [
    "BLUR_SIGMA",
    "FILLS",
    "METHODS",
    "Fill",
    "Method",
    "SaliencyMethod",
    "filled",
    "gradcam_maps",
    "log_odds",
    "occlusion_passes",
    "occlusion_window",
    "saliency_map",
]

Method = str  # a key of METHODS
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


def positive_int(text: str | int) -> int:
    """A whole number of at least 1 (a window or a stride), from a command line's text or a number."""
    value = int(text)
    if value < 1:
        raise ValueError(f"must be a whole number of at least 1, got {value}")
    return value


@dataclass(frozen=True)
class Option:
    """An option a saliency method takes: its keyword (and the command line's ``--name``), how a command line's text
    becomes its value, and what it means. Unset, the method's ``defaults`` choose."""

    name: str
    parse: Callable[[str], object]
    help: str


LAYER = Option("layer", str, "the stage the map looks at (default: the last)")
WINDOW = Option("window", positive_int, "occlusion window side (default: 1/8 of the crop)")
STRIDE = Option("stride", positive_int, "occlusion stride (default: half the window)")


@dataclass(frozen=True)
class SaliencyMethod:
    """One way to rank a crop's pixels for a class: its title for people, the options a user may set, and the map.

    ``compute(model, inputs, class_index, **options)`` returns ``(H, W)`` float32 in [0, 1], higher = more
    important; ``defaults(model, size, options)`` gives the options it would use, defaults filled in, so a report
    says which layer or window made the map. Adding a method is one entry in :data:`METHODS`: the command line, the
    app's Explanation checks tab and the sanity checks read it.
    """

    title: str
    options: tuple[Option, ...]
    compute: Callable[..., np.ndarray]
    defaults: Callable[[ResNet, tuple[int, int], dict], dict]

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(option.name for option in self.options)


def _last_stage(model: ResNet, size: tuple[int, int], options: dict) -> dict:
    return {"layer": options.get("layer") or model.feature_info[-1].name}


def _gradcam(model: ResNet, inputs: Tensor, class_index: int, layer: str | None = None) -> np.ndarray:
    classes = torch.tensor([class_index], device=inputs.device)
    return gradcam_maps(model, inputs, classes, layer)[0][0].cpu().numpy()


def gradcam_maps(model: ResNet, inputs: Tensor, classes: Tensor, layer: str | None = None) -> tuple[Tensor, Tensor]:
    """The ``gradcam`` method over a batch: each image's map for its own class, ``(N, H, W)`` in [0, 1], in one
    forward and one backward; and the logits of that forward ``(N, classes)``, which a caller would otherwise
    compute again. ``classes`` is ``(N,)``; ``layer`` a stage, by default the last.

    A batch of one runs as the image twice: the CPU kernels take another path for a single image (convolution and
    matrix product), whose last bits differ from any larger batch's (measured: up to 9e-7 in a map), and a ranking
    by the map (deletion, insertion) must not depend on whether the image came alone or in a batch.
    """
    stage = model.stage(layer or model.feature_info[-1].name)
    count = len(inputs)
    if count == 1:
        inputs, classes = inputs.expand(2, *inputs.shape[1:]), classes.expand(2)
    logits: list[Tensor] = []

    def score(x: Tensor) -> Tensor:
        output = model(x)
        logits.append(output.detach())
        return output.gather(1, classes)[:, 0]

    with torch.inference_mode(False):  # an inference tensor cannot enter a graph; a clone made here can
        inputs, classes = inputs.detach().clone(), classes.clone().view(-1, 1)
    height, width = inputs.shape[-2:]
    maps = grad_cams(score, model.get_submodule(stage.module), inputs, (height, width))
    return maps[:count], logits[0][:count]


def _guided(model: ResNet, inputs: Tensor, class_index: int, layer: str | None = None) -> np.ndarray:
    """captum's Guided Grad-CAM, signed per colour channel: its magnitude summed over channels ranks the pixels."""
    stage = model.stage(layer or model.feature_info[-1].name)
    explainer = GuidedGradCam(model, model.get_submodule(stage.module))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
        attribution = explainer.attribute(inputs, target=class_index, interpolate_mode="bilinear")
    return normalize_cam(attribution[0].detach().abs().sum(0).float().cpu().numpy())


def _window(model: ResNet, size: tuple[int, int], options: dict) -> dict:
    window, stride = occlusion_window(size, options.get("window"), options.get("stride"))
    return {"window": window, "stride": stride}


def _occlusion(
    model: ResNet,
    inputs: Tensor,
    class_index: int,
    window: int | None = None,
    stride: int | None = None,
    fill: Fill = "blur",
    batch_size: int = 64,
) -> np.ndarray:
    """captum's Occlusion: each pixel gets the mean drop in the class log-odds of the windows that cover it,
    min-max scaled (a rise, below zero, ranks last)."""
    height, width = inputs.shape[-2:]
    window, stride = occlusion_window((height, width), window, stride)
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


METHODS: dict[str, SaliencyMethod] = {
    "gradcam": SaliencyMethod("Grad-CAM", (LAYER,), _gradcam, _last_stage),
    "guided": SaliencyMethod("Guided Grad-CAM", (LAYER,), _guided, _last_stage),
    "occlusion": SaliencyMethod("Occlusion", (WINDOW, STRIDE), _occlusion, _window),
}


def saliency_map(model: ResNet, inputs: Tensor, class_index: int, method: Method = "gradcam", **options) -> np.ndarray:
    """Where ``model`` finds evidence for ``class_index`` in ``inputs`` (one normalised image, ``(1, C, H, W)``).

    Returns ``(H, W)`` float32 in [0, 1], higher = more important, by ``method`` (a key of :data:`METHODS`).
    ``options`` set that method's own knobs: ``layer`` (the stage Grad-CAM and Guided Grad-CAM look at, default the
    last); ``window``, ``stride`` (defaults: :func:`occlusion_window`), ``fill`` (see :func:`filled`) and
    ``batch_size`` for occlusion. An option left ``None`` means its default; one the method does not take is an
    error. Frozen models work: the gradients are taken with respect to the input or the layer, never the weights.
    """
    if inputs.ndim != 4 or inputs.shape[0] != 1:
        raise ValueError(f"expected one image as a (1, C, H, W) tensor, got shape {tuple(inputs.shape)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {tuple(METHODS)}")
    compute = METHODS[method].compute
    options = {name: value for name, value in options.items() if value is not None}
    taken = set(inspect.signature(compute).parameters) - {"model", "inputs", "class_index"}
    if set(options) - taken:
        raise ValueError(f"{method} takes no option {sorted(set(options) - taken)}; it takes {sorted(taken)}")
    # A handler or notebook may sit under inference_mode: gradients need a normal tensor and grad mode.
    with torch.inference_mode(False), torch.enable_grad():
        return compute(model, inputs.detach().clone(), class_index, **options)
