"""From keys and shapes to an architecture: what a checkpoint is, before any of its tensors is read.

Fine-tuned networks keep their architecture's every key and shape except the classifier's class count (and, for
a grayscale or multispectral input, the first convolution's channels). So a checkpoint names its architecture
without being told: the registered architectures' signatures (key -> shape, with those two dimensions left open)
are computed once per process on the meta device and compared with the checkpoint's.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TypedDict

import torch

from .architectures import (
    ARCHITECTURES,
    INPUT_PROJECTION,
    ArchSpec,
    BlockName,
    build,
    cifar_variant,
    describe,
    preact_cifar_spec,
    reading_input,
)

__all__ = [
    "BN_STEPS",
    "HUB_PREFIX",
    "INPUT_NORMALISATION",
    "CheckpointError",
    "Recognition",
    "display_name",
    "key_prefix",
    "normalised",
    "recognise",
]

HUB_PREFIX = "hf-hub:"
# Prefixes that wrappers put before every key: DataParallel, Lightning modules, torch.compile, trainers, detectors.
PREFIXES = ("module.", "model.", "_orig_mod.", "net.", "backbone.")
# Classifiers under other names: a Sequential(Dropout, Linear) head (the common fine-tuning recipe; the dropout does
# nothing in eval mode), a Sequential(Linear) head, and the published CIFAR-10 files' ``linear``. A head of more
# layers keeps its other keys, which then fit nothing: it is refused with the keys that differ.
HEADS = {
    "fc.1.": "Dropout + Linear head (fc.1)",
    "fc.0.": "Linear head in a Sequential (fc.0)",
    "linear.": "classifier named linear",
}
Rewrite = str | Callable[[re.Match[str]], str]
# Another author's module names for the tensors of a pre-activation network, as (pattern, ours) rewrites of the keys:
# the RobustBench / TRADES Wide ResNet (``block1.layer.0.bn1``, ``convShortcut``, ``bn1`` closing the network) and
# the PreActResNets' closing ``bn``. TRADES' ``sub_block1`` is built by its constructor and never run by its forward.
WRN_LAYOUT = "RobustBench's WideResNet layout (blockN.layer.M, convShortcut)"
_WRN_KEYS = (
    (r"^block(\d+)\.layer\.(\d+)\.convShortcut\.", r"layer\1.\2.downsample.0."),
    (r"^block(\d+)\.layer\.(\d+)\.", r"layer\1.\2."),
    (r"^bn1\.", "final_bn."),
)
UNUSED = "sub_block1."
# A network that normalises its own input keeps the mean and std as buffers (RobustBench's wrappers: ``mu``, ``sigma``
# of shape (1, C, 1, 1)): no layer of ours, but the preprocessing its photos must get.
INPUT_NORMALISATION = ("mu", "sigma")
INNER_NORMALISATION = "the network's own input normalisation (mu, sigma) taken as its preprocessing"
NO_BIAS = "a classifier without bias, opened with a zero bias (the same function)"
TIMM_V2_LAYOUT = "timm's ResNetV2 layout (stages.N.blocks.M, norm, a 1x1-conv head)"
_TIMM_V2_KEYS = (  # timm counts stages from 0: its stages.0 is our layer1
    (r"^stem\.conv\.", "conv1."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.downsample\.conv\.", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.downsample.0."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.norm(\d)\.", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.bn{m[3]}."),
    (r"^stages\.(\d+)\.blocks\.(\d+)\.", lambda m: f"layer{int(m[1]) + 1}.{m[2]}."),
    (r"^norm\.", "final_bn."),
    (r"^head\.fc\.", "fc."),
)
OPEN = -1  # a dimension a fine-tuned network may change: the class count, the input channels
BN_STEPS = "num_batches_tracked"  # BN's step counter: some trainers drop it, and no output depends on it


class CheckpointError(ValueError):
    """A checkpoint that cannot be opened as a ResNet, with the one sentence that says why."""


@dataclass(frozen=True)
class Recognition:
    """What a checkpoint was recognised as, and from what; for a checkpoint that fits no architecture, the nearest
    one and how the keys differ from it."""

    source: str
    format: str  # "safetensors", "torch pickle", "hf-hub (timm)"
    arch: str | None  # the registered architecture whose keys and shapes the checkpoint has
    num_classes: int | None
    in_chans: int | None
    prefix: str = ""  # stripped from every key
    head: str = "fc"  # the classifier as found
    ties: tuple[str, ...] = ()  # other architectures with the very same keys and shapes
    renamed: tuple[tuple[str, str], ...] = ()  # (the file's key, ours) where modules were matched by position
    layout: tuple[str, ...] = ()  # what was translated to our names: another author's layout, a missing bias, ...
    unused: int = 0  # keys of modules the file's network builds but never runs (TRADES' sub_block1)
    variant: ArchSpec | None = None  # a CIFAR layout read off the file (arch is its name), not a registered one
    nearest: str | None = None
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    shape_mismatch: tuple[str, ...] = ()

    @property
    def recognised(self) -> bool:
        return self.arch is not None

    @property
    def spec(self) -> ArchSpec:
        """The architecture recognised: a registered one, or the CIFAR variant the file's shapes spell out."""
        if self.arch is None:
            raise CheckpointError(self.sentence())
        return self.variant or ARCHITECTURES[self.arch]

    @property
    def name(self) -> str:
        return display_name(self.source)

    def sentence(self) -> str:
        """One sentence a user reads: what it is and from what, or why it is not a ResNet we know."""
        name = self.name
        if not self.recognised:
            differ = len(self.missing) + len(self.unexpected) + len(self.shape_mismatch)
            return (
                f"{name} is not a ResNet-family checkpoint that ResNet Explorer knows: the nearest architecture, "
                f"{self.nearest}, differs in {differ} keys ({len(self.missing)} missing, {len(self.unexpected)} "
                f"unexpected, {len(self.shape_mismatch)} of another shape)"
            )
        classes = "one output" if self.num_classes == 1 else f"{self.num_classes} classes"
        notes = [classes, f"{self.in_chans} input channel{'s' * (self.in_chans != 1)}"]
        if self.prefix:
            notes.append(f"key prefix {self.prefix!r} stripped")
        if self.head != "fc":
            notes.append(self.head)
        if self.renamed:
            shown = ", ".join(f"{theirs} -> {ours}" for theirs, ours in self.renamed[:2])
            notes.append(f"modules matched by position, every tensor in order: {shown}, ... ({len(self.renamed)} keys)")
        notes.extend(self.layout)
        if self.unused:
            unused = UNUSED.rstrip(".")
            notes.append(f"{self.unused} keys of {unused} left out: its network builds it and never runs it")
        if self.variant is not None and self.variant.downsample == "zeropad":
            notes.append("option A shortcuts hold no weights: a plain network of these layers has the same keys")
        name_of_arch = self.spec.name
        translated = WRN_LAYOUT in self.layout or TIMM_V2_LAYOUT in self.layout  # their code fixes what is read
        if _has_projections(self.spec) and self.spec.block.startswith("preact") and not translated:
            notes.append(
                "opened with projections reading the raw input, as asked"
                if name_of_arch.endswith(INPUT_PROJECTION)
                else "projections reading the raw input instead of the pre-activation (RobustBench's PreActBlock) "
                f"have the same keys: ask for {name_of_arch}{INPUT_PROJECTION} for those"
            )
        if self.ties:
            notes.append(f"{', '.join(self.ties)} {'has' if len(self.ties) == 1 else 'have'} the same keys and shapes")
        what = f"{self.arch}, {describe(self.variant)}," if self.variant else self.arch
        return f"{name} recognised as {what} from its keys and shapes ({self.format}; {'; '.join(notes)})"


class _Origin(TypedDict):
    """The :class:`Recognition` fields every answer has: where the checkpoint came from and how its keys were read."""

    source: str
    format: str
    prefix: str
    head: str
    layout: tuple[str, ...]
    unused: int


class _Differences(TypedDict):
    """The :class:`Recognition` fields of a checkpoint that fits no architecture."""

    nearest: str
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    shape_mismatch: tuple[str, ...]


def recognise(
    shapes: Mapping[str, tuple[int, ...]], source: str, format: str, wanted: str | None = None
) -> Recognition:
    """What a checkpoint of these keys and shapes is: the registered architecture (``wanted`` breaks ties) or,
    where none fits, the CIFAR layout its shapes spell out (:func:`~.architectures.cifar_variant`), else the
    nearest and how the keys differ. Raises :class:`CheckpointError` when ``wanted`` (a registered name, or the
    variant's own) does not fit a checkpoint that another architecture does."""
    if wanted is not None and wanted.endswith(INPUT_PROJECTION):
        return _reading_input(recognise(shapes, source, format, wanted.removesuffix(INPUT_PROJECTION)))
    given = shapes
    shapes, prefix, head, layout = normalised(given)
    unused = sum(key.removeprefix(prefix).startswith(UNUSED) for key in given) if WRN_LAYOUT in layout else 0
    classifier = HEADS.get(head, "fc")
    base = _Origin(source=source, format=format, prefix=prefix, head=classifier, layout=layout, unused=unused)
    if wanted is not None and wanted not in ARCHITECTURES:
        variant = _cifar_variant(shapes)
        if variant is None or variant.name != wanted:
            raise CheckpointError(f"unknown architecture {wanted!r}; choose one of: {', '.join(ARCHITECTURES)}")
        return _as_variant(base, variant, shapes)
    differences = {arch: _differences(_signature(arch), shapes) for arch in _candidates(shapes, wanted)}
    fits = [arch for arch, diff in differences.items() if not any(diff)]
    variant = _cifar_variant(shapes) if not fits else None  # registered names come first
    if variant is not None and wanted is None:
        return _as_variant(base, variant, shapes)
    fits = fits or ([variant.name] if variant is not None else [])  # for the sentence of a wanted that does not fit
    if not fits and format == "torch pickle":  # a pickle keeps its tensors in the order the modules wrote them
        matched = _by_position(shapes, wanted)
        if matched is not None:
            arch, renamed = matched
            in_chans = shapes[_first_conv(shapes)][1]
            ours = dict(zip(renamed.values(), renamed.keys(), strict=True))
            classes = shapes[ours["fc.weight"]][0]
            pairs = tuple(renamed.items())
            return Recognition(**base, arch=arch, num_classes=classes, in_chans=in_chans, renamed=pairs)
    if not fits or (wanted is not None and wanted not in fits):
        nearest = wanted or min(differences, key=lambda arch: sum(map(len, differences[arch])))
        missing, unexpected, mismatch = differences[nearest]
        if wanted is not None and fits:
            raise CheckpointError(
                f"{display_name(source)} does not fit {wanted} (its keys and shapes are those of {', '.join(fits)}): "
                f"{len(missing)} missing, {len(unexpected)} unexpected, {len(mismatch)} of another shape"
            )
        differ = _Differences(nearest=nearest, missing=missing, unexpected=unexpected, shape_mismatch=mismatch)
        return Recognition(**base, arch=None, num_classes=None, in_chans=None, **differ)
    in_chans = shapes[_first_conv(_signature(fits[0]))][1]
    fits.sort(key=lambda arch: _preference(ARCHITECTURES[arch], in_chans))
    chosen = wanted or fits[0]
    ties = tuple(arch for arch in fits if arch != chosen)
    return Recognition(**base, arch=chosen, num_classes=shapes["fc.weight"][0], in_chans=in_chans, ties=ties)


def _by_position(shapes: Mapping[str, tuple[int, ...]], wanted: str | None) -> tuple[str, dict[str, str]] | None:
    """An architecture whose tensors, parameters and buffers alike, have the file's shapes one for one in the file's
    order, where no name fits (a ResNet written with other module names): the architecture and the renaming (the
    file's key -> ours). Only a complete match counts. The candidates are the architectures whose depth is near
    the file's count of convolutions, so few signatures are built."""
    present = [(key, shape) for key, shape in shapes.items() if not key.endswith(BN_STEPS)]
    convolutions = sum(len(shape) == 4 for _, shape in present)
    in_chans = shapes[_first_conv(shapes)][1]
    candidates = [wanted] if wanted else [a for a, spec in ARCHITECTURES.items() if abs(spec.depth - convolutions) <= 8]
    for arch in sorted(candidates, key=lambda name: _preference(ARCHITECTURES[name], in_chans)):
        signature = list(_signature(arch).items())
        if len(signature) == len(present) and all(
            _fits(expected, found) for (_, expected), (_, found) in zip(signature, present, strict=True)
        ):
            return arch, {theirs: ours for (theirs, _), (ours, _) in zip(present, signature, strict=True)}
    return None


def _reading_input(found: Recognition) -> Recognition:
    """``found`` with its projections reading the block's raw input (RobustBench's ``PreActBlock``): the keys cannot
    tell, so only a caller who asks gets it."""
    if not found.recognised or not found.spec.block.startswith("preact") or not _has_projections(found.spec):
        raise CheckpointError(
            f"{found.name} has no projection shortcuts of a pre-activation network: {INPUT_PROJECTION} does not apply"
        )
    variant = reading_input(found.spec)
    return replace(found, arch=variant.name, variant=variant, ties=())


def _has_projections(spec: ArchSpec) -> bool:
    return spec.shortcut and spec.downsample != "zeropad"


def _as_variant(base: _Origin, variant: ArchSpec, shapes: Mapping[str, tuple[int, ...]]) -> Recognition:
    in_chans, classes = shapes[_first_conv(_signature_of(variant))][1], shapes["fc.weight"][0]
    return Recognition(**base, arch=variant.name, num_classes=classes, in_chans=in_chans, variant=variant)


def _cifar_variant(shapes: Mapping[str, tuple[int, ...]]) -> ArchSpec | None:
    """The CIFAR layout a checkpoint spells out (a 3x3 stem conv, three or four stages; the blocks, widths,
    shortcuts and stem bias read off its keys and shapes), where every key and shape is that layout's."""
    stem = shapes.get("conv1.weight")
    layout = _layout(shapes)
    if stem is None or stem[2:] != (3, 3) or len(layout) not in (3, 4) or "fc.weight" not in shapes:
        return None
    block: BlockName = "bottleneck" if "layer1.0.conv3.weight" in shapes else "basic"
    widths = tuple(shapes.get(f"layer{stage}.0.conv1.weight", (0,))[0] for stage in range(1, len(layout) + 1))
    projection = any(".downsample." in key for key in shapes)
    if "bn1.weight" in shapes:  # a post-activation network normalises its stem
        variant = cifar_variant(block, layout, widths, "B" if projection else "A", "conv1.bias" in shapes)
    else:  # a pre-activation one leaves that to its first block, and may close with BN-ReLU
        preact: BlockName = "preact_bottleneck" if block == "bottleneck" else "preact_basic"
        final_norm = "final_bn.weight" in shapes
        variant = preact_cifar_spec(preact, layout, widths, stem[0], final_norm, variant=True)
    return variant if not any(_differences(_signature_of(variant), shapes)) else None


def display_name(source: str) -> str:
    """A file's name without its folders (server paths stay private), or the hub repository as given."""
    return source if source.startswith(HUB_PREFIX) else Path(source).name


def key_prefix(keys: Iterable[str]) -> str:
    """The wrappers' prefixes every key shares (``module.model.``), as :func:`normalised` strips them."""
    keys = list(keys)
    prefix = ""
    while True:
        common = [p for p in PREFIXES if all(key.startswith(prefix + p) for key in keys)]
        if not common:
            return prefix
        prefix += common[0]


def normalised(state: Mapping[str, object]) -> tuple[dict, str, str, tuple[str, ...]]:
    """Keys as ResNet Explorer names them: wrappers' prefixes stripped while every key has one, another author's
    module names translated (:data:`WRN_LAYOUT`, a closing ``bn``), the classifier renamed to ``fc``. Returns the
    renamed mapping, the prefix stripped, the classifier's original name and what was translated, in words."""
    prefix = key_prefix(state)
    renamed = {key.removeprefix(prefix): value for key, value in state.items()}
    layout: tuple[str, ...] = ()
    if any(re.match(r"block\d+\.layer\.\d+\.", key) for key in renamed):
        layout = (WRN_LAYOUT,)
        renamed = {_rewritten(key, _WRN_KEYS): v for key, v in renamed.items() if not key.startswith(UNUSED)}
    elif "stem.conv.weight" in renamed and any(key.startswith("stages.0.blocks.0.norm1.") for key in renamed):
        layout = (TIMM_V2_LAYOUT,)
        renamed = {_rewritten(key, _TIMM_V2_KEYS): v for key, v in renamed.items()}
        renamed["fc.weight"] = _as_linear(renamed["fc.weight"])
    if any(re.match(r"layer\d+\.\d+\.shortcut\.\d+\.", key) for key in renamed):  # the CIFAR repositories' name
        renamed = {re.sub(r"^(layer\d+\.\d+\.)shortcut\.", r"\1downsample.", key): v for key, v in renamed.items()}
    if "bn.weight" in renamed and "bn1.weight" not in renamed:  # a PreActResNet's closing BN (bn_before_fc)
        renamed = {re.sub(r"^bn\.", "final_bn.", key): v for key, v in renamed.items()}
    head = next((h for h in HEADS if f"{h}weight" in renamed and "fc.weight" not in renamed), "fc.")
    if head != "fc.":
        renamed = {("fc." + key.removeprefix(head) if key.startswith(head) else key): v for key, v in renamed.items()}
    if all(key in renamed for key in INPUT_NORMALISATION):
        renamed = {key: v for key, v in renamed.items() if key not in INPUT_NORMALISATION}
        layout += (INNER_NORMALISATION,)
    if "fc.weight" in renamed and "fc.bias" not in renamed:
        bias = _zero_bias(renamed["fc.weight"])
        if bias is not None:
            renamed["fc.bias"] = bias
            layout += (NO_BIAS,)
    return renamed, prefix, head, layout


def _rewritten(key: str, rewrites: tuple[tuple[str, Rewrite], ...]) -> str:
    """``key`` after the first rewrite whose pattern it matches (``re.sub``'s replacement: a template or a
    function of the match)."""
    for pattern, ours in rewrites:
        if re.match(pattern, key):
            return re.sub(pattern, ours, key, count=1)
    return key


def _zero_bias(weight: object) -> object:
    """The zero bias of a classifier built without one (``bias=False``): the same function as ours with a bias."""
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return weight.new_zeros(weight.shape[0])
    if isinstance(weight, tuple) and len(weight) == 2:
        return weight[:1]
    return None


def _as_linear(weight: object) -> object:
    """A classifier written as a 1x1 convolution (timm's ``use_conv`` heads) as a linear layer's weight: the same
    numbers. ``weight`` is a tensor or, where only shapes are read, a shape."""
    if isinstance(weight, torch.Tensor) and weight.dim() == 4 and weight.shape[2:] == (1, 1):
        return weight.flatten(1)
    if isinstance(weight, tuple) and len(weight) == 4 and weight[2:] == (1, 1):
        return weight[:2]
    return weight


def _candidates(shapes: Mapping[str, tuple[int, ...]], wanted: str | None) -> list[str]:
    """The architectures worth comparing key by key: those with the checkpoint's blocks per stage (read off keys
    like ``layer3.5.conv1.weight``), else the few nearest in layout, for naming the nearest. Building every
    signature would take seconds (ResNet-1202 alone has 7,208 keys); these take milliseconds."""
    layout = _layout(shapes)
    same = [arch for arch, spec in ARCHITECTURES.items() if spec.layers == layout]
    if same:
        return same if wanted is None or wanted in same else [*same, wanted]

    def distance(spec: ArchSpec) -> tuple[int, int]:
        pairs = itertools.zip_longest(spec.layers, layout, fillvalue=0)
        return abs(len(spec.layers) - len(layout)), sum(abs(a - b) for a, b in pairs)

    nearest = sorted(ARCHITECTURES, key=lambda arch: distance(ARCHITECTURES[arch]))[:4]
    return nearest if wanted is None or wanted in nearest else [*nearest, wanted]


def _layout(shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
    """Blocks per stage, from the keys: (3, 4, 6, 3) for a ResNet-50."""
    blocks: dict[int, set[int]] = {}
    for key in shapes:
        found = re.match(r"layer(\d+)\.(\d+)\.", key)
        if found:
            blocks.setdefault(int(found.group(1)), set()).add(int(found.group(2)))
    return tuple(len(blocks[stage]) for stage in sorted(blocks))


def _signature(arch: str) -> dict[str, tuple[int, ...]]:
    return _signature_of(ARCHITECTURES[arch])


@cache
def _signature_of(spec: ArchSpec) -> dict[str, tuple[int, ...]]:
    """An architecture's keys and shapes, with the class count and input channels left open (built once, on the
    meta device: no memory, no initialisation)."""
    with torch.device("meta"):
        state = build(spec).state_dict()
    shapes = {key: tuple(value.shape) for key, value in state.items() if not key.endswith(BN_STEPS)}
    first = _first_conv(shapes)
    shapes[first] = (shapes[first][0], OPEN, *shapes[first][2:])
    shapes["fc.weight"] = (OPEN, shapes["fc.weight"][1])
    shapes["fc.bias"] = (OPEN,)
    return shapes


def _first_conv(shapes: Mapping[str, tuple[int, ...]]) -> str:
    return next(key for key, shape in shapes.items() if len(shape) == 4)


def _differences(
    signature: Mapping[str, tuple[int, ...]], shapes: Mapping[str, tuple[int, ...]]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Keys the architecture has and the checkpoint lacks, keys only the checkpoint has, and shared keys whose
    shapes differ (an open dimension matches any size)."""
    present = {key: shape for key, shape in shapes.items() if not key.endswith(BN_STEPS)}
    missing = tuple(key for key in signature if key not in present)
    unexpected = tuple(key for key in present if key not in signature)
    mismatch = tuple(
        key
        for key, shape in signature.items()
        if key in present
        and (
            len(shape) != len(present[key])
            or any(a not in (OPEN, b) for a, b in zip(shape, present[key], strict=False))
        )
    )
    return missing, unexpected, mismatch


def _fits(expected: tuple[int, ...], found: tuple[int, ...]) -> bool:
    return len(expected) == len(found) and all(a in (OPEN, b) for a, b in zip(expected, found, strict=True))


def _preference(spec: ArchSpec, in_chans: int) -> tuple:
    """Among architectures with the same keys and shapes: the one made for this many input channels, a residual
    net before a plain one (option A shortcuts have no weights), torchvision's bottleneck B before the paper's A."""
    return (spec.in_chans != in_chans, not spec.shortcut, spec.stride_in_1x1)
