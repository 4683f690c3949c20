"""The paper's CIFAR networks (section 4.2) as built from ``cifar_spec``: Table 6's sizes and the layer layout."""

import pytest
import torch
from torch import nn

from resnet_core import ResNet, cifar_spec, create_model
from resnet_core.zoo.architectures import build
from resnet_core.zoo.models import ZeroPadShortcut

# He et al. (2015), Table 6: parameters of the option-A ResNets with widths 16/32/64, as printed.
TABLE6_PARAMS = {20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M"}


def cifar_resnet(depth: int, **options) -> ResNet:
    return build(cifar_spec(depth, **options))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("depth", "printed"), TABLE6_PARAMS.items())
def test_parameter_counts_match_table6(depth: int, printed: str) -> None:
    # Two significant digits is exactly the rounding the table shows.
    assert f"{count_params(cifar_resnet(depth)) / 1e6:.2g}M" == printed


@pytest.mark.parametrize("depth", [20, 56])
def test_depth_counts_the_weighted_layers_of_the_main_path(depth: int) -> None:
    model = cifar_resnet(depth, shortcut="A")
    weighted = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert len(weighted) == depth


def test_stages_produce_the_papers_feature_map_sizes() -> None:
    model = cifar_resnet(20)
    x = model.stem(torch.zeros(2, 3, 32, 32))
    for stage, shape in zip(model.stage_names, [(16, 32, 32), (32, 16, 16), (64, 8, 8)], strict=True):
        x = model.get_submodule(stage)(x)
        assert tuple(x.shape[1:]) == shape


def test_plain_twin_has_the_same_weights_but_no_shortcuts() -> None:
    residual, plain = cifar_resnet(20), cifar_resnet(20, plain=True)
    assert count_params(plain) == count_params(residual)
    plain.load_state_dict(residual.state_dict())
    x = torch.randn(2, 3, 32, 32)
    residual.eval(), plain.eval()
    assert not torch.allclose(plain(x), residual(x))


def test_option_b_adds_projections_only_where_the_shape_changes() -> None:
    option_a, option_b = cifar_resnet(20, shortcut="A"), cifar_resnet(20, shortcut="B")
    # Two projections (16->32, 32->64), each a 1x1 conv and a BN (weight and bias).
    assert count_params(option_b) - count_params(option_a) == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


@pytest.mark.parametrize("depth", [18, 21, 2])
def test_depth_must_be_6n_plus_2(depth: int) -> None:
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_resnet(depth)


@pytest.mark.parametrize(("depth", "printed"), list(TABLE6_PARAMS.items())[:4])
def test_registered_cifar10_nets_are_table6s(depth: int, printed: str) -> None:
    model = create_model(f"cifar10_resnet{depth}")
    assert f"{count_params(model) / 1e6:.2g}M" == printed
    assert model.card.categories[3] == "cat" and model.card.preprocess.crop_size == 32


def test_option_a_pads_new_channels_on_both_sides_or_after() -> None:
    x = torch.arange(1.0, 1 + 2 * 16 * 4 * 4).view(2, 16, 4, 4)
    both = ZeroPadShortcut(16, 32, 2, pad="both")(x)
    after = ZeroPadShortcut(16, 32, 2, pad="after")(x)
    subsampled = x[:, :, ::2, ::2]
    assert torch.equal(both[:, 8:24], subsampled) and not both[:, :8].any() and not both[:, 24:].any()
    assert torch.equal(after[:, :16], subsampled) and not after[:, 16:].any()
    with pytest.raises(ValueError, match="pad"):
        ZeroPadShortcut(16, 32, 2, pad="before")
