"""The explanation metrics of ``evaluate``, checked against TorchCAM's (a test-only reference, like timm) on the same
maps and images, and against the single-image ``sanity`` numbers. The shipped CIFAR-10 resnet20 and its shipped test
images keep every test offline."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from resnet_core import create_model
from resnet_core.data import cifar10
from resnet_core.evaluate.metrics import METRICS, MetricBatch
from resnet_core.explain.saliency import saliency_map

torchcam_metrics = pytest.importorskip("torchcam.metrics", reason="TorchCAM 0.5 (the reference) needs Python 3.11")

ARCH = "cifar10_resnet20"  # trained weights ship in assets/: no download anywhere
COUNT = 16


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return create_model(ARCH, weights="DEFAULT")


@pytest.fixture(scope="module")
def inputs(model) -> Tensor:
    """The first shipped test images, normalised as the network expects."""
    images, _, _ = cifar10.load_subset()
    return cifar10.to_batch(images[:COUNT], model.card.preprocess.mean, model.card.preprocess.std)


def explained(model: nn.Module, inputs: Tensor) -> MetricBatch:
    """What the evaluator gives the metrics: every image with its top-1 class."""
    with torch.inference_mode():
        classes = model(inputs).argmax(1)
    return MetricBatch(model, inputs, classes, seeds=[0] * len(inputs))


def values(batch: MetricBatch, *names: str) -> dict[str, np.ndarray]:
    columns = {}
    for name in names:
        computed = METRICS[name].compute(batch)
        columns.update({column: np.asarray(computed[column], dtype=float) for column in METRICS[name].columns})
    return columns


class GivenMaps:
    """TorchCAM's CAM-extractor interface over maps made here, so its metrics score exactly our Grad-CAM maps."""

    def __init__(self, model: nn.Module, maps: Tensor) -> None:
        self.model, self.maps = model, maps

    def __call__(self, class_idx=None, scores=None, normalized=True, **kwargs) -> list[Tensor]:
        return [self.maps]

    def fuse_cams(self, cams: list[Tensor]) -> Tensor:
        return cams[0]

    @contextmanager
    def _hooks_off(self):
        yield


def test_the_batched_maps_are_the_apps_grad_cam(model, inputs):
    batch = explained(model, inputs)
    maps, probabilities = batch.gradcam
    for index in range(len(inputs)):
        single = saliency_map(model, inputs[index : index + 1], int(batch.classes[index]), "gradcam")
        np.testing.assert_allclose(maps[index].numpy(), single, atol=1e-6)
    with torch.inference_mode():
        expected = model(inputs).softmax(-1).max(1).values
    np.testing.assert_allclose(probabilities.numpy(), expected.numpy(), atol=1e-6)


def test_average_drop_and_increase_in_confidence_equal_torchcams(model, inputs):
    """TorchCAM's ClassificationMetric on our maps: the same batch of 16 (its summary is the mean), and each image
    alone (so every per-image value is checked, not only their sum)."""

    def torchcam(batch: MetricBatch) -> dict[str, float]:
        metric = torchcam_metrics.ClassificationMetric(
            GivenMaps(model, batch.gradcam[0]), lambda logits: logits.softmax(-1)
        )
        metric.update(batch.inputs, class_idx=batch.classes.tolist())
        return metric.summary()

    names = ("average_drop", "increase_in_confidence")
    whole = explained(model, inputs)
    ours = values(whole, *names)
    reference = torchcam(whole)
    assert abs(ours["average_drop"].mean() - reference["avg_drop"]) <= 1e-6
    assert abs(ours["increase_in_confidence"].mean() - reference["conf_increase"]) <= 1e-6
    for index in range(len(inputs)):
        alone = explained(model, inputs[index : index + 1])
        ours_alone, reference = values(alone, *names), torchcam(alone)
        assert abs(ours_alone["average_drop"][0] - reference["avg_drop"]) <= 1e-6
        assert ours_alone["increase_in_confidence"][0] == reference["conf_increase"]
        assert abs(ours_alone["average_drop"][0] - ours["average_drop"][index]) <= 1e-6  # batching changes nothing
    # Not a vacuous equality: the maps keep some images' class and lose others'.
    assert 0 < ours["average_drop"].mean() < 1 and ours["average_drop"].std() > 0.05
