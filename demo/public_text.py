"""Text the app shows to every visitor: the library's messages without the server's file system in them.

The library names files by their absolute path, which is what a person at the command line needs. A visitor of a
hosted app needs to know which weights and from what kind of place (shipped with the app, a cache, a URL), not where
the server keeps its files, so every library message that reaches a screen, a JSON payload or a report passes here.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from resnet_core.assets import ASSETS_DIR

__all__ = ["public", "without_paths"]

# An absolute POSIX path: a slash that starts a word (not the second slash of a URL, not "1/2" or "and/or"), then
# one or more non-empty segments.
_FILE_URL = re.compile(r"""file://(/[^\s"'()<>\[\],;`|*]+)""")
_PATH = re.compile(r"""(?<![\w.~$:/\\])/[^\s/"'()<>\[\],;`|*]+(?:/[^\s/"'()<>\[\],;`|*]+)*/?""")


def _known_places() -> tuple[tuple[str, str], ...]:
    """Folders a message may name, longest first, and what a visitor is told instead ("": the file's name only)."""
    from huggingface_hub import constants

    places = {
        str(Path(torch.hub.get_dir())): "the torch.hub cache",
        str(Path(constants.HF_HUB_CACHE)): "the Hugging Face cache",
        str(ASSETS_DIR): "",  # said already: "shipped with ResNet Explorer"
    }
    return tuple(sorted(places.items(), key=lambda item: -len(item[0])))


def without_paths(text: str) -> str:
    """``text`` with every absolute path replaced by what it is: a known place by its name, any file by its name."""
    text = _FILE_URL.sub(lambda match: Path(match.group(1)).name, text)  # a file:// URL is a path too
    for folder, name in _known_places():
        text = re.sub(re.escape(folder) + r"(/[^\s\"'()<>\[\],;`|*]*)?", lambda m, n=name: _in_place(m, n), text)
    return _PATH.sub(lambda match: Path(match.group(0).rstrip("/")).name, text)


def _in_place(match: re.Match, place: str) -> str:
    name = Path((match.group(1) or "").strip("/")).name
    if not name or "." not in name:  # the folder itself, or a folder inside it
        return place or "the files shipped with ResNet Explorer"
    return f"{name} in {place}" if place else name


def public(value: object) -> object:
    """A JSON-ready value with every string in it passed through :func:`without_paths`."""
    if isinstance(value, str):
        return without_paths(value)
    if isinstance(value, dict):
        return {key: public(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [public(item) for item in value]
    return value
