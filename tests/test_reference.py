"""``verify``: ours against torchvision's and timm's network of the same name, with the same weights."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import resnet_core.explain.reference as reference
from resnet_core import ARCHITECTURES, create_model, load_image
from resnet_core.__main__ import main as cli
from resnet_core.explain.reference import check_reference, reference_library, verify

from .conftest import hooks_left, randomize_batchnorm

STAGES = ["stem", "layer1", "layer2", "layer3", "layer4"]


def test_the_registry_names_every_library_that_has_a_namesake():
    """``ArchSpec.reference`` is the one record of which library to check against: it must name torchvision for
    every torchvision builder of the same name, timm for the rest of timm's, and nothing else."""
    import timm
    import torchvision

    torchvision_names = set(torchvision.models.list_models(module=torchvision.models))
    timm_names = set(timm.list_models())
    expected = {
        name: "torchvision" if name in torchvision_names else "timm" if name in timm_names else None
        for name in ARCHITECTURES
    }
    assert {name: reference_library(name) for name in ARCHITECTURES} == expected


def test_without_timm_only_torchvision_is_a_reference(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now raises ImportError
    assert reference_library("resnet18") == "torchvision"
    assert reference_library("resnet50d") is None
    with pytest.raises(ValueError, match="timm, which may have one, is not installed"):
        check_reference("resnet50d")


@pytest.mark.parametrize(
    ("arch", "library"), [("resnet18", "torchvision"), pytest.param("resnet50d", "timm", marks=pytest.mark.slow)]
)
def test_same_weights_give_the_same_outputs(arch, library):
    torch.manual_seed(0)
    model = randomize_batchnorm(create_model(arch, weights=None))
    result = verify(model)
    assert (result.arch, result.reference) == (arch, library)
    assert list(result.stage_diffs) == STAGES
    assert result.max_abs_diff <= 1e-5 and max(result.stage_diffs.values()) <= 1e-5
    assert len(result.topk) == 5 and result.topk_agree
    assert [row[0] for row in result.topk] == [row[0] for row in result.reference_topk]
    assert verify(model).topk == result.topk  # the random input is seeded
    assert hooks_left(model) == 0 and not model.training


def test_a_model_in_train_mode_is_compared_in_eval_mode_and_left_as_it_was():
    torch.manual_seed(0)
    model = randomize_batchnorm(create_model("resnet18", weights=None)).train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    assert verify(model).max_abs_diff <= 1e-5  # batch statistics of one image would differ from the reference's
    assert all(module.training for module in model.modules())
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


@pytest.mark.parametrize("side", ["reference", "ours"])
def test_a_changed_weight_on_either_side_shows_where_it_is(monkeypatch, side):
    torch.manual_seed(0)
    model = create_model("resnet18", weights=None)
    build_reference = reference.reference_model

    def nudged(ours):
        theirs = build_reference(ours)  # holds our weights now; then one side changes one tensor in layer3
        with torch.no_grad():
            # A BN shift before the block's sum, not one conv tap: a ReLU cannot hide it.
            (theirs if side == "reference" else ours).get_parameter("layer3.0.bn2.bias").add_(0.5)
        return theirs

    monkeypatch.setattr(reference, "reference_model", nudged)
    result = verify(model)
    assert [result.stage_diffs[stage] for stage in STAGES[:3]] == [0.0, 0.0, 0.0]
    assert result.stage_diffs["layer3"] > 0 and result.stage_diffs["layer4"] > 0
    assert result.max_abs_diff > 0


@pytest.mark.slow
def test_cli_json_reports_the_image_the_model_saw(capsys, photos):
    image = photos / "chelsea.png"
    torch.manual_seed(0)
    assert cli(["verify", "resnet18", "--weights", "none", "--image", str(image), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["arch"], payload["reference"], payload["pretrained"]) == ("resnet18", "torchvision", False)
    assert payload["weights"] == "resnet18 (random init)"
    assert payload["max_abs_diff"] <= 1e-5 and list(payload["stage_diffs"]) == STAGES
    assert set(payload["topk"][0]) == {"index", "label", "probability"}

    torch.manual_seed(0)  # the same random init the command built
    model = create_model("resnet18", weights=None)
    with torch.inference_mode():
        probabilities = model(model.card.preprocess(load_image(image))[None]).softmax(-1)[0]
    expected = probabilities.topk(5).indices.tolist()
    assert [row["index"] for row in payload["topk"]] == expected
    assert [row["index"] for row in payload["reference_topk"]] == expected

    assert cli(["verify", "resnet18", "--weights", "none"]) == 0
    table = capsys.readouterr().out
    assert "against torchvision's resnet18" in table and "logits" in table and "top-5 agree" in table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cifar10_resnet20", "--weights", "none"], "cifar10_resnet20 has no reference implementation"),
        (["plain34"], "plain34 has no reference implementation"),
        (["resnet9", "--weights", "none"], "unknown architecture 'resnet9'"),
    ],
)
def test_cli_without_a_reference_says_so_in_one_line(capsys, argv, message):
    assert cli(["verify", *argv, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {message}") and captured.err.count("\n") == 1


def test_verify_refuses_a_model_without_a_reference():
    with pytest.raises(ValueError, match="plain34 has no reference implementation in torchvision or timm"):
        verify(create_model("plain34", weights=None))
