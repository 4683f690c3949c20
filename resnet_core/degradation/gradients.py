"""How much gradient reaches each stage at initialisation: the paper's reason plain nets train badly is not
vanishing gradients (BN keeps them alive), and this shows it."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..hooks import forward_hooks
from ..zoo.models import ResNet

__all__ = ["gradient_flow"]


def gradient_flow(model: ResNet, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Norm of the loss gradient w.r.t. the activations entering and leaving each stage.

    Keys run from the input side: ``stem`` (the input of ``layer1``), then the output of ``layer1`` (= input of
    ``layer2``), ``layer2`` and ``layer3``. Measured in train mode, as the first SGD step sees it, on a copy, so
    the caller's BN statistics and ``.grad`` stay untouched.
    """
    probe = copy.deepcopy(model).train().requires_grad_(True)  # frozen models too: the graph needs a leaf
    activations: dict[str, torch.Tensor] = {}

    def capture(stage: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if stage == probe.stage_names[0]:
                activations["stem"] = inputs[0]
            activations[stage] = output

        return hook

    with forward_hooks(probe, [(stage, capture(stage)) for stage in probe.stage_names]):
        loss = F.cross_entropy(probe(images), labels)
    names = list(activations)
    gradients = torch.autograd.grad(loss, [activations[name] for name in names])
    return {name: gradient.norm().item() for name, gradient in zip(names, gradients, strict=True)}
