"""What flows through the shortcut: a class's evidence at each residual block, split between the branch and the skip.

The paper's block computes ``z = F(x) + shortcut(x)`` before its final ReLU. For the class logit ``S`` (the score
Grad-CAM explains) the first-order contributions ``<dS/dz, F(x)>`` and ``<dS/dz, shortcut(x)>`` add up to
``<dS/dz, z>``: how much of what the rest of the network reads from this block came through the skip unchanged,
and how much the block's own layers added. The residual ratio ``||F|| / ||shortcut||`` says how big the branch is;
this says how much it matters for the answer. Summed over channels instead of over everything, each term is a map
of where on the image that evidence sits. A plain network has no shortcut: all its evidence is in the branch.

One forward and one backward of the class logit (gradients with ``torch.autograd.grad``, parameters untouched).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ..hooks import eval_mode, forward_hooks
from ..zoo.create import ModelCard, card
from ..zoo.label_spaces import class_index_of
from ..zoo.models import ResNet
from .analysis import model_input

__all__ = ["BlockEvidence", "EvidenceSplit", "class_index_of", "evidence_split"]


@dataclass(frozen=True)
class BlockEvidence:
    """One block's share of the class logit's first-order evidence, and where on its feature map it sits.

    ``branch`` = ``<dS/dz, F(x)>`` and ``shortcut`` = ``<dS/dz, shortcut(x)>`` (0 in a plain block); the maps are the
    same products summed over channels, at the block's own resolution (they sum to ``branch`` and ``shortcut``).
    """

    block: str
    branch: float
    shortcut: float
    branch_map: np.ndarray
    shortcut_map: np.ndarray
    has_shortcut: bool

    @property
    def total(self) -> float:
        """``<dS/dz, z>``: the block output's whole first-order evidence."""
        return self.branch + self.shortcut

    @property
    def shortcut_share(self) -> float | None:
        """``|shortcut| / (|branch| + |shortcut|)``: 1 when the skip carries everything; None when both are 0."""
        size = abs(self.branch) + abs(self.shortcut)
        return abs(self.shortcut) / size if size > 0 else None

    def as_dict(self) -> dict:
        """The numbers (no maps), as ``python -m resnet_core evidence --json`` prints them."""
        return {
            "block": self.block,
            "branch": self.branch,
            "shortcut": self.shortcut,
            "total": self.total,
            "shortcut_share": self.shortcut_share,
        }


@dataclass(frozen=True)
class EvidenceSplit:
    """Every block's evidence for one class on one image, in forward order."""

    class_index: int
    class_name: str
    logit: float
    blocks: tuple[BlockEvidence, ...]
    crop: Image.Image
    card: ModelCard

    def block(self, name: str) -> BlockEvidence:
        for entry in self.blocks:
            if entry.block == name:
                return entry
        raise ValueError(f"unknown block {name!r}; expected one of {[entry.block for entry in self.blocks]}")

    def through_shortcut(self, share: float = 0.5) -> list[str]:
        """The blocks that carry more than ``share`` of their evidence through the shortcut."""
        return [e.block for e in self.blocks if e.shortcut_share is not None and e.shortcut_share > share]

    def as_dict(self) -> dict:
        return {
            "arch": self.card.arch.name,
            "weights": self.card.label,
            "pretrained": self.card.pretrained,
            "class": self.class_name,
            "class_index": self.class_index,
            "logit": self.logit,
            "blocks": [entry.as_dict() for entry in self.blocks],
        }


def evidence_split(
    model: ResNet, image: Image.Image | str | Path, class_index: int | str | None = None
) -> EvidenceSplit:
    """Split the evidence for ``class_index`` (an index or a name; default: the top-1 class) at every block of
    ``model`` into what the shortcut carried and what the residual branch added. The hooks are gone and the
    model's modes are as they were when this returns or raises."""
    model_card = card(model)
    if class_index is not None:
        class_index = class_index_of(class_index, model_card.categories)
    crop, inputs = model_input(model, image)
    blocks = model.block_names()
    terms: dict[str, tuple[Tensor, Tensor | None, Tensor]] = {}

    def keep_terms(block: str):
        def hook(module: nn.Module, args: tuple[Tensor, Tensor | None], output: Tensor) -> Tensor:
            residual, shortcut = args
            terms[block] = (residual.detach(), None if shortcut is None else shortcut.detach(), output)
            # The block's ReLU runs in place: hand it a copy, so z keeps the values and the gradient we read.
            return output.clone()

        return hook

    def graph_from_stem(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        # Frozen parameters leave no graph; starting one at the stem's output keeps the backward out of the stem.
        return output if output.requires_grad else output.detach().requires_grad_()

    hooks = [(model.feature_info[0].module, graph_from_stem)]
    hooks += [(f"{block}.residual_add", keep_terms(block)) for block in blocks]
    # Callers may sit under no_grad or inference_mode (a web handler); this needs a graph.
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad(), forward_hooks(model, hooks):
        logits = model(inputs.clone())
        target = int(logits[0].argmax()) if class_index is None else class_index
        score = logits[0, target]
        gradients = torch.autograd.grad(score, [terms[block][2] for block in blocks])

    entries = []
    for block, gradient in zip(blocks, gradients, strict=True):
        residual, shortcut, _ = terms[block]
        branch_map = (gradient * residual)[0].sum(0).double()
        shortcut_map = torch.zeros_like(branch_map) if shortcut is None else (gradient * shortcut)[0].sum(0).double()
        entries.append(
            BlockEvidence(
                block,
                float(branch_map.sum()),
                float(shortcut_map.sum()),
                branch_map.float().cpu().numpy(),
                shortcut_map.float().cpu().numpy(),
                shortcut is not None,
            )
        )
    return EvidenceSplit(
        class_index=target,
        class_name=model_card.categories[target],
        logit=float(score.detach()),
        blocks=tuple(entries),
        crop=crop,
        card=model_card,
    )
