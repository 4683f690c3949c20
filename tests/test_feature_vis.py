"""Feature visualization: the image excites its channel, the shared model is left as found, results are cached."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_core import cifar_spec, create_model
from resnet_core.__main__ import main as cli
from resnet_core.cache import cache_dir
from resnet_core.data import cifar10
from resnet_core.degradation.store import load_lab_models
from resnet_core.explain.feature_vis import (
    FeatureVisualization,
    channel_activation,
    layer_channels,
    visualize_channel,
    visualize_direction,
)
from resnet_core.measure.dataset_probe import probe_dataset
from resnet_core.settings import ENV_CACHE
from resnet_core.zoo.architectures import build

from .conftest import hooks_left


@pytest.fixture(scope="module")
def resnet20():
    return create_model("cifar10_resnet20", weights="DEFAULT")


def normalised(pixels: torch.Tensor, model) -> torch.Tensor:
    """[0, 1] pixels (N, C, H, W) as the model's input."""
    preprocess = model.card.preprocess
    mean, std = (torch.tensor(values).view(1, -1, 1, 1) for values in (preprocess.mean, preprocess.std))
    return (pixels - mean) / std


def baselines(model, layer: str, channel: int) -> float:
    """The channel's mean activation on a mid-grey image, or on the strongest of 16 uniform-noise images."""
    side, chans = model.card.preprocess.crop_size, model.in_chans
    grey = torch.full((1, chans, side, side), 0.5)
    noise = torch.rand((16, chans, side, side), generator=torch.Generator().manual_seed(0))
    return float(channel_activation(model, layer, channel, normalised(torch.cat([grey, noise]), model)).max())


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def assert_unchanged(model, before: dict[str, torch.Tensor], training: list[bool], requires_grad: list[bool]) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert [module.training for module in model.modules()] == training
    assert [p.requires_grad for p in model.parameters()] == requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert hooks_left(model) == 0


@pytest.mark.parametrize("channel", [5, 40])
def test_optimised_image_excites_the_channel_far_more_than_grey_or_noise(resnet20, channel):
    result = visualize_channel(resnet20, "layer3.2", channel, steps=64)
    assert result.image.mode == "RGB" and result.image.size == (32, 32)
    assert result.activation > 3 * baselines(resnet20, "layer3.2", channel)
    # The activation is the saved 8-bit image's, untransformed: re-feeding the PNG gives it back.
    again = channel_activation(resnet20, "layer3.2", channel, resnet20.card.preprocess(result.image).unsqueeze(0))
    assert float(again) == pytest.approx(result.activation, rel=1e-4)
    assert len(result.objective) == result.steps == 64 and result.seconds_per_step > 0
    assert np.mean(result.objective[-16:]) > 2 * np.mean(result.objective[:16])


def test_activation_is_what_the_dataset_probe_measures(resnet20):
    """One definition of a channel's activation: the block output's spatial mean, for every block and stage."""
    images, _, _ = cifar10.load_subset()
    inputs = cifar10.to_batch(images[:16], resnet20.card.preprocess.mean, resnet20.card.preprocess.std)
    probe = probe_dataset(resnet20, inputs)
    for block in resnet20.block_names():
        torch.testing.assert_close(channel_activation(resnet20, block, 3, inputs), probe.channel_means[block][:, 3])
    for stage in resnet20.stage_names:
        last = resnet20.stage(stage).blocks[-1]
        torch.testing.assert_close(channel_activation(resnet20, stage, 7, inputs), probe.channel_means[last][:, 7])
    assert layer_channels(resnet20) == {
        "stem": 16,
        **{f"layer{s}.{b}": w for s, w in ((1, 16), (2, 32), (3, 64)) for b in range(3)},
        **{f"layer{s}": w for s, w in ((1, 16), (2, 32), (3, 64))},
    }


def test_trained_model_is_left_as_found(resnet20):
    before = snapshot(resnet20)
    training = [module.training for module in resnet20.modules()]
    visualize_channel(resnet20, "layer2", 3, steps=4)
    assert_unchanged(resnet20, before, training, [False] * len(list(resnet20.parameters())))


def test_model_in_train_mode_with_gradients_is_left_as_found_even_when_stopped():
    """A bare net: train mode (batch-norm would update its running statistics) and parameters that want gradients."""
    model = build(cifar_spec(8, widths=(4, 8, 8), shortcut="B"))
    model.layer2.eval()  # mixed modes must come back module by module
    before = snapshot(model)
    training = [module.training for module in model.modules()]
    requires_grad = [p.requires_grad for p in model.parameters()]
    assert any(training) and all(requires_grad)
    visualize_channel(model, "layer3.0", 1, steps=3, size=16)
    assert_unchanged(model, before, training, requires_grad)

    def cancel(step: int, total: int, value: float) -> None:
        if step == 2:
            raise RuntimeError("cancelled")  # what the app's progress bar does when a user leaves

    with pytest.raises(RuntimeError, match="cancelled"):
        visualize_channel(model, "stem", 1, steps=5, size=16, progress=cancel)
    assert_unchanged(model, before, training, requires_grad)


def test_one_seed_one_image(resnet20):
    first, second = (visualize_channel(resnet20, "layer3", 9, steps=12, seed=3) for _ in range(2))
    assert np.array_equal(np.asarray(first.image), np.asarray(second.image))
    assert first.objective == second.objective and first.activation == second.activation
    other = visualize_channel(resnet20, "layer3", 9, steps=12, seed=4)
    assert not np.array_equal(np.asarray(first.image), np.asarray(other.image))
    # A stage is read where its last block ends: the same objective, so the same image.
    block = visualize_channel(resnet20, "layer3.2", 9, steps=12, seed=3)
    assert np.array_equal(np.asarray(first.image), np.asarray(block.image))


def test_cache_returns_the_stored_image_without_optimising_again(resnet20, tmp_path):
    steps: list[int] = []
    first = visualize_channel(
        resnet20, "layer1.1", 2, steps=6, cache_dir=tmp_path, progress=lambda *a: steps.append(a[0])
    )
    assert steps == [1, 2, 3, 4, 5, 6] and not first.from_cache
    assert len(list(tmp_path.rglob("*.png"))) == len(list(tmp_path.rglob("*.json"))) == 1
    assert not list(tmp_path.rglob("*.tmp"))

    def never(step: int, total: int, value: float) -> None:
        raise AssertionError("optimised again instead of reading the cache")

    cached = visualize_channel(resnet20, "layer1.1", 2, steps=6, cache_dir=tmp_path, progress=never)
    assert cached.from_cache and isinstance(cached, FeatureVisualization)
    assert np.array_equal(np.asarray(cached.image), np.asarray(first.image)) and cached.image.mode == "RGB"
    assert cached.as_dict() == first.as_dict()
    # Another setting, or other weights of the same architecture, are other entries.
    assert not visualize_channel(resnet20, "layer1.1", 2, steps=6, seed=1, cache_dir=tmp_path).from_cache
    untrained = create_model("cifar10_resnet20")
    assert not visualize_channel(untrained, "layer1.1", 2, steps=6, cache_dir=tmp_path).from_cache
    assert len(list(tmp_path.rglob("*.png"))) == 3


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE, str(tmp_path))
    assert cache_dir("feature_vis") == tmp_path / "feature_vis"


@pytest.mark.parametrize(
    ("layer", "channel", "message"),
    [
        ("layer4", 0, "unknown layer 'layer4' of cifar10_resnet20: expected a stage (stem, layer1, layer2, layer3)"),
        ("layer3.3", 0, "or a block (layer1.0 ... layer3.2)"),
        ("fc", 0, "unknown layer 'fc'"),
        ("layer3.2", 64, "layer3.2 has 64 channels (0 to 63), got channel 64"),
        ("stem", -1, "stem has 16 channels (0 to 15), got channel -1"),
    ],
)
def test_bad_layer_or_channel_raises_one_clear_value_error(resnet20, layer, channel, message):
    with pytest.raises(ValueError) as error:
        visualize_channel(resnet20, layer, channel, steps=1)
    assert message in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ValueError):
        channel_activation(resnet20, layer, channel, torch.zeros(1, 3, 32, 32))
    assert hooks_left(resnet20) == 0


@pytest.mark.slow
def test_grayscale_digit_net_even_from_a_channel_that_starts_dead():
    """The lab's 1-channel digit net gets an L image; channel 31 of its last block is zero on grey and on noise,
    so it has no gradient at the start: the optimiser must raise it through its pre-ReLU input."""
    model = load_lab_models()["digits_resnet20"]
    before = snapshot(model)
    base = baselines(model, "layer3.2", 31)
    assert base < 0.1
    result = visualize_channel(model, "layer3.2", 31, steps=48)
    assert result.image.mode == "L" and result.image.size == (28, 28)
    assert result.objective[0] == 0 and result.activation > 10 * max(base, 0.01)
    assert_unchanged(model, before, [False] * len(list(model.modules())), [False] * len(list(model.parameters())))


def test_cli_writes_the_png_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    out = tmp_path / "images" / "c5.png"
    args = ["visualize", "--arch", "cifar10_resnet20", "--layer", "layer3.2", "--steps", "8", "--out", str(out)]
    assert cli([*args, "--channel", "5", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"arch", "layer", "channel", "activation", "seconds_per_step", "out"} <= payload.keys()
    assert (payload["arch"], payload["layer"], payload["channel"], payload["out"]) == (
        "cifar10_resnet20",
        "layer3.2",
        5,
        str(out),
    )
    assert payload["weights"] == "cifar10_resnet20.akamaster" and not payload["cached"]
    with Image.open(out) as image:
        assert (image.mode, image.size) == ("RGB", (32, 32))
    assert len(list((tmp_path / "cache" / "feature_vis").rglob("*.png"))) == 1

    assert cli([*args, "--channel", "5"]) == 0  # text mode, served from the cache
    text = capsys.readouterr().out
    assert "layer3.2 channel 5" in text and "from the cache" in text

    assert cli([*args, "--channel", "99"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: layer3.2 has 64 channels") and err.count("\n") == 1


def test_a_concepts_direction_is_visualised_as_a_channel_is(resnet20, tmp_path):
    """A one-hot direction is that channel's objective: the same image, bit for bit. A concept's direction of
    layer2 gives an image that projects onto it more than any of the 500 shipped test images does (measured:
    3.67 against at most 3.21, 1.93 on average)."""
    from resnet_core.data.sources import open_source
    from resnet_core.explain.concepts import learn_concepts, stage_activations

    one_hot = [0.0] * 32
    one_hot[7] = 2.5  # any length: the direction is made unit
    by_direction = visualize_direction(resnet20, "layer2", one_hot, steps=8)
    by_channel = visualize_channel(resnet20, "layer2", 7, steps=8)
    assert np.array_equal(np.asarray(by_direction.image), np.asarray(by_channel.image))
    assert by_direction.activation == pytest.approx(by_channel.activation) and by_direction.channel == -1
    with pytest.raises(ValueError, match="a direction is 32 numbers"):
        visualize_direction(resnet20, "layer2", [1.0] * 16)

    source = open_source("cifar10")
    dictionary = learn_concepts(resnet20, "layer2", source.head(100), k=4, use_cache=False)
    direction = dictionary.components[0] / np.linalg.norm(dictionary.components[0])
    result = visualize_direction(resnet20, "layer2", direction.tolist(), steps=64, cache_dir=tmp_path)
    images, _, _ = cifar10.load_subset()
    inputs = normalised(torch.from_numpy(images).permute(0, 3, 1, 2) / 255, resnet20)
    projections = torch.einsum("nchw,c->nhw", stage_activations(resnet20, "layer2", inputs).relu(), torch.tensor(
        direction, dtype=torch.float32)).mean((1, 2))  # fmt: skip
    assert result.activation > float(projections.max())
    again = visualize_direction(resnet20, "layer2", direction.tolist(), steps=64, cache_dir=tmp_path)
    assert again.from_cache and again.direction == pytest.approx(tuple(direction))
