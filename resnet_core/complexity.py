"""Parameters, MACs and FLOPs per block, counted by ``torch.utils.flop_counter`` (never by formula).

``FlopCounterMode`` counts FLOPs = 2 x multiply-adds for convolutions and matrix products. torchvision's
``_ops`` and the paper's "FLOPs" are multiply-adds (MACs); both are reported, labelled. Counting runs on the
meta device: shapes only, no memory, no arithmetic, so even ResNet-200 costs milliseconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache

import torch
from torch.utils.flop_counter import FlopCounterMode

from .architectures import build
from .capture import block_names, forward_hooks
from .models import BasicBlock, Bottleneck, ResNet

__all__ = ["CostRow", "CostTable", "bottleneck_arithmetic", "cost_table", "count_costs"]


@dataclass(frozen=True)
class CostRow:
    name: str
    stage: str
    params: int
    flops: int
    output_shape: tuple[int, ...]
    params_share: float
    flops_share: float

    @property
    def macs(self) -> int:
        return self.flops // 2

    def as_dict(self) -> dict:
        return {**asdict(self), "macs": self.macs}


@dataclass(frozen=True)
class CostTable:
    arch: str
    input_size: int
    rows: tuple[CostRow, ...]

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def total_flops(self) -> int:
        return sum(row.flops for row in self.rows)

    @property
    def total_macs(self) -> int:
        return self.total_flops // 2

    @property
    def gmacs(self) -> float:
        return self.total_macs / 1e9

    def stages(self) -> dict[str, dict[str, float]]:
        """Per-stage subtotals (stem, layer1..., head)."""
        totals: dict[str, dict[str, float]] = {}
        for row in self.rows:
            entry = totals.setdefault(row.stage, {"params": 0, "macs": 0, "flops": 0, "blocks": 0})
            entry["params"] += row.params
            entry["macs"] += row.macs
            entry["flops"] += row.flops
            entry["blocks"] += 1
        for entry in totals.values():
            entry["params_share"] = entry["params"] / self.total_params
            entry["flops_share"] = entry["flops"] / self.total_flops
        return totals

    def as_dict(self) -> dict:
        return {
            "arch": self.arch,
            "input_size": self.input_size,
            "total_params": self.total_params,
            "total_macs": self.total_macs,
            "total_flops": self.total_flops,
            "rows": [row.as_dict() for row in self.rows],
            "stages": self.stages(),
        }


def count_costs(model: ResNet, input_size: int = 224, name: str | None = None) -> CostTable:
    """Count one forward of ``model`` on a ``(1, C, input_size, input_size)`` input of its own device."""
    param = next(model.parameters())
    in_chans = model.conv1[0].in_channels if isinstance(model.conv1, torch.nn.Sequential) else model.conv1.in_channels
    x = torch.zeros(1, in_chans, input_size, input_size, device=param.device, dtype=param.dtype)
    groups = {"stem": ["conv1", "bn1", "relu", "maxpool"]}
    groups.update({block: [block] for block in block_names(model)})
    groups["head"] = ["avgpool", "fc"]
    shapes: dict[str, tuple[int, ...]] = {}
    outputs = {"stem": "maxpool", "head": "fc", **{block: block for block in block_names(model)}}
    hooks = [(module, _shape_recorder(shapes, row)) for row, module in outputs.items()]

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), forward_hooks(model, hooks), counter:
        model(x)
    counts = counter.get_flop_counts()
    root = type(model).__name__

    def flops_of(module: str) -> int:
        return int(sum(counts.get(f"{root}.{module}", {}).values()))

    def params_of(module: str) -> int:
        return sum(p.numel() for p in model.get_submodule(module).parameters())

    raw = [
        (row, sum(flops_of(m) for m in modules), sum(params_of(m) for m in modules)) for row, modules in groups.items()
    ]
    total_flops = sum(f for _, f, _ in raw) or 1
    total_params = sum(p for _, _, p in raw) or 1
    rows = tuple(
        CostRow(row, row.split(".")[0], params, flops, shapes[row], params / total_params, flops / total_flops)
        for row, flops, params in raw
    )
    return CostTable(name or getattr(getattr(model, "arch", None), "name", type(model).__name__), input_size, rows)


def _shape_recorder(shapes: dict[str, tuple[int, ...]], row: str):
    def record(module, inputs, output) -> None:
        shapes[row] = tuple(output.shape[1:])

    return record


@cache
def cost_table(arch: str, input_size: int = 224) -> CostTable:
    """The cost table of an architecture, computed once per (arch, size) on the meta device."""
    with torch.device("meta"):
        model = build(arch).eval()
    return count_costs(model, input_size, arch)


def bottleneck_arithmetic(channels: int = 256) -> dict[str, int]:
    """Convolution weights of a bottleneck (1x1 reduce to channels/4, 3x3, 1x1 expand) at ``channels`` wide,
    against two 3x3 convolutions at full width: why the deep ResNets use bottlenecks (paper, Fig. 5)."""

    def conv_weights(block: torch.nn.Module) -> int:
        return sum(m.weight.numel() for m in block.modules() if isinstance(m, torch.nn.Conv2d))

    with torch.device("meta"):
        bottleneck = Bottleneck(channels, channels // Bottleneck.expansion)
        basic = BasicBlock(channels, channels)
    return {"channels": channels, "bottleneck": conv_weights(bottleneck), "two_3x3": conv_weights(basic)}
