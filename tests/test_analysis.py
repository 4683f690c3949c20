"""One-pass analysis: captures, residual statistics, Grad-CAM correctness, hook hygiene, every architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from resnet_core import cost_table, create_model, list_models
from resnet_core.explain.analysis import analyze
from resnet_core.explain.attribution import normalize_cam
from resnet_core.measure.residual_stats import ResidualStats
from resnet_core.render import cam_overlay, channel_figure, cost_figure, feature_grid, grid_index

from .conftest import hooks_left, one_of_each_kind, randomize_batchnorm, rss_mb


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return randomize_batchnorm(create_model("resnet18"))


@pytest.fixture(scope="module")
def two_objects(photos) -> Image.Image:
    """A cat on the left, an espresso on the right."""
    cat = Image.open(photos / "chelsea.png").convert("RGB").resize((224, 224))
    coffee = Image.open(photos / "coffee.png").convert("RGB").resize((224, 224))
    canvas = Image.new("RGB", (448, 224))
    canvas.paste(cat, (0, 0))
    canvas.paste(coffee, (224, 0))
    return canvas


def test_one_call_delivers_every_output(resnet18, photos):
    result = analyze(resnet18, photos / "chelsea.png", topk=5)
    probabilities = [p for _, _, p in result.topk]
    assert len(result.topk) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert result.topk[0][0] == int(result.probabilities.argmax())
    assert result.topk[0][1] == resnet18.card.categories[result.topk[0][0]]
    assert float(result.probabilities.sum()) == pytest.approx(1.0, abs=1e-5)
    shapes = {row.name: row.output_shape for row in cost_table("resnet18").rows}
    assert list(result.stages) == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert tuple(result.stages["stem"].shape) == shapes["stem"]
    assert tuple(result.stages["layer4"].shape) == shapes["layer4.1"]
    assert list(result.blocks) == [f"layer{s}.{i}" for s in range(1, 5) for i in range(2)]
    assert all(tuple(result.blocks[b].output.shape) == shapes[b] for b in result.blocks)
    assert result.cam.shape == (224, 224) and result.crop.size == (224, 224)
    assert result.cam.min() >= 0.0 and result.cam.max() == pytest.approx(1.0)
    assert result.cam_class == result.topk[0][0] and result.cam_layer == "layer4"


def test_residual_statistics_are_the_block_arithmetic(resnet18, photos):
    result = analyze(resnet18, photos / "coffee.png")
    block = resnet18.layer2[1]
    x = result.blocks["layer2.0"].output[None]
    with torch.no_grad():
        out = block.relu(block.bn1(block.conv1(x)))
        residual = block.bn2(block.conv2(out))
    stats = result.blocks["layer2.1"]
    assert stats.residual_ratio == pytest.approx(float(residual.norm() / x.norm()), rel=1e-4)
    assert stats.cosine == pytest.approx(float(F.cosine_similarity(residual.flatten(), x.flatten(), dim=0)), abs=1e-4)
    assert stats.zero_fraction == pytest.approx(float((torch.relu(residual + x) == 0).float().mean()), abs=1e-4)
    assert torch.allclose(stats.output, torch.relu(residual + x)[0], atol=1e-5)


def test_residual_statistics_do_not_depend_on_the_memory_layout():
    """An evaluation feeds channels-last batches (faster convolutions on the CPU), and F(x) and the shortcut may come
    in different layouts: the statistics are the same. One image (an analysis) takes dot products instead of the
    batch's Gram matrices: the same numbers as its row of the batch."""
    generator = torch.Generator().manual_seed(0)
    f, s = (torch.randn(4, 16, 8, 8, generator=generator) for _ in range(2))

    def last(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.contiguous(memory_format=torch.channels_last)

    expected = ResidualStats.of(f, s)
    for terms in ((last(f), last(s)), (last(f), s), (f, last(s))):
        stats = ResidualStats.of(*terms)
        for name in ("ratio", "cosine"):
            assert torch.allclose(getattr(stats, name), getattr(expected, name), atol=1e-6)
    for i in range(len(f)):
        for terms in ((f[i : i + 1], s[i : i + 1]), (last(f[i : i + 1]), s[i : i + 1])):
            stats = ResidualStats.of(*terms)
            for name in ("ratio", "cosine"):
                assert torch.allclose(getattr(stats, name), getattr(expected, name)[i : i + 1], atol=1e-6)


def test_layer4_grad_cam_is_the_closed_form_class_activation_map(resnet18, photos):
    result = analyze(resnet18, photos / "chelsea.png")
    for class_index, cam in ((result.cam_class, result.cam), (7, result.cam_for(7))):
        features = result.stages["layer4"]
        closed = torch.relu(torch.einsum("c,chw->hw", resnet18.fc.weight[class_index], features))
        closed = F.interpolate(closed[None, None], size=(224, 224), mode="bilinear")[0, 0].numpy()
        assert np.abs(normalize_cam(closed) - cam).max() <= 1e-5


def test_earlier_layer_grad_cam_matches_an_independent_gradient(resnet18, photos):
    result = analyze(resnet18, photos / "chelsea.png", cam_layer="layer2", cam_class=281)
    activation = result.stages["layer2"][None].clone().requires_grad_()
    x = activation
    for stage in (resnet18.layer3, resnet18.layer4):
        x = stage(x)
    score = resnet18.fc(torch.flatten(resnet18.avgpool(x), 1))[0, 281]
    (gradient,) = torch.autograd.grad(score, activation)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activation).sum(1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=(224, 224), mode="bilinear")[0, 0].numpy()
    assert np.abs(normalize_cam(cam) - result.cam).max() <= 1e-5
    assert result.cam_class == 281


def test_retargeting_needs_no_forward_pass_and_changes_the_map(resnet18, two_objects):
    result = analyze(resnet18, two_objects)
    stem_calls = []
    handle = resnet18.conv1.register_forward_hook(lambda *args: stem_calls.append(1))
    try:
        first, second = result.topk[0][0], result.topk[1][0]
        other = result.cam_for(second)
        again = result.cam_for(first)
    finally:
        handle.remove()
    assert stem_calls == []
    assert np.abs(again - result.cam).max() <= 1e-6
    assert np.corrcoef(other.ravel(), result.cam.ravel())[0, 1] < 0.99
    with pytest.raises(ValueError, match="class 1000 does not exist"):
        result.cam_for(1000)


def test_no_hook_no_gradient_left_after_success_and_after_an_exception(resnet18, photos):
    before = hooks_left(resnet18)
    analyze(resnet18, photos / "chelsea.png", cam_layer="layer3")
    assert hooks_left(resnet18) == before == 0

    def explode(*args):
        raise RuntimeError("boom in layer3")

    handle = resnet18.layer3[0].conv1.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            analyze(resnet18, photos / "chelsea.png")
    finally:
        handle.remove()
    assert hooks_left(resnet18) == 0
    assert all(p.grad is None and not p.requires_grad for p in resnet18.parameters())


@pytest.mark.slow
def test_a_hundred_calls_leave_no_hooks_and_no_memory_growth(resnet18, photos):
    image = Image.open(photos / "rocket.jpg")
    for _ in range(10):
        analyze(resnet18, image)
    start = rss_mb()
    for _ in range(100):
        result = analyze(resnet18, image, cam_layer="layer2")
    assert hooks_left(resnet18) == 0
    assert rss_mb() - start < 64, f"resident memory grew {rss_mb() - start:.0f} MB over 100 calls"
    assert result.cam.shape == (224, 224)


def test_bad_arguments(resnet18, photos):
    with pytest.raises(ValueError, match="unknown CAM layer"):
        analyze(resnet18, photos / "chelsea.png", cam_layer="layer9")
    with pytest.raises(ValueError, match="class -1 does not exist"):
        analyze(resnet18, photos / "chelsea.png", cam_class=-1)


# At random init, 600 unnormalised residual additions overflow float32 (inf/nan activations): a true property of
# kaiming init without zero-init residuals, not of the analysis; its published weights are not shipped.
@pytest.mark.parametrize("name", one_of_each_kind([name for name in list_models() if name != "cifar10_resnet1202"]))
def test_every_architecture(name, photos):
    model = create_model(name)
    result = analyze(model, photos / "coffee.png", cam_layer="layer3")
    assert len(result.blocks) == model.card.arch.num_blocks
    size = model.card.preprocess.crop_size  # random init keeps the preprocessing of the arch's default weights
    assert np.isfinite(result.cam).all() and result.cam.shape == (size, size)
    plain = not model.card.arch.shortcut
    for stats in result.blocks.values():
        # A zero-initialised branch (the pre-activation nets' default) has no direction: no cosine.
        assert (stats.residual_ratio is None) == plain
        assert (stats.cosine is None) == (plain or stats.residual_ratio == 0.0)
        assert 0.0 <= stats.zero_fraction <= 1.0
    assert hooks_left(model) == 0


def test_rendering(resnet18, photos):
    result = analyze(resnet18, photos / "chelsea.png")
    feature = result.stages["layer1"]
    grid, order = feature_grid(feature, max_channels=16, cell=32)
    assert grid.dtype == np.uint8 and grid.shape == (4 * 34 + 2, 4 * 34 + 2, 3)
    means = feature.mean(dim=(1, 2))
    assert order == means.argsort(descending=True).tolist()[:16]
    assert feature_grid(feature, 64, sort="index")[1] == list(range(64))
    photo = np.asarray(result.crop)
    assert np.array_equal(cam_overlay(result.crop, result.cam, 0.0), photo)
    assert not np.array_equal(cam_overlay(result.crop, result.cam, 0.7), photo)
    for figure in (channel_figure(feature, order[0]), cost_figure(cost_table("resnet18"))):
        assert figure.axes


def test_grid_index_inverts_the_grid_layout_and_refuses_gutters():
    cell, pad, count = 32, 2, 10  # 4 columns, 3 rows, the last row half full
    for index in range(count):
        row, col = divmod(index, 4)
        top, left = pad + row * (cell + pad), pad + col * (cell + pad)
        assert grid_index(count, left, top, cell, pad) == index
        assert grid_index(count, left + cell - 1, top + cell - 1, cell, pad) == index
        assert grid_index(count, left + cell, top, cell, pad) is None  # the gutter to its right
    assert grid_index(count, 0, 0, cell, pad) is None
    assert grid_index(count, pad + 3 * (cell + pad), pad + 2 * (cell + pad), cell, pad) is None  # past the end


def test_three_stage_networks_offer_their_own_stages(photos):
    model = create_model("cifar10_resnet20")
    result = analyze(model, photos / "chelsea.png")
    assert result.cam_layer == "layer3" and result.cam_layers == ["stem", "layer1", "layer2", "layer3"]
    assert result.cam.shape == (32, 32) and result.crop.size == (32, 32)
    with pytest.raises(ValueError, match="unknown CAM layer"):
        analyze(model, photos / "chelsea.png", cam_layer="layer4")
