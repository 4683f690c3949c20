"""Forward hooks that never outlive the ``with`` block that registered them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from torch import nn

__all__ = ["block_names", "forward_hooks", "stage_modules"]

Hook = Callable[[nn.Module, tuple[Any, ...], Any], Any]


@contextmanager
def forward_hooks(model: nn.Module, hooks: Iterable[tuple[str, Hook]]) -> Iterator[None]:
    """Register ``(submodule name, hook)`` pairs; every handle is removed on exit, exception or not."""
    with ExitStack() as stack:
        for name, hook in hooks:
            # RemovableHandle is a context manager whose __exit__ removes the hook.
            stack.enter_context(model.get_submodule(name).register_forward_hook(hook))
        yield


def stage_modules(model: nn.Module) -> dict[str, str]:
    """Display name -> submodule whose output is that stage's output ("stem" is the max-pool's output)."""
    stages = {"stem": "maxpool"}
    stages.update({name: name for name in getattr(model, "stage_names", ())})
    return stages


def block_names(model: nn.Module) -> list[str]:
    """Residual blocks in forward order: ``layer1.0``, ``layer1.1``, ..."""
    return [f"{stage}.{index}" for stage in model.stage_names for index in range(len(model.get_submodule(stage)))]
