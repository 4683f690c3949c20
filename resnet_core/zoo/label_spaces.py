"""What a network's outputs mean and how its input must look: ImageNet-1k, CIFAR-10, or the lab's digits.

A label space travels with every architecture, so an untrained CIFAR-10 net still gets 32x32 inputs and its ten
class names, and so networks of different label spaces are never compared class by class.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import torchvision.models as tvm
from torchvision.transforms import InterpolationMode

from ..assets import ASSETS_DIR
from ..registry import registry
from .preprocess import Preprocess

__all__ = [
    "CIFAR10",
    "DIGITS",
    "IMAGENET",
    "LABEL_SPACES",
    "LabelSpace",
    "check_class",
    "class_index_of",
    "label_space",
]

# Statistics of the full 60k MNIST training set, the usual normalisation for these digits.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass(frozen=True)
class LabelSpace:
    key: str
    name: str
    categories: tuple[str, ...]
    preprocess: Preprocess  # what an untrained net of this space is fed; published weights bring their own
    wnids: tuple[str, ...] = ()  # WordNet IDs in class order, where the classes have them: ImageNet's folder names

    @property
    def num_classes(self) -> int:
        return len(self.categories)


IMAGENET = LabelSpace(
    "imagenet",
    "ImageNet-1k",
    tuple(tvm.ResNet50_Weights.IMAGENET1K_V1.meta["categories"]),
    Preprocess(),
    tuple((ASSETS_DIR / "imagenet_wnids.txt").read_text().split()),  # sorted, as the class indices are
)
# The CIFAR-10 nets were trained on 32x32 images scaled to [0, 1] with ImageNet's mean and std. A photo becomes
# such an image by a centre square crop and an antialiased bicubic resize; squashing the whole photo instead
# changes answers (rocket.jpg turns from a ship into a truck).
CIFAR10 = LabelSpace(
    "cifar10",
    "CIFAR-10",
    ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    Preprocess(crop_size=32, resize_size=32, interpolation=InterpolationMode.BICUBIC),
)
DIGITS = LabelSpace(
    "digits",
    "MNIST digits",
    tuple(str(digit) for digit in range(10)),
    Preprocess(crop_size=28, resize_size=28, mean=(MNIST_MEAN,), std=(MNIST_STD,), grayscale=True),
)
LABEL_SPACES: dict[str, LabelSpace] = registry((IMAGENET, CIFAR10, DIGITS), lambda space: space.key, "label spaces")


def label_space(key: str) -> LabelSpace:
    try:
        return LABEL_SPACES[key]
    except KeyError:
        raise ValueError(f"unknown label space {key!r}; expected one of {list(LABEL_SPACES)}") from None


def check_class(class_index: int, num_classes: int) -> None:
    """A ``ValueError`` a user understands for a class the network does not have."""
    if not 0 <= class_index < num_classes:
        raise ValueError(f"class {class_index} does not exist: this network has classes 0 to {num_classes - 1}")


def class_index_of(value: int | str, categories: Sequence[str]) -> int:
    """A class given as an index (``281``, ``"281"``, the pickers' ``"281: tabby"``) or a name (``"tabby"``, any
    case; a part of one, ``"tabb"``, where it fits one class alone) as its index; else a ``ValueError`` that names
    the classes the text could mean, so a person can finish typing."""
    text = str(value).strip()
    head = text.split(":", 1)[0].strip()
    if isinstance(value, int) or head.lstrip("-").isdigit():
        index = int(value) if isinstance(value, int) else int(head)
        check_class(index, len(categories))
        return index
    folded = [name.casefold() for name in categories]
    wanted = text.casefold()
    if wanted in folded:
        return folded.index(wanted)
    partial = [index for index, name in enumerate(folded) if name.startswith(wanted)] or [
        index for index, name in enumerate(folded) if wanted and wanted in name
    ]
    if len(partial) == 1:
        return partial[0]
    if partial:
        shown = ", ".join(categories[index] for index in partial[:5]) + (", ..." if len(partial) > 5 else "")
        raise ValueError(f"{text!r} fits {len(partial)} classes ({shown}): type more of the name, or its number")
    close = difflib.get_close_matches(wanted, folded, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(categories[folded.index(name)] for name in close)}?" if close else ""
    raise ValueError(f"no class named {text!r} among this network's {len(categories)} classes{hint}")
