"""Ours against the reference implementation: the same weights in torchvision's or timm's network, one input.

The models are written to be state-dict compatible with the libraries whose names they share; this checks that the
compatibility is also numerical, stage by stage, for whatever weights a model holds (random init in the tests,
the official ones on a user's machine). timm is optional: it is imported only here, and only when asked about.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
import torchvision
from PIL import Image
from torch import Tensor, nn

from ..hooks import eval_mode, forward_hooks
from ..zoo.architectures import ARCHITECTURES
from ..zoo.create import ModelCard, card
from ..zoo.models import ResNet
from .analysis import model_input, topk_classes, topk_rows

__all__ = ["Verification", "check_reference", "reference_library", "reference_model", "verify"]

INPUT_SEED = 0  # the random input used when no image is given: the same tensor on every run


def _timm() -> ModuleType | None:
    """timm if it is installed (it is a development dependency only), else None."""
    try:
        import timm
    except ImportError:
        return None
    return timm


def reference_library(arch: str) -> str | None:
    """The library the registry names as ``arch``'s reference (``ArchSpec.reference``), if it is importable here.

    The paper's ResNet-A (resnet50a, ...), the plain, CIFAR-10 and lab nets have no namesake in either library.
    """
    library = ARCHITECTURES[arch].reference if arch in ARCHITECTURES else None
    if library == "timm" and _timm() is None:
        return None
    return library


def check_reference(arch: str) -> str:
    """:func:`reference_library`, raising ``ValueError`` when there is none (ask before loading any weights)."""
    library = reference_library(arch)
    if library is None:
        missing = "" if _timm() is not None else " (timm, which may have one, is not installed)"
        raise ValueError(f"{arch} has no reference implementation in torchvision or timm{missing}")
    return library


def reference_model(model: ResNet) -> nn.Module:
    """The reference library's network of ``model``'s architecture holding ``model``'s very weights (strict load),
    frozen, in eval mode, on its device and in its dtype."""
    name = card(model).arch.name
    num_classes = model.fc.out_features
    if check_reference(name) == "torchvision":
        reference = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    else:
        timm = _timm()
        assert timm is not None  # check_reference names timm only where it imports
        reference = timm.create_model(name, pretrained=False, num_classes=num_classes)
    parameter = next(model.parameters())
    reference.to(device=parameter.device, dtype=parameter.dtype)
    reference.load_state_dict(model.state_dict(), strict=True)
    return reference.requires_grad_(False).eval()


@dataclass(frozen=True)
class Verification:
    """Ours against the reference on one input: the largest absolute differences and both top-k lists.

    ``stage_diffs`` is keyed by the model's own stage names (``stem``, ``layer1``, ...): where a difference first
    appears is where the implementations part.
    """

    arch: str
    reference: str
    max_abs_diff: float  # of the logits
    stage_diffs: dict[str, float]
    topk: list[tuple[int, str, float]]
    reference_topk: list[tuple[int, str, float]]

    @property
    def topk_agree(self) -> bool:
        """Both name the same classes in the same order."""
        return [row[0] for row in self.topk] == [row[0] for row in self.reference_topk]

    def as_dict(self) -> dict:
        return {
            "arch": self.arch,
            "reference": self.reference,
            "max_abs_diff": self.max_abs_diff,
            "stage_diffs": dict(self.stage_diffs),
            "topk": topk_rows(self.topk),
            "reference_topk": topk_rows(self.reference_topk),
            "topk_agree": self.topk_agree,
        }


def _forward(network: nn.Module, inputs: Tensor, stages: dict[str, str]) -> tuple[Tensor, dict[str, Tensor]]:
    """Logits and each stage's output (``stages``: our stage name -> submodule name, the same in both libraries)."""
    captured: dict[str, Tensor] = {}

    def keep(stage: str):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            captured[stage] = output.detach().clone()  # a later in-place op must not change what was seen

        return hook

    with forward_hooks(network, [(module, keep(stage)) for stage, module in stages.items()]):
        logits = network(inputs)
    return logits, captured


def _inputs(model: ResNet, model_card: ModelCard, image: Image.Image | str | Path | None) -> Tensor:
    parameter = next(model.parameters())
    if image is None:
        size = model_card.preprocess.crop_size
        generator = torch.Generator().manual_seed(INPUT_SEED)
        batch = torch.randn(1, model.in_chans, size, size, generator=generator)
    else:
        batch = model_input(model, image)[1]
    return batch.to(device=parameter.device, dtype=parameter.dtype)


def verify(model: ResNet, image: Image.Image | str | Path | None = None, topk: int = 5) -> Verification:
    """Run ``model`` and the reference library's network, loaded with the same weights, on the same input.

    The input is ``image`` through the model's preprocessing or, when None, a fixed seeded random tensor of the
    eval crop size. Raises ``ValueError`` when the architecture has no reference implementation.
    """
    model_card = card(model)
    library = check_reference(model_card.arch.name)
    reference = reference_model(model)
    inputs = _inputs(model, model_card, image)
    stages = {stage.name: stage.module for stage in model.feature_info}
    with torch.inference_mode(), eval_mode(model):
        ours, ours_stages = _forward(model, inputs, stages)
        theirs, their_stages = _forward(reference, inputs, stages)

    def max_abs_diff(a: Tensor, b: Tensor) -> float:
        return float((a.float() - b.float()).abs().max())

    return Verification(
        arch=model_card.arch.name,
        reference=library,
        max_abs_diff=max_abs_diff(ours, theirs),
        stage_diffs={stage: max_abs_diff(ours_stages[stage], their_stages[stage]) for stage in stages},
        topk=topk_classes(ours[0].float().softmax(-1).cpu(), model_card.categories, topk),
        reference_topk=topk_classes(theirs[0].float().softmax(-1).cpu(), model_card.categories, topk),
    )
