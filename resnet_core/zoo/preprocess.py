"""Image in, tensor out: the evaluation preprocessing that a weight was published with.

Split in two steps because the app shows what the network saw: ``crop`` is the geometric part (resize the
shorter side, centre crop) and ``normalize`` the numeric part. Together they equal torchvision's
``weights.transforms()`` and timm's eval transform exactly (tested), built from torchvision's functional ops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps
from torch import Tensor
from torchvision.transforms import InterpolationMode

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocess", "load_image", "to_rgb"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Pillow's own guard against decompression bombs warns at ~89 Mpx; we refuse above this instead.
MAX_IMAGE_PIXELS = 64_000_000
# Longest side at most this many times the shortest, and at most this many pixels before resizing.
MAX_ASPECT = 8
WORKING_PIXELS = 16_000_000


class _ClassificationPreset(Protocol):
    """What :meth:`Preprocess.from_torchvision` reads off torchvision's ``ImageClassification`` preset."""

    crop_size: Sequence[int]
    resize_size: Sequence[int]
    interpolation: InterpolationMode
    mean: Sequence[float]
    std: Sequence[float]


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``resize_size``, centre-crop ``crop_size``, scale to [0, 1], normalise."""

    crop_size: int = 224
    resize_size: int = 256
    interpolation: InterpolationMode = InterpolationMode.BILINEAR
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    grayscale: bool = False  # one input channel (the degradation lab's digit networks)

    @classmethod
    def from_torchvision(cls, transforms: _ClassificationPreset) -> Preprocess:
        """Read the numbers off torchvision's ``ImageClassification`` preset (``weights.transforms()``)."""
        return cls(
            crop_size=transforms.crop_size[0],
            resize_size=transforms.resize_size[0],
            interpolation=transforms.interpolation,
            mean=tuple(transforms.mean),
            std=tuple(transforms.std),
        )

    @classmethod
    def from_crop_pct(
        cls,
        input_size: int,
        crop_pct: float,
        interpolation: str = "bicubic",
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> Preprocess:
        """timm's convention: the crop is ``crop_pct`` of the resized image, so resize to ``floor(size / pct)``."""
        return cls(input_size, math.floor(input_size / crop_pct), InterpolationMode(interpolation), mean, std)

    def changed(
        self,
        crop: int | None = None,
        resize: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        normalize: bool = True,
    ) -> Preprocess:
        """This preprocessing with what a user knows of their own network's training set (the command line's
        ``--crop --resize --mean --std --no-normalize``, the app's fields): a crop alone keeps the resize to crop
        ratio; ``normalize=False`` feeds pixels in [0, 1] as they are (mean 0, std 1)."""
        if (crop is not None and crop < 1) or (resize is not None and resize < 1):
            raise ValueError("crop and resize are sizes in pixels, at least 1")
        crop_size = crop or self.crop_size
        resize_size = resize or (round(crop * self.resize_size / self.crop_size) if crop else self.resize_size)
        if crop_size > resize_size:
            raise ValueError(f"a crop of {crop_size} px cannot come from an image resized to {resize_size} px")
        channels = len(self.mean)
        if not normalize:
            if mean is not None or std is not None:
                raise ValueError("no normalisation takes no mean or std")
            mean, std = (0.0,) * channels, (1.0,) * channels
        for name, values in (("mean", mean), ("std", std)):
            if values is not None and len(values) != channels:
                raise ValueError(f"the {name} needs {channels} value(s), one per input channel; got {len(values)}")
        if std is not None and any(value <= 0 for value in std):
            raise ValueError("every std must be positive")
        return replace(
            self,
            crop_size=crop_size,
            resize_size=resize_size,
            mean=tuple(mean) if mean is not None else self.mean,
            std=tuple(std) if std is not None else self.std,
        )

    def crop(self, image: Image.Image) -> Image.Image:
        """The crop the network sees, before normalisation (what the app overlays Grad-CAM on)."""
        image = to_rgb(image)
        if self.grayscale:
            image = image.convert("L")
        image = TF.resize(image, [self.resize_size], interpolation=self.interpolation, antialias=True)
        return TF.center_crop(image, [self.crop_size])

    def crop_box(self, size: tuple[int, int]) -> tuple[float, float, float, float]:
        """Where ``crop`` takes its square from in an image of ``size`` (width, height): (left, top, right, bottom).

        In the image's own pixels, to within one resized pixel; what maps a Grad-CAM back onto the photo, so two
        networks with different resize and crop sizes can be compared on the region both saw.
        """
        width, height = size
        side = self.crop_size * min(width, height) / self.resize_size
        left, top = (width - side) / 2, (height - side) / 2
        return left, top, left + side, top + side

    def keeps(self, size: tuple[int, int]) -> bool:
        """Whether ``crop`` leaves an RGB image of ``size`` (width, height) as it is: already square at the resize
        size, and cropped whole. Such pixels (CIFAR-10's 32x32 for its networks) can skip Pillow and be normalised
        in a batch."""
        width, height = size
        return not self.grayscale and width == height == self.resize_size == self.crop_size

    def normalize(self, crop: Image.Image | Tensor) -> Tensor:
        """A crop (or a uint8 tensor of crops, ``(..., C, H, W)``) as floats, scaled to [0, 1] and normalised: the
        same operations either way, so a batch equals its images one by one, bit for bit."""
        pixels = crop if isinstance(crop, Tensor) else TF.pil_to_tensor(crop)
        return TF.normalize(TF.convert_image_dtype(pixels, torch.float), mean=list(self.mean), std=list(self.std))

    def __call__(self, image: Image.Image) -> Tensor:
        """A (channels, crop_size, crop_size) float tensor."""
        return self.normalize(self.crop(image))

    def as_dict(self) -> dict:
        """JSON-ready, the interpolation by name."""
        return {**asdict(self), "interpolation": self.interpolation.value}

    def describe(self) -> str:
        return (
            f"resize {self.resize_size} ({self.interpolation.value}), centre crop {self.crop_size}, "
            f"mean {tuple(round(m, 3) for m in self.mean)}, std {tuple(round(s, 3) for s in self.std)}"
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited onto white rather than dropped to black."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Pillow clips these to 0..255 when converting; stretch the image's own range instead.
        array = np.asarray(image, dtype=np.float64)
        low, high = min(0.0, float(array.min())), float(array.max())
        scaled = (array - low) / (high - low) if high > low else np.zeros_like(array)
        image = Image.fromarray(np.round(scaled * 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _bounded(image: Image.Image) -> Image.Image:
    """Cap the aspect ratio and the pixel count before any resampling, so time and memory stay bounded.

    The network only sees a centred square, so trimming a very long side to ``MAX_ASPECT`` times the short one
    loses nothing it would see; photos above ``WORKING_PIXELS`` are box-reduced by an integer factor first.
    Ordinary photos pass untouched, which keeps preprocessing identical to torchvision's.
    """
    width, height = image.size
    long_side, short_side = max(width, height), min(width, height)
    if long_side > MAX_ASPECT * short_side:
        keep = MAX_ASPECT * short_side
        offset = (long_side - keep) // 2
        box = (offset, 0, offset + keep, height) if width > height else (0, offset, width, offset + keep)
        image = image.crop(box)
    pixels = image.size[0] * image.size[1]
    if pixels > WORKING_PIXELS:
        image = image.reduce(math.ceil(math.sqrt(pixels / WORKING_PIXELS)))
    return image


def load_image(source: str | Path | BinaryIO | Image.Image) -> Image.Image:
    """Open an image as RGB: first frame, EXIF orientation applied, bombs refused, huge photos reduced.

    Raises ``ValueError`` with a one-line reason for anything that is not a readable image.
    """
    try:
        image = source if isinstance(source, Image.Image) else Image.open(source)
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise ValueError(f"image is {width}x{height} pixels, above the {MAX_IMAGE_PIXELS:,} pixel limit")
        if min(width, height) < 1:
            raise ValueError(f"image has no pixels ({width}x{height})")
        if getattr(image, "format", None) == "JPEG" and width * height > WORKING_PIXELS:
            image.draft("RGB", (width // 2, height // 2))  # decode at reduced scale: bounded memory
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
    except ValueError:
        raise
    except (OSError, SyntaxError, Image.DecompressionBombError, EOFError) as error:
        raise ValueError(f"not a readable image ({error})") from None
    return _bounded(to_rgb(image))
