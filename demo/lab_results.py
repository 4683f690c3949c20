"""Results of the test-set studies that several views read: the CIFAR-10 test images, the last lesion study per
network, and the paper's Fig. 7 curves. The CIFAR-10 tab computes them; the Network map colours blocks by them,
so they live here, in the app's kernel, not in either tab."""

from __future__ import annotations

import threading
from functools import cache

import numpy as np

from resnet_core import WeightsUnavailableError, create_model
from resnet_core.data import cifar10
from resnet_core.degradation.data import load_mnist_5k
from resnet_core.measure.layer_responses import ResponseStd, response_std
from resnet_core.measure.lesion import LesionStudy

__all__ = [
    "FIG7_CIFAR",
    "FIG7_DIGITS",
    "FIG7_DIGIT_STEP",
    "computed_fig7",
    "fig7_curves",
    "recent_lesion",
    "record_lesion",
    "test_images",
]


@cache
def test_images() -> tuple[np.ndarray, np.ndarray, str]:
    """Images, labels and a description: the full test set where one is configured, else the shipped subset."""
    return cifar10.available_test_images()


_lesions: dict[tuple[str, str], LesionStudy] = {}  # the last lesion studies, by (arch, weights), oldest first
_lesions_guard = threading.Lock()


def record_lesion(arch: str, weights: str, study: LesionStudy) -> None:
    """Keep ``study`` as the network's latest (the last 16 networks' are kept)."""
    with _lesions_guard:
        _lesions[(arch, weights)] = study
        while len(_lesions) > 16:
            _lesions.pop(next(iter(_lesions)))


def recent_lesion(arch: str, weights: str) -> LesionStudy | None:
    """The lesion study last run for the network in this process, if any."""
    with _lesions_guard:
        return _lesions.get((arch, weights))


FIG7_CIFAR = ("cifar10_resnet20", "cifar10_resnet32", "cifar10_resnet44", "cifar10_resnet56")
FIG7_DIGITS = ("digits_plain20", "digits_resnet20", "digits_plain56", "digits_resnet56")
FIG7_DIGIT_STEP = 5  # every 5th of the 5,000 shipped digits (the file is not shuffled: a prefix is a few classes)


@cache
def fig7_curves() -> tuple[dict[str, ResponseStd], list[str]]:
    """Fig. 7's curves of every trained network this machine has (computed once per process), and the ones
    missing with why. Private models: eight small nets must not push visitors' networks out of the model cache."""
    images, _, _ = test_images()
    digits, _ = load_mnist_5k()
    curves, missing = {}, []
    for name in (*FIG7_CIFAR, *FIG7_DIGITS):
        try:
            model = create_model(name, weights="DEFAULT", progress=False)
        except WeightsUnavailableError as error:
            missing.append(f"{name} ({error.summary})")
            continue
        if name in FIG7_CIFAR:
            mean, std = model.card.preprocess.mean, model.card.preprocess.std
            batches = cifar10.to_batches(images, mean, std, 250)
        else:
            batches = digits[::FIG7_DIGIT_STEP].split(250)
        curves[name] = response_std(model, batches, network=name)
    return curves, missing


def computed_fig7() -> dict[str, ResponseStd]:
    """Fig. 7's curves where the CIFAR-10 tab has computed them already (empty before): other views only read them."""
    return fig7_curves()[0] if fig7_curves.cache_info().currsize else {}
