"""``create_model``: an architecture plus its weights, carrying what callers must not guess."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .architectures import ARCHITECTURES, ArchSpec, build, get_arch
from .label_spaces import IMAGENET, LabelSpace
from .models import ResNet
from .preprocess import Preprocess
from .recognition import Recognition
from .weights import WeightEntry, default_weights, get_weights, load_file_into, load_state_dict

__all__ = ["UNTRAINED", "ModelCard", "card", "create_model"]

UNTRAINED = "untrained: predictions are meaningless"


@dataclass(frozen=True)
class ModelCard:
    """What travels with a model: its architecture, weights, the source that delivered them, preprocessing, labels."""

    arch: ArchSpec
    weights: WeightEntry | None
    source: str
    preprocess: Preprocess
    checkpoint: Recognition | None = None  # a user's own checkpoint: what it was recognised as, and from what
    labels_source: str = ""  # where a checkpoint's class names came from

    @property
    def label_space(self) -> LabelSpace:
        return self.arch.label_space

    @property
    def categories(self) -> tuple[str, ...]:
        return self.label_space.categories

    @property
    def pretrained(self) -> bool:
        return self.source != UNTRAINED

    @property
    def name(self) -> str:
        """How every output names the network: its architecture, or for a user's checkpoint the architecture and
        the file, so it stands apart from the published network of the same architecture."""
        return self.label if self.checkpoint is not None else self.arch.name

    @property
    def label(self) -> str:
        if self.weights is not None:
            return self.weights.name
        if self.checkpoint is not None:
            return f"{self.arch.name} ({self.checkpoint.name})"
        return f"{self.arch.name} ({'own checkpoint' if self.pretrained else 'random init'})"


def create_model(
    arch: str | ArchSpec,
    weights: str | Path | WeightEntry | None = None,
    progress: bool = True,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> ResNet:
    """Build an architecture in eval mode, frozen, with weights loaded strictly: the one way to get a model.

    ``arch``: a registry name or an :class:`ArchSpec` (the degradation lab's nets). ``weights``: ``None`` for
    random init (kaiming, labelled untrained), ``"DEFAULT"``, a weight name (``"tv2_in1k"``,
    ``"resnet50.tv2_in1k"``, ``"IMAGENET1K_V2"``), a :class:`WeightEntry` (e.g. one served from a mirror URL),
    or a path to a .pth / .th / .safetensors file.
    Random init is seeded (``seed``, through a forked generator that leaves the caller's untouched), so an untrained
    network gives the same answer for the same photo every time it is built.
    Raises ``ValueError`` for unknown names and ``WeightsUnavailableError`` when no source can deliver.
    The returned module's ``card`` (:class:`ModelCard`) says what it is and how to feed it.
    """
    spec = get_arch(arch) if isinstance(arch, str) else arch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build(spec)
    fallback = default_weights(spec.name) if spec.name in ARCHITECTURES else None
    entry: WeightEntry | None = None
    if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
        source = UNTRAINED
    elif isinstance(weights, WeightEntry):
        if weights.arch != spec.name:
            raise ValueError(f"weights {weights.name} belong to {weights.arch}, not {spec.name}")
        entry = weights
        source = load_state_dict(model, entry, progress=progress)
    elif isinstance(weights, Path) or Path(str(weights)).suffix in (".pth", ".pt", ".th", ".bin", ".safetensors"):
        source = load_file_into(model, weights, spec.name)
    else:
        entry = get_weights(spec.name, str(weights))
        source = load_state_dict(model, entry, progress=progress)
    published = entry or fallback
    preprocess = published.preprocess if published else spec.label_space.preprocess
    return ready(model, ModelCard(spec, entry, source, preprocess), device)


def ready(model: ResNet, model_card: ModelCard, device: str | torch.device | None = None) -> ResNet:
    """The last step of every way to get a model: its card attached, frozen, in eval mode, on ``device``."""
    model.card = model_card
    model.requires_grad_(False)
    return model.to(device).eval() if device is not None else model.eval()


def card(model: torch.nn.Module) -> ModelCard:
    """The card of a model from ``create_model``; a bare module gets ImageNet defaults, marked untrained."""
    found = getattr(model, "card", None)
    if isinstance(found, ModelCard):
        return found
    spec = ArchSpec(type(model).__name__, "custom", "basic", ())
    return ModelCard(spec, None, UNTRAINED, IMAGENET.preprocess)
