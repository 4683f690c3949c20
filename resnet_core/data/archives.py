"""A zip of images someone uploads, unpacked into a folder of its own and nowhere else, as a data set.

What the zip may hold: class folders (labels from the folder names), or flat images with an optional ``path,label``
CSV beside them, or flat images without labels. What it may not: a name that leaves the folder (``../``, an absolute
path, a drive), a symbolic link, more images or more bytes than the limits, or a member that unpacks to more than
:data:`MAX_RATIO` times its compressed size (a zip bomb): each of these refuses the whole zip with one sentence,
before a byte is written. Non-image files and zips inside the zip are skipped and counted. Sizes are checked twice:
from the zip's directory before unpacking, and while unpacking, by the bytes actually written (a directory can lie).
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image

from .sources import ImageSource, csv_source, folder_source

__all__ = ["ArchiveLimits", "Unpacked", "unpack_images"]

ENV_IMAGES = "RESNET_EXPLORER_UPLOAD_IMAGES"
ENV_ZIP_MB = "RESNET_EXPLORER_UPLOAD_ZIP_MB"
ENV_UNPACKED_MB = "RESNET_EXPLORER_UPLOAD_UNPACKED_MB"
MAX_RATIO = 200  # uncompressed / compressed per member: PNG and JPEG barely compress, a bomb compresses a millionfold
IMAGE_SUFFIXES = frozenset(suffix for suffix, name in Image.registered_extensions().items() if name in Image.OPEN)
ARCHIVES = frozenset({".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"})
CHUNK = 1 << 20
NESTED, NOT_IMAGES = "archives inside the zip (not opened)", "files that are not images"


@dataclass(frozen=True)
class ArchiveLimits:
    """How much one upload may hold; set by environment variables, shown where uploads are taken."""

    images: int = 5000
    zip_bytes: int = 200 * 2**20
    unpacked_bytes: int = 1024 * 2**20

    @classmethod
    def from_env(cls, defaults: ArchiveLimits | None = None) -> ArchiveLimits:
        """The limits the environment sets, each one it leaves unset from ``defaults`` (a hosted app's smaller
        ones), else from the class's."""
        mb, base = 2**20, defaults or cls()
        return cls(
            images=int(os.environ.get(ENV_IMAGES, base.images)),
            zip_bytes=int(float(os.environ.get(ENV_ZIP_MB, base.zip_bytes / mb)) * mb),
            unpacked_bytes=int(float(os.environ.get(ENV_UNPACKED_MB, base.unpacked_bytes / mb)) * mb),
        )

    def describe(self) -> str:
        return (
            f"at most {self.images:,} images, {_size(self.zip_bytes)} zipped and {_size(self.unpacked_bytes)} unpacked"
        )


@dataclass(frozen=True)
class Unpacked:
    """A zip unpacked: its folder, the data set it is, how it was laid out, and what was left out and why."""

    folder: Path
    source: ImageSource
    layout: str  # "class folders", "images and a CSV of labels", "images without labels"
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> members

    def describe(self) -> str:
        left = "; ".join(f"{count} {reason} skipped" for reason, count in self.skipped.items())
        return f"{len(self.source)} images, {self.layout}" + (f" ({left})" if left else "")


def _size(count: float) -> str:
    """Bytes as a person reads them: 200 MB, 1.5 GB, 2 KB."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count:.0f} bytes"


def _refuse(name: str, why: str) -> ValueError:
    return ValueError(f"{name} {why}: nothing was unpacked")


def unpack_images(archive: str | Path, folder: str | Path, limits: ArchiveLimits | None = None) -> Unpacked:
    """Unpack the images of ``archive`` into ``folder`` (created; it must not exist yet) and open them as a data
    set. Raises ``ValueError`` with one sentence for a zip that is refused, and then leaves no ``folder``."""
    archive, folder, limits = Path(archive), Path(folder), limits or ArchiveLimits.from_env()
    name = archive.name
    if archive.stat().st_size > limits.zip_bytes:
        raise _refuse(name, f"is {_size(archive.stat().st_size)}; an upload is {limits.describe()}")
    try:
        opened = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise ValueError(f"{name} is not a zip archive (a data set comes as a .zip of images)") from None
    with opened:
        members, skipped = _accepted(opened, name, limits)
        folder.mkdir(parents=True, exist_ok=False)
        try:
            _extract(opened, members, folder, name, limits)
            source, layout = _as_source(folder, name)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    return Unpacked(folder, source, layout, skipped)


def _accepted(
    opened: zipfile.ZipFile, name: str, limits: ArchiveLimits
) -> tuple[list[zipfile.ZipInfo], dict[str, int]]:
    """The members to unpack (images, and CSVs of labels), after every check the zip's directory allows."""
    members: list[zipfile.ZipInfo] = []
    skipped: dict[str, int] = {}
    total = 0
    for info in opened.infolist():
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if info.filename.startswith(("/", "\\")) or (path.parts and path.parts[0].endswith(":")):
            raise _refuse(name, f"names a file by an absolute path ({info.filename})")
        if ".." in path.parts:
            raise _refuse(name, f"names a file outside its own folder ({info.filename})")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _refuse(name, f"holds a symbolic link ({info.filename})")
        if info.is_dir() or any(part.startswith(".") or part == "__MACOSX" for part in path.parts):
            continue
        suffix = path.suffix.lower()
        if suffix in ARCHIVES or (suffix not in IMAGE_SUFFIXES and suffix != ".csv"):
            reason = NESTED if suffix in ARCHIVES else NOT_IMAGES
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > CHUNK:
            ratio = info.file_size / max(info.compress_size, 1)
            raise _refuse(name, f"holds {info.filename}, which unpacks to {ratio:.0f} times its size (a zip bomb)")
        total += info.file_size
        members.append(info)
    images = sum(PurePosixPath(m.filename).suffix.lower() in IMAGE_SUFFIXES for m in members)
    if not images:
        raise _refuse(name, "holds no images" + (" (only " + ", ".join(skipped) + ")" if skipped else ""))
    if images > limits.images:
        raise _refuse(name, f"holds {images:,} images; an upload is {limits.describe()}")
    if total > limits.unpacked_bytes:
        raise _refuse(name, f"unpacks to {_size(total)}; an upload is {limits.describe()}")
    return members, skipped


def _extract(
    opened: zipfile.ZipFile, members: list[zipfile.ZipInfo], folder: Path, name: str, limits: ArchiveLimits
) -> None:
    """Write each member under ``folder``, counting the bytes really written against the limits."""
    root, written = folder.resolve(), 0
    for info in members:
        target = (root / info.filename.replace("\\", "/")).resolve()
        if not target.is_relative_to(root):  # checked by name already; a resolved path is the last word
            raise _refuse(name, f"names a file outside its own folder ({info.filename})")
        target.parent.mkdir(parents=True, exist_ok=True)
        with opened.open(info) as source, target.open("wb") as sink:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > limits.unpacked_bytes:
                    raise _refuse(name, f"unpacks to more than its directory says; an upload is {limits.describe()}")
                sink.write(chunk)


def _as_source(folder: Path, name: str) -> tuple[ImageSource, str]:
    """The data set the unpacked files are. A single folder at the top (how most zips are made) is looked into."""
    top = list(folder.iterdir())
    root = top[0] if len(top) == 1 and top[0].is_dir() else folder
    tables = sorted(root.glob("*.csv"))
    if tables:
        source = csv_source(tables[0])
        _check_paths(source, name)
        return source, "images and a CSV of labels"
    source = folder_source(root)
    has_classes = any(label is not None for label in source.labels)
    return source, "class folders" if has_classes else "images without labels"


def _check_paths(source: ImageSource, name: str) -> None:
    """Every path of an uploaded CSV is a file unpacked beside it: none may reach outside, and none be absent."""
    assert source.root is not None, "csv_source reads paths relative to the CSV's folder"
    root, paths = source.root, source.keys
    outside = [p for p in paths if Path(p).is_absolute() or not (root / p).resolve().is_relative_to(root)]
    if outside:
        raise _refuse(name, f"has a CSV naming {len(outside)} file(s) outside the zip (first: {outside[0]})")
    absent = [p for p in paths if not (root / p).is_file()]
    if absent:
        raise _refuse(name, f"has a CSV naming {len(absent)} file(s) the zip does not hold (first: {absent[0]})")
