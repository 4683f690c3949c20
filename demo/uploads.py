"""Visitors' own checkpoints: opened through ``resnet_core.load_checkpoint``, private to the session that opened them.

An opened checkpoint becomes a weight choice of its recognised architecture, named by a random token that only
the opening session is given (so it is never listed to, nor reachable by, another visitor). Its model lives in the
model cache like any other, within the same bound. When the browser tab closes, ``demo.unload`` calls
:func:`demo.app_state.forget_uploads` with the session's tokens; a session left open past
``RESNET_EXPLORER_UPLOADS_TTL`` reaches it through its state's ``delete_callback``. Either drops the models and
analyses (the kernel's) and the registry's entries and files (:func:`forget`, here).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from resnet_core.zoo.checkpoints import CheckpointError, CheckpointInfo, inspect_checkpoint
from resnet_core.zoo.file_kinds import not_a_checkpoint
from resnet_core.zoo.weights import file_sha256

__all__ = ["PREFIX", "Upload", "forget", "get", "is_upload", "open_upload", "session_tokens"]

PREFIX = "checkpoint:"  # weight choices that are a visitor's own checkpoint
SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".th")
# Taken too, to be told in one sentence what they are (resnet_core.zoo.file_kinds) rather than filtered silently.
NAMED_OTHERS = (".h5", ".hdf5", ".keras", ".onnx", ".pb", ".tflite", ".npy", ".zip")
LABEL_SUFFIXES = (".txt", ".json")


@dataclass(frozen=True)
class Upload:
    """One opened checkpoint: the private copy of its file (and labels), what it was recognised as."""

    token: str  # the weight choice, PREFIX + a random token
    session: str  # the Gradio session that opened it
    path: Path
    labels: Path | None
    sha256: str
    info: CheckpointInfo

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def arch(self) -> str:
        return self.info.recognition.arch

    @property
    def choice(self) -> tuple[str, str]:
        """(what the Weights box shows, its value)."""
        return f"{self.name} (your checkpoint)", self.token


_uploads: dict[str, Upload] = {}
_guard = threading.Lock()


def is_upload(weights: str | None) -> bool:
    return bool(weights) and weights.startswith(PREFIX)


def get(token: str) -> Upload:
    """The upload behind a weight choice; a ``LookupError`` once its session has ended."""
    with _guard:
        found = _uploads.get(token)
    if found is None:
        raise LookupError("that checkpoint was closed when its session ended: open it again under Your model")
    return found


def open_upload(
    checkpoint: str | Path,
    labels: str | Path | None = None,
    session: str = "",
    preprocess: dict | None = None,
    arch: str | None = None,
) -> Upload:
    """Recognise ``checkpoint`` (shapes only, no tensor read), keep a private copy, and register a new token.
    ``preprocess``: what the visitor said of how their network was fed (``Preprocess.changed``'s arguments);
    ``arch``: the architecture they asked for, where the keys fit several.

    Raises ``ValueError`` (``CheckpointError`` included) with one sentence for a file that is not a checkpoint of a
    ResNet we know, or labels that do not fit it.
    """
    checkpoint = Path(checkpoint)
    if checkpoint.suffix.lower() not in SUFFIXES:  # what the file is, where its first bytes say, else the suffixes
        kind = not_a_checkpoint(checkpoint) if checkpoint.is_file() and checkpoint.stat().st_size else None
        raise ValueError(kind or f"{checkpoint.name}: a checkpoint is one of {', '.join(SUFFIXES)}")
    if labels is not None and Path(labels).suffix.lower() not in LABEL_SUFFIXES:
        raise ValueError(f"{Path(labels).name}: class names come as .txt (one per line) or .json")
    key = secrets.token_hex(12)
    folder = _folder() / key  # one folder per opening: deleted whole with its session
    folder.mkdir(parents=True)
    try:
        path = _copy(checkpoint, folder / checkpoint.name)
        if labels:  # in a folder of its own, under its own name (the name a user sees in the status line)
            (folder / "labels").mkdir()
        kept_labels = _copy(Path(labels), folder / "labels" / Path(labels).name) if labels else None
        info = inspect_checkpoint(path, labels=kept_labels, arch=arch)
        if not info.recognition.recognised:
            raise CheckpointError(info.recognition.sentence())
        if preprocess and info.preprocess is not None:  # the recognised default, changed: no second read of the file
            info = replace(info, preprocess=info.preprocess.changed(**preprocess))
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    upload = Upload(PREFIX + key, session, path, kept_labels, file_sha256(path), info)
    with _guard:
        _uploads[upload.token] = upload
    return upload


def forget(tokens: list[str] | None) -> list[Upload]:
    """Drop checkpoints from the registry and their files from the disk; the uploads dropped, for the kernel to let
    go of what it holds of them (:func:`demo.app_state.forget_uploads`: their models, their analyses)."""
    with _guard:
        gone = [_uploads.pop(token) for token in tokens or [] if token in _uploads]
    for upload in gone:
        shutil.rmtree(upload.path.parent, ignore_errors=True)
    return gone


def session_tokens(session: str) -> list[str]:
    """Every checkpoint token a session opened."""
    with _guard:
        return [token for token, upload in _uploads.items() if upload.session == session]


def _folder() -> Path:
    return Path(tempfile.gettempdir()) / "resnet-explorer-uploads"


def _copy(source: Path, target: Path) -> Path:
    """A private copy Gradio's cache clean-up cannot take away: a hard link where possible, else a copy."""
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)
    return target
