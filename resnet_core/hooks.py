"""Temporary changes to a shared model that never outlive their ``with`` block: forward hooks and eval mode."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from torch import nn

__all__ = ["eval_mode", "forward_hooks"]

Hook = Callable[[nn.Module, tuple[Any, ...], Any], Any]


@contextmanager
def forward_hooks(model: nn.Module, hooks: Iterable[tuple[str, Hook]]) -> Iterator[None]:
    """Register ``(submodule name, hook)`` pairs; every handle is removed on exit, exception or not."""
    with ExitStack() as stack:
        for name, hook in hooks:
            # RemovableHandle is a context manager whose __exit__ removes the hook.
            stack.enter_context(model.get_submodule(name).register_forward_hook(hook))
        yield


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the ``with`` block, then every submodule's own mode back, exception or not.

    Batch-norm in train mode would use one batch's statistics and overwrite its running ones; a caller's model (the
    app's shared one, or a bare one in train mode) must come out exactly as it went in.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
