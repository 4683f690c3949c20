"""Forward hooks that never outlive the ``with`` block that registered them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from torch import nn

__all__ = ["forward_hooks"]

Hook = Callable[[nn.Module, tuple[Any, ...], Any], Any]


@contextmanager
def forward_hooks(model: nn.Module, hooks: Iterable[tuple[str, Hook]]) -> Iterator[None]:
    """Register ``(submodule name, hook)`` pairs; every handle is removed on exit, exception or not."""
    with ExitStack() as stack:
        for name, hook in hooks:
            # RemovableHandle is a context manager whose __exit__ removes the hook.
            stack.enter_context(model.get_submodule(name).register_forward_hook(hook))
        yield
