"""The evidence split per block: checked against finite differences, its own sums, a plain twin, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from resnet_core import create_model
from resnet_core.__main__ import main as cli
from resnet_core.explain.analysis import analyze
from resnet_core.explain.evidence import class_index_of, evidence_split

from .conftest import ROOT, hooks_left


@pytest.fixture(scope="module")
def resnet20():
    return create_model("cifar10_resnet20", weights="DEFAULT")


def scaled_logit(model, inputs, block: str, term: str, scale: float, class_index: int) -> float:
    """The class logit with one term of one block's sum multiplied by ``scale``: z = scale * F(x) + shortcut(x), or
    F(x) + scale * shortcut(x). Its derivative in ``scale`` at 1 is that term's first-order contribution."""

    def rescale(module, args, output):
        residual, shortcut = args
        return output + (scale - 1) * (residual if term == "branch" else shortcut)

    handle = model.get_submodule(f"{block}.residual_add").register_forward_hook(rescale)
    try:
        with torch.no_grad():
            return float(model(inputs)[0, class_index])
    finally:
        handle.remove()


def test_contributions_equal_finite_differences(resnet20, photos):
    """In float64 on the trained CIFAR-10 ResNet-20: d logit / d scale by central differences, for both terms of a
    block in each stage (option A's padded shortcut included), to 1e-6 of the logit's scale."""
    model = create_model("cifar10_resnet20", weights="DEFAULT").double()
    split = evidence_split(model, photos / "chelsea.png")
    crop_input = model.card.preprocess.normalize(split.crop).unsqueeze(0).double()
    step = 1e-7  # small enough that no ReLU downstream changes side
    for block in ("layer1.1", "layer2.0", "layer3.2"):
        entry = split.block(block)
        for term in ("branch", "shortcut"):
            up, down = (scaled_logit(model, crop_input, block, term, 1 + s, split.class_index) for s in (step, -step))
            assert getattr(entry, term) == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-6), (block, term)
    assert hooks_left(model) == 0


def test_terms_add_up_maps_sum_to_them_and_the_class_is_the_top1(resnet20, photos):
    split = evidence_split(resnet20, photos / "chelsea.png")
    result = analyze(resnet20, photos / "chelsea.png")
    assert (split.class_index, split.class_name) == result.topk[0][:2]
    assert [entry.block for entry in split.blocks] == resnet20.block_names()
    for entry in split.blocks:
        assert entry.has_shortcut and entry.total == entry.branch + entry.shortcut
        assert entry.branch_map.sum() == pytest.approx(entry.branch, rel=1e-4, abs=1e-5)
        assert entry.shortcut_map.sum() == pytest.approx(entry.shortcut, rel=1e-4, abs=1e-5)
        assert entry.branch_map.shape == tuple(result.blocks[entry.block].output.shape[-2:])
        assert 0 <= entry.shortcut_share <= 1
    # Another class by name gives that class's logit gradient, not the top-1's.
    other = evidence_split(resnet20, photos / "chelsea.png", class_index="truck")
    assert other.class_index == resnet20.card.categories.index("truck")
    assert other.logit == pytest.approx(float(torch.log(result.probabilities[other.class_index])) + _log_sum_exp(
        resnet20, split.crop), abs=1e-4)  # fmt: skip
    assert hooks_left(resnet20) == 0 and not resnet20.training


def _log_sum_exp(model, crop) -> float:
    with torch.no_grad():
        return float(model(model.card.preprocess.normalize(crop).unsqueeze(0)).logsumexp(-1))


def test_a_plain_network_carries_everything_in_the_branch():
    model = create_model("digits_plain20", weights="DEFAULT")
    split = evidence_split(model, ROOT / "assets" / "digits" / "digit_7.png")
    assert split.class_name == "7"
    assert all(not e.has_shortcut and e.shortcut == 0 and e.shortcut_share == 0.0 for e in split.blocks)
    assert not any(e.shortcut_map.any() for e in split.blocks) and all(e.branch_map.any() for e in split.blocks)


def test_a_bad_class_is_refused_with_a_sentence(resnet20):
    assert class_index_of("Cat", resnet20.card.categories) == 3 and class_index_of("3", ("a",) * 10) == 3
    with pytest.raises(ValueError, match="no class named 'zebra'"):
        class_index_of("zebra", resnet20.card.categories)
    with pytest.raises(ValueError, match="class 10 does not exist: this network has classes 0 to 9"):
        class_index_of(10, resnet20.card.categories)


def test_a_partly_typed_class_name_is_finished_or_answered_with_suggestions():
    """'tabb' fits one ImageNet class and is taken; 'tab' fits several and they are named; a typo gets the
    nearest names. The Grad-CAM tab says the same sentence."""
    from resnet_core.zoo.label_spaces import IMAGENET

    names = IMAGENET.categories
    assert class_index_of("tabb", names) == names.index("tabby") and class_index_of("281: tabby", names) == 281
    with pytest.raises(ValueError, match=r"'tab' fits 2 classes \(tabby, table lamp\): type more of the name"):
        class_index_of("tab", names)
    with pytest.raises(ValueError, match=r"no class named 'tabyy'.*; did you mean tabby"):
        class_index_of("tabyy", names)


def test_command_line_prints_every_block(resnet20, photos, capsys):
    code = cli(["evidence", str(photos / "chelsea.png"), "--arch", "cifar10_resnet20", "--class", "cat", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    payload = json.loads(out)
    expected = evidence_split(resnet20, photos / "chelsea.png", class_index=3)
    assert (payload["arch"], payload["weights"], payload["class"], payload["class_index"]) == (
        "cifar10_resnet20", resnet20.card.label, "cat", 3
    )  # fmt: skip
    assert payload["blocks"] == [entry.as_dict() for entry in expected.blocks]
    assert cli(["evidence", str(photos / "chelsea.png"), "--arch", "cifar10_resnet20", "--class", "zebra"]) == 2
    assert "no class named" in capsys.readouterr().err
