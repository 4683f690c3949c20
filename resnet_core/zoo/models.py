"""The ResNet family as one configurable module, written to be read next to the paper.

Parameter and buffer names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``, ``downsample.0``, ``fc``)
and, for the deep-stem / average-pool / split-attention variants, timm (``conv1.0``, ``downsample.1``,
``conv2.fc1``), so the official checkpoints of both load with ``strict=True``. Modules without parameters
(``residual_add``, ``ZeroPadShortcut``) are ours: they add no state, so they cost no compatibility.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "PreActBasicBlock",
    "PreActBottleneck",
    "ResNestBottleneck",
    "ResNet",
    "ResidualAdd",
    "SplitAttn",
    "StageInfo",
    "ZeroPadShortcut",
]

StemType = Literal["", "deep", "cifar"]
DownsampleType = Literal["conv", "avg", "zeropad"]
ShortcutFrom = Literal["preact", "input"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution."""
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class ResidualAdd(nn.Module):
    """``F(x) + shortcut(x)``, or ``F(x)`` alone in a plain network.

    A module rather than an inline ``+=`` so that one forward hook sees both operands of the paper's
    ``y = F(x) + x``: the analysis reads the residual branch and the shortcut off its inputs.
    """

    def __init__(self, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled

    def forward(self, residual: Tensor, shortcut: Tensor | None) -> Tensor:
        if not self.enabled or shortcut is None:
            return residual
        return residual + shortcut

    def extra_repr(self) -> str:
        return f"enabled={self.enabled}"


PadPosition = Literal["both", "after"]


class ZeroPadShortcut(nn.Module):
    """The paper's option A: subsample by striding and pad the new channels with zeros (no parameters).

    ``pad="both"`` puts half the zero channels before the old ones and half after, as the published CIFAR-10
    checkpoints were trained; ``"after"`` appends them all (the degradation lab's digit nets were trained so). The
    position matters to a trained net: the next block's weights expect each input channel where it was trained.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int, pad: PadPosition = "both") -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(f"option A cannot shrink channels ({in_planes} -> {out_planes})")
        if pad not in ("both", "after"):
            raise ValueError(f"pad must be 'both' or 'after', got {pad!r}")
        extra = out_planes - in_planes
        self.channels_before = extra // 2 if pad == "both" else 0
        self.channels_after = extra - self.channels_before
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.channels_before, self.channels_after))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zeros before={self.channels_before}, after={self.channels_after}"


class _ResidualBlock(nn.Module):
    """What every block shares: the shortcut path and the merge ``F(x) + shortcut(x)`` (or ``F(x)`` when plain).

    Each kind says how many weighted layers its branch holds (``convs``, the paper's depth count), by how much
    it widens its planes (``expansion``) and whether it normalises before its convolutions (``preact``).
    """

    convs: int
    expansion: int
    preact = False
    last_layer = "bn"  # what ends the branch, numbered by ``convs`` (bn2, bn3): what zero_init_last zeroes

    def _init_shortcut(
        self, downsample: nn.Module | None, shortcut: bool, stride: int, in_planes: int, out_planes: int
    ) -> None:
        self.downsample = downsample
        self.shortcut = shortcut
        self.residual_add = ResidualAdd(shortcut)
        self.stride = stride
        self.in_planes, self.out_planes = in_planes, out_planes

    def shortcut_path(self) -> nn.Module:
        """What is left of this block without its residual branch (a lesion, Veit et al. 2016): its own shortcut,
        else the identity where the shape stays, else option A's parameter-free zero padding (a plain block has
        no shortcut of its own, so the cheapest shape-preserving path stands in)."""
        if self.downsample is not None:
            return self.downsample
        if self.stride == 1 and self.in_planes == self.out_planes:
            return nn.Identity()
        return ZeroPadShortcut(self.in_planes, self.out_planes, self.stride, pad="after")

    def zero_init_last(self) -> None:
        """Zero the branch's last layer (:attr:`last_layer`'s weight), so the block starts as its shortcut."""
        last = self.get_submodule(f"{self.last_layer}{self.convs}")
        assert isinstance(last, nn.BatchNorm2d | nn.Conv2d)
        nn.init.zeros_(last.weight)

    def _merge(self, x: Tensor, residual: Tensor) -> Tensor:
        if not self.shortcut:
            return self.residual_add(residual, None)
        return self.residual_add(residual, x if self.downsample is None else self.downsample(x))


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions: the block of ResNet-18/34 and of the CIFAR networks."""

    expansion = 1
    convs = 2

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        shortcut: bool = True,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self._init_shortcut(downsample, shortcut, stride, inplanes, planes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(self._merge(x, out))


class _PreActBlock(_ResidualBlock):
    """What the pre-activation blocks share (He et al. 2016, "Identity Mappings in Deep Residual Networks"): BN and
    ReLU come before each convolution and nothing follows the sum, so from block to block the shortcut is a clean
    identity. A projection reads the block's pre-activated input (``shortcut_from="preact"``, as the paper's code
    and the Wide ResNets do) or its raw input (``"input"``, RobustBench's ``PreActBlock``): the same weights, so
    the same keys, but not the same function."""

    preact = True
    last_layer = "conv"  # a pre-activation branch ends in a convolution, not a BN
    shortcut_from: ShortcutFrom

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        shortcut: bool = True,
        stride_in_1x1: bool = False,
        shortcut_from: ShortcutFrom = "preact",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if shortcut_from not in ("preact", "input"):
            raise ValueError(f"shortcut_from must be 'preact' or 'input', got {shortcut_from!r}")
        self.shortcut_from = shortcut_from
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self._init_branch(inplanes, planes, stride, groups, base_width, stride_in_1x1)
        # Wide ResNets' dropout before the last convolution: no keys, and nothing at evaluation.
        self.drop = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        self._init_shortcut(downsample, shortcut, stride, inplanes, planes * self.expansion)

    def _init_branch(
        self, inplanes: int, planes: int, stride: int, groups: int, base_width: int, stride_in_1x1: bool
    ) -> None:
        raise NotImplementedError

    @property
    def projects_preactivation(self) -> bool:
        """Whether the shortcut is a projection of the pre-activated input (not the identity, not the raw input)."""
        return self.downsample is not None and self.shortcut_from == "preact"

    def _merge_preact(self, x: Tensor, pre: Tensor, residual: Tensor) -> Tensor:
        return self._merge(pre if self.projects_preactivation else x, residual)

    def shortcut_path(self) -> nn.Module:
        """As a post-activation block's, except that a projection reading the pre-activation keeps its BN-ReLU."""
        path = super().shortcut_path()
        return nn.Sequential(self.bn1, self.relu, path) if self.projects_preactivation else path

    def extra_repr(self) -> str:
        return f"shortcut_from={self.shortcut_from}" if self.downsample is not None else ""


class PreActBasicBlock(_PreActBlock):
    """Two 3x3 convolutions, each after its BN-ReLU: PreActResNet-18/34 and the Wide ResNets' block."""

    expansion = 1
    convs = 2

    def _init_branch(
        self, inplanes: int, planes: int, stride: int, groups: int, base_width: int, stride_in_1x1: bool
    ) -> None:
        if groups != 1 or base_width != 64:
            raise ValueError("PreActBasicBlock supports only groups=1 and base_width=64")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.drop(self.relu2(self.bn2(self.conv1(pre)))))
        return self._merge_preact(x, pre, out)


class PreActBottleneck(_PreActBlock):
    """1x1, 3x3, 1x1, each after its BN-ReLU: PreActResNet-50 and the paper's ResNet-164 and -1001 on CIFAR.
    The stride sits on the 3x3 (``stride_in_1x1`` moves it to the first 1x1)."""

    expansion = 4
    convs = 3

    def _init_branch(
        self, inplanes: int, planes: int, stride: int, groups: int, base_width: int, stride_in_1x1: bool
    ) -> None:
        width = int(planes * (base_width / 64.0)) * groups
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(inplanes, width, stride_1x1)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(width, planes * self.expansion)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        out = self.conv3(self.drop(self.relu3(self.bn3(out))))
        return self._merge_preact(x, pre, out)


class Bottleneck(_ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand: the block of ResNet-50/101/152, ResNeXt and Wide ResNet.

    ``stride_in_1x1=False`` puts the stride on the 3x3 (torchvision's "V1.5", Bag of Tricks' ResNet-B);
    ``True`` puts it on the first 1x1 as in the paper (ResNet-A), which skips three quarters of the input.
    """

    expansion = 4
    convs = 3

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        shortcut: bool = True,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(inplanes, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self._init_shortcut(downsample, shortcut, stride, inplanes, planes * self.expansion)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self._merge(x, out))


def _make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10% (timm's rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SplitAttn(nn.Module):
    """ResNeSt's split attention: ``radix`` parallel 3x3 paths mixed by a softmax over a pooled descriptor."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, radix: int = 2) -> None:
        super().__init__()
        self.radix = radix
        self.groups = groups
        mid = out_channels * radix
        attn = _make_divisible(in_channels * radix * 0.25, min_value=32)
        self.conv = nn.Conv2d(in_channels, mid, 3, stride, 1, groups=groups * radix, bias=False)
        self.bn0 = nn.BatchNorm2d(mid)
        self.act0 = nn.ReLU(inplace=True)
        self.fc1 = nn.Conv2d(out_channels, attn, 1, groups=groups)
        self.bn1 = nn.BatchNorm2d(attn)
        self.act1 = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(attn, mid, 1, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act0(self.bn0(self.conv(x)))
        batch, channels, height, width = x.shape
        splits = x.reshape(batch, self.radix, channels // self.radix, height, width)
        pooled = splits.sum(dim=1).mean((2, 3), keepdim=True)
        logits = self.fc2(self.act1(self.bn1(self.fc1(pooled))))
        # logits are laid out (groups, radix, c); the softmax runs across the radix paths.
        logits = logits.view(batch, self.groups, self.radix, -1).transpose(1, 2)
        weights = (F.softmax(logits, dim=1) if self.radix > 1 else torch.sigmoid(logits)).reshape(batch, -1)
        weights = weights.view(batch, self.radix, channels // self.radix, 1, 1)
        return (splits * weights).sum(dim=1)


class ResNestBottleneck(_ResidualBlock):
    """ResNeSt's bottleneck: split attention in place of the 3x3, a 3x3 average pool carrying the stride."""

    expansion = 4
    convs = 3

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        shortcut: bool = True,
        stride_in_1x1: bool = False,
        radix: int = 2,
    ) -> None:
        super().__init__()
        if stride_in_1x1:
            raise ValueError("ResNeSt strides in its average pool; stride_in_1x1 does not apply")
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = SplitAttn(width, width, stride=1, groups=groups, radix=radix)
        self.avd_last = nn.AvgPool2d(3, stride, padding=1) if stride > 1 else None
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.act3 = nn.ReLU(inplace=True)
        self._init_shortcut(downsample, shortcut, stride, inplanes, planes * self.expansion)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.act1(self.bn1(self.conv1(x))))
        if self.avd_last is not None:
            out = self.avd_last(out)
        out = self.bn3(self.conv3(out))
        return self.act3(self._merge(x, out))


Block = type[BasicBlock] | type[Bottleneck] | type[ResNestBottleneck] | type[PreActBasicBlock] | type[PreActBottleneck]


@dataclass(frozen=True)
class StageInfo:
    """One row of a network's description of itself (what timm calls ``feature_info``).

    Everything that walks a network (hooks, Grad-CAM layers, pick-lists, cost groups, lesions, tests) reads this
    instead of assuming four ImageNet stages, so a 3-stage CIFAR net needs no special case anywhere.
    """

    name: str  # "stem", "layer1", ...
    module: str  # the submodule whose output is this stage's output
    channels: int
    reduction: int  # input pixels per output pixel along each side
    blocks: tuple[str, ...] = ()  # residual blocks in forward order ("layer1.0", ...); none for the stem
    parts: tuple[str, ...] = ()  # the submodules that make it up (cost groups)


class ResNet(nn.Module):
    """One configurable ResNet: every architecture of the project is a set of keyword arguments.

    Args:
        block: the residual block class.
        layers: blocks per stage, e.g. ``[3, 4, 6, 3]`` for ResNet-50.
        num_classes, in_chans: classifier outputs and input channels.
        groups, width_per_group: ResNeXt cardinality and width (Wide ResNet doubles the width).
        widths: stage widths before expansion (``(64, 128, 256, 512)`` on ImageNet, ``(16, 32, 64)`` on CIFAR).
        stem_type: ``""`` 7x7 conv + max-pool; ``"deep"`` three 3x3 convs + max-pool (ResNet-C/D);
            ``"cifar"`` one 3x3 conv at stride 1 and no pool (the paper's section 4.2).
        stem_width: width of the deep stem's first two convolutions (default 64), or of the CIFAR stem's one
            (default ``widths[0]``; a Wide ResNet's stem stays 16 wide while its first stage widens).
        stem_bias: a bias on the CIFAR stem's convolution (some training repositories put one there).
        downsample: how the shortcut changes shape: ``"conv"`` strided 1x1 projection (option B),
            ``"avg"`` average pool then 1x1 (ResNet-D), ``"zeropad"`` subsample + zero channels (option A).
        zero_pad: where option A puts its zero channels (see :class:`ZeroPadShortcut`).
        stride_in_1x1: put the bottleneck's stride on its first 1x1 (the paper's original, ResNet-A).
        shortcut: ``False`` builds the paper's plain twin: the same layers without any shortcut.
        zero_init_residual: start every residual branch's last layer at zero, so each block starts as the identity.
            By default a pre-activation network does (timm's ``zero_init_last``): nothing normalises its sum, so
            at random initialisation each block would double the stream's variance, and ResNet-1001 would
            overflow; a post-activation one does not (torchvision's default).
        final_norm: close a pre-activation network with BN-ReLU before the pooling (its blocks end in a bare sum):
            the last stage's output, the one every view reads, is then that activation.
        block_kwargs: extra block options (ResNeSt's ``radix``).
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        groups: int = 1,
        width_per_group: int = 64,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_type: StemType = "",
        stem_width: int | None = None,
        stem_bias: bool = False,
        downsample: DownsampleType = "conv",
        zero_pad: PadPosition = "both",
        stride_in_1x1: bool = False,
        shortcut: bool = True,
        zero_init_residual: bool | None = None,
        final_norm: bool = False,
        block_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"layers {list(layers)} and widths {list(widths)} must have the same length")
        if stem_bias and stem_type != "cifar":
            raise ValueError("stem_bias is an option of the CIFAR stem (stem_type='cifar')")
        preact = self._preact = block.preact
        if final_norm and not preact:
            raise ValueError("final_norm closes a pre-activation network; a post-activation block ends in its own ReLU")
        self.groups = groups
        self.base_width = width_per_group
        self.shortcut = shortcut
        self._downsample_type = downsample
        self._zero_pad = zero_pad
        self.in_chans = in_chans
        # Set by create_model (weights, preprocessing, labels); None for a bare module.
        # What create_model knows about the weights (a resnet_core.zoo.create.ModelCard), set there; untyped here, as
        # timm's pretrained_cfg, so the model never imports the code that builds it.
        self.card: Any = None
        self._stride_in_1x1 = stride_in_1x1
        self._block_kwargs = dict(block_kwargs or {})

        if stem_type == "deep":
            deep_width = stem_width or 64
            self.inplanes = deep_width * 2
            self.conv1: nn.Module = nn.Sequential(
                conv3x3(in_chans, deep_width, stride=2),
                nn.BatchNorm2d(deep_width),
                nn.ReLU(inplace=True),
                conv3x3(deep_width, deep_width),
                nn.BatchNorm2d(deep_width),
                nn.ReLU(inplace=True),
                conv3x3(deep_width, self.inplanes),
            )
        elif stem_type == "cifar":
            self.inplanes = stem_width or widths[0]
            self.conv1 = nn.Conv2d(in_chans, self.inplanes, 3, padding=1, bias=stem_bias)
        elif stem_type == "":
            self.inplanes = 64
            self.conv1 = nn.Conv2d(in_chans, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            raise ValueError(f"unknown stem_type {stem_type!r}; expected '', 'deep' or 'cifar'")
        # A pre-activation network's first block normalises the stem's convolution itself.
        self.bn1: nn.Module = nn.Identity() if preact else nn.BatchNorm2d(self.inplanes)
        self.relu: nn.Module = nn.Identity() if preact else nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if stem_type == "cifar" else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        reduction = 1 if stem_type == "cifar" else 4
        stem_parts = ("conv1", "bn1", "relu", "maxpool")
        info = [StageInfo("stem", "maxpool", self.inplanes, reduction, parts=stem_parts)]
        for index, (planes, depth) in enumerate(zip(widths, layers, strict=True)):
            name, stride = f"layer{index + 1}", 1 if index == 0 else 2
            self.add_module(name, self._make_layer(block, planes, depth, stride))
            reduction *= stride
            blocks = tuple(f"{name}.{i}" for i in range(depth))
            info.append(StageInfo(name, name, self.inplanes, reduction, blocks, (name,)))
        # The closing BN-ReLU belongs to the head's costs, and its output is the last stage's: what Grad-CAM reads.
        self.final_bn: nn.Module = nn.BatchNorm2d(self.inplanes) if final_norm else nn.Identity()
        self.final_relu: nn.Module = nn.ReLU() if final_norm else nn.Identity()
        if final_norm:
            info[-1] = replace(info[-1], module="final_relu")
            self.head_parts = ("final_bn", "final_relu", *self.head_parts)
        self.feature_info: tuple[StageInfo, ...] = tuple(info)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = self.inplanes
        self.fc = nn.Linear(self.inplanes, num_classes)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)
        if preact if zero_init_residual is None else zero_init_residual:
            for module in self.modules():
                if isinstance(module, _ResidualBlock):
                    module.zero_init_last()

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        out_planes = planes * block.expansion
        downsample = None
        if self.shortcut and (stride != 1 or self.inplanes != out_planes):
            downsample = self._make_downsample(self.inplanes, out_planes, stride)
        options = dict(
            groups=self.groups,
            base_width=self.base_width,
            shortcut=self.shortcut,
            stride_in_1x1=self._stride_in_1x1,
            **self._block_kwargs,
        )
        layers = [block(self.inplanes, planes, stride, downsample, **options)]
        self.inplanes = out_planes
        layers += [block(self.inplanes, planes, **options) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _make_downsample(self, in_planes: int, out_planes: int, stride: int) -> nn.Module:
        if self._downsample_type == "zeropad":
            return ZeroPadShortcut(in_planes, out_planes, stride, self._zero_pad)
        # A pre-activation projection reads a normalised input and feeds a bare sum: it has no BN of its own.
        norm = [] if self._preact else [nn.BatchNorm2d(out_planes)]
        if self._downsample_type == "avg":
            pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
            return nn.Sequential(pool, conv1x1(in_planes, out_planes), *norm)
        if self._downsample_type == "conv":
            return nn.Sequential(conv1x1(in_planes, out_planes, stride), *norm)
        raise ValueError(f"unknown downsample {self._downsample_type!r}; expected 'conv', 'avg' or 'zeropad'")

    head_parts: tuple[str, ...] = ("avgpool", "fc")

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The residual stages, ``layer1`` ... (the stem is ``feature_info[0]``)."""
        return tuple(stage.name for stage in self.feature_info[1:])

    def block_names(self) -> list[str]:
        """Every residual block in forward order: ``layer1.0``, ``layer1.1``, ..."""
        return [block for stage in self.feature_info for block in stage.blocks]

    @property
    def block_stages(self) -> dict[str, str]:
        """Every residual block and the stage it belongs to, as the network describes itself."""
        return {block: stage.name for stage in self.feature_info for block in stage.blocks}

    def stage_of(self, block: str) -> str:
        """The stage a residual block belongs to."""
        if block not in self.block_stages:
            raise ValueError(f"{block!r} is not a block; expected one of {self.block_names()}")
        return self.block_stages[block]

    def stage(self, name: str) -> StageInfo:
        for stage in self.feature_info:
            if stage.name == name:
                return stage
        raise ValueError(f"unknown stage {name!r}; expected one of {[s.name for s in self.feature_info]}")

    def stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for name in self.stage_names:
            x = self.get_submodule(name)(x)
        return self.final_relu(self.final_bn(x))

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_from(self, where: str, x: Tensor) -> Tensor:
        """Logits from the output of ``where``, a stage ("stem", "layerN") or a residual block ("layerN.i"): the
        rest of the network only."""
        names = [info.name for info in self.feature_info]
        stage = self.stage_of(where) if where in self.block_stages else self.stage(where).name
        if stage != where:  # a block: the blocks after it in its stage first
            blocks = self.stage(stage).blocks
            for block in blocks[blocks.index(where) + 1 :]:
                x = self.get_submodule(block)(x)
        for name in names[names.index(stage) + 1 :]:
            x = self.get_submodule(name)(x)
        # The last stage's output already passed the closing BN-ReLU, where there is one; a block's never has.
        if stage != names[-1] or stage != where:
            x = self.final_relu(self.final_bn(x))
        return self.forward_head(x)
