"""The paper's Fig. 7: how strongly each 3x3 layer responds, over a whole data set.

He et al. measure the standard deviation of every 3x3 layer's output "after BN and before other nonlinearity
(ReLU/addition)" and find it smaller in ResNets than in their plain twins, and smaller in deeper ResNets: the
residual functions are closer to zero than the non-residual ones. Here the deviation is pooled over all images,
channels and positions, accumulated in float64 batch by batch (memory stays flat over any number of images), read
by forward hooks on the batch norms that follow each 3x3 convolution, as the network's own modules pair them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..hooks import eval_mode, forward_hooks
from ..zoo.models import ResNet

__all__ = ["ResponseStd", "response_layers", "response_std"]


@dataclass(frozen=True)
class ResponseStd:
    """One network's Fig. 7 curve: the pooled standard deviation of each 3x3 layer's response, in layer order."""

    network: str
    layers: tuple[str, ...]  # the batch norms read (each right after a 3x3 convolution), in forward order
    std: tuple[float, ...]
    images: int

    def descending(self) -> list[float]:
        """The paper's lower panel: the same deviations sorted from largest to smallest."""
        return sorted(self.std, reverse=True)

    def as_dict(self) -> dict:
        return {"network": self.network, "images": self.images, "layers": dict(zip(self.layers, self.std, strict=True))}


def response_layers(model: nn.Module) -> list[str]:
    """The batch norm that follows each 3x3 convolution (the stem's included), in forward order.

    Read off the modules as each parent registers its children: a 3x3 ``Conv2d`` and the next ``BatchNorm2d`` among
    its siblings (``conv1``/``bn1``, ``conv2``/``bn2``). A deep stem's last convolution, whose norm sits one level up,
    is paired by the same rule at that level (the stem ``Sequential`` then ``bn1``).
    """
    layers: list[str] = []
    for parent_name, parent in model.named_modules():
        pending = False
        for name, child in parent.named_children():
            if _is_3x3(child) or (isinstance(child, nn.Sequential) and len(child) and _is_3x3(child[-1])):
                pending = True
            elif isinstance(child, nn.BatchNorm2d) and pending:
                layers.append(f"{parent_name}.{name}" if parent_name else name)
                pending = False
            elif isinstance(child, nn.BatchNorm2d | nn.Conv2d):
                pending = False
    order = {name: index for index, (name, _) in enumerate(model.named_modules())}
    return sorted(layers, key=order.__getitem__)


def _is_3x3(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3)


@torch.no_grad()
def response_std(
    model: ResNet,
    batches: Iterable[Tensor],
    network: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ResponseStd:
    """Stream ``batches`` (normalised inputs, as the network takes them) through ``model`` in eval mode and return
    the pooled standard deviation of every 3x3 layer's response. ``progress(images so far)`` after each batch."""
    layers = response_layers(model)
    sums = {layer: torch.zeros(3, dtype=torch.float64) for layer in layers}  # count, sum, sum of squares

    def accumulate(layer: str):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            values = output.detach().double()
            moments = torch.stack(
                [torch.tensor(float(values.numel()), dtype=torch.float64), values.sum(), (values * values).sum()]
            )
            sums[layer] += moments.cpu()

        return hook

    images = 0
    device = next(model.parameters()).device
    with eval_mode(model), forward_hooks(model, [(layer, accumulate(layer)) for layer in layers]):
        for batch in batches:
            model(batch.to(device))
            images += len(batch)
            if progress is not None:
                progress(images)
    std = []
    for layer in layers:
        count, total, squares = sums[layer].tolist()
        mean = total / count
        std.append(max(squares / count - mean * mean, 0.0) ** 0.5)
    name = network or (model.card.arch.name if getattr(model, "card", None) else type(model).__name__)
    return ResponseStd(name, tuple(layers), tuple(std), images)
