"""The degradation lab: data, deterministic training, the shipped reference run, gradient flow and lesions."""

import argparse
import dataclasses
import io
import itertools
from pathlib import Path

import pytest
import torch
from PIL import Image

from resnet_core import degradation
from resnet_core.render import lesion_figure
from resnet_core.zoo.label_spaces import MNIST_MEAN, MNIST_STD
from resnet_core.zoo.models import ResNet, ZeroPadShortcut

SMALL = degradation.LabConfig(depths=(8,), widths=(4, 8, 16), steps=3, warmup=1)


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return degradation.load_mnist_5k()


@pytest.fixture(scope="module")
def reference_runs() -> list[degradation.LabRun]:
    return degradation.load_runs()


@pytest.fixture(scope="module")
def reference_models() -> dict[str, ResNet]:
    return degradation.load_lab_models()


def test_mnist_5k_is_balanced_and_normalised(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = digits
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert labels.bincount().tolist() == [500] * 10
    # Background pixels are 0, i.e. -mean/std after normalisation; the digits' own statistics are close to MNIST's.
    assert images.min().item() == pytest.approx(-MNIST_MEAN / MNIST_STD)
    assert abs(images.mean().item()) < 0.05 and abs(images.std().item() - 1) < 0.05


def test_learning_rate_warms_up_linearly_then_decays_to_zero() -> None:
    config = degradation.LabConfig()
    rates = [degradation.learning_rate(step, config) for step in range(config.steps)]
    assert rates[0] == pytest.approx(config.lr / config.warmup)
    assert rates[config.warmup - 1] == pytest.approx(config.lr) == rates[config.warmup]
    after = rates[config.warmup :]
    assert all(a > b for a, b in itertools.pairwise(after))
    assert rates[-1] < 1e-3 * config.lr


def test_batch_order_visits_every_digit_once_per_epoch() -> None:
    config = degradation.LabConfig()
    order = degradation.batch_order(5000, config)
    assert order.shape == (config.steps, config.batch_size)
    first_epoch = order[: 5000 // 128].flatten()
    assert first_epoch.unique().numel() == first_epoch.numel()
    assert not torch.equal(order, degradation.batch_order(5000, degradation.LabConfig(seed=1)))


@pytest.mark.slow
def test_twenty_steps_are_bit_identical_for_one_seed(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = digits

    def run(seed: int) -> tuple[list[tuple[str, int, float]], dict[str, torch.Tensor]]:
        config = degradation.LabConfig(depths=(20,), steps=20, warmup=5, seed=seed)
        models = {"digits_resnet20": degradation.build_lab_model(20, False, config)}
        return list(degradation.train_iter(models, images, labels, config)), models["digits_resnet20"].state_dict()

    first, second = run(0), run(0)
    assert [step for _, step, _ in first[0]] == list(range(20))
    assert first[0] == second[0]
    assert all(torch.equal(first[1][key], second[1][key]) for key in first[1])


def test_plain_and_residual_twins_start_from_the_same_weights() -> None:
    models = degradation.build_lab_models(degradation.LabConfig())
    assert list(models) == ["digits_plain20", "digits_plain56", "digits_resnet20", "digits_resnet56"]
    plain, residual = models["digits_plain56"].state_dict(), models["digits_resnet56"].state_dict()
    assert plain.keys() == residual.keys()
    assert all(torch.equal(plain[key], residual[key]) for key in plain)


def test_shipped_curves_show_degradation(reference_runs: list[degradation.LabRun]) -> None:
    assert [run.config.seed for run in reference_runs] == [0, 1, 2]
    # The shipped run is the library's default setting, so the app's curves and `bench.degradation` agree.
    assert all(
        run.config == dataclasses.replace(degradation.LabConfig(), seed=run.config.seed) for run in reference_runs
    )
    assert all(len(model.losses) == run.config.steps for run in reference_runs for model in run.models.values())
    final = [{name: model.final_loss for name, model in run.models.items()} for run in reference_runs]
    # Deeper plain nets fit the digits far worse on every seed (measured 18-30x) ...
    assert all(loss["digits_plain56"] >= 5 * loss["digits_plain20"] for loss in final)
    # ... while deeper residual nets fit them at least as well: on the mean over seeds (seed 0 flips at 1.13x, with
    # both nets at 0.00% training error; seeds 1 and 2 give 0.36x and 0.30x), and never by the plain nets' factor.
    assert sum(loss["digits_resnet56"] for loss in final) <= sum(loss["digits_resnet20"] for loss in final)
    assert all(loss["digits_resnet56"] < 5 * loss["digits_resnet20"] for loss in final)


@pytest.mark.slow
def test_shipped_weights_reproduce_the_shipped_final_losses(
    digits: tuple[torch.Tensor, torch.Tensor],
    reference_runs: list[degradation.LabRun],
    reference_models: dict[str, ResNet],
) -> None:
    images, labels = digits
    assert list(reference_models) == ["digits_plain20", "digits_plain56", "digits_resnet20", "digits_resnet56"]
    for name, model in reference_models.items():
        loss, error = degradation.evaluate(model, images, labels)
        assert loss == pytest.approx(reference_runs[0].models[name].final_loss, rel=1e-4)
        assert error == reference_runs[0].models[name].final_error


def test_shipped_nets_carry_a_card_whose_preprocessing_matches_the_loader(
    digits: tuple[torch.Tensor, torch.Tensor], reference_models: dict[str, ResNet]
) -> None:
    assert list(degradation.reference_models()) == list(reference_models)
    plain = degradation.load_runs()[0].models["digits_plain56"]
    assert f"training loss {plain.final_loss:.4f}, error {plain.final_error:.2%}" in degradation.describe_reference(
        "digits_plain56"
    )
    card = reference_models["digits_resnet56"].card
    assert card.pretrained and card.categories == tuple(str(digit) for digit in range(10))
    raw = digits[0][123] * MNIST_STD + MNIST_MEAN  # back to the file's 0-255 grey levels
    photo = Image.fromarray((raw[0] * 255).round().to(torch.uint8).numpy(), mode="L").convert("RGB")
    assert torch.allclose(card.preprocess(photo), digits[0][123], atol=1e-5)


@pytest.mark.slow
def test_lesions_hurt_the_plain_net_far_more_than_the_residual_net(
    digits: tuple[torch.Tensor, torch.Tensor], reference_models: dict[str, ResNet]
) -> None:
    images, labels = digits[0][::10], digits[1][::10]  # 50 digits per class keeps this fast
    blocks = ["layer2.4", "layer3.4"]  # away from the first blocks, which both nets need (Veit et al. 2016)
    drops = {}
    for name in ("digits_plain56", "digits_resnet56"):
        study = degradation.lesion_study(reference_models[name], images, labels, blocks)
        drops[name] = [study.baseline - accuracy for accuracy in study.accuracy.values()]
    # Measured on all 5,000 digits: digits_resnet56 loses 1.1 and 0.9 points, digits_plain56 66 and 82.
    assert max(drops["digits_resnet56"]) < 0.05
    assert min(drops["digits_plain56"]) > 0.5


def test_lesion_swaps_in_the_shortcut_and_restores_the_block_even_on_error() -> None:
    for plain in (True, False):
        model = degradation.build_lab_model(20, plain, degradation.LabConfig()).eval()
        x = torch.randn(2, 1, 28, 28)
        before = model(x)
        block = model.layer2[0]
        with pytest.raises(RuntimeError, match="inside"), degradation.lesioned(model, "layer2.0"):
            assert isinstance(model.layer2[0], ZeroPadShortcut)
            assert not torch.equal(model(x), before)
            raise RuntimeError("inside")
        assert model.layer2[0] is block
        assert torch.equal(model(x), before)


def test_lesion_rejects_unknown_blocks() -> None:
    model = degradation.build_lab_model(20, False, degradation.LabConfig())
    with pytest.raises(ValueError, match=r"layer1\.0"), degradation.lesioned(model, "layer4.0"):
        pass


def test_gradient_explodes_towards_the_input_of_the_plain_net_only(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = digits[0][::39][:128], digits[1][::39][:128]
    config = degradation.LabConfig()
    flows = {}
    for plain in (True, False):
        model = degradation.build_lab_model(56, plain, config).requires_grad_(not plain)  # a frozen model works too
        buffers = {key: value.clone() for key, value in model.state_dict().items()}
        flows[plain] = degradation.gradient_flow(model, images, labels)
        # The caller's model is untouched: same BN statistics, no gradients, no hooks left behind.
        assert all(torch.equal(value, buffers[key]) for key, value in model.state_dict().items())
        assert all(p.grad is None for p in model.parameters())
        assert not any(module._forward_hooks for module in model.modules())
    for flow in flows.values():
        assert list(flow) == ["stem", "layer1", "layer2", "layer3"]
        assert all(torch.isfinite(torch.tensor(norm)) and norm > 0 for norm in flow.values())
    # He et al. note BN keeps plain nets' gradients from vanishing; at 56 layers they instead grow by orders of
    # magnitude on the way back to the input (measured ~5000x vs ~25x for the residual twin).
    growth = {plain: flow["stem"] / flow["layer3"] for plain, flow in flows.items()}
    assert growth[True] > 20 * growth[False]
    assert flows[True]["stem"] > flows[False]["stem"]


@pytest.mark.slow
def test_cli_writes_curves_weights_and_plot_that_load_back(
    tmp_path: Path, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    parser = argparse.ArgumentParser()
    degradation.configure_parser(parser)
    options = "--depths 8 --widths 4 8 16 --steps 3 --seeds 0 --weights --out"
    args = parser.parse_args([*options.split(), str(tmp_path)])
    assert degradation.run_cli(args) == 0
    assert (tmp_path / "curves.png").stat().st_size > 0
    (run,) = degradation.load_runs(tmp_path)
    assert run.config == dataclasses.replace(SMALL, warmup=0)  # the default warm-up: a sixth of 3 steps
    models = degradation.load_lab_models(tmp_path)
    assert list(models) == list(run.models) == ["digits_plain8", "digits_resnet8"]
    for name, model in models.items():
        assert len(run.models[name].losses) == 3
        assert degradation.evaluate(model, *digits)[0] == pytest.approx(run.models[name].final_loss, rel=1e-5)


def test_lesion_lines_of_nets_of_different_depths_run_left_to_right() -> None:
    """A 20- and a 56-layer net: each line is drawn against its blocks' numbers, never over a shared axis of names
    (where the deeper net's names, sorted as text among the shallower one's, made its line zig-zag back)."""
    studies = {
        f"resnet-{6 * n + 2}": degradation.LesionStudy(0.9, {f"layer{s}.{b}": 0.1 * s + 0.01 * b for s in (1, 2, 3)
                                                            for b in range(n)})
        for n in (3, 9)
    }  # fmt: skip
    (axes,) = lesion_figure(studies, "the digits").axes
    drawn = {line.get_label(): line for line in axes.lines if not line.get_label().startswith("_")}
    assert set(drawn) == set(studies)
    for name, line in drawn.items():
        assert list(line.get_xdata()) == list(range(1, len(studies[name].accuracy) + 1))
        assert list(line.get_ydata()) == list(studies[name].accuracy.values())
    assert [line.get_ydata()[0] for line in axes.lines if line.get_label().startswith("_")] == [0.9, 0.9]  # intact


def test_figures_render(digits: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = digits[0][::50], digits[1][::50]
    models = degradation.build_lab_models(SMALL)
    run = degradation.run_lab(models, images, labels, SMALL)
    curves = degradation.plot_curves([run, run])
    assert [ax.get_yscale() for ax in curves.axes] == ["log", "log"]
    assert [len(ax.lines) for ax in curves.axes] == [2, 2]  # one line per seed
    flows = {name: degradation.gradient_flow(model, images, labels) for name, model in models.items()}
    lesions = {name: degradation.lesion_study(model, images, labels) for name, model in models.items()}
    for figure in (curves, degradation.plot_gradient_flow(flows), lesion_figure(lesions, "the digits")):
        figure.savefig(io.BytesIO(), format="png")


@pytest.mark.parametrize("name", ["digits_plain20", "digits_plain56", "digits_resnet20", "digits_resnet56"])
def test_the_lab_nets_are_registered_as_their_shipped_files_say(name: str, torch_home) -> None:
    """One catalog: each shipped lab net is an architecture of the registry, with its weights as DEFAULT."""
    from resnet_core import ARCHITECTURES, create_model, default_weights

    assert ARCHITECTURES[name] == degradation.reference_spec(name)  # read from the file's own metadata
    model = create_model(name, weights="DEFAULT")  # offline: the shipped copy
    assert model.card.pretrained and model.card.weights == default_weights(name) and model.card.preprocess.grayscale
    shipped = degradation.load_lab_models()[name]
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values(), strict=True)
    )


def test_the_old_names_still_work_for_one_release() -> None:
    from resnet_core import get_arch

    with pytest.warns(FutureWarning, match="'resnet-56' is now called 'digits_resnet56'"):
        assert get_arch("resnet-56").name == "digits_resnet56"
