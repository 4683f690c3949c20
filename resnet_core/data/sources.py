"""Where the images of an evaluation come from: a folder, a CSV of paths and labels, or CIFAR-10's test images.

Every source is the same thing to a run: images in a fixed order, each with a key that names it in the results (its
path relative to the folder or the CSV, or ``cifar10:<test index>``) and its label as the source gives it (a class
name, a class index, or none). A label becomes a class index only against one network's classes
(:func:`match_labels`), because one folder can be evaluated by a CIFAR-10 and an ImageNet network alike.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets.folder import make_dataset

from ..settings import ENV_TEST_SET, cache_root, cifar10_test_set
from ..zoo.preprocess import load_image
from . import cifar10

__all__ = ["ImageSource", "Label", "match_labels", "open_source"]

Label = str | int | None  # a class name, a class index, or unknown
SOURCES = "a folder of images, a .csv with a path,label header, cifar10 or cifar10:full"


@dataclass(frozen=True)
class ImageSource:
    """Images in a fixed order: their keys, their labels, and where their pixels are (files under ``root``, or
    ``pixels`` in memory)."""

    description: str  # what was given, resolved: an absolute folder or CSV, cifar10, cifar10:full
    keys: tuple[str, ...]  # paths relative to ``root`` (or absolute, from a CSV), or cifar10:<test index>
    labels: tuple[Label, ...]
    root: Path | None = None
    pixels: np.ndarray | None = None  # (N, H, W, 3) uint8, in key order

    def __len__(self) -> int:
        return len(self.keys)

    def image(self, index: int) -> Image.Image:
        """Image ``index``, opened as every photo is (:func:`~resnet_core.zoo.preprocess.load_image`); a file that is
        missing or no image raises ``ValueError``."""
        if self.pixels is not None:
            return load_image(Image.fromarray(self.pixels[index]))
        if self.root is None:
            raise ValueError(f"{self.description} has neither pixels nor a root folder to read image {index} from")
        return load_image(self.root / self.keys[index])

    def head(self, count: int) -> ImageSource:
        """The first ``count`` images (``--limit``)."""
        pixels = None if self.pixels is None else self.pixels[:count]
        return replace(self, keys=self.keys[:count], labels=self.labels[:count], pixels=pixels)


def open_source(data: str | Path, download: bool = False) -> ImageSource:
    """The images ``data`` names: a folder (class folders give labels, see :func:`folder_source`), a CSV
    (:func:`csv_source`), ``cifar10`` (the 500 shipped test images) or ``cifar10:full`` (all 10,000, from
    ``$RESNET_EXPLORER_CIFAR10`` or torchvision's ``CIFAR10``, which ``download`` fetches)."""
    if str(data) == "cifar10":
        images, labels, indices = cifar10.load_subset()
        return _cifar10("cifar10", images, labels, indices)
    if str(data) == "cifar10:full":
        images, labels = _full_test_set(download)
        return _cifar10("cifar10:full", images, labels, np.arange(len(images)))
    path = Path(data).expanduser()
    if path.is_dir():
        return folder_source(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        return csv_source(path)
    if not path.exists():
        raise FileNotFoundError(f"{data}: no such folder or file (DATA is {SOURCES})")
    raise ValueError(f"{data}: DATA is {SOURCES}")


def _full_test_set(download: bool) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's test set from ``$RESNET_EXPLORER_CIFAR10``, else from torchvision's copy in the cache, which
    ``download`` fills."""
    root = cifar10_test_set() or cache_root() / "cifar10"
    try:
        return cifar10.load_test_set(root, download=download)
    except FileNotFoundError:
        if download or cifar10_test_set():
            raise
        raise FileNotFoundError(
            f"cifar10:full needs CIFAR-10's test set: set ${ENV_TEST_SET} to a folder that holds "
            f"{cifar10.STRIP_NAME} and {cifar10.LABELS_NAME} (or torchvision's cifar-10-batches-py/), "
            f"or add --download (download=True) to let torchvision fetch it into {root} (about 170 MB)"
        ) from None


def _cifar10(name: str, images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> ImageSource:
    keys = tuple(f"cifar10:{index}" for index in indices.tolist())
    return ImageSource(name, keys, tuple(cifar10.CLASSES[label] for label in labels.tolist()), pixels=images)


def folder_source(root: Path) -> ImageSource:
    """Every file under ``root`` that is not hidden, in sorted order; a file that is no image is kept, to become a
    row that says so.

    With subfolders, each is a class (torchvision's ``ImageFolder`` layout, walked by its ``make_dataset``, files
    at any depth below a class folder; files beside the class folders are not read). Without, the files of
    ``root`` itself are unlabelled.
    """
    root = root.resolve()

    def visible(path: str) -> bool:
        return not any(part.startswith(".") for part in Path(path).relative_to(root).parts)

    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and visible(entry.path))
    if classes:
        class_to_index = {name: index for index, name in enumerate(classes)}
        found = make_dataset(root, class_to_index, is_valid_file=visible, allow_empty=True)
        keys = tuple(Path(path).relative_to(root).as_posix() for path, _ in found)
        labels: tuple[Label, ...] = tuple(classes[index] for _, index in found)
    else:
        keys = tuple(sorted(path.name for path in root.iterdir() if path.is_file() and visible(str(path))))
        labels = (None,) * len(keys)
    if not keys:
        raise ValueError(f"{root}: no files in it{' or its class folders' if classes else ''}")
    return ImageSource(str(root), keys, labels, root=root)


def csv_source(path: Path) -> ImageSource:
    """Rows of a CSV with a ``path`` column (relative to the CSV's folder, or absolute) and an optional ``label``
    column: a class index (digits only), a class name or WordNet ID, or empty for unknown."""
    path = path.resolve()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if "path" not in (reader.fieldnames or ()):
            raise ValueError(f"{path}: expected a header with a path column (path,label), got {reader.fieldnames}")
        keys, labels = [], []
        for row in reader:
            label = (row.get("label") or "").strip()
            keys.append(row["path"])
            labels.append(int(label) if label.isdigit() else label or None)
    if not keys:
        raise ValueError(f"{path}: no rows below its header")
    return ImageSource(str(path), tuple(keys), tuple(labels), root=path.parent)


def _key(name: str) -> str:
    return " ".join(name.casefold().replace("_", " ").split())


def match_labels(
    labels: Sequence[Label], categories: Sequence[str], wnids: Sequence[str] = (), network: str = "the network"
) -> list[int | None]:
    """Each label as a class index of a network with ``categories``: names match whatever their case, with spaces
    and underscores alike, or by WordNet ID where the classes have them (``wnids``: ImageNet's folder names);
    indices must exist. Raises ``ValueError`` naming the labels that do not fit, so nothing runs on a data set
    that is half matched."""
    lookup: dict[str, set[int]] = {}
    for names in (categories, wnids):
        for index, name in enumerate(names):
            lookup.setdefault(_key(name), set()).add(index)
    resolved: dict[Label, int | None] = {None: None}
    unmatched: list[str] = []
    ambiguous: list[str] = []
    for label in dict.fromkeys(labels):
        if label is None:
            continue
        if isinstance(label, int):
            found = {label} if 0 <= label < len(categories) else set()
        else:
            found = lookup.get(_key(label), set())
        if len(found) == 1:
            resolved[label] = found.pop()
        else:
            (ambiguous if found else unmatched).append(str(label))
    if unmatched or ambiguous:
        problems = []
        if unmatched:
            shown = ", ".join(unmatched[:8]) + (f" and {len(unmatched) - 8} more" if len(unmatched) > 8 else "")
            ids = " or WordNet IDs" if wnids else ""
            problems.append(
                f"{len(unmatched)} label(s) are not classes of {network}: {shown} (expected class names{ids} such as "
                f"{', '.join(categories[:3])}, or indices 0..{len(categories) - 1})"
            )
        if ambiguous:
            problems.append(f"{', '.join(ambiguous)} name more than one class of {network}: use WordNet IDs")
        raise ValueError("; ".join(problems))
    return [resolved[label] for label in labels]
