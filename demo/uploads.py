"""Visitors' own files, private to the session that brought them: checkpoints (opened through
``resnet_core.load_checkpoint``) and zips of images (unpacked through ``resnet_core.data.archives``).

An opened checkpoint becomes a weight choice of its recognised architecture, named by a random token that only
the opening session is given (so it is never listed to, nor reachable by, another visitor). Its model lives in the
model cache like any other, within the same bound. A zip of images becomes a data set in a folder of its own, and
the data-set runs over it (or with a checkpoint) write their rows there too, never to the shared cache. When the
browser tab closes, ``demo.unload`` calls :func:`demo.app_state.forget_uploads` with the session's tokens; a session
left open past ``RESNET_EXPLORER_UPLOADS_TTL`` reaches it through its states' ``delete_callback``. Either drops the
models and analyses (the kernel's) and the registry's entries and folders (:func:`forget`, here).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from resnet_core.data.archives import ArchiveLimits, Unpacked, unpack_images
from resnet_core.zoo.checkpoints import CheckpointError, CheckpointInfo, inspect_checkpoint
from resnet_core.zoo.file_kinds import not_a_checkpoint
from resnet_core.zoo.weights import file_sha256

__all__ = [
    "IMAGES",
    "PREFIX",
    "Images",
    "Upload",
    "forget",
    "get",
    "get_images",
    "in_use",
    "is_upload",
    "open_images",
    "open_upload",
    "session_checkpoints",
    "session_images",
    "session_tokens",
]

PREFIX = "checkpoint:"  # weight choices that are a visitor's own checkpoint
IMAGES = "images:"  # a visitor's zip of images, unpacked
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

    @property
    def as_network(self) -> tuple[str, str]:
        """(what a list of networks shows, its value ``ARCH@TOKEN``): how Compare and the Data set tab offer it."""
        return f"{self.name} (your {self.arch})", f"{self.arch}@{self.token}"

    @property
    def folder(self) -> Path:
        """The folder of this opening: the file, its labels, and the data-set runs made with it."""
        return self.path.parent


@dataclass(frozen=True)
class Images:
    """One zip of images, unpacked: the data set it is, in a folder of its own, and the zip's digest (the same zip
    uploaded again in the session is not unpacked twice)."""

    token: str  # IMAGES + a random token
    session: str
    name: str  # the zip's file name, as the visitor knows it
    sha256: str
    unpacked: Unpacked
    archive: str  # the uploaded file it was unpacked from (Gradio's cache names a file by its content)

    @property
    def folder(self) -> Path:
        """The folder of this upload: the images under ``images/``, the data-set runs over them under ``runs/``."""
        return self.unpacked.folder.parent

    def describe(self) -> str:
        return f"{self.name}: {self.unpacked.describe()}"


_uploads: dict[str, Upload | Images] = {}
_busy: Counter[str] = Counter()  # token -> the runs reading or writing its folder now
_doomed: dict[str, Path] = {}  # folders of uploads forgotten while busy: deleted when their last run ends
Kept = TypeVar("Kept", Upload, Images)
_guard = threading.Lock()


def is_upload(weights: str | None) -> bool:
    return bool(weights) and weights.startswith(PREFIX)


def get(token: str) -> Upload:
    """The upload behind a weight choice; a ``LookupError`` once its session has ended."""
    return _registered(
        token, Upload, "that checkpoint was closed when its session ended: open it again under Your model"
    )


def get_images(token: str) -> Images:
    """The zip of images behind a token; a ``LookupError`` once its session has ended."""
    return _registered(token, Images, "those images were deleted when their session ended: upload the zip again")


def _registered(token: str, kind: type[Kept], gone: str) -> Kept:
    with _guard:
        found = _uploads.get(token)
    if not isinstance(found, kind):
        raise LookupError(gone)
    return found


def open_images(archive: str | Path, session: str, limits: ArchiveLimits) -> Images:
    """Unpack a zip of images into a new private folder and register it, or give the session's own unpacking of
    the very same zip. Raises ``ValueError`` with one sentence for a zip that is refused (and leaves no folder)."""
    archive = Path(archive)
    # The same upload asked for again (each view of the tab passes it): found by its path, without hashing it.
    seen = [images for images in session_images(session) if images.archive == str(archive)]
    if seen:
        return seen[0]
    digest = file_sha256(archive)
    same = [images for images in session_images(session) if images.sha256 == digest]
    if same:
        return same[0]
    key = secrets.token_hex(12)
    folder = _folder() / key
    try:
        unpacked = unpack_images(archive, folder / "images", limits)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    images = Images(IMAGES + key, session, archive.name, digest, unpacked, str(archive))
    with _guard:
        _uploads[images.token] = images
    return images


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
    """Drop checkpoints and zips of images from the registry and their folders from the disk; the checkpoints
    dropped, for the kernel to let go of what it holds of them (:func:`demo.app_state.forget_uploads`: their
    models, their analyses)."""
    with _guard:
        gone = [_uploads.pop(token) for token in tokens or [] if token in _uploads]
        _doomed.update((upload.token, upload.folder) for upload in gone if _busy[upload.token])
    for upload in gone:
        if upload.token not in _doomed:
            shutil.rmtree(upload.folder, ignore_errors=True)
    return [upload for upload in gone if isinstance(upload, Upload)]


@contextmanager
def in_use(tokens: list[str]) -> Iterator[None]:
    """Keep the folders of ``tokens`` while a run reads and writes them: a session closed meanwhile has its
    uploads forgotten at once, and their folders deleted when the run ends (not under it, where the run would
    recreate them, owned by nobody)."""
    with _guard:
        _busy.update(tokens)
    try:
        yield
    finally:
        with _guard:
            _busy.subtract(tokens)
            done = [_doomed.pop(token) for token in tokens if _busy[token] <= 0 and token in _doomed]
            for token in tokens:
                if _busy[token] <= 0:
                    del _busy[token]
        for folder in done:
            shutil.rmtree(folder, ignore_errors=True)


def session_images(session: str) -> list[Images]:
    """The zips of images a session uploaded, oldest first."""
    return _of_session(session, Images)


def session_checkpoints(session: str) -> list[Upload]:
    """The checkpoints a session opened, oldest first."""
    return _of_session(session, Upload)


def _of_session(session: str, kind: type[Kept]) -> list[Kept]:
    with _guard:
        return [upload for upload in _uploads.values() if isinstance(upload, kind) and upload.session == session]


def session_tokens(session: str) -> list[str]:
    """Every token of a checkpoint or zip a session opened."""
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
