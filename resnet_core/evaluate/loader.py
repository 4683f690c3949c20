"""The local loop's input: one network's view of a source, read and preprocessed in ``DataLoader`` workers.

Each image goes through the network's own preprocessing exactly as :func:`~resnet_core.explain.analysis.model_input`
sends a photo (``load_image``, the weights' crop, then their normalisation), so a row equals what ``analyze`` says of
that image; pixels in memory that the crop keeps as they are (CIFAR-10's for its networks) are normalised a batch at
a time, with the same result. An image that cannot be read is no exception here: it travels as an error, and becomes
a row that says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.sources import ImageSource
from ..zoo.preprocess import Preprocess

__all__ = ["Collate", "PreprocessedImages"]

ERROR_CHARS = 300  # an error is one line in a row, not a traceback


class PreprocessedImages(Dataset):
    """The images of ``source`` at ``indices``, each as ``{"path", "label_index", "inputs", "error"}``."""

    def __init__(
        self,
        source: ImageSource,
        preprocess: Preprocess,
        labels: Sequence[int | None],
        indices: Sequence[int],
    ) -> None:
        self.source, self.preprocess, self.labels, self.indices = source, preprocess, labels, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict:
        index = self.indices[position]
        item = self._item(index)
        try:
            item["inputs"] = self.preprocess(self.source.image(index))
        except Exception as error:  # any file, however broken, is a row: the run goes on
            item["error"] = (str(error).splitlines() or [type(error).__name__])[0][:ERROR_CHARS]
        return item

    def __getitems__(self, positions: Sequence[int]) -> list[dict]:
        """A batch's items at once (the ``DataLoader`` asks so): pixels in memory that the crop keeps as they are
        are normalised in one tensor operation, which equals each image through Pillow bit for bit (tested) at a
        fraction of the time; any other source image by image."""
        indices = [self.indices[position] for position in positions]
        inputs = normalised_pixels(self.source, self.preprocess, indices)
        if inputs is None:
            return [self[position] for position in positions]
        return [{**self._item(index), "inputs": tensor} for index, tensor in zip(indices, inputs, strict=True)]

    def _item(self, index: int) -> dict:
        return {"path": self.source.keys[index], "label_index": self.labels[index], "inputs": None, "error": None}


def normalised_pixels(source: ImageSource, preprocess: Preprocess, indices: Sequence[int]) -> torch.Tensor | None:
    """The images at ``indices`` as one input batch normalised in one tensor operation, where ``source`` holds
    uint8 pixels in memory that ``preprocess``'s crop keeps as they are (CIFAR-10's for a 32x32 network); None
    otherwise, when each image goes through Pillow. Equal to the images one by one, bit for bit (tested)."""
    pixels = source.pixels
    if pixels is None or pixels.dtype != np.uint8 or not preprocess.keeps((pixels.shape[2], pixels.shape[1])):
        return None
    return preprocess.normalize(torch.from_numpy(pixels[list(indices)]).permute(0, 3, 1, 2))


@dataclass(frozen=True)
class Collate:
    """Items into the batch :class:`~resnet_core.evaluate.batch.BatchEvaluator` takes; an unreadable image's
    inputs are zeros of ``shape`` (C, H, W), which the evaluator skips."""

    shape: tuple[int, int, int]

    @classmethod
    def of(cls, preprocess: Preprocess) -> Collate:
        return cls((1 if preprocess.grayscale else 3, preprocess.crop_size, preprocess.crop_size))

    def __call__(self, items: Sequence[dict]) -> dict:
        blank = torch.zeros(self.shape)
        inputs = torch.stack([blank if item["inputs"] is None else item["inputs"] for item in items])
        columns = {name: [item[name] for item in items] for name in ("path", "label_index", "error")}
        return {**columns, "inputs": inputs}
