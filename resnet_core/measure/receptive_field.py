"""Theoretical receptive fields, read off the network's own layers: how far back each block's output can see.

A unit's field grows by ``(kernel - 1) x dilation x jump`` at every convolution or pooling window, where ``jump``
is the product of the strides before it (Araujo et al., 2019, "Computing receptive fields of convolutional
neural networks"). A residual block's output sees the union of its branch and its shortcut; the shortcut (identity,
a 1x1 projection, option A's subsample) never sees further than the branch's convolutions, so the branch sets the
size. Walking the modules rather than a table keeps every variant right (deep stem, average-pool shortcut, the
paper's stride on the first 1x1) without a special case. ResNeSt's split attention mixes in an average over the
whole map, so from its first block on every input pixel reaches a unit: the field says so (``global_context``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn
from torch.nn.modules.utils import _pair

from ..zoo.models import ResNet, SplitAttn, ZeroPadShortcut, _ResidualBlock

__all__ = ["ReceptiveField", "receptive_fields"]

# Layers that move the field: windows, and option A's subsample (a 1-pixel window with a stride).
_WINDOWED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, ZeroPadShortcut)


@dataclass(frozen=True)
class ReceptiveField:
    """Where one output unit of a layer looks in the input, along each side (the networks are square).

    ``size`` is the field's side in input pixels; ``jump`` the input pixels between neighbouring output units (the
    layer's total stride); ``start`` the input coordinate of the centre of output unit 0 (negative where padding
    puts it off the image). Unit ``i`` looks at ``start + i * jump +- (size - 1) / 2``, clipped to the image.
    ``global_context``: a layer before it averaged the whole map (ResNeSt's split attention), so every input pixel
    reaches the unit too, through a weighting; ``size`` is then the reach of the convolutions alone.
    """

    size: int
    jump: int
    start: float
    global_context: bool = False

    def then(self, module: nn.Module) -> ReceptiveField:
        """The field after one more windowed layer (a convolution, a pooling window, option A's subsample)."""
        kernel, stride = _pair(getattr(module, "kernel_size", 1))[0], _pair(module.stride)[0]
        dilation = _pair(getattr(module, "dilation", 1))[0]
        padding = _pair(getattr(module, "padding", 0))[0]
        return ReceptiveField(
            size=self.size + (kernel - 1) * dilation * self.jump,
            jump=self.jump * stride,
            start=self.start + ((kernel - 1) * dilation / 2 - padding) * self.jump,
            global_context=self.global_context,
        )

    def through(self, module: nn.Module, skip: str | None = None) -> ReceptiveField:
        """The field after every windowed layer inside ``module`` in forward (registration) order, leaving out the
        submodule named ``skip``."""
        field = self
        for name, layer in module.named_modules():
            inside_skipped = skip is not None and (name == skip or name.startswith(f"{skip}."))
            if inside_skipped:
                continue
            if isinstance(layer, _WINDOWED):
                field = field.then(layer)
            elif isinstance(layer, SplitAttn):
                field = replace(field, global_context=True)
        return field

    def region(self, index: int, extent: int) -> tuple[int, int]:
        """The input pixels ``[first, last)`` unit ``index`` sees along one side of an ``extent``-pixel input."""
        centre = self.start + index * self.jump
        first = centre - (self.size - 1) / 2
        return max(0, round(first)), min(extent, round(first + self.size))


def receptive_fields(model: ResNet) -> dict[str, ReceptiveField]:
    """The field of the stem's output and of every block's output, in forward order, as ``count_costs`` names its rows.

    The head has none: global average pooling sees the whole input.
    """
    field = ReceptiveField(size=1, jump=1, start=0.0)
    stem = model.feature_info[0]
    for part in stem.parts:
        field = field.through(model.get_submodule(part))
    fields = {"stem": field}
    for block in model.block_names():
        module = model.get_submodule(block)
        if not isinstance(module, _ResidualBlock):
            raise TypeError(f"{block!r} is a {type(module).__name__}, not a residual block")
        branch = field.through(module, skip="downsample")
        if module.shortcut and module.downsample is not None:  # an identity shortcut sees what the input saw
            shortcut = field.through(module.downsample)
            if shortcut.size > branch.size or shortcut.jump != branch.jump:
                raise ValueError(f"{block}: the shortcut sees further than the branch; no single field describes it")
        field = fields[block] = branch
    return fields
