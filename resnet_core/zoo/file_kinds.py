"""What a file is, from its first bytes, before anything tries to unpickle it.

A file handed to the checkpoint reader is often not a checkpoint: the 133-byte pointer a clone without git-lfs
leaves in place of the weights, the HTML page a "download" link led to, a Keras HDF5 file, an ONNX export. Each gets
one true sentence saying what it is and what to do, instead of the unpickler's error. Files with no signature are
known by their suffix (ONNX, TensorFlow), and only files that could be a checkpoint (a torch zip or pickle, a
safetensors file) are read further.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from pathlib import Path

__all__ = ["not_a_checkpoint"]

_SAVE = "save the weights from PyTorch with torch.save(model.state_dict(), 'model.pth')"
_LFS = b"version https://git-lfs.github.com/spec/v1"
_HDF5 = b"\x89HDF\r\n\x1a\n"
_NUMPY = b"\x93NUMPY"
_ZIP = b"PK\x03\x04"
_PICKLE = b"\x80"  # protocol 2 and later begin with PROTO
_SUFFIXES = {
    ".onnx": "an ONNX model, which this explorer does not run; open the PyTorch model it was exported from",
    ".pb": "a TensorFlow graph, not a PyTorch checkpoint; " + _SAVE,
    ".tflite": "a TensorFlow Lite model, not a PyTorch checkpoint; " + _SAVE,
    ".keras": "a Keras model, not a PyTorch checkpoint; " + _SAVE,
    ".index": "a TensorFlow checkpoint index, not a PyTorch checkpoint; " + _SAVE,
}


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size:,} bytes"


def _is_safetensors(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then the JSON header itself."""
    return len(head) > 8 and 0 < int.from_bytes(head[:8], "little") < size and head[8:9] == b"{"


def _zip_kind(path: Path) -> str | None:
    """A torch checkpoint is a zip holding ``<name>/data.pkl``; any other zip is named by what it holds."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None  # cut short: the reader says so
    if any(name.endswith("data.pkl") for name in names):
        return None
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    files = f"{len(names)} file" + ("" if len(names) == 1 else "s")
    return f"a zip archive of {files} ({shown}), not a PyTorch checkpoint; unpack it and open the weights"


def not_a_checkpoint(path: str | Path) -> str | None:
    """One sentence on what ``path`` is, where its first bytes (or, without a signature, its suffix) say it is not
    a PyTorch or safetensors checkpoint; ``None`` where it may be one (the reader then decides)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(512)
    name = path.name
    if head.startswith(_LFS):
        found = re.search(rb"\nsize (\d+)", head)
        target = f" to a {_megabytes(int(found.group(1)))} file" if found else ""
        return (
            f"{name} is a Git LFS pointer{target}, not the file itself: run `git lfs pull` in the repository it "
            "came from (or download the file from the repository's web page)"
        )
    if head.startswith(_HDF5):
        return f"{name} is an HDF5 file (Keras or TensorFlow weights), not a PyTorch checkpoint; {_SAVE}"
    if head.startswith(_NUMPY):
        return f"{name} is a NumPy array file (.npy), not a checkpoint of named tensors; {_SAVE}"
    if head.startswith(_ZIP):
        kind = _zip_kind(path)
        return f"{name} is {kind}" if kind else None
    if head.startswith(_PICKLE) or _is_safetensors(head, size):
        return None
    if path.suffix.lower() in _SUFFIXES:
        return f"{name} is {_SUFFIXES[path.suffix.lower()]}"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")):
        return (
            f"{name} is a web page ({_megabytes(size)}), not a checkpoint: the link it came from led to a page, "
            "so download the file itself (on Hugging Face the 'resolve' link, on GitHub the 'raw' one)"
        )
    try:  # a character cut at the 512th byte is not an error
        decoded = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None  # binary without a signature we know: the reader decides
    if decoded and all(char.isprintable() or char in "\r\n\t" for char in decoded):
        first = decoded.strip().splitlines()[0][:60] if decoded.strip() else ""
        return f"{name} is a text file ({_megabytes(size)}, beginning '{first}'), not a checkpoint; {_SAVE}"
    return None
