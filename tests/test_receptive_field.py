"""Theoretical receptive fields against the input gradient's support, on networks made linear so no unit hides."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from resnet_core import ARCHITECTURES, get_arch
from resnet_core.measure.complexity import cost_table
from resnet_core.measure.receptive_field import receptive_fields
from resnet_core.zoo.architectures import build
from resnet_core.zoo.models import BasicBlock, Bottleneck, ResNestBottleneck, ResNet

from .conftest import one_of_each_kind

SMALL = {
    "basic, 7x7 stem": dict(block=BasicBlock, layers=[2, 1, 1], widths=(4, 8, 8)),
    "bottleneck, deep stem, average-pool shortcut": dict(
        block=Bottleneck, layers=[1, 2], widths=(2, 4), stem_type="deep", stem_width=4, downsample="avg"
    ),
    "bottleneck, stride on the first 1x1": dict(block=Bottleneck, layers=[1, 1], widths=(2, 4), stride_in_1x1=True),
    "CIFAR stem, option A shortcuts": dict(
        block=BasicBlock, layers=[1, 2, 1], widths=(4, 8, 16), stem_type="cifar", downsample="zeropad"
    ),
    "plain (no shortcuts)": dict(block=BasicBlock, layers=[1, 2], widths=(4, 8), shortcut=False),
    "ResNeSt": dict(block=ResNestBottleneck, layers=[1, 1], widths=(4, 8), stem_type="deep", stem_width=4),
}


def linear_twin(model: ResNet) -> ResNet:
    """The same layers with every ReLU an identity and max-pooling an average: the input gradient of a unit is then
    non-zero wherever the unit can see (a ReLU or a max would zero parts of it)."""
    for name, module in list(model.named_modules()):
        replacement = None
        if isinstance(module, nn.ReLU):
            replacement = nn.Identity()
        elif isinstance(module, nn.MaxPool2d):
            replacement = nn.AvgPool2d(module.kernel_size, module.stride, module.padding)
        if replacement is not None:
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, replacement)
    return model.double().eval()


@pytest.mark.parametrize("variant", list(SMALL))
def test_theoretical_field_is_the_input_gradients_bounding_box(variant):
    torch.manual_seed(0)
    model = linear_twin(ResNet(num_classes=3, **SMALL[variant]))
    fields = receptive_fields(model)
    side = 160 if model.feature_info[0].reduction > 1 else 64
    outputs: dict[str, torch.Tensor] = {}
    modules = {"stem": model.feature_info[0].module, **{block: block for block in model.block_names()}}
    handles = [
        model.get_submodule(module).register_forward_hook(lambda m, a, out, row=row: outputs.__setitem__(row, out))
        for row, module in modules.items()
    ]
    x = torch.randn(1, model.in_chans, side, side, dtype=torch.float64, requires_grad=True)
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    checked = 0
    for row, field in fields.items():
        out = outputs[row]
        i = out.shape[-1] // 2
        first, last = field.region(i, side)
        centre = field.start + i * field.jump
        if centre - (field.size - 1) / 2 < 0 or centre + (field.size - 1) / 2 > side - 1:
            continue  # the field reaches past the input: its support is clipped, nothing to compare
        (grad,) = torch.autograd.grad(out[0, :, i, i].sum(), x, retain_graph=True)
        rows_seen = grad[0].abs().sum(0).sum(1).nonzero()[:, 0]
        cols_seen = grad[0].abs().sum(0).sum(0).nonzero()[:, 0]
        if field.global_context:  # split attention pooled the whole map: every pixel reaches the unit
            assert len(rows_seen) == len(cols_seen) == side, row
            checked += 1
            continue
        for seen in (rows_seen, cols_seen):
            assert (int(seen[0]), int(seen[-1]) + 1) == (first, last), row
            assert int(seen[-1]) + 1 - int(seen[0]) == field.size, row
        checked += 1
    assert checked >= 3  # the stem and at least two blocks were compared


def test_published_sizes_and_the_cost_table():
    # Araujo et al. (2019) list 435 px for ResNet-18 and 427 px for torchvision's ResNet-50 (stride on the 3x3).
    for arch, size in [("resnet18", 435), ("resnet50", 427), ("cifar10_resnet20", 81), ("cifar10_resnet56", 249)]:
        table = cost_table(arch)
        stages = table.stages()
        assert stages[table.rows[-2].stage]["receptive_field"] == size
        assert table.rows[-1].receptive_field is None and stages["head"]["receptive_field"] is None
        assert all(row.receptive_field for row in table.rows[:-1])
        sizes = [row.receptive_field for row in table.rows[:-1]]
        assert sizes == sorted(sizes)  # a field only grows


@pytest.mark.parametrize("arch", one_of_each_kind(list(ARCHITECTURES)))
def test_every_registered_network_has_growing_fields(arch):
    with torch.device("meta"):
        model = build(get_arch(arch))
    fields = receptive_fields(model)
    sizes = [field.size for field in fields.values()]
    assert list(fields) == ["stem", *model.block_names()] and sizes == sorted(sizes) and sizes[0] > 1


def test_the_effective_field_lies_in_the_theoretical_one_and_fills_it_when_linear(photos):
    from resnet_core import create_model
    from resnet_core.explain.effective_field import unit_field

    trained = create_model("cifar10_resnet20", weights="DEFAULT")
    for stage, row, col in [("stem", 5, 9), ("layer1", 16, 16), ("layer2", 3, 12)]:
        field = unit_field(trained, photos / "chelsea.png", stage, row, col)
        left, top, right, bottom = field.box
        outside = field.gradient.copy()
        outside[top:bottom, left:right] = 0
        assert not outside.any() and field.gradient.max() == 1.0, stage  # nothing outside the theoretical square
        assert 1 <= field.half_mass_side() <= field.size
    # Linearised (ReLU an identity), the gradient's bounding box is the theoretical square itself.
    model = linear_twin(create_model("cifar10_resnet20")).float()
    field = unit_field(model, photos / "chelsea.png", "layer1", 16, 16)
    rows, cols = np.nonzero(field.gradient)
    assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == field.box
    assert field.box[2] - field.box[0] == field.size == 15
    with pytest.raises(ValueError, match="outside it"):
        unit_field(trained, photos / "chelsea.png", "layer3", 8, 0)
