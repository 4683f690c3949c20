"""Parameters, MACs and FLOPs per block, counted by ``torch.utils.flop_counter`` (never by formula).

``FlopCounterMode`` counts FLOPs = 2 x multiply-adds for convolutions and matrix products. torchvision's
``_ops`` and the paper's "FLOPs" are multiply-adds (MACs); both are reported, labelled. Counting runs on the
meta device: shapes only, no memory, no arithmetic, so even ResNet-200 costs milliseconds.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict, dataclass
from functools import cache
from typing import TypedDict

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..zoo.architectures import ArchSpec, build, get_arch
from ..zoo.models import BasicBlock, Bottleneck, ResNet
from ..zoo.weights import eval_size
from .receptive_field import receptive_fields

__all__ = ["CostRow", "CostTable", "StageCosts", "bottleneck_arithmetic", "cost_table", "count_costs"]


@dataclass(frozen=True)
class CostRow:
    name: str
    stage: str
    params: int
    flops: int
    output_shape: tuple[int, ...]
    params_share: float
    flops_share: float
    receptive_field: int | None = None  # input pixels one output unit sees, per side; None for the head

    @property
    def macs(self) -> int:
        return self.flops // 2

    def as_dict(self) -> dict:
        return {**asdict(self), "macs": self.macs}


class StageCosts(TypedDict, total=False):
    """One stage's subtotals in :meth:`CostTable.stages` (every key is set by the time it is returned)."""

    params: int
    macs: int
    flops: int
    blocks: int
    receptive_field: int | None  # of the stage's output; None for the head
    params_share: float
    flops_share: float


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

    def stages(self) -> dict[str, StageCosts]:
        """Per-stage subtotals (stem, layer1..., head), and the receptive field of the stage's output."""
        totals: dict[str, StageCosts] = {}
        for row in self.rows:
            entry = totals.setdefault(row.stage, {"params": 0, "macs": 0, "flops": 0, "blocks": 0})
            entry["params"] += row.params
            entry["macs"] += row.macs
            entry["flops"] += row.flops
            entry["blocks"] += 1
            entry["receptive_field"] = row.receptive_field  # rows run in forward order: the last one's
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
    """Count one forward of ``model`` on a ``(1, C, input_size, input_size)`` input of its own device.

    Rows are the stem, every block and the head, as the model describes itself (``feature_info``). Each row's
    FLOPs are the counter's running total after the row minus before it, read by hooks on this model alone:
    ``FlopCounterMode``'s own per-module breakdown comes from process-global module hooks, which another thread's
    forward pass (an analysis running beside a cost count) would corrupt, while its totals are per thread.
    """
    param = next(model.parameters())
    x = torch.zeros(1, model.in_chans, input_size, input_size, device=param.device, dtype=param.dtype)
    stem = model.feature_info[0]
    groups: dict[str, tuple[str, ...]] = {"stem": stem.parts}
    groups.update({block: (block,) for block in model.block_names()})
    groups["head"] = model.head_parts
    stage_of = {"stem": "stem", "head": "head", **model.block_stages}
    counter = FlopCounterMode(display=False)
    entered: dict[str, int] = {}
    flops: dict[str, int] = {}
    shapes: dict[str, tuple[int, ...]] = {}

    def first_part_entered(row: str):
        def hook(module, args) -> None:
            entered.setdefault(row, counter.get_total_flops())

        return hook

    def last_part_left(row: str):
        def hook(module, args, output) -> None:
            flops[row] = counter.get_total_flops() - entered[row]
            shapes[row] = tuple(output.shape[1:])

        return hook

    with ExitStack() as stack:
        for row, parts in groups.items():
            first, last = model.get_submodule(parts[0]), model.get_submodule(parts[-1])
            stack.enter_context(first.register_forward_pre_hook(first_part_entered(row)))
            stack.enter_context(last.register_forward_hook(last_part_left(row)))
        with torch.no_grad(), counter:
            model(x)

    def params_of(parts: tuple[str, ...]) -> int:
        return sum(p.numel() for part in parts for p in model.get_submodule(part).parameters())

    raw = [(row, int(flops[row]), params_of(parts)) for row, parts in groups.items()]
    total_flops = sum(f for _, f, _ in raw) or 1
    total_params = sum(p for _, _, p in raw) or 1
    fields = {row: field.size for row, field in receptive_fields(model).items()}
    rows = tuple(
        CostRow(
            row,
            stage_of[row],
            params,
            row_flops,
            shapes[row],
            params / total_params,
            row_flops / total_flops,
            fields.get(row),
        )
        for row, row_flops, params in raw
    )
    return CostTable(name or (model.card.arch.name if model.card else type(model).__name__), input_size, rows)


@cache
def cost_table(arch: str | ArchSpec, input_size: int | None = None) -> CostTable:
    """The cost table of an architecture (a registered name or any spec), computed once per size on the meta device.

    ``input_size`` defaults to the size its default weights are evaluated at (224 for most ImageNet nets, 288 or
    320 for timm's ResNet-D weights, 32 on CIFAR-10), or for a spec without published weights its label space's crop.
    """
    spec = get_arch(arch) if isinstance(arch, str) else arch
    return _cost_table(spec, input_size or eval_size(spec))


@cache
def _cost_table(spec: ArchSpec, input_size: int) -> CostTable:
    with torch.device("meta"):
        model = build(spec).eval()
    return count_costs(model, input_size, spec.name)


def bottleneck_arithmetic(channels: int = 256) -> dict[str, int]:
    """Convolution weights of a bottleneck (1x1 reduce to channels/4, 3x3, 1x1 expand) at ``channels`` wide,
    against two 3x3 convolutions at full width: why the deep ResNets use bottlenecks (paper, Fig. 5)."""

    def conv_weights(block: torch.nn.Module) -> int:
        return sum(m.weight.numel() for m in block.modules() if isinstance(m, torch.nn.Conv2d))

    with torch.device("meta"):
        bottleneck = Bottleneck(channels, channels // Bottleneck.expansion)
        basic = BasicBlock(channels, channels)
    return {"channels": channels, "bottleneck": conv_weights(bottleneck), "two_3x3": conv_weights(basic)}
