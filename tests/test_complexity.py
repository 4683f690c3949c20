"""Parameters and FLOPs against torchvision's published metadata and the paper's Table 1."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm

from resnet_core import ARCHITECTURES, cost_table
from resnet_core.measure.complexity import count_costs
from resnet_core.zoo.architectures import build

from .conftest import one_of_each_kind

TORCHVISION_ENTRIES = [
    (arch, member) for arch, spec in ARCHITECTURES.items() if spec.reference == "torchvision"
    for member in tvm.get_model_weights(arch)
]  # fmt: skip


@pytest.mark.parametrize(
    ("arch", "member"),
    one_of_each_kind(TORCHVISION_ENTRIES),
    ids=lambda v: getattr(v, "name", v),
)
def test_params_and_macs_equal_torchvision_metadata(arch, member):
    table = cost_table(arch)
    assert table.total_params == member.meta["num_params"]
    assert sum(p.numel() for p in build(arch).parameters()) == member.meta["num_params"]
    # torchvision publishes GMACs (multiply-adds) to three decimals; FlopCounterMode counts 2 FLOPs per MAC.
    assert round(table.total_flops / 2 / 1e9, 3) == member.meta["_ops"]


@pytest.mark.parametrize(
    ("arch", "paper_gmacs"),
    [("resnet18", 1.8), ("resnet34", 3.6), ("resnet50a", 3.8), ("resnet101a", 7.6), ("resnet152a", 11.3)],
)
def test_original_architectures_reproduce_table_1(arch, paper_gmacs):
    assert abs(cost_table(arch).gmacs / paper_gmacs - 1) <= 0.02


def test_rows_cover_stem_every_block_and_head_and_add_up():
    table = cost_table("resnet50")
    names = [row.name for row in table.rows]
    assert names[0] == "stem" and names[-1] == "head"
    assert names[1:-1] == [f"layer{s}.{i}" for s, n in zip(range(1, 5), (3, 4, 6, 3), strict=True) for i in range(n)]
    assert table.total_params == sum(p.numel() for p in build("resnet50").parameters())
    assert sum(row.flops_share for row in table.rows) == pytest.approx(1.0)
    stages = table.stages()
    assert list(stages) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert sum(s["macs"] for s in stages.values()) == table.total_macs
    # The bottleneck's arithmetic: layer1.1 is 1x1 (256->64), 3x3 (64->64), 1x1 (64->256) plus three BNs.
    assert table.rows[2].params == 256 * 64 + 64 * 64 * 9 + 64 * 256 + 2 * (64 + 64 + 256)


def test_meta_device_counts_equal_a_real_forward_and_shapes_are_real():
    model = build("resnet18").eval()
    real = count_costs(model, 160)
    meta = cost_table("resnet18", 160)
    assert [(r.name, r.flops, r.params, r.output_shape) for r in real.rows] == [
        (r.name, r.flops, r.params, r.output_shape) for r in meta.rows
    ]
    with torch.no_grad():
        assert (
            tuple(model.layer3(model.layer2(model.layer1(model.stem(torch.zeros(1, 3, 160, 160))))).shape[1:])
            == (dict((r.name, r.output_shape) for r in real.rows)["layer3.1"])
        )
    assert cost_table("resnet18", 160) is meta  # cached


def test_costs_are_counted_at_the_weights_evaluation_size():
    assert cost_table("resnet50d").input_size == 288 and cost_table("resnet101d").input_size == 320
    assert cost_table("resnet50").input_size == 224 and cost_table("cifar10_resnet20").input_size == 32
    # FLOPs of a convnet grow with the pixel count: (288/224)^2 = 1.65x, minus the fixed-size head.
    ratio = cost_table("resnet50d").total_macs / cost_table("resnet50d", 224).total_macs
    assert 1.6 < ratio < 1.66
    # The paper's Table 6 network: about 41 M multiply-adds for ResNet-20 on a 32x32 image.
    assert cost_table("cifar10_resnet20").total_macs == pytest.approx(40.8e6, rel=0.01)


@pytest.mark.slow
def test_counting_beside_a_running_analysis_attributes_flops_to_the_right_blocks():
    """FlopCounterMode's module tracking uses process-global hooks; another thread's forward must not leak in."""
    import threading

    alone = count_costs(build("resnet18").eval(), 64)
    busy = build("resnet34").eval()
    stop = threading.Event()

    def forwards() -> None:
        with torch.no_grad():
            while not stop.is_set():
                busy(torch.zeros(1, 3, 64, 64))

    worker = threading.Thread(target=forwards)
    worker.start()
    try:
        counted = [count_costs(build("resnet18").eval(), 64) for _ in range(5)]
    finally:
        stop.set()
        worker.join()
    for table in counted:
        assert [(r.name, r.flops) for r in table.rows] == [(r.name, r.flops) for r in alone.rows]
