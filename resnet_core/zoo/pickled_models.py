"""Whole pickled ResNets (``torch.save(model)``, what most tutorials do), read without running any of their code.

A pickle of a module names the classes it was made of and holds their attributes; rebuilding it for real calls
those classes, and whatever else the file names. ``weights_only`` loading refuses all of them; allowing the real
classes (``torch.serialization.safe_globals``) would still let a file call an allowed class with its own arguments
(a 1.3 KB file can make the loader allocate an ``nn.Linear(8192, 8192)``) and run hooks stored in it when
``state_dict()`` is called. So each class a known ResNet is made of (torch.nn's layers, torchvision's, timm's and
ResNet Explorer's own) is read as a *stand-in*: an object that only keeps the tensors it is given and its children.
A constructor call, which no saved model makes, is refused; stored hooks are dropped unread. The class names alone
decide what is read: a file asking for any other class (a ResNet written in the user's own script, whose forward
pass only its code knows) is refused with those names, before anything is unpickled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["KNOWN_CLASSES", "PickledModel", "PickledModelError", "read_pickled_model", "state_of"]

_NN = "torch.nn.modules."
_TORCH_LAYERS = (
    "conv.Conv2d",
    "batchnorm.BatchNorm2d",
    "activation.ReLU",
    "pooling.MaxPool2d",
    "pooling.AvgPool2d",
    "pooling.AdaptiveAvgPool2d",
    "linear.Linear",
    "linear.Identity",
    "dropout.Dropout",
    "flatten.Flatten",
    "container.Sequential",
)
_OURS = "resnet_core.zoo.models."
# The modules of the ResNets whose forward pass ResNet Explorer reproduces exactly (the zoo's references).
MODULES = (
    *(_NN + name for name in _TORCH_LAYERS),
    "torchvision.models.resnet.ResNet",
    "torchvision.models.resnet.BasicBlock",
    "torchvision.models.resnet.Bottleneck",
    "timm.models.resnet.ResNet",
    "timm.models.resnet.BasicBlock",
    "timm.models.resnet.Bottleneck",
    "timm.layers.adaptive_avgmax_pool.SelectAdaptivePool2d",
    *(_OURS + name for name in ("ResNet", "BasicBlock", "Bottleneck", "ResidualAdd", "ZeroPadShortcut")),
)
# Plain data a pickled ResNet Explorer model carries beside its modules (its card): read, then dropped.
RECORDS = (
    "resnet_core.zoo.models.StageInfo",
    "resnet_core.zoo.architectures.ArchSpec",
    "resnet_core.zoo.create.ModelCard",
    "resnet_core.zoo.preprocess.Preprocess",
    "resnet_core.zoo.label_spaces.LabelSpace",
    "resnet_core.zoo.recognition.Recognition",
)
VALUES = ("torchvision.transforms.functional.InterpolationMode",)  # enums: pickled as a call with their value
KNOWN_CLASSES = frozenset((*MODULES, *RECORDS, *VALUES))

_LOCK = threading.Lock()  # torch's allowlist is one set for the whole process


class PickledModelError(Exception):
    """A pickled model that is not read: one sentence saying why."""


class _StandIn:
    """What a pickled object is read as: never the class the file names, only what the file gave it."""

    stands_for = ""

    def __init__(self, *args: object, **kwargs: object) -> None:  # NEWOBJ calls __new__ alone; only a call gets here
        raise PickledModelError(
            f"asks the loader to call {self.stands_for}(...) with arguments of its own, which no saved model does"
        )

    def __setstate__(self, state: object) -> None:
        attributes = state if isinstance(state, dict) else {}
        self.parameters = dict(attributes.get("_parameters") or {})
        self.buffers = dict(attributes.get("_buffers") or {})
        self.skipped = set(attributes.get("_non_persistent_buffers_set") or ())
        self.children = dict(attributes.get("_modules") or {})  # hooks and every other attribute: not kept


class _Value(_StandIn):
    """An enum member, pickled as a call of its class with its value: kept as that value."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        if kwargs or len(args) != 1 or not isinstance(args[0], (str, int)):
            super().__init__(*args, **kwargs)


_STAND_INS: dict[str, type[_StandIn]] = {
    name: type(name.rsplit(".", 1)[-1], (_Value if name in VALUES else _StandIn,), {"stands_for": name})
    for name in KNOWN_CLASSES
}  # one class per name: the unpickler checks a class by identity, and the record must say which it stood for


@dataclass(frozen=True)
class PickledModel:
    """A whole pickled module as read: its class and its state dict in ``state_dict()``'s order."""

    stands_for: str
    state: dict[str, torch.Tensor]


def state_of(content: object) -> PickledModel | None:
    """A pickled module's tensors, where ``content`` (as :func:`read_pickled_model` returned it) is one."""
    if not isinstance(content, _StandIn) or content.stands_for not in MODULES:
        return None
    return PickledModel(content.stands_for, dict(_tensors(content, "")))


def read_pickled_model(path: Path, mmap: bool) -> object:
    """A pickle of whole modules, every module read as a stand-in (see the module's docstring): the content with
    each module in place of the original. Raises :class:`PickledModelError` for a file that asks for any other
    class, calls one, or is not such a pickle."""
    try:
        asked = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception as error:  # the legacy (pre-1.6) format, or not a torch file at all
        raise PickledModelError(f"holds pickled objects that cannot be listed ({type(error).__name__})") from None
    unknown = sorted(asked - KNOWN_CLASSES)
    if unknown:
        shown = ", ".join(unknown[:4]) + (f" and {len(unknown) - 4} more" if len(unknown) > 4 else "")
        raise PickledModelError(
            f"holds pickled objects of {shown}, which only running code from the file could rebuild "
            "(ResNet Explorer reads whole pickled torchvision, timm and ResNet Explorer ResNets without it)"
        )
    allowed: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [(_STAND_INS[n], n) for n in sorted(asked)]
    with _LOCK, torch.serialization.safe_globals(allowed):
        if mmap:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:  # before torch 1.6's zip format: cannot be mapped
                if "mmap" not in str(error):
                    raise
        return torch.load(path, map_location="cpu", weights_only=True)


def _tensors(module: _StandIn, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    """``nn.Module.state_dict``'s order: parameters, persistent buffers, then each child's, depth first."""
    for name, tensor in module.parameters.items():
        if isinstance(tensor, torch.Tensor):
            yield prefix + name, tensor.detach()
    for name, tensor in module.buffers.items():
        if isinstance(tensor, torch.Tensor) and name not in module.skipped:
            yield prefix + name, tensor
    for name, child in module.children.items():
        if isinstance(child, _StandIn):
            yield from _tensors(child, f"{prefix}{name}.")
