"""Concepts of a stage (NMF of its activations) on the paper's trained CIFAR-10 ResNet-20 and 48 shipped test images:
the factorisation against its own report, the coefficients, the exemplars, the importance against finite differences
in float64, a removal against a forward pass by hand, the cache, and the command line against the library."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_core import create_model
from resnet_core.__main__ import main as cli
from resnet_core.data.sources import open_source
from resnet_core.explain.analysis import model_input
from resnet_core.explain.concepts import (
    channels_at,
    concept_deletion,
    concepts_of_photo,
    deletion_check,
    deletion_share,
    learn_concepts,
    stage_activations,
)
from resnet_core.explain.feature_vis import visualize_direction

IMAGES = 48


@pytest.fixture(scope="module")
def resnet20():
    return create_model("cifar10_resnet20", weights="DEFAULT")


@pytest.fixture(scope="module")
def source():
    return open_source("cifar10").head(IMAGES)


@pytest.fixture(scope="module")
def layer2(resnet20, source):
    return learn_concepts(resnet20, "layer2", source, k=6, use_cache=False)


def concept_part(found, dictionary, j: int) -> torch.Tensor:
    """Concept ``j``'s part of the photo's stage output: its coefficient map times its direction, (C, H, W)."""
    coefficients, direction = torch.from_numpy(found.coefficients[j]), torch.from_numpy(dictionary.components[j])
    return torch.einsum("hw,c->chw", coefficients, direction)


def test_the_factorisation_is_as_good_as_it_reports_and_non_negative(resnet20, source, layer2):
    """The best non-negative coefficients for its directions reproduce the activations at least as well as the
    factorisation says it does, and not much better (its own coefficients are nearly optimal)."""
    assert (layer2.components >= 0).all() and layer2.components.shape == (6, 32)
    assert 0.5 < layer2.explained < 1 and layer2.images == IMAGES and layer2.iterations > 2
    inputs = torch.stack([resnet20.card.preprocess.normalize(resnet20.card.preprocess.crop(source.image(i)))
                          for i in range(IMAGES)])  # fmt: skip
    rows = stage_activations(resnet20, "layer2", inputs).clamp(min=0).permute(0, 2, 3, 1).reshape(-1, 32).double()
    basis = torch.from_numpy(layer2.components)
    solved = torch.linalg.lstsq(basis.T, rows.T).solution.T.clamp(min=0)  # a feasible point: no better than NNLS
    feasible = 1 - float(((rows - solved @ basis) ** 2).sum() / (rows**2).sum())
    assert feasible <= layer2.explained + 1e-6  # the fit's coefficients beat a clamped least-squares guess
    best = projected(rows, layer2.components)  # the optimal coefficients for these directions (NNLS per row)
    optimal = 1 - float(((rows - best @ basis) ** 2).sum() / (rows**2).sum())
    assert layer2.explained - 1e-6 <= optimal <= layer2.explained + 0.02


def projected(rows: torch.Tensor, components: np.ndarray) -> torch.Tensor:
    from scipy.optimize import nnls

    return torch.from_numpy(np.stack([nnls(components.T, row)[0] for row in rows.numpy()]))


def test_exemplars_are_the_images_where_each_concept_is_strongest(layer2):
    strength = layer2.exemplar_strength
    assert (np.diff(strength, axis=1) <= 0).all()  # strongest first
    for j in range(layer2.k):
        assert len(set(layer2.exemplars[j])) == len(layer2.exemplars[j])  # one entry per image
        maps = layer2.exemplar_maps[j]
        assert np.allclose(maps.reshape(len(maps), -1).max(1), strength[j], rtol=1e-5)
        assert (maps >= 0).all() and maps.shape[1:] == (16, 16)


def test_a_photos_contributions_are_the_logits_derivatives_along_each_concept(resnet20, layer2, photos):
    """In float64: d logit / d s at s = 1 of the stage output x + (s - 1) W_j H_j, by central differences, equals
    the contribution the ranking uses (gradient x coefficient summed over positions), to 1e-3 relative."""
    model = create_model("cifar10_resnet20", weights="DEFAULT").double()
    found = concepts_of_photo(model, layer2, photos / "chelsea.png")
    assert (found.coefficients >= 0).all() and found.coefficients.shape == (6, 16, 16)
    _, inputs = model_input(model, photos / "chelsea.png")
    x = stage_activations(model, "layer2", inputs)
    step = 1e-6
    for j in found.ranking[:3]:
        part = concept_part(found, layer2, j)
        with torch.no_grad():
            up, down = (float(model.forward_from("layer2", x + s * part)[0, found.class_index]) for s in (step, -step))
        assert found.contributions[j] == pytest.approx((up - down) / (2 * step), rel=1e-3, abs=1e-6)


def test_removing_a_concept_changes_the_logit_as_a_forward_pass_by_hand(resnet20, layer2, photos):
    found = concepts_of_photo(resnet20, layer2, photos / "chelsea.png")
    curve = concept_deletion(resnet20, layer2, found)
    _, inputs = model_input(resnet20, photos / "chelsea.png")
    x = stage_activations(resnet20, "layer2", inputs)
    first = found.ranking[0]
    part = concept_part(found, layer2, first)
    with torch.no_grad():
        by_hand = resnet20.forward_from("layer2", x - part.float())[0, found.class_index]
        untouched = resnet20.forward_from("layer2", x)[0, found.class_index]
    assert curve.ranked[0] == pytest.approx(float(untouched), rel=1e-5)
    assert curve.ranked[1] == pytest.approx(float(by_hand), rel=1e-4, abs=1e-4)
    assert curve.random.shape == (16, layer2.k + 1) and (curve.random[:, 0] == curve.ranked[0]).all()
    share = deletion_share([True, True, False])
    assert share["beats_random"] == pytest.approx(2 / 3) and share["ci95"][0] < 2 / 3 < share["ci95"][1]


def test_the_dictionary_is_cached_per_weights_layer_data_and_k(resnet20, source, tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_CACHE", str(tmp_path))
    first = learn_concepts(resnet20, "layer3", source, k=4)
    again = learn_concepts(resnet20, "layer3", source, k=4)
    assert not first.from_cache and again.from_cache
    assert np.array_equal(first.components, again.components) and np.array_equal(first.importance, again.importance)
    assert not learn_concepts(resnet20, "layer3", source, k=5).from_cache
    assert not learn_concepts(resnet20, "layer3", source.head(40), k=4).from_cache
    with pytest.raises(ValueError, match="not at the stem"):
        learn_concepts(resnet20, "stem", source, k=4)


def test_the_command_line_prints_the_librarys_numbers(resnet20, source, photos, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESNET_EXPLORER_CACHE", str(tmp_path))
    args = ["concepts", "--arch", "cifar10_resnet20", "--weights", "DEFAULT", "--layer", "layer3", "--k", "4"]
    code = cli([*args, "--limit", str(IMAGES), "--image", str(photos / "chelsea.png"), "--json"])
    payload = json.loads(capsys.readouterr().out)
    dictionary = learn_concepts(resnet20, "layer3", source, k=4)
    photo = concepts_of_photo(resnet20, dictionary, photos / "chelsea.png")
    assert code == 0 and payload["dictionary"]["explained"] == pytest.approx(dictionary.explained)
    np.testing.assert_allclose(payload["dictionary"]["importance"], dictionary.importance)
    assert payload["photo"]["ranking"] == photo.ranking
    assert payload["photo"]["contributions"] == pytest.approx(photo.contributions.tolist())
    assert cli([*args, "--limit", str(IMAGES), "--check", "6"]) == 0
    out = capsys.readouterr().out
    assert "4 concepts of cifar10_resnet20's layer3 over 48 images" in out
    check = deletion_check(resnet20, dictionary, source.head(6))
    low, high = check["ci95"]
    assert f"over the first 6 images the ranking beats random on {100 * check['beats_random']:.1f}% " in out
    assert f"(95% interval {100 * low:.1f}-{100 * high:.1f}%)" in out
    # What concept #1 wants to see, written where asked: the library's image along its direction.
    png = tmp_path / "concept1.png"
    assert cli([*args, "--limit", str(IMAGES), "--visualize", "1", str(png)]) == 0
    expected = visualize_direction(resnet20, "layer3", dictionary.components[1].tolist())
    assert np.array_equal(np.asarray(Image.open(png)), np.asarray(expected.image))
    assert f"concept #1: {png}, {expected.activation:.2f} along its direction" in capsys.readouterr().out
    assert cli([*args, "--limit", str(IMAGES), "--visualize", "9", str(png)]) == 2  # k = 4: concepts 0 to 3


def test_concepts_at_a_residual_block_explain_as_at_a_stage(resnet20, source, photos, tmp_path, monkeypatch):
    """A block (layer2.1, inside layer2) as the layer: forward_from continues from its output exactly, the dictionary
    holds that block's channels, and a photo's contributions are the logit's derivatives along each concept there."""
    monkeypatch.setenv("RESNET_EXPLORER_CACHE", str(tmp_path))
    model = create_model("cifar10_resnet20", weights="DEFAULT").double()
    _, inputs = model_input(model, photos / "chelsea.png")
    x = stage_activations(model, "layer2.1", inputs.double())
    with torch.no_grad():
        assert torch.equal(model.forward_from("layer2.1", x), model(inputs.double()))
    block = learn_concepts(resnet20, "layer2.1", source, k=6)
    assert block.layer == "layer2.1" and block.components.shape == (6, channels_at(resnet20, "layer2.1")) == (6, 32)
    found = concepts_of_photo(model, block, photos / "chelsea.png")
    step = 1e-6
    for j in found.ranking[:3]:
        part = concept_part(found, block, j)
        with torch.no_grad():
            up, down = (
                float(model.forward_from("layer2.1", x + s * part)[0, found.class_index]) for s in (step, -step)
            )
        assert found.contributions[j] == pytest.approx((up - down) / (2 * step), rel=1e-3, abs=1e-6)
    with pytest.raises(ValueError, match=r"or block \(e.g. layer1.0\), not at 'layer9'"):
        learn_concepts(resnet20, "layer9", source, k=2)
