"""Registries built from lists of entries refuse a name given twice: a dict comprehension would keep the last one
silently, and a second ``resnet50`` (a variant added as one more line of data) would replace the first."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["registry"]

T = TypeVar("T")


def registry(entries: Iterable[T], name: Callable[[T], str], what: str) -> dict[str, T]:
    """``entries`` by ``name``, in their order; a ``ValueError`` naming the first name given twice."""
    built: dict[str, T] = {}
    for entry in entries:
        key = name(entry)
        if key in built:
            raise ValueError(f"two {what} are named {key!r}: names must be unique")
        built[key] = entry
    return built
