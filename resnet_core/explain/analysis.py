"""One forward pass feeds every screen: top-k, stage and block maps, residual statistics and Grad-CAM."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ..hooks import forward_hooks
from ..measure.residual_stats import ResidualStats, residual_stats
from ..zoo.create import ModelCard, card
from ..zoo.label_spaces import check_class
from ..zoo.models import ResNet
from ..zoo.preprocess import load_image
from .attribution import grad_cam

__all__ = ["AnalysisResult", "BlockStats", "analyze", "check_class", "model_input", "topk_classes", "topk_rows"]


@dataclass(frozen=True)
class BlockStats:
    """One residual block on one image.

    ``residual_ratio`` = ||F(x)|| / ||shortcut(x)||, where the shortcut is ``x`` itself or, in a block that changes
    shape, its projection ``W_s x`` (option B) or zero-padded subsample (option A): near 0 the block is close to an
    identity (the paper's argument for why residual learning is easy); ``cosine`` tells whether F(x) adds to or
    cancels the shortcut; ``zero_fraction`` is the share of zeros after the block's final ReLU. Plain blocks have
    no shortcut, so the first two are None. ``projection`` says whether the shortcut is ``x`` itself.
    """

    output: Tensor
    residual_ratio: float | None
    cosine: float | None
    projection: bool = False

    @classmethod
    def of(cls, output: Tensor, stats: ResidualStats, block: nn.Module) -> BlockStats:
        """The block's output and its statistics on a batch of one; NaN ("no direction") becomes None."""
        ratio, cosine = (None if torch.isnan(value[0]) else float(value[0]) for value in (stats.ratio, stats.cosine))
        return cls(output, ratio, cosine, getattr(block, "downsample", None) is not None)

    @cached_property
    def zero_fraction(self) -> float:
        """The share of zeros the final ReLU left, read off the output when first asked: few views show it, and
        counting it during the forward cost every analysis a pass over every block."""
        return float((self.output == 0).sum(dtype=torch.int64)) / self.output.numel()


@dataclass
class AnalysisResult:
    topk: list[tuple[int, str, float]]
    probabilities: Tensor
    stages: dict[str, Tensor]
    blocks: dict[str, BlockStats]
    cam: np.ndarray
    cam_class: int
    cam_layer: str
    crop: Image.Image
    card: ModelCard
    stage_of: dict[str, str] = field(default_factory=dict)  # block -> its stage, from the model's feature_info
    _model: ResNet | None = field(repr=False, default=None)

    def cpu(self) -> AnalysisResult:
        """The same result with every tensor in host memory: what may outlive a request when the GPU is only lent
        for its duration (Hugging Face ZeroGPU). A no-op copy on the CPU."""
        return replace(
            self,
            probabilities=self.probabilities.cpu(),
            stages={name: tensor.cpu() for name, tensor in self.stages.items()},
            blocks={name: replace(stats, output=stats.output.cpu()) for name, stats in self.blocks.items()},
        )

    @property
    def overflow(self) -> str | None:
        """Where the activations first stop being numbers (overflowed float32 to inf or NaN): the first such block,
        else ``"the classifier"``; None where every output is finite. An untrained network hundreds of blocks deep
        (cifar10_resnet1202) adds each block's unnormalised branch to its input until the sum passes float32's
        largest value, and its probabilities then mean nothing."""
        if bool(torch.isfinite(self.probabilities).all()):
            return None
        broken = (name for name, stats in self.blocks.items() if not bool(torch.isfinite(stats.output).all()))
        return next(broken, "the classifier")

    @property
    def cam_layers(self) -> list[str]:
        """Where Grad-CAM can look: every stage the model describes (three on CIFAR nets, four on ImageNet)."""
        return list(self.stages)

    def cam_for(self, class_index: int, layer: str | None = None, model: ResNet | None = None) -> np.ndarray:
        """Grad-CAM of another class (or layer) from the stored activation: no new forward pass.

        Only the part of the network after ``layer`` runs again (for layer4: pooling and the classifier), on
        ``model`` (default: the one analysed). That part still runs on the module, so a caller that shares the
        module between threads passes the model it holds under its lock (another thread's hooks would fire).
        """
        model = model if model is not None else self._model
        if model is None:
            raise ValueError("this result no longer holds its model: pass the network it was computed with")
        layer = layer or self.cam_layer
        if layer not in self.stages:
            raise ValueError(f"unknown CAM layer {layer!r}; expected one of {list(self.stages)}")
        check_class(class_index, len(self.probabilities))
        entry = nn.Identity()
        # The stored activation may live in host memory while the model is on a GPU (see cpu()).
        activation = self.stages[layer].unsqueeze(0).to(next(model.parameters()).device)

        def score(a: Tensor) -> Tensor:
            return model.forward_from(layer, entry(a))[:, class_index]

        return grad_cam(score, entry, activation, self.crop.size[::-1])


def model_input(model: ResNet, image: Image.Image | str | Path) -> tuple[Image.Image, Tensor]:
    """The crop ``model`` sees of ``image`` (its weights' resize and crop) and that crop as a normalised batch of
    one on the model's device and in its precision: what every method that explains one image starts from."""
    preprocess = card(model).preprocess
    crop = preprocess.crop(load_image(image))
    parameter = next(model.parameters())
    return crop, preprocess.normalize(crop).unsqueeze(0).to(parameter.device, parameter.dtype)


def topk_classes(probabilities: Tensor, categories: tuple[str, ...], k: int) -> list[tuple[int, str, float]]:
    """The ``k`` most probable classes of a 1-D probability vector as (index, name, probability)."""
    top = probabilities.topk(min(k, probabilities.numel()))
    return [(int(i), categories[int(i)], float(p)) for p, i in zip(top.values, top.indices, strict=True)]


def topk_rows(topk: list[tuple[int, str, float]]) -> list[dict]:
    """The JSON form every command line and endpoint uses: {"index", "label", "probability"}."""
    return [{"index": index, "label": label, "probability": probability} for index, label, probability in topk]


def analyze(
    model: ResNet,
    image: Image.Image | str | Path,
    topk: int = 5,
    cam_layer: str | None = None,
    cam_class: int | None = None,
) -> AnalysisResult:
    """Analyse one image with a model from ``create_model`` (or any :class:`~resnet_core.zoo.models.ResNet`).

    Hooks capture the stem, every stage and every block; captum's Grad-CAM for ``cam_class`` (default: the
    top-1 class) at ``cam_layer`` (default: the last stage) rides on the same forward. The hooks are gone when
    this returns or raises.
    """
    model_card = card(model)
    stages = {stage.name: stage.module for stage in model.feature_info}
    cam_layer = cam_layer or model.feature_info[-1].name
    if cam_layer not in stages:
        raise ValueError(f"unknown CAM layer {cam_layer!r}; expected one of {list(stages)}")
    if cam_class is not None:
        check_class(cam_class, len(model_card.categories))
    crop, inputs = model_input(model, image)

    captured: dict[str, Tensor] = {}
    logits_out: list[Tensor] = []

    def keep(name: str):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
            captured[name] = output.detach()[0]
            if name == stages[cam_layer] and not output.requires_grad:
                # Parameters are frozen, so nothing before here needs a graph: the backward stops at this layer.
                return output.requires_grad_()
            return None

        return hook

    blocks = model.block_names()
    modules = set(stages.values()) | set(blocks)

    def score(x: Tensor) -> Tensor:
        logits = model(x)
        logits_out.append(logits.detach())
        target = logits.detach().argmax(-1) if cam_class is None else torch.full_like(logits[:, 0], cam_class).long()
        return logits.gather(1, target.view(-1, 1))[:, 0]

    with forward_hooks(model, [(name, keep(name)) for name in sorted(modules)]), residual_stats(model) as recorder:
        cam = grad_cam(score, model.get_submodule(stages[cam_layer]), inputs, crop.size[::-1])
    stats = recorder.result()

    probabilities = logits_out[0][0].float().softmax(-1).cpu()
    return AnalysisResult(
        topk=topk_classes(probabilities, model_card.categories, topk),
        probabilities=probabilities,
        stages={display: captured[module] for display, module in stages.items()},
        blocks={block: BlockStats.of(captured[block], stats[block], model.get_submodule(block)) for block in blocks},
        cam=cam,
        cam_class=int(probabilities.argmax()) if cam_class is None else cam_class,
        cam_layer=cam_layer,
        crop=crop,
        card=model_card,
        stage_of=model.block_stages,
        _model=model,
    )
