"""Fig. 7's measurement: which layers it reads, and the pooled deviation against a direct computation."""

from __future__ import annotations

import pytest
import torch

from resnet_core import create_model
from resnet_core.data import cifar10
from resnet_core.measure.layer_responses import response_layers, response_std
from resnet_core.zoo.architectures import build

from .conftest import hooks_left


def test_every_3x3_layer_and_nothing_else():
    layers = response_layers(build("cifar10_resnet20"))
    assert len(layers) == 19 and layers[:3] == ["bn1", "layer1.0.bn1", "layer1.0.bn2"]  # 19 3x3 layers + the fc
    assert len(response_layers(build("cifar10_resnet56"))) == 55
    bottleneck = response_layers(build("resnet50"))  # one 3x3 per bottleneck; the 7x7 stem is not 3x3
    assert bottleneck == [f"layer{s}.{i}.bn2" for s, n in zip(range(1, 5), (3, 4, 6, 3), strict=True) for i in range(n)]
    deep = response_layers(build("resnet50d"))  # the deep stem: three 3x3 convolutions, the last one's norm is bn1
    assert deep[:3] == ["conv1.1", "conv1.4", "bn1"] and deep[3] == "layer1.0.bn2"


def test_streamed_float64_deviation_equals_one_direct_computation():
    model = create_model("cifar10_resnet20", weights="DEFAULT")
    images, _, _ = cifar10.load_subset()
    inputs = cifar10.to_batch(images[:40], model.card.preprocess.mean, model.card.preprocess.std)
    streamed = response_std(model, inputs.split(16))  # batches of 16, 16 and 8
    outputs = {}
    handles = [
        model.get_submodule(layer).register_forward_hook(
            lambda m, a, out, layer=layer: outputs.__setitem__(layer, out.clone())
        )
        for layer in streamed.layers
    ]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    direct = [float(outputs[layer].double().std(correction=0)) for layer in streamed.layers]
    assert streamed.std == pytest.approx(direct, rel=1e-9) and streamed.images == 40
    assert streamed.descending() == sorted(streamed.std, reverse=True) and hooks_left(model) == 0
