"""Exactness against the reference implementations: same weights, same outputs, both directions."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from resnet_core import ARCHITECTURES, cifar_spec, list_models
from resnet_core.hooks import forward_hooks
from resnet_core.zoo.architectures import build
from resnet_core.zoo.models import BasicBlock, ResNet

from .conftest import one_of_each_kind, randomize_batchnorm

REFERENCED = [name for name, spec in ARCHITECTURES.items() if spec.reference]


def reference_model(name: str) -> torch.nn.Module:
    if ARCHITECTURES[name].reference == "torchvision":
        return getattr(torchvision.models, name)()
    return timm.create_model(name, pretrained=False)


@pytest.mark.parametrize("name", one_of_each_kind(REFERENCED))
def test_matches_reference_both_ways(name):
    torch.manual_seed(0)
    reference = randomize_batchnorm(reference_model(name)).eval()
    with torch.device("meta"):  # no random init to overwrite: every tensor comes from the strict loads below
        ours, fresh_reference = build(name).eval(), reference_model(name).eval()
    ours.load_state_dict(reference.state_dict(), strict=True, assign=True)
    fresh_reference.load_state_dict(ours.state_dict(), strict=True, assign=True)
    x = torch.randn(2, 3, 96, 112)
    with torch.no_grad():
        expected = reference(x)
        assert (ours(x) - expected).abs().max().item() <= 1e-5
        assert (fresh_reference(x) - expected).abs().max().item() <= 1e-5


def test_every_family_is_listed():
    names = set(list_models())
    for required in ("resnet18", "resnet152", "resnext101_64x4d", "wide_resnet101_2", "resnet50a", "resnet152a",
                     "resnet50c", "resnet18d", "resnet34d", "resnet50d", "resnet101d", "resnest50d",
                     "plain18", "plain34", "plain50", "plain101", "plain152"):  # fmt: skip
        assert required in names
    assert list_models("Plain") == ["plain18", "plain34", "plain50", "plain101", "plain152"]


def test_resnet_a_is_torchvision_with_the_stride_moved_to_the_first_1x1():
    torch.manual_seed(0)
    reference = randomize_batchnorm(torchvision.models.resnet50()).eval()
    for stage in (reference.layer2, reference.layer3, reference.layer4):
        stage[0].conv1.stride, stage[0].conv2.stride = (2, 2), (1, 1)
    ours = build("resnet50a").eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max().item() <= 1e-5
    assert ours.layer2[0].conv1.stride == (2, 2) and ours.layer2[0].conv2.stride == (1, 1)


@pytest.mark.parametrize("depth", [18, 34, 50, *(pytest.param(depth, marks=pytest.mark.slow) for depth in (101, 152))])
def test_plain_twin_is_the_same_network_without_shortcuts(depth):
    plain, residual = build(f"plain{depth}"), build(f"resnet{depth}")
    plain_keys, residual_keys = set(plain.state_dict()), set(residual.state_dict())
    assert plain_keys < residual_keys
    assert all(".downsample." in key for key in residual_keys - plain_keys)
    block = plain.layer2[0]
    assert block.downsample is None and not block.residual_add.enabled
    # The block's output is relu(F(x)) exactly: no shortcut term is added anywhere.
    x = torch.randn(1, block.conv1.in_channels, 16, 16)
    block.eval()
    with torch.no_grad():
        last_bn = getattr(block, "bn3", block.bn2)
        captured = {}
        handle = last_bn.register_forward_hook(lambda m, i, o: captured.setdefault("f", o.clone()))
        try:
            out = block(x)
        finally:
            handle.remove()
    assert torch.equal(out, torch.relu(captured["f"]))


def test_cifar_networks_take_any_channel_count_and_shortcut_option():
    for shortcut in ("A", "B"):
        model = build(cifar_spec(20, widths=(8, 16, 32), shortcut=shortcut, labels="digits", in_chans=1)).eval()
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_spec(21)


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="unknown architecture"):
        build("resnet9")
    with pytest.raises(ValueError, match="stem_type"):
        ResNet(BasicBlock, [1, 1, 1, 1], stem_type="huge")
    with pytest.raises(ValueError, match="groups"):
        BasicBlock(64, 64, groups=32)


@pytest.mark.parametrize("name", ["resnet18", "resnet50d", "resnest50d", "cifar10_resnet20"])
def test_feature_info_matches_real_activation_shapes(name):
    model = build(name).eval()
    size = ARCHITECTURES[name].label_space.preprocess.crop_size
    shapes = {}
    hooks = [(stage.module, lambda m, a, out, stage=stage: shapes.__setitem__(stage.name, out.shape))
             for stage in model.feature_info]  # fmt: skip
    with torch.no_grad(), forward_hooks(model, hooks):
        model(torch.zeros(1, 3, size, size))
    for stage in model.feature_info:
        assert shapes[stage.name][1:] == (stage.channels, size // stage.reduction, size // stage.reduction)
        assert [f"{stage.name}.{i}" for i in range(len(stage.blocks))] == list(stage.blocks)
    assert model.block_names() == [b for s in model.feature_info for b in s.blocks]
    assert len(model.block_names()) == ARCHITECTURES[name].num_blocks
