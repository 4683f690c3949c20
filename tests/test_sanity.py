"""Sanity checks of saliency maps, tested against oracles written here: the model's own occlusion sensitivity, the
guided-backpropagation rule as an autograd function, and curve end points computed by hand. The shipped CIFAR-10
resnet20 and a few of its shipped test images keep every test offline and fast."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import Tensor, nn

from resnet_core import create_model
from resnet_core.__main__ import main as cli
from resnet_core.data.cifar10 import GALLERY_DIR, load_subset, to_batch
from resnet_core.explain.analysis import analyze
from resnet_core.explain.saliency import filled, occlusion_passes, saliency_map
from resnet_core.explain.sanity import (
    Protocol,
    cascading_randomization,
    perturbation_curve,
    randomization_order,
    randomization_spread,
    reinitialize,
    sanity_check,
)
from resnet_core.hooks import forward_hooks
from resnet_core.measure.metrics import spearman, ssim

from .conftest import hooks_left

CAT = GALLERY_DIR / "cat_0000.png"


@pytest.fixture(scope="module")
def resnet20() -> nn.Module:
    return create_model("cifar10_resnet20", weights="DEFAULT")


@pytest.fixture(scope="module")
def samples(resnet20) -> list[tuple[Tensor, int]]:
    """Six shipped test images the model classifies correctly, as (normalised (1, 3, 32, 32) input, label)."""
    images, labels, _ = load_subset()
    batch = to_batch(images[:12], resnet20.card.preprocess.mean, resnet20.card.preprocess.std)
    with torch.inference_mode():
        right = (resnet20(batch).argmax(1).numpy() == labels[:12]).nonzero()[0]
    return [(batch[i : i + 1], int(labels[i])) for i in right[:6]]


def probability(model: nn.Module, inputs: Tensor, class_index: int) -> float:
    with torch.inference_mode():
        return float(model(inputs).softmax(-1)[0, class_index])


def log_odds_drop_per_patch(model: nn.Module, inputs: Tensor, class_index: int, patch: int = 4) -> np.ndarray:
    """The oracle: blur one patch at a time and record how much the class log-odds falls (log-odds rank the patches
    as the probability does, without float32 rounding a 0.9999999 to 1). One value per pixel."""
    background = filled(inputs, "blur")
    side = inputs.shape[-1]
    occluded = []
    for top in range(0, side, patch):
        for left in range(0, side, patch):
            image = inputs.clone()
            image[..., top : top + patch, left : left + patch] = background[..., top : top + patch, left : left + patch]
            occluded.append(image)
    with torch.inference_mode():
        logits = model(torch.cat([inputs, *occluded]))
    others = torch.cat([logits[:, :class_index], logits[:, class_index + 1 :]], 1)
    odds = logits[:, class_index] - others.logsumexp(1)  # log p - log(1 - p), from the logits
    drop = (odds[0] - odds[1:]).view(side // patch, side // patch)
    return drop.repeat_interleave(patch, 0).repeat_interleave(patch, 1).numpy()


# ---- (a) a map that is right by construction beats random, its reverse loses ----------------------------------------
def test_the_models_own_occlusion_sensitivity_beats_random_under_patch_deletion(resnet20, samples):
    protocol = Protocol(patch=4)  # blur fill, deletion
    aucs = {"map": [], "random": [], "reversed": []}
    for inputs, label in samples:
        sensitivity = log_odds_drop_per_patch(resnet20, inputs, label)
        aucs["map"].append(perturbation_curve(resnet20, inputs, label, sensitivity, protocol).auc)
        aucs["random"].append(perturbation_curve(resnet20, inputs, label, None, protocol).auc)
        aucs["reversed"].append(perturbation_curve(resnet20, inputs, label, -sensitivity, protocol).auc)
    mean = {name: float(np.mean(values)) for name, values in aucs.items()}
    assert mean["map"] < mean["random"] - 0.1, mean
    assert sum(m < r for m, r in zip(aucs["map"], aucs["random"], strict=True)) >= len(samples) - 1, aucs
    assert mean["reversed"] > mean["random"], mean


def test_occlusion_method_is_that_sensitivity(resnet20, samples):
    inputs, label = samples[0]
    oracle = log_odds_drop_per_patch(resnet20, inputs, label)
    oracle = (oracle - oracle.min()) / (oracle.max() - oracle.min())
    ours = saliency_map(resnet20, inputs, label, "occlusion", window=4, stride=4)
    np.testing.assert_allclose(ours, oracle, atol=1e-4)
    assert occlusion_passes((32, 32), 4, 4) == 65 and occlusion_passes((32, 32)) == 15 * 15 + 1


# ---- (b) ties: a constant map is a random ranking ------------------------------------------------------------------
def test_a_constant_map_scores_like_random(resnet20, samples):
    constant = np.zeros((32, 32), dtype=np.float32)
    seeds = range(6)
    tied = [perturbation_curve(resnet20, x, label, constant, seed=s).auc for x, label in samples for s in seeds]
    rand = [perturbation_curve(resnet20, x, label, None, seed=100 + s).auc for x, label in samples for s in seeds]
    # Measured: a difference of about 0.02; breaking ties in raster order (top rows first) costs about 0.15.
    assert abs(np.mean(tied) - np.mean(rand)) < 0.06, (np.mean(tied), np.mean(rand))
    x, label = samples[0]
    again = perturbation_curve(resnet20, x, label, constant, seed=0)
    assert again == perturbation_curve(resnet20, x, label, constant, seed=0)  # seeded: repeatable
    assert again.probabilities != perturbation_curve(resnet20, x, label, constant, seed=1).probabilities


# ---- (c) cascading randomization ------------------------------------------------------------------------------------
def test_cascading_randomization_on_the_trained_resnet20(resnet20, samples):
    before = {name: tensor.clone() for name, tensor in resnet20.state_dict().items()}
    rng = torch.get_rng_state()
    results = [cascading_randomization(resnet20, x, label) for x, label in samples[:4]]
    assert [step.step for step in results[0]] == ["head", "layer3", "layer2", "layer1", "stem"]
    for steps in results:
        last = steps[-1]
        # Nothing trained is left: the map is unrelated (or constant, where Grad-CAM finds no positive evidence).
        assert last.spearman is None or last.spearman < 0.3, steps
        assert last.ssim < 0.3 and all(step.seconds > 0 for step in steps)
    defined = [steps[-1].spearman for steps in results if steps[-1].spearman is not None]
    assert not defined or abs(np.mean(defined)) < 0.3
    # The caller's model is untouched, nothing is left hooked, the global generator is where it was.
    after = resnet20.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert hooks_left(resnet20) == 0 and not any(p.requires_grad for p in resnet20.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    again = cascading_randomization(resnet20, *samples[0])
    assert [(s.spearman, s.ssim) for s in again] == [(s.spearman, s.ssim) for s in results[0]]  # seeded


def test_the_verdicts_steps_run_over_several_seeds(resnet20, samples):
    """The first two steps over five draws: the first draw is the cascade's own, each other one the cascade with
    its seed, and the median and range are those of the draws."""
    x, label = samples[1]
    cascade = cascading_randomization(resnet20, x, label, seed=3)
    spread = randomization_spread(resnet20, x, label, cascade, seed=3, seeds=5)
    assert [entry.step for entry in spread] == ["head", "layer3"] and spread[0].seeds == (3, 4, 5, 6, 7)
    for step, entry in enumerate(spread):
        assert (entry.spearman[0], entry.ssim[0]) == (cascade[step].spearman, cascade[step].ssim)
        for draw, seed in enumerate(entry.seeds[1:], start=1):
            alone = cascading_randomization(resnet20, x, label, seed=seed, steps=2)[step]
            assert (entry.spearman[draw], entry.ssim[draw]) == (alone.spearman, alone.ssim)
    ranked = spread[0].ranked
    assert len(set(ranked)) > 1  # new weights are a random draw: the draws differ
    assert spread[0].spearman_range() == (float(np.median(ranked)), min(ranked), max(ranked))
    numbers = spread[0].as_dict()
    assert numbers["median_spearman"] == float(np.median(ranked)) and numbers["seeds"] == [3, 4, 5, 6, 7]


def test_the_medians_interval_is_the_sign_test_one():
    from resnet_core.explain.sanity import RandomizationSpread, median_rank

    assert [median_rank(n) for n in (5, 6, 10, 20, 30)] == [1, 1, 2, 6, 10]  # P(B <= k - 1) <= 2.5%
    spread = RandomizationSpread("layer3", tuple(range(10)), (0.9, None, *np.linspace(0, 0.7, 8)), (0.0,) * 10)
    assert spread.median_interval() == (0.0, 0.7)  # x(2), x(9); a constant map counts as -1


@pytest.mark.slow
def test_two_disjoint_seed_sets_do_not_contradict_each_other(resnet20, samples):
    """Five draws under "every draw below / none" gave the same verdict from seeds 0-4 and 5-9 on 17 of 30 CIFAR-10
    test images (cifar10_resnet56). With the median's interval, in rounds of 10 up to 30 draws, seeds 0-29 and 30-59
    agree there on 28 of 30 and never give a pass against a fail: where they differ, one set is still undecided
    after 30 draws (the median lies near the bar). Here, ResNet-20 on six test images: 5 of 6 the same, none
    contradicting."""
    pairs = []
    for x, label in samples:
        original = saliency_map(resnet20, x, label)
        verdicts = []
        for first in (0, 30):
            cascade = cascading_randomization(resnet20, x, label, seed=first, original=original, steps=2)
            verdicts.append(randomization_spread(resnet20, x, label, cascade, first, original=original)[-1].verdict())
        pairs.append(tuple(verdicts))
    assert not [pair for pair in pairs if set(pair) == {"passes", "fails"}], pairs
    assert sum(first == second for first, second in pairs) >= 5, pairs
    assert all("undecided" in pair for pair in pairs if pair[0] != pair[1]), pairs


def test_randomization_order_comes_from_the_model(resnet20):
    resnet50 = create_model("resnet50", weights=None)
    assert randomization_order(resnet20)[0] == ("head", ("avgpool", "fc"))
    assert [name for name, _ in randomization_order(resnet50)] == [
        "head",
        "layer4",
        "layer3",
        "layer2",
        "layer1",
        "stem",
    ]
    assert randomization_order(resnet50)[-1][1] == ("conv1", "bn1", "relu", "maxpool")


def test_reinitialize_resets_only_the_named_parts(resnet20):
    model = copy.deepcopy(resnet20)
    torch.manual_seed(0)
    reinitialize(model, ["layer3"])
    bn = model.layer3[0].bn1
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
    assert not torch.equal(model.layer3[2].conv2.weight, resnet20.layer3[2].conv2.weight)
    for name, tensor in model.state_dict().items():
        if not name.startswith("layer3."):
            assert torch.equal(tensor, resnet20.state_dict()[name]), name
    assert not any(p.requires_grad for p in model.parameters())


def test_rank_correlation_and_ssim():
    generator = np.random.default_rng(0)
    a = generator.random((32, 32))
    assert spearman(a, a**3) == pytest.approx(1.0)  # a rank statistic: any increasing transform is the same map
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.zeros_like(a)) is None
    ties = np.array([0.0, 0.0, 0.0, 1.0, 2.0])  # average ranks: 2, 2, 2, 4, 5
    assert spearman(ties, np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(
        np.corrcoef([2, 2, 2, 4, 5], range(5))[0, 1]
    )
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, generator.random((32, 32))) < 0.2
    assert ssim(a, 1 - a) < 0 and ssim(a, 1 - a) == pytest.approx(ssim(1 - a, a))


# ---- (d) the curves' shape and end points ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "protocol",
    [
        Protocol(),
        Protocol(fill="zero", patch=4),
        Protocol("insertion", patch=4),
        Protocol("insertion", "zero", steps=5),
    ],
    ids=lambda p: f"{p.mode}-{p.fill}-{p.patch}px-{p.steps}",
)
def test_curves_have_steps_plus_one_points_and_the_right_ends(resnet20, samples, protocol):
    inputs, label = samples[1]
    saliency = saliency_map(resnet20, inputs, label)
    curve = perturbation_curve(resnet20, inputs, label, saliency, protocol)
    assert len(curve.probabilities) == len(curve.fractions) == protocol.steps + 1
    assert curve.fractions[0] == 0.0 and curve.fractions[-1] == 1.0 and np.all(np.diff(curve.fractions) > 0)
    intact, gone = probability(resnet20, inputs, label), probability(resnet20, filled(inputs, protocol.fill), label)
    start, end = (intact, gone) if protocol.mode == "deletion" else (gone, intact)
    assert curve.probabilities[0] == pytest.approx(start, abs=1e-5)
    assert curve.probabilities[-1] == pytest.approx(end, abs=1e-5)
    assert min(curve.probabilities) <= curve.auc <= max(curve.probabilities)
    one_step = perturbation_curve(resnet20, inputs, label, saliency, Protocol(protocol.mode, protocol.fill, steps=1))
    assert one_step.auc == pytest.approx((start + end) / 2, abs=1e-5)  # the trapezoid over [0, 1]
    assert json.loads(json.dumps(curve.as_dict()))["protocol"]["description"] == protocol.describe()


@pytest.mark.parametrize("patch", [1, 4])
def test_deletion_removes_the_most_salient_pixels_first(resnet20, samples, patch):
    inputs, label = samples[2]
    saliency = np.zeros((32, 32), dtype=np.float32)
    saliency[8:16, 16:24] = 1.0  # 64 pixels, four 4x4 patches: exactly 1/16 of the image
    curve = perturbation_curve(resnet20, inputs, label, saliency, Protocol(patch=patch))
    expected = inputs.clone()
    expected[..., 8:16, 16:24] = filled(inputs, "blur")[..., 8:16, 16:24]
    assert curve.fractions[1] == 1 / 16
    assert curve.probabilities[1] == pytest.approx(probability(resnet20, expected, label), abs=1e-6)


def test_protocol_describes_itself_and_rejects_nonsense():
    assert "blurred copy" in Protocol().describe() and "lower is better" in Protocol().describe()
    assert "4x4 patches" in Protocol(patch=4).describe()
    assert "higher is better" in Protocol("insertion", "zero").describe()
    assert Protocol(steps=20, schedule="ceil").counts(1024) == [*range(0, 1024, 52), 1024]  # TorchCAM's 21 points
    assert Protocol(steps=16).counts(1024) == list(range(0, 1025, 64))
    assert "ties in raster order" in Protocol(ties="raster").describe()
    for bad in ({"mode": "erase"}, {"fill": "noise"}, {"patch": 0}, {"steps": 0}, {"ties": "x"}, {"schedule": "x"}):
        with pytest.raises(ValueError):
            Protocol(**bad)


# ---- the methods ----------------------------------------------------------------------------------------------------
class _GuidedReLU(torch.autograd.Function):
    """The rule itself: pass a gradient back only where it is positive and the ReLU's input was positive."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0)


class _GuidedReLUModule(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return _GuidedReLU.apply(x)


def test_guided_gradcam_applies_the_rule_although_blocks_reuse_their_relu(resnet20, samples):
    inputs, label = samples[3]
    calls = []
    with forward_hooks(resnet20, [("layer1.0.relu", lambda *args: calls.append(args[0]))]):
        resnet20(inputs)
    assert len(calls) == 2  # one ReLU module, called twice per block: the case captum's hooks must get right
    reference = copy.deepcopy(resnet20)
    for module in list(reference.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, name, _GuidedReLUModule())
    x = inputs.clone().requires_grad_()
    (guided,) = torch.autograd.grad(reference(x)[0, label], x)
    cam = LayerGradCam(resnet20, resnet20.layer3).attribute(inputs, target=label, relu_attributions=True)
    cam = F.interpolate(cam.detach(), size=(32, 32), mode="bilinear")
    expected = (guided[0] * cam[0]).abs().sum(0)
    np.testing.assert_allclose(saliency_map(resnet20, inputs, label, "guided"), expected / expected.max(), atol=1e-5)
    assert hooks_left(resnet20) == 0


def test_gradcam_is_the_apps_gradcam(resnet20):
    result = analyze(resnet20, CAT)
    inputs = resnet20.card.preprocess.normalize(result.crop).unsqueeze(0)
    np.testing.assert_allclose(saliency_map(resnet20, inputs, result.cam_class), result.cam, atol=1e-6)


@pytest.mark.parametrize("method", ["gradcam", "guided", "occlusion"])
def test_every_method_gives_a_unit_map_and_leaves_the_model_alone(resnet20, samples, method):
    inputs, label = samples[4]
    with torch.inference_mode():  # as a web handler may call it
        saliency = saliency_map(resnet20, inputs, label, method)
    assert saliency.shape == (32, 32) and saliency.min() >= 0 and saliency.max() == pytest.approx(1.0)
    assert hooks_left(resnet20) == 0
    assert all(p.grad is None and not p.requires_grad for p in resnet20.parameters())
    with pytest.raises(ValueError, match="unknown stage"):
        saliency_map(resnet20, inputs, label, method if method != "occlusion" else "gradcam", layer="layer9")
    assert hooks_left(resnet20) == 0


def test_sanity_check_counts_forward_passes_and_cleans_up(resnet20):
    report = sanity_check(resnet20, CAT, "occlusion", window=8, stride=8)
    assert report.forward_passes == occlusion_passes((32, 32), 8, 8) == 17  # 4 x 4 windows and the intact image
    assert report.options == {"window": 8, "stride": 8}
    # Grad-CAM rides on one forward, of the image twice (a batch of one takes other CPU kernels: gradcam_maps)
    assert sanity_check(resnet20, CAT).forward_passes == 2
    with pytest.raises(ValueError):
        sanity_check(resnet20, CAT, layer="layer9")
    assert hooks_left(resnet20) == 0


# ---- (e) the command line -------------------------------------------------------------------------------------------
def test_cli_sanity_json(capsys):
    code = cli(["sanity", str(CAT), "--arch", "cifar10_resnet20", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    payload = json.loads(out)
    assert (payload["arch"], payload["method"], payload["class"]) == ("cifar10_resnet20", "gradcam", "cat")
    assert [row["step"] for row in payload["randomization"]] == ["head", "layer3", "layer2", "layer1", "stem"]
    assert all(set(row) >= {"step", "spearman", "ssim"} for row in payload["randomization"])
    spread = [(row["step"], len(row["spearman"])) for row in payload["randomization_seeds"]]
    draws = spread[0][1]
    assert spread == [("head", draws), ("layer3", draws)] and draws in (10, 20, 30)  # rounds of 10 until decided
    last = payload["randomization_seeds"][-1]
    assert last["verdict"] in ("passes", "fails", "undecided") and len(last["median_spearman_interval"]) == 2
    for key in ("deletion_auc", "random_deletion_auc", "insertion_auc", "random_insertion_auc"):
        assert 0.0 <= payload[key] <= 1.0, key
    assert payload["deletion_auc"] < payload["random_deletion_auc"]  # Grad-CAM on a 100%-confident cat
    assert payload["protocol"] == Protocol().describe()
    assert len(payload["curves"]["deletion"]["probabilities"]) == 17


@pytest.mark.slow
def test_cli_sanity_text_and_user_errors(capsys):
    code = cli(["sanity", str(CAT), "--arch", "cifar10_resnet20", "--method", "occlusion", "--window", "8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "occlusion map of 'cat'" in out and "50 image(s)" in out and "Deletion:" in out  # 7 x 7 windows + 1
    assert cli(["sanity", str(CAT), "--arch", "cifar10_resnet20", "--layer", "layer9"]) == 2
    assert "unknown stage" in capsys.readouterr().err
