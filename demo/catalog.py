"""What the model pickers offer, and how each choice is loaded and described: a few functions over the library's
registry (``resnet_core.ARCHITECTURES`` and ``WEIGHTS``), which holds every network the app offers, the lab's digit
nets included. Structure (stages, costs) is derived from each architecture's spec.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch

from resnet_core import (
    ARCHITECTURES,
    ArchSpec,
    CostTable,
    ResNet,
    WeightEntry,
    WeightsUnavailableError,
    create_model,
    default_weights,
    degradation,
    eval_size,
    get_weights,
    list_weights,
)
from resnet_core.measure.complexity import cost_table
from resnet_core.zoo.architectures import LAB_FAMILY, twin_of
from resnet_core.zoo.checkpoints import load_checkpoint
from resnet_core.zoo.create import UNTRAINED, card

from . import uploads
from .public_text import without_paths

__all__ = [
    "FAMILIES",
    "LAB_FAMILY",
    "RANDOM_INIT",
    "Choice",
    "LoadedModel",
    "architectures_of",
    "choice",
    "costs",
    "default_choice",
    "facts",
    "load",
    "offers",
    "plain_twin",
    "weight_choices",
]

RANDOM_INIT = "random init"  # the weight choice of an untrained network (the library's weights=None)
FAMILIES = list(dict.fromkeys(spec.family for spec in ARCHITECTURES.values()))


@dataclass(frozen=True)
class Choice:
    """A weight choice of ``arch``, resolved once: published weights (``entry``), a visitor's checkpoint
    (``upload``), or neither: untrained. ``name`` is what the pickers, the session and the API carry."""

    arch: str
    name: str
    entry: WeightEntry | None = None
    upload: uploads.Upload | None = None

    @property
    def untrained(self) -> bool:
        return self.entry is None and self.upload is None

    @property
    def published(self) -> WeightEntry | None:
        """The published entry whose figures (parameters, GMACs at 224) describe this network: its own, or, where
        untrained, the default weights' (the same architecture); none for a visitor's checkpoint."""
        return self.entry or (default_weights(self.arch) if self.untrained else None)

    @property
    def spec(self) -> ArchSpec:
        """The architecture the choice builds: a visitor's checkpoint has its own classifier and input channels."""
        return self.upload.info.spec if self.upload else ARCHITECTURES[self.arch]

    @property
    def input_size(self) -> int:
        """The size the weights are evaluated at (their preprocessing's crop; untrained: the default weights')."""
        if self.upload:
            return self.upload.info.preprocess.crop_size
        return eval_size(self.arch, self.entry.name if self.entry else None)


def choice(arch: str, weights: str) -> Choice:
    """``weights`` of ``arch`` resolved: a published name, :data:`RANDOM_INIT`, or a checkpoint's token (a
    ``LookupError`` once its session has ended; an unknown name raises the library's ``ValueError``)."""
    if uploads.is_upload(weights):
        return Choice(arch, weights, upload=uploads.get(weights))
    if weights == RANDOM_INIT:
        return Choice(arch, weights)
    return Choice(arch, weights, entry=get_weights(arch, weights))


@dataclass
class LoadedModel:
    """A model ready for analysis, what the user is told about it, and the lock its hooks need.

    ``status`` is one sentence for every visitor (which weights from where, or why none); ``details`` is the
    operator's part (every source tried, how to fix it), shown collapsed. Neither names a server path. The lock
    belongs to :meth:`demo.model_cache.ModelCache.using`, its only user.
    """

    model: ResNet
    status: str
    details: str = ""
    delivered: bool = True  # the weights asked for (random init included) are the ones the model holds
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def offers(arch: str, weights: str | None = None) -> bool:
    """Whether the app runs ``arch``: a registered architecture, or the CIFAR layout a visitor's checkpoint
    (``weights``, its token) was read as, which is registered nowhere."""
    if arch in ARCHITECTURES:
        return True
    return weights is not None and uploads.is_upload(weights) and uploads.get(weights).arch == arch


def architectures_of(family: str) -> list[str]:
    """The networks of ``family``, in picker order."""
    return [name for name, spec in ARCHITECTURES.items() if spec.family == family]


# The registered family a CIFAR layout read off a checkpoint is listed in (its own family is registered nowhere).
CIFAR_FAMILY = ARCHITECTURES["cifar10_resnet20"].family


def picker_family(upload: uploads.Upload) -> str:
    """The Family list's entry under which a visitor's checkpoint is picked: its architecture's family, or for a
    CIFAR variant (``cifar_resnet56_b``) the paper's CIFAR networks'."""
    family = upload.info.spec.family
    return family if family in FAMILIES else CIFAR_FAMILY


def weight_choices(arch: str) -> list[str]:
    """Every weight choice of ``arch``, the recommended one first, random init last; none for a CIFAR variant,
    whose only weights are the checkpoint it was read from."""
    if arch not in ARCHITECTURES:
        return []
    return [entry.name for entry in list_weights(arch)] + [RANDOM_INIT]


def default_choice(arch: str) -> str:
    entry = default_weights(arch)
    return entry.name if entry is not None else RANDOM_INIT


def plain_twin(arch: str, weights: str) -> tuple[tuple[str, str] | None, str]:
    """The twin to set beside ``arch`` (its architecture and weights), or None and why not: twins are compared when
    both are trained (the digit nets) or both untrained, never a trained net against a random one."""
    chosen = choice(arch, weights)
    twin = None if chosen.upload else twin_of(arch)
    if twin is None:
        return None, f"{arch} has no registered plain twin (or residual twin) to compare with."
    if chosen.untrained:
        return (twin, RANDOM_INIT), f"{twin}, untrained like {arch}"
    if default_weights(twin) is None:
        return None, (
            f"{twin} has no trained weights, and a trained {arch} against a random {twin} says nothing about "
            f"the shortcuts; pick random init to compare the two untrained, or a digit net to compare them trained."
        )
    return (twin, default_choice(twin)), f"{twin}, trained like {arch}"


def costs(arch: str, weights: str) -> CostTable:
    """Per-block parameters and FLOPs at the size the chosen weights are evaluated at."""
    chosen = choice(arch, weights)
    return cost_table(chosen.spec, chosen.input_size)


def load(arch: str, weights: str, device: torch.device) -> LoadedModel:
    """Build ``arch`` with ``weights`` on ``device``; never raises for missing weights, says so instead (a
    visitor's checkpoint that cannot be loaded raises ``CheckpointError``: there is nothing else to show)."""
    chosen = choice(arch, weights)
    if chosen.upload:
        upload = chosen.upload
        info = upload.info
        model = load_checkpoint(
            upload.path, labels=upload.labels, arch=upload.arch, preprocess=info.preprocess, device=device
        )
        status = (
            f"Your checkpoint: {info.sentence()}. Class names: {info.labels_source}. "
            f"Preprocessing: {info.preprocess.describe()}."
        )
        return LoadedModel(model, status, _preprocessing(model))
    if chosen.untrained:
        model = create_model(arch, weights=None, device=device)
        return LoadedModel(model, f"Random init (kaiming, seeded), as asked: {UNTRAINED}.", _preprocessing(model))
    try:
        model = create_model(arch, weights=weights, device=device, progress=False)
    except WeightsUnavailableError as error:
        model = create_model(arch, weights=None, device=device)
        tried = "\n".join(f"- {source}: {reason.splitlines()[0]}" for source, reason in error.attempts)
        status = (
            f"**{error.weight} could not be loaded** (not on this machine, and no download succeeded), so {arch} "
            f"runs on random weights, {UNTRAINED}."
        )
        return LoadedModel(model, status, without_paths(f"Sources tried:\n{tried}\n\n{error.hint}"), False)
    return LoadedModel(model, f"Weights: {without_paths(card(model).source)}.", _preprocessing(model))


def _preprocessing(model: ResNet) -> str:
    return f"Preprocessing: {card(model).preprocess.describe()}."


def facts(arch: str, weights: str) -> str:
    """A few Markdown lines for the picker: what was trained on what, how well, and what it costs."""
    chosen = choice(arch, weights)
    spec = chosen.spec
    lines = [f"**{arch}** · {spec.family} · {spec.depth} weighted layers · {spec.num_blocks} blocks"]
    entry = chosen.entry
    if chosen.upload:
        upload = chosen.upload
        classes = ", ".join(upload.info.categories[:6]) + (" ..." if len(upload.info.categories) > 6 else "")
        lines.append(
            f"**your checkpoint** {upload.name} (sha256 {upload.sha256[:12]}) · {len(upload.info.categories)} "
            f"classes: {classes} ({upload.info.labels_source}) · no published accuracy"
        )
    elif entry is None:
        lines.append("no accuracy: random weights")
    elif entry.acc1 is None:  # the lab's nets: trained and measured on the same digits
        lines.append(degradation.describe_reference(arch))
    elif entry.paper_acc1 is not None:
        lines.append(
            f"{entry.dataset} test error **{100 - entry.acc1:.2f}%** measured on all 10,000 test images "
            f"(the paper's Table 6: {100 - entry.paper_acc1:.2f}%) · {entry.origin}"
        )
    else:
        top5 = f" · acc@5 {entry.acc5:.2f}%" if entry.acc5 is not None else ""
        where = f"{entry.dataset} val at {entry.preprocess.crop_size} px ({entry.origin})"
        lines.append(f"acc@1 **{entry.acc1:.2f}%**{top5} on {where}")
    size = chosen.input_size
    table = costs(arch, weights)
    unit = f"{table.gmacs:.3f} GMACs ({2 * table.gmacs:.3f} GFLOPs)"
    if table.gmacs < 0.01:  # a 28x28 digit: millions read better
        unit = f"{table.total_macs / 1e6:.1f} M MACs ({table.total_flops / 1e6:.1f} M FLOPs)"
    lines.append(f"{table.total_params / 1e6:.2f} M parameters · {unit} per {size}x{size} image")
    return "  \n".join(lines)
