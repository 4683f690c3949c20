"""The published CIFAR-10 ResNets (section 4.2) against an independent reference, on the shipped test images.

The reference below is written from the checkpoints' description (akamaster/pytorch_resnet_cifar10): 3x3 stem with
16 channels, three stages of n basic blocks (16, 32, 64), option A shortcuts that subsample by 2 and zero-pad
planes/4 channels on each side, global average pooling, ``linear``. If the shipped weights load into it strictly and
give the pinned error counts, the reference is right; then ``create_model`` must give the same logits.
Only ``assets/`` is read: a plain clone has no ``../shared``.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from resnet_core import create_model
from resnet_core.data.cifar10 import (
    CLASSES,
    ENV_TEST_SET,
    GALLERY_DIR,
    SUBSET_JSON,
    load_strip,
    load_subset,
    load_test_set,
    to_batch,
)
from resnet_core.settings import ENV_WEIGHTS_DIR
from resnet_core.zoo.label_spaces import CIFAR10
from resnet_core.zoo.preprocess import IMAGENET_MEAN, IMAGENET_STD
from resnet_core.zoo.weights import SHIPPED_WEIGHTS_DIR

SHIPPED_DEPTHS = (20, 32, 44, 56)
# The fast lane checks the shallowest shipped network; the slow lane all four.
EACH_DEPTH = [pytest.param(depth, marks=[] if depth == 20 else [pytest.mark.slow]) for depth in SHIPPED_DEPTHS]


class ReferenceBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), the shortcut being option A: no parameters."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = stride != 1 or in_planes != planes
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.downsample:  # every other pixel, and planes/4 zero channels before and after the old ones
            x = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + x)


class ReferenceResNet(nn.Module):
    """Depth 6n + 2: the stem, 3 stages of n blocks, 2n weighted layers each, and the classifier."""

    def __init__(self, depth: int, num_classes: int = 10) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [ReferenceBlock(in_planes, planes, stride)]
            blocks += [ReferenceBlock(planes, planes, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_planes = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(x.mean(dim=(2, 3)))


def checkpoint_path(depth: int, folder=SHIPPED_WEIGHTS_DIR):
    (path,) = folder.glob(f"resnet{depth}-*.th")
    return path


def reference_model(depth: int, path=None) -> ReferenceResNet:
    """The published checkpoint (saved from DataParallel: keys start with ``module.``) loaded strictly."""
    checkpoint = torch.load(path or checkpoint_path(depth), map_location="cpu", weights_only=True)
    state = {key.removeprefix("module."): value for key, value in checkpoint["state_dict"].items()}
    model = ReferenceResNet(depth)
    model.load_state_dict(state, strict=True)
    return model.eval()


@cache
def subset() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return load_subset()


@cache
def reference_logits(depth: int) -> torch.Tensor:
    images, _, _ = subset()
    with torch.inference_mode():
        return reference_model(depth)(to_batch(images, IMAGENET_MEAN, IMAGENET_STD))


# --- the shipped files ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", EACH_DEPTH)
def test_shipped_checkpoints_are_named_by_their_sha256(depth: int) -> None:
    path = checkpoint_path(depth)
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith(path.stem.split("-")[1])
    assert (SHIPPED_WEIGHTS_DIR / "LICENSE").read_text().startswith("Copyright (c) 2018, Yerlan Idelbayev")


def test_subset_is_every_20th_test_image_with_its_label() -> None:
    images, labels, indices = subset()
    meta = json.loads(SUBSET_JSON.read_text())
    assert images.shape == (500, 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.tolist() == meta["labels"]
    assert indices.tolist() == list(range(0, 10_000, 20))
    assert tuple(meta["classes"]) == CLASSES and len(CLASSES) == 10
    assert set(labels.tolist()) == set(range(10))
    # The official test_batch starts 3 8 8 0 6 6 1 6 3 1: image 0 is a cat.
    assert labels[0] == CLASSES.index("cat")


def test_gallery_holds_the_first_five_of_each_class_and_agrees_with_the_subset() -> None:
    images, labels, indices = subset()
    row = {int(index): i for i, index in enumerate(indices)}
    files = sorted(GALLERY_DIR.glob("*.png"))
    names = [re.fullmatch(r"([a-z]+)_(\d{4})", path.stem).groups() for path in files]
    assert sorted(name for name, _ in names) == sorted(CLASSES * 5)
    shared = 0
    for path, (name, index) in zip(files, names, strict=True):
        pixels = np.asarray(Image.open(path).convert("RGB"))
        assert pixels.shape == (32, 32, 3)
        if int(index) in row:  # the test images both sets hold must be the same image with the same label
            shared += 1
            assert np.array_equal(pixels, images[row[int(index)]]) and CLASSES[labels[row[int(index)]]] == name
    assert shared >= 3  # cat_0000, horse_0020, deer_0040


# --- the loaders ----------------------------------------------------------------------------------------------------


def write_shared_format(folder, images: np.ndarray, labels: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(images.reshape(len(images), 32 * 32, 3)).save(folder / "test_batch.png")
    (folder / "test_labels.json").write_text(json.dumps(labels))


def test_test_set_reader_takes_the_shared_format_from_a_folder_or_the_environment(tmp_path, monkeypatch) -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    write_shared_format(tmp_path / "cifar", images, [3, 8, 1])
    for root in (tmp_path / "cifar", str(tmp_path / "cifar")):
        read, labels = load_test_set(root)
        assert np.array_equal(read, images) and labels.tolist() == [3, 8, 1] and labels.dtype == np.int64
    monkeypatch.setenv(ENV_TEST_SET, str(tmp_path / "cifar"))
    assert np.array_equal(load_test_set()[0], images)


def test_test_set_reader_says_what_to_do_when_nothing_is_there(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(ENV_TEST_SET, raising=False)
    with pytest.raises(FileNotFoundError, match=ENV_TEST_SET):
        load_test_set()
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_test_set(tmp_path)  # neither format there, and no download asked for
    write_shared_format(tmp_path / "short", np.zeros((2, 32, 32, 3), np.uint8), [1])
    with pytest.raises(ValueError, match="2 images"):
        load_test_set(tmp_path / "short")


def test_strip_reader_refuses_rows_that_are_not_32x32_images(tmp_path) -> None:
    Image.new("RGB", (1000, 2)).save(tmp_path / "wide.png")
    with pytest.raises(ValueError, match="1024"):
        load_strip(tmp_path / "wide.png")


def test_to_batch_is_the_label_spaces_preprocessing() -> None:
    images, _, _ = subset()
    preprocess = CIFAR10.preprocess
    batch = to_batch(images[:4], preprocess.mean, preprocess.std)
    assert batch.shape == (4, 3, 32, 32) and batch.dtype == torch.float32
    for image, row in zip(images[:4], batch, strict=True):
        assert torch.equal(preprocess(Image.fromarray(image)), row)  # a 32x32 image is neither resized nor cropped


# --- the networks ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", EACH_DEPTH)
def test_reference_gives_the_pinned_error_count_on_the_subset(depth: int) -> None:
    _, labels, _ = subset()
    errors = int((reference_logits(depth).argmax(1).numpy() != labels).sum())
    assert errors == json.loads(SUBSET_JSON.read_text())["reference_errors"][f"cifar10_resnet{depth}"]
    assert errors < 0.12 * len(labels)  # the published errors are 8.27% and 6.61% on all 10,000


@pytest.mark.parametrize("depth", EACH_DEPTH)
def test_create_model_is_the_published_net(depth: int, torch_home, monkeypatch) -> None:
    monkeypatch.delenv(ENV_WEIGHTS_DIR, raising=False)  # the shipped copy, not a user's folder
    model = create_model(f"cifar10_resnet{depth}", weights="DEFAULT")
    assert not model.training
    assert tuple(model.card.categories) == CLASSES and model.card.preprocess.crop_size == 32
    images, _, _ = subset()
    preprocess = model.card.preprocess
    batch = to_batch(images, preprocess.mean, preprocess.std)
    assert torch.equal(preprocess.normalize(Image.fromarray(images[0])), batch[0])  # the app's path: a PIL image
    with torch.inference_mode():
        logits = model(batch)
    reference = reference_logits(depth)
    assert (logits - reference).abs().max().item() <= 1e-5
    assert torch.equal(logits.argmax(1), reference.argmax(1))
