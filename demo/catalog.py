"""What the model pickers offer, and how each choice is loaded and described.

Two sources stand behind one interface: the architectures of ``resnet_core``'s registry (ImageNet and CIFAR-10),
whose published weights load from shipped copies, caches or a download, and the degradation lab's digit nets, whose
trained weights ship in ``assets/``. Structure (stages, costs) is derived from each architecture's spec, so the
cache, the pickers and the handlers never branch on where a model came from.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cache

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
    get_weights,
    list_weights,
)
from resnet_core.architectures import build
from resnet_core.complexity import cost_table
from resnet_core.create import UNTRAINED, card

from .public_text import without_paths

__all__ = [
    "FAMILIES",
    "LAB_FAMILY",
    "LAB_WEIGHTS",
    "RANDOM_INIT",
    "SOURCES",
    "DigitNets",
    "LoadedModel",
    "ModelSource",
    "RegistryModels",
    "architectures_of",
    "source_of",
]

RANDOM_INIT = "random init"
LAB_FAMILY = "Digits (degradation lab)"
LAB_WEIGHTS = "lab reference run (seed 0)"


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

    @property
    def pretrained(self) -> bool:
        return card(self.model).pretrained


class ModelSource(ABC):
    """A family of models the app can offer: names, weight choices, loading and the facts shown beside them."""

    families: tuple[str, ...]

    @abstractmethod
    def architectures(self, family: str) -> list[str]:
        """The architectures of ``family``, in picker order (empty if the family is not this source's)."""

    @abstractmethod
    def spec(self, arch: str) -> ArchSpec:
        """The architecture's description: everything structural (stages, costs) is derived from it."""

    @abstractmethod
    def weight_choices(self, arch: str) -> list[str]:
        """Every weight choice of ``arch``, in picker order."""

    def default_choice(self, arch: str) -> str:
        return self.weight_choices(arch)[0]

    @abstractmethod
    def load(self, arch: str, weights: str, device: torch.device) -> LoadedModel:
        """Build ``arch`` with ``weights`` on ``device``; never raises for missing weights, says so instead."""

    @abstractmethod
    def facts(self, arch: str, weights: str) -> str:
        """A few Markdown lines for the picker: what was trained on what, how well, and what it costs."""

    def published(self, arch: str, weights: str) -> WeightEntry | None:
        """The published entry behind ``weights``, where there is one, for the published-vs-counted check."""
        return None

    def stages(self, arch: str) -> list[str]:
        """Stage names as the network describes itself: the pick-lists of the stage and Grad-CAM controls."""
        return [stage.name for stage in _feature_info(self.spec(arch))]

    def input_size(self, arch: str, weights: str) -> int:
        """The size the chosen weights are evaluated at (their preprocessing's crop)."""
        entry = self.published(arch, weights)
        return entry.eval_size if entry is not None else self.spec(arch).label_space.preprocess.crop_size

    def costs(self, arch: str, weights: str) -> CostTable:
        """Per-block parameters and FLOPs at the size the chosen weights are evaluated at."""
        return cost_table(self.spec(arch), self.input_size(arch, weights))

    def owns(self, arch: str) -> bool:
        return any(arch in self.architectures(family) for family in self.families)


@cache
def _feature_info(spec: ArchSpec):
    with torch.device("meta"):
        return build(spec).feature_info


class RegistryModels(ModelSource):
    """The registry's architectures with their published weights (torchvision, timm, the CIFAR-10 nets)."""

    families = tuple(dict.fromkeys(spec.family for spec in ARCHITECTURES.values()))

    def architectures(self, family: str) -> list[str]:
        return [name for name, spec in ARCHITECTURES.items() if spec.family == family]

    def owns(self, arch: str) -> bool:
        return arch in ARCHITECTURES

    def spec(self, arch: str) -> ArchSpec:
        return ARCHITECTURES[arch]

    def weight_choices(self, arch: str) -> list[str]:
        return [entry.name for entry in list_weights(arch)] + [RANDOM_INIT]

    def default_choice(self, arch: str) -> str:
        entry = default_weights(arch)
        return entry.name if entry is not None else RANDOM_INIT

    def load(self, arch: str, weights: str, device: torch.device) -> LoadedModel:
        if weights == RANDOM_INIT:
            model = create_model(arch, weights=None, device=device)
            status = f"Random init (kaiming, seeded), as asked: {UNTRAINED}."
            return LoadedModel(model, status, _preprocessing(model))
        try:
            model = create_model(arch, weights=weights, device=device, progress=False)
        except WeightsUnavailableError as error:
            model = create_model(arch, weights=None, device=device)
            tried = "\n".join(f"- {source}: {reason.splitlines()[0]}" for source, reason in error.attempts)
            status = (
                f"**{error.weight} could not be loaded** (not on this machine, and no download succeeded), so "
                f"{arch} runs on random weights, {UNTRAINED}."
            )
            return LoadedModel(model, status, without_paths(f"Sources tried:\n{tried}\n\n{error.hint}"), False)
        return LoadedModel(model, f"Weights: {without_paths(card(model).source)}.", _preprocessing(model))

    def published(self, arch: str, weights: str) -> WeightEntry | None:
        return get_weights(arch, weights) if weights != RANDOM_INIT else default_weights(arch)

    def facts(self, arch: str, weights: str) -> str:
        spec = ARCHITECTURES[arch]
        lines = [f"**{arch}** · {spec.family} · {spec.depth} weighted layers · {spec.num_blocks} blocks"]
        if weights != RANDOM_INIT:
            entry = get_weights(arch, weights)
            if entry.paper_acc1 is not None:
                lines.append(
                    f"{entry.dataset} test error **{100 - entry.acc1:.2f}%** measured on all 10,000 test images "
                    f"(the paper's Table 6: {100 - entry.paper_acc1:.2f}%) · {entry.origin}"
                )
            else:
                top5 = f" · acc@5 {entry.acc5:.2f}%" if entry.acc5 is not None else ""
                lines.append(
                    f"acc@1 **{entry.acc1:.2f}%**{top5} on {entry.dataset} val at {entry.eval_size} px ({entry.origin})"
                )
        else:
            lines.append("no accuracy: random weights")
        size = self.input_size(arch, weights)
        table = self.costs(arch, weights)
        lines.append(
            f"{table.total_params / 1e6:.2f} M parameters · {table.gmacs:.3f} GMACs "
            f"({2 * table.gmacs:.3f} GFLOPs) per {size}x{size} image"
        )
        return "  \n".join(lines)


class DigitNets(ModelSource):
    """The degradation lab's reference nets, trained on the 5,000 MNIST digits."""

    families = (LAB_FAMILY,)

    def architectures(self, family: str) -> list[str]:
        return list(degradation.reference_models()) if family == LAB_FAMILY else []

    def spec(self, arch: str) -> ArchSpec:
        return degradation.reference_spec(arch)

    def weight_choices(self, arch: str) -> list[str]:
        return [LAB_WEIGHTS]

    def load(self, arch: str, weights: str, device: torch.device) -> LoadedModel:
        path = degradation.reference_models()[arch]
        model = degradation.load_lab_model(path)[1].to(device)
        status = f"Weights: trained in the degradation lab on the 5,000 MNIST digits, shipped as {path.name}."
        return LoadedModel(model, status, _preprocessing(model))

    def facts(self, arch: str, weights: str) -> str:
        table = self.costs(arch, weights)
        return (
            f"**{arch}** · {degradation.describe_reference(arch)}  \n{table.total_params:,} parameters · "
            f"{table.total_macs / 1e6:.1f} M MACs ({table.total_flops / 1e6:.1f} M FLOPs) per 28x28 digit"
        )


def _preprocessing(model: ResNet) -> str:
    return f"Preprocessing: {card(model).preprocess.describe()}."


SOURCES: tuple[ModelSource, ...] = (RegistryModels(), DigitNets())
FAMILIES = [family for source in SOURCES for family in source.families]


def source_of(arch: str) -> ModelSource | None:
    """The source that offers ``arch``, or None for a name nobody offers."""
    return next((source for source in SOURCES if source.owns(arch)), None)


def architectures_of(family: str) -> list[str]:
    return [arch for source in SOURCES for arch in source.architectures(family)]
