"""Every architecture as one line of data: the ResNet family is a table, not a class hierarchy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .models import BasicBlock, Bottleneck, ResNestBottleneck, ResNet

__all__ = ["ARCHITECTURES", "ArchSpec", "build", "get_arch", "list_models"]

BlockName = Literal["basic", "bottleneck", "resnest"]
_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck, "resnest": ResNestBottleneck}


@dataclass(frozen=True)
class ArchSpec:
    """What distinguishes one member of the family from another.

    ``reference`` names the library whose module of the same name must match ours exactly (tested).
    """

    name: str
    family: str
    block: BlockName
    layers: tuple[int, ...]
    groups: int = 1
    width_per_group: int = 64
    stem_type: Literal["", "deep"] = ""
    stem_width: int = 64
    downsample: Literal["conv", "avg"] = "conv"
    stride_in_1x1: bool = False
    shortcut: bool = True
    block_kwargs: dict = field(default_factory=dict)
    reference: Literal["torchvision", "timm"] | None = None

    @property
    def depth(self) -> int:
        """Weighted layers as the paper counts them: stem conv + convs in the blocks + fc."""
        per_block = {"basic": 2, "bottleneck": 3, "resnest": 3}[self.block]
        return 2 + per_block * sum(self.layers)

    @property
    def num_blocks(self) -> int:
        return sum(self.layers)

    def model_kwargs(self) -> dict:
        return dict(
            block=_BLOCKS[self.block],
            layers=list(self.layers),
            groups=self.groups,
            width_per_group=self.width_per_group,
            stem_type=self.stem_type,
            stem_width=self.stem_width,
            downsample=self.downsample,
            stride_in_1x1=self.stride_in_1x1,
            shortcut=self.shortcut,
            block_kwargs=self.block_kwargs,
        )


_DEPTHS: dict[int, tuple[BlockName, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    26: ("bottleneck", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}
_PAPER_DEPTHS = (18, 34, 50, 101, 152)
_DEEP = dict(stem_type="deep", stem_width=32, reference="timm")


def _specs() -> list[ArchSpec]:
    specs: list[ArchSpec] = []
    for depth in _PAPER_DEPTHS:  # ResNet-B: torchvision's "V1.5", stride on the 3x3
        block, layers = _DEPTHS[depth]
        family = "ResNet" if block == "basic" else "ResNet-B"
        specs.append(ArchSpec(f"resnet{depth}", family, block, layers, reference="torchvision"))
    for name, depth, groups, width in (
        ("resnext50_32x4d", 50, 32, 4),
        ("resnext101_32x8d", 101, 32, 8),
        ("resnext101_64x4d", 101, 64, 4),
    ):
        specs.append(ArchSpec(name, "ResNeXt", "bottleneck", _DEPTHS[depth][1], groups, width, reference="torchvision"))
    for depth in (50, 101):
        specs.append(ArchSpec(f"wide_resnet{depth}_2", "Wide ResNet", "bottleneck", _DEPTHS[depth][1],
                              width_per_group=128, reference="torchvision"))  # fmt: skip
    for depth in (50, 101, 152):  # the paper's own bottleneck
        specs.append(ArchSpec(f"resnet{depth}a", "ResNet-A", "bottleneck", _DEPTHS[depth][1], stride_in_1x1=True))
    for depth in (50, 101, 152):
        specs.append(ArchSpec(f"resnet{depth}c", "ResNet-C", "bottleneck", _DEPTHS[depth][1], **_DEEP))
    for depth in (18, 26, 34, 50, 101, 152, 200):
        block, layers = _DEPTHS[depth]
        specs.append(ArchSpec(f"resnet{depth}d", "ResNet-D", block, layers, **_DEEP, downsample="avg"))
    specs.append(ArchSpec("resnest50d", "ResNeSt", "resnest", _DEPTHS[50][1], **_DEEP, downsample="avg",
                          block_kwargs={"radix": 2}))  # fmt: skip
    for depth in _PAPER_DEPTHS:
        block, layers = _DEPTHS[depth]
        specs.append(ArchSpec(f"plain{depth}", "Plain", block, layers, shortcut=False))
    return specs


ARCHITECTURES: dict[str, ArchSpec] = {spec.name: spec for spec in _specs()}


def list_models(family: str | None = None) -> list[str]:
    """Every architecture name, optionally of one family ("ResNet-B", "ResNeXt", "Plain", ...)."""
    return [name for name, spec in ARCHITECTURES.items() if family is None or spec.family == family]


def get_arch(name: str) -> ArchSpec:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHITECTURES)}") from None


def build(name: str, num_classes: int = 1000) -> ResNet:
    """A randomly initialised network (kaiming init), in train mode like any fresh nn.Module."""
    spec = get_arch(name)
    model = ResNet(num_classes=num_classes, **spec.model_kwargs())
    model.arch = spec
    return model
