"""Every architecture as one line of data: the ResNet family is a table, not a class hierarchy."""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, fields, replace
from typing import Literal, TypedDict

from ..registry import registry
from .label_spaces import LabelSpace, label_space
from .models import (
    BasicBlock,
    Bottleneck,
    DownsampleType,
    PadPosition,
    PreActBasicBlock,
    PreActBottleneck,
    ResNestBottleneck,
    ResNet,
    StemType,
)

__all__ = [
    "ARCHITECTURES",
    "LAB_FAMILY",
    "ArchSpec",
    "build",
    "cifar_spec",
    "cifar_variant",
    "get_arch",
    "list_models",
    "preact_cifar_spec",
    "reading_input",
    "twin_of",
    "wide_resnet_spec",
]

BlockName = Literal["basic", "bottleneck", "resnest", "preact_basic", "preact_bottleneck"]
_BLOCKS = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "resnest": ResNestBottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
}


@dataclass(frozen=True)
class ArchSpec:
    """What distinguishes one member of the family from another.

    ``reference`` names the library whose module of the same name must match ours exactly (tested);
    ``labels`` the label space (``"imagenet"``, ``"cifar10"``, ``"digits"``, or a user checkpoint's own
    :class:`LabelSpace`): classes and input size.
    """

    name: str
    family: str
    block: BlockName
    layers: tuple[int, ...]
    groups: int = 1
    width_per_group: int = 64
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem_type: StemType = ""
    stem_width: int | None = None
    stem_bias: bool = False
    downsample: DownsampleType = "conv"
    zero_pad: PadPosition = "both"
    stride_in_1x1: bool = False
    shortcut: bool = True
    final_norm: bool = False
    block_kwargs: tuple[tuple[str, object], ...] = ()  # pairs, so a spec stays hashable (a cache key)
    reference: Literal["torchvision", "timm"] | None = None
    labels: str | LabelSpace = "imagenet"
    in_chans: int = 3

    @property
    def label_space(self) -> LabelSpace:
        return self.labels if isinstance(self.labels, LabelSpace) else label_space(self.labels)

    @property
    def depth(self) -> int:
        """Weighted layers as the paper counts them: stem conv + convs in the blocks + fc."""
        return 2 + _BLOCKS[self.block].convs * sum(self.layers)

    @property
    def num_blocks(self) -> int:
        return sum(self.layers)

    def model_kwargs(self) -> dict:
        """The keyword arguments of :class:`~resnet_core.zoo.models.ResNet`: every field that is a model option, as it
        is, and the few that need a translation (the block's class, the label space's number of classes)."""
        options = {spec.name: getattr(self, spec.name) for spec in fields(self) if spec.name not in _DESCRIPTIONS}
        return {
            **options,
            "block": _BLOCKS[self.block],
            "layers": list(self.layers),
            "block_kwargs": dict(self.block_kwargs),
            "num_classes": self.label_space.num_classes,
        }


# ArchSpec fields that describe the network rather than configure it.
_DESCRIPTIONS = ("name", "family", "reference", "labels")


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
LAB_FAMILY = "Digits (degradation lab)"


class _DeepStem(TypedDict):
    """The :class:`ArchSpec` options of timm's deep-stem variants (ResNet-C, -D, ResNeSt)."""

    stem_type: StemType
    stem_width: int
    reference: Literal["torchvision", "timm"] | None


class _LabNet(TypedDict):
    """The :func:`cifar_spec` options the lab's digit networks share."""

    widths: tuple[int, int, int]
    labels: str
    in_chans: int
    zero_pad: PadPosition
    family: str


_DEEP = _DeepStem(stem_type="deep", stem_width=32, reference="timm")


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
        specs.append(
            ArchSpec(
                f"wide_resnet{depth}_2",
                "Wide ResNet",
                "bottleneck",
                _DEPTHS[depth][1],
                width_per_group=128,
                reference="torchvision",
            )
        )
    for depth in (50, 101, 152):  # the paper's own bottleneck
        specs.append(ArchSpec(f"resnet{depth}a", "ResNet-A", "bottleneck", _DEPTHS[depth][1], stride_in_1x1=True))
    for depth in (50, 101, 152):
        specs.append(ArchSpec(f"resnet{depth}c", "ResNet-C", "bottleneck", _DEPTHS[depth][1], **_DEEP))
    for depth in (18, 26, 34, 50, 101, 152, 200):
        block, layers = _DEPTHS[depth]
        specs.append(ArchSpec(f"resnet{depth}d", "ResNet-D", block, layers, **_DEEP, downsample="avg"))
    specs.append(
        ArchSpec(
            "resnest50d", "ResNeSt", "resnest", _DEPTHS[50][1], **_DEEP, downsample="avg", block_kwargs=(("radix", 2),)
        )
    )
    for depth in _PAPER_DEPTHS:
        block, layers = _DEPTHS[depth]
        specs.append(ArchSpec(f"plain{depth}", "Plain", block, layers, shortcut=False))
    for depth in (18, 34, 50):  # He et al. 2016 on ImageNet, in timm's ResNetV2 layout: no BN in the stem
        block, layers = _DEPTHS[depth]
        specs.append(ArchSpec(f"preact_resnet{depth}", PREACT_FAMILY, _PREACT_BLOCKS[block], layers, final_norm=True))
    for depth in (20, 32, 44, 56, 110, 1202):  # the paper's section 4.2, Table 6
        specs.append(cifar_spec(depth, name=f"cifar10_resnet{depth}", family="CIFAR-10"))
    for depth in (20, 56):  # their plain twins (Fig. 6), trained by resnet_core.degradation.cifar10 where a GPU is
        specs.append(cifar_spec(depth, plain=True, name=f"cifar10_plain{depth}", family="CIFAR-10"))
    for depth in (18, 34, 50):  # the PreActResNets of robustness research: a 3x3 stem of 64, four stages
        block, layers = _DEPTHS[depth]
        specs.append(preact_cifar_spec(_PREACT_BLOCKS[block], layers, (64, 128, 256, 512)))
    for depth in (164, 1001):  # the paper's own CIFAR networks: bottlenecks, 9n + 2 layers
        n = (depth - 2) // 9
        specs.append(preact_cifar_spec("preact_bottleneck", (n, n, n), (16, 32, 64)))
    for depth, factor in ((16, 8), (28, 10), (34, 10), (40, 2)):  # the Wide ResNets RobustBench and papers ship
        specs.append(wide_resnet_spec(depth, factor))
    for plain, depth in itertools.product((True, False), (20, 56)):  # the degradation lab's shipped nets
        kind = "plain" if plain else "resnet"
        specs.append(cifar_spec(depth, plain=plain, name=f"digits_{kind}{depth}", **_DIGITS))
    return specs


# The lab's nets: 1-channel 28x28 digits, widths 8/16/32, option A with its zero channels after the old ones, as
# they were trained (resnet_core.degradation.LabConfig; a test checks these against the shipped files' metadata).
_DIGITS = _LabNet(widths=(8, 16, 32), labels="digits", in_chans=1, zero_pad="after", family=LAB_FAMILY)
# Their names before they were registered; accepted by get_arch, with a warning, for one release.
_RENAMED = {f"{kind}-{depth}": f"digits_{kind}{depth}" for kind in ("plain", "resnet") for depth in (20, 56)}


def cifar_spec(
    depth: int,
    widths: tuple[int, int, int] = (16, 32, 64),
    shortcut: Literal["A", "B"] = "A",
    plain: bool = False,
    labels: str = "cifar10",
    in_chans: int = 3,
    zero_pad: PadPosition = "both",
    name: str | None = None,
    family: str = "CIFAR",
) -> ArchSpec:
    """The paper's CIFAR-10 networks (section 4.2): depth ``6n + 2``, three stages of ``n`` basic blocks.

    ``shortcut`` chooses option A (zero-padding, no parameters) or B (projections) where the shape changes;
    ``plain=True`` removes every shortcut.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
    n = (depth - 2) // 6
    return ArchSpec(
        name or f"{'plain' if plain else 'resnet'}-{depth}",
        family,
        "basic",
        (n, n, n),
        widths=widths,
        stem_type="cifar",
        downsample="zeropad" if shortcut == "A" else "conv",
        zero_pad=zero_pad,
        shortcut=not plain,
        labels=labels,
        in_chans=in_chans,
    )


PREACT_FAMILY = "Pre-activation ResNet"
PREACT_CIFAR_FAMILY = "Pre-activation ResNet (CIFAR)"
WRN_FAMILY = "Wide ResNet (CIFAR)"
_PREACT_BLOCKS: dict[BlockName, BlockName] = {"basic": "preact_basic", "bottleneck": "preact_bottleneck"}


def preact_cifar_spec(
    block: BlockName,
    layers: tuple[int, ...],
    widths: tuple[int, ...],
    stem_width: int | None = None,
    final_norm: bool = True,
    shortcut_from: str = "preact",
    variant: bool = False,
) -> ArchSpec:
    """A pre-activation network of the CIFAR layout (He et al. 2016): a 3x3 stem conv without BN, blocks that
    normalise before each convolution, projection shortcuts, and (``final_norm``) BN-ReLU before the pooling.

    Named as papers name them: ``cifar10_wrn28_10`` where it is a Wide ResNet (a 16-wide stem, stages 16k, 32k,
    64k), else ``cifar10_preact_resnet18``; ``_inputproj`` where projections read the raw input, ``_nofinal``
    without the closing BN-ReLU (both as RobustBench's ``PreActBlock`` and ``PreActResNet`` define them).
    ``variant``: a layout read off a checkpoint rather than registered, named ``cifar_...`` (as
    :func:`cifar_variant`'s) and with any widths (``_w...``) and stem width (``_stem...``) spelled out."""
    if block not in _PREACT_BLOCKS.values():
        raise ValueError(f"a pre-activation network has blocks {sorted(_PREACT_BLOCKS.values())}, not {block!r}")
    depth = 2 + _BLOCKS[block].convs * sum(layers)
    factor = max(1, widths[0] // 16)
    wrn_widths = tuple(width * factor for width in (16, 32, 64))
    wide = block == "preact_basic" and len(set(layers)) == 1 and stem_width == 16 and widths == wrn_widths
    prefix = "cifar_" if variant else "cifar10_"
    name = f"{prefix}wrn{depth + 2}_{factor}" if wide else f"{prefix}preact_resnet{depth}"
    if not wide and widths != _CIFAR_WIDTHS.get(len(layers)):
        name += "_w" + "-".join(map(str, widths))
    if not wide and stem_width not in (None, widths[0]):
        name += f"_stem{stem_width}"
    name += "" if final_norm else "_nofinal"
    name += INPUT_PROJECTION if shortcut_from == "input" else ""
    family = CIFAR_VARIANTS if variant else WRN_FAMILY if wide else PREACT_CIFAR_FAMILY
    return ArchSpec(
        name,
        family,
        block,
        layers,
        widths=widths,
        stem_type="cifar",
        stem_width=stem_width,
        final_norm=final_norm,
        block_kwargs=(("shortcut_from", shortcut_from),) if shortcut_from != "preact" else (),
        labels="cifar10",
    )


INPUT_PROJECTION = "_inputproj"


def reading_input(spec: ArchSpec) -> ArchSpec:
    """``spec`` with its projections reading the block's raw input rather than its pre-activation (RobustBench's
    ``PreActBlock``): the same keys and shapes, another function, so never chosen from a file's keys alone."""
    options = {**dict(spec.block_kwargs), "shortcut_from": "input"}
    name = spec.name if spec.name.endswith(INPUT_PROJECTION) else spec.name + INPUT_PROJECTION
    return replace(spec, name=name, family=CIFAR_VARIANTS, block_kwargs=tuple(sorted(options.items())))


def wide_resnet_spec(depth: int, factor: int) -> ArchSpec:
    """WRN-``depth``-``factor`` (Zagoruyko and Komodakis 2016): ``(depth - 4) / 6`` pre-activation basic blocks per
    stage, stages 16k, 32k and 64k wide after a 16-wide stem. Their dropout between the convolutions does nothing
    at evaluation and holds no weights, so one spec serves a net trained with or without it."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"a Wide ResNet's depth is 6n+4 (16, 22, 28, 34, 40, ...), got {depth}")
    if factor < 1:
        raise ValueError(f"the widening factor is a positive integer, got {factor}")
    n = (depth - 4) // 6
    return preact_cifar_spec("preact_basic", (n, n, n), (16 * factor, 32 * factor, 64 * factor), stem_width=16)


CIFAR_VARIANTS = "CIFAR (from a checkpoint)"  # the family of the CIFAR layouts read off a file, not registered
_CIFAR_WIDTHS = {3: (16, 32, 64), 4: (64, 128, 256, 512)}  # the paper's three stages; the 4-stage repositories'


def cifar_variant(
    block: BlockName,
    layers: tuple[int, ...],
    widths: tuple[int, ...],
    shortcut: Literal["A", "B"] = "A",
    stem_bias: bool = False,
) -> ArchSpec:
    """A ResNet of the CIFAR layout (one 3x3 stem conv at stride 1, no pool) as training repositories write them
    beyond the paper's six: any blocks per stage, three or four stages, any widths, option A or B shortcuts, a stem
    conv with or without bias. Named from its parameters (``cifar_resnet56_b``, ``cifar_resnet18_w64``), so a
    checkpoint of this layout needs no registered architecture."""
    depth = 2 + _BLOCKS[block].convs * sum(layers)
    suffix = "_b" if shortcut == "B" else ""
    if widths != _CIFAR_WIDTHS.get(len(layers)):
        suffix += "_w" + "-".join(map(str, widths))
    suffix += "_bias" if stem_bias else ""
    return ArchSpec(
        f"cifar_resnet{depth}{suffix}",
        CIFAR_VARIANTS,
        block,
        layers,
        widths=widths,
        stem_type="cifar",
        stem_bias=stem_bias,
        downsample="zeropad" if shortcut == "A" else "conv",
        labels="cifar10",
    )


def describe(spec: ArchSpec) -> str:
    """What a CIFAR variant is, in words: 'a CIFAR ResNet-56 with projection shortcuts'."""
    shortcuts = "projection shortcuts" if spec.downsample == "conv" else "zero-padding shortcuts"
    stages = f"{len(spec.layers)} stages of widths {'/'.join(map(str, spec.widths))}"
    bias = ", a bias on the stem conv" if spec.stem_bias else ""
    if not spec.block.startswith("preact"):
        return f"a CIFAR ResNet-{spec.depth} ({spec.block} blocks, {stages}) with {shortcuts}{bias}"
    reads = "raw input" if dict(spec.block_kwargs).get("shortcut_from") == "input" else "pre-activation"
    closing = "BN-ReLU before the pooling" if spec.final_norm else "no BN-ReLU before the pooling"
    block = spec.block.removeprefix("preact_")
    stem = f", a {spec.stem_width}-wide stem" if spec.stem_width not in (None, spec.widths[0]) else ""
    return (
        f"a pre-activation CIFAR ResNet-{spec.depth} ({block} blocks, {stages}{stem}) with projection shortcuts "
        f"reading the block's {reads} and {closing}"
    )


ARCHITECTURES: dict[str, ArchSpec] = registry(_specs(), lambda spec: spec.name, "architectures")


def list_models(family: str | None = None) -> list[str]:
    """Every architecture name, optionally of one family ("ResNet-B", "ResNeXt", "Plain", ...)."""
    return [name for name, spec in ARCHITECTURES.items() if family is None or spec.family == family]


def get_arch(name: str) -> ArchSpec:
    if name in _RENAMED:
        warnings.warn(
            f"{name!r} is now called {_RENAMED[name]!r}; the old name goes in the next release",
            FutureWarning,
            stacklevel=2,
        )
        name = _RENAMED[name]
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHITECTURES)}") from None


def build(arch: str | ArchSpec) -> ResNet:
    """A randomly initialised network (kaiming init), in train mode like any fresh nn.Module.

    The one way a network is built: :func:`~resnet_core.create_model` adds weights and a card on top.
    """
    spec = get_arch(arch) if isinstance(arch, str) else arch
    return ResNet(**spec.model_kwargs())


def twin_of(name: str) -> str | None:
    """The registered network with the same layers and the shortcuts the other way (resnet18 and plain18,
    digits_resnet56 and digits_plain56), or None where the registry has no such pair."""
    spec = get_arch(name)
    swapped = name.replace("resnet", "plain") if spec.shortcut else name.replace("plain", "resnet")
    twin = ARCHITECTURES.get(swapped)
    if twin is None or twin is spec:
        return None
    same = [getattr(spec, f) == getattr(twin, f) for f in ("block", "layers", "widths", "stem_type", "labels")]
    return swapped if all(same) and twin.shortcut != spec.shortcut else None
