"""The explanation metrics of ``evaluate``, checked against TorchCAM's (a test-only reference, like timm) on the same
maps and images, and against the single-image ``sanity`` numbers. The shipped CIFAR-10 resnet20 and its shipped test
images keep every test offline."""

from __future__ import annotations

import io
import json
from contextlib import contextmanager, redirect_stderr, redirect_stdout

import numpy as np
import pyarrow.dataset as ds
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from resnet_core import create_model, evaluate_dataset
from resnet_core.__main__ import main as cli
from resnet_core.data import cifar10
from resnet_core.evaluate.metrics import METRICS, MetricBatch, image_seed
from resnet_core.evaluate.summary import Summary, metrics_figure
from resnet_core.explain.saliency import saliency_map
from resnet_core.explain.sanity import PROTOCOLS, Protocol, sanity_check

torchcam_metrics = pytest.importorskip("torchcam.metrics", reason="TorchCAM 0.5 (the reference) needs Python 3.11")

ARCH = "cifar10_resnet20"  # trained weights ship in assets/: no download anywhere
COUNT = 16
EXPLANATION_METRICS = ("deletion", "insertion", "average_drop", "increase_in_confidence")


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return create_model(ARCH, weights="DEFAULT")


@pytest.fixture(scope="module")
def inputs(model) -> Tensor:
    """The first shipped test images, normalised as the network expects."""
    images, _, _ = cifar10.load_subset()
    return cifar10.to_batch(images[:COUNT], model.card.preprocess.mean, model.card.preprocess.std)


def explained(model: nn.Module, inputs: Tensor, protocol: str = "default") -> MetricBatch:
    """What the evaluator gives the metrics: every image with its top-1 class."""
    with torch.inference_mode():
        classes = model(inputs).argmax(1)
    return MetricBatch(model, inputs, classes, seeds=[0] * len(inputs), protocol=PROTOCOLS[protocol])


def values(batch: MetricBatch, *names: str) -> dict[str, np.ndarray]:
    """The number columns of the metrics ``names``, one value per image."""
    columns = {}
    for name in names:
        computed = METRICS[name].compute(batch)
        numbers = [column for column, kind in METRICS[name].columns.items() if kind is not str]
        columns.update({column: np.asarray(computed[column], dtype=float) for column in numbers})
    return columns


class GivenMaps:
    """TorchCAM's CAM-extractor interface over maps made here, so its metrics score exactly our Grad-CAM maps."""

    def __init__(self, model: nn.Module, maps: Tensor) -> None:
        self.model, self.maps = model, maps

    def __call__(self, class_idx=None, scores=None, normalized=True, **kwargs) -> list[Tensor]:
        return [self.maps]

    def fuse_cams(self, cams: list[Tensor]) -> Tensor:
        return cams[0]

    @contextmanager
    def _hooks_off(self):
        yield


def test_the_batched_maps_are_the_apps_grad_cam(model, inputs):
    batch = explained(model, inputs)
    maps, probabilities = batch.gradcam
    for index in range(len(inputs)):
        single = saliency_map(model, inputs[index : index + 1], int(batch.classes[index]), "gradcam")
        np.testing.assert_allclose(maps[index].numpy(), single, atol=1e-6)
    with torch.inference_mode():
        expected = model(inputs).softmax(-1).max(1).values
    np.testing.assert_allclose(probabilities.numpy(), expected.numpy(), atol=1e-6)


def test_average_drop_and_increase_in_confidence_equal_torchcams(model, inputs):
    """TorchCAM's ClassificationMetric on our maps: the same batch of 16 (its summary is the mean), and each image
    alone (so every per-image value is checked, not only their sum)."""

    def torchcam(batch: MetricBatch) -> dict[str, float]:
        metric = torchcam_metrics.ClassificationMetric(
            GivenMaps(model, batch.gradcam[0]), lambda logits: logits.softmax(-1)
        )
        metric.update(batch.inputs, class_idx=batch.classes.tolist())
        return metric.summary()

    names = ("average_drop", "increase_in_confidence")
    whole = explained(model, inputs)
    ours = values(whole, *names)
    reference = torchcam(whole)
    assert abs(ours["average_drop"].mean() - reference["avg_drop"]) <= 1e-6
    assert abs(ours["increase_in_confidence"].mean() - reference["conf_increase"]) <= 1e-6
    for index in range(len(inputs)):
        alone = explained(model, inputs[index : index + 1])
        ours_alone, reference = values(alone, *names), torchcam(alone)
        assert abs(ours_alone["average_drop"][0] - reference["avg_drop"]) <= 1e-6
        assert ours_alone["increase_in_confidence"][0] == reference["conf_increase"]
        assert abs(ours_alone["average_drop"][0] - ours["average_drop"][index]) <= 1e-6  # batching changes nothing
    # Not a vacuous equality: the maps keep some images' class and lose others'.
    assert 0 < ours["average_drop"].mean() < 1 and ours["average_drop"].std() > 0.05


@pytest.mark.slow
def test_deletion_and_insertion_equal_torchcams_under_its_protocol(model, inputs):
    """TorchCAM's DeletionInsertionMetric on our maps (zero baseline on the normalised input, ties in raster
    order, 20 steps of ceil(1024 / 20) pixels): the batch of 16, and each image alone."""

    def torchcam(batch: MetricBatch) -> dict[str, float]:
        maps = GivenMaps(model, batch.gradcam[0])
        metric = torchcam_metrics.DeletionInsertionMetric(maps, lambda logits: logits.softmax(-1), steps=20)
        metric.update(batch.inputs, class_idx=batch.classes.tolist())
        return metric.summary()

    names = ("deletion", "insertion")
    whole = explained(model, inputs, "torchcam")
    ours, reference = values(whole, *names), torchcam(whole)
    assert abs(ours["deletion_auc"].mean() - reference["deletion_auc"]) <= 1e-6
    assert abs(ours["insertion_auc"].mean() - reference["insertion_auc"]) <= 1e-6
    for index in range(0, len(inputs), 3):
        alone = explained(model, inputs[index : index + 1], "torchcam")
        ours_alone, reference = values(alone, *names), torchcam(alone)
        assert abs(ours_alone["deletion_auc"][0] - reference["deletion_auc"]) <= 1e-6
        assert abs(ours_alone["insertion_auc"][0] - reference["insertion_auc"]) <= 1e-6
    # Its protocol is not ours: the tie order alone moves the areas (Grad-CAM leaves many pixels at zero).
    default = values(explained(model, inputs), *names)
    assert np.abs(default["deletion_auc"] - ours["deletion_auc"]).max() > 0.01


@pytest.mark.slow
def test_rows_equal_single_image_sanity(model, tmp_path):
    """Eight shipped images in batches of three: each row's areas and head randomization are what ``sanity`` says
    of that image with the row's seed, and the protocol is void exactly where its fully blurred image keeps the
    class above 2/10."""
    out = tmp_path / "out"
    options = dict(limit=8, batch_size=3, workers=0, progress=False)
    evaluate_dataset("cifar10", [model], out, metrics=["deletion", "insertion", "randomization"], **options)
    rows = ds.dataset(out / "rows", format="parquet").to_table().to_pylist()
    images, _, _ = cifar10.load_subset()
    void = 0
    for row in rows:
        index = int(row["path"].split(":")[1]) // 20
        assert row["seed"] == image_seed(row["path"])
        report = sanity_check(model, Image.fromarray(images[index]), seed=row["seed"])
        assert report.class_index == row["topk"][0]["index"]
        head = report.randomization[0]
        assert head.step == "head" and abs(row["randomization_head_ssim"] - head.ssim) <= 1e-5
        assert row["randomization_head_spearman"] == pytest.approx(head.spearman, abs=1e-5)  # both None if constant
        for name in ("deletion", "random_deletion", "insertion", "random_insertion"):
            assert abs(row[f"{name}_auc"] - getattr(report, name).auc) <= 1e-5, (row["path"], name)
        blurred = report.deletion.probabilities[-1]
        assert abs(report.insertion.probabilities[0] - blurred) <= 1e-6  # both protocols end at the blurred image
        for mode in ("deletion", "insertion"):
            assert row[f"{mode}_valid"] == (blurred <= 2 / 10)
            reason = row[f"{mode}_void_reason"]
            assert (reason is None) == row[f"{mode}_valid"]
            if reason:
                assert reason.startswith("protocol void for this image") and f"= {blurred:.3f} > 2/10" in reason
        void += not row["deletion_valid"]
    assert len(rows) == 8 and 0 < void < 8  # both kinds among these images (measured: 2 void)


@pytest.fixture(scope="module")
def command_line_run(tmp_path_factory) -> tuple[object, str]:
    """``python -m resnet_core evaluate`` on twelve shipped images with the four explanation metrics."""
    out = tmp_path_factory.mktemp("run")
    args = ["evaluate", "cifar10", "--archs", ARCH, "--metrics", *EXPLANATION_METRICS, "--limit", "12"]
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = cli([*args, "--batch-size", "5", "--workers", "0", "--out", str(out)])
    assert code == 0
    return out, printed.getvalue()


def test_the_command_line_writes_every_metric(command_line_run):
    out, printed = command_line_run
    rows = ds.dataset(out / "rows", format="parquet").to_table().to_pylist()
    expected = {
        "average_drop",
        "increase_in_confidence",
        *(f"{prefix}{mode}_auc" for prefix in ("", "random_") for mode in ("deletion", "insertion")),
        *(f"{mode}_{suffix}" for suffix in ("valid", "void_reason") for mode in ("deletion", "insertion")),
    }
    assert len(rows) == 12 and expected <= set(rows[0])
    assert all(row[column] is not None for row in rows for column in expected if "reason" not in column)
    assert json.loads((out / "run.json").read_text())["protocol"] == "default"
    for line in ("deletion_auc", "average_drop", "deletion valid for", "insertion valid for", "beats random"):
        assert line in printed, line


def test_the_summary_is_numpy_on_the_rows(command_line_run):
    """Means, bootstrap intervals (1000 resamples, seed 0), validity, wins and gaps, computed here from the rows."""
    out, _ = command_line_run
    table = ds.dataset(out / "rows", format="parquet").to_table()  # the order the summary reads them in
    numbers = [name for name in table.column_names[8:] if not name.endswith("_reason")]  # after the base columns
    column = {name: np.asarray(table.column(name).to_pylist(), dtype=float) for name in numbers}
    summary = json.loads((out / "summary" / f"{ARCH}.json").read_text())

    def estimate(values: np.ndarray) -> dict:
        draws = np.random.default_rng(0).integers(0, len(values), (1000, len(values)))
        low, high = np.percentile(values[draws].mean(1), [2.5, 97.5])
        return {"images": len(values), "mean": values.mean(), "ci95": [low, high]}

    def same(ours: dict, expected: dict) -> None:
        assert ours["images"] == expected["images"]
        np.testing.assert_allclose([ours["mean"], *ours["ci95"]], [expected["mean"], *expected["ci95"]], atol=1e-12)

    for name in ("average_drop", "increase_in_confidence"):
        same(summary["metrics"][name], estimate(column[name]))
    for mode, sign in (("deletion", -1), ("insertion", 1)):
        valid = column[f"{mode}_valid"].astype(bool)
        assert 0 < valid.sum() < 12  # measured: 8 of these 12 images; the others keep the class when blurred
        for name in (f"{mode}_auc", f"random_{mode}_auc"):
            same(summary["metrics"][name], estimate(column[name][valid]))
        gap = column[f"{mode}_auc"][valid] - column[f"random_{mode}_auc"][valid]
        versus = summary["against_random"][mode]
        assert (versus["images"], versus["valid_images"], versus["valid_share"]) == (12, valid.sum(), valid.mean())
        assert versus["beats_random"] == np.mean(sign * gap > 0)
        same(versus["gap_to_random"], estimate(gap))
    assert summary["against_random"]["insertion"]["beats_random"] > 0.8  # Grad-CAM's evidence, put back first


def test_the_metrics_plot_draws_each_mean_and_interval(command_line_run):
    """``metrics_vs_depth.png``: a panel per metric, a point at the network's depth and mean with a bar over its
    95% interval, and each curve's random ranking beside the map's."""
    out, _ = command_line_run
    assert (out / "plots" / "metrics_vs_depth.png").is_file()
    summary = Summary(**json.loads((out / "summary" / f"{ARCH}.json").read_text()))
    figure = metrics_figure([summary])
    panels = {axes.get_title(): axes for axes in figure.axes if axes.get_visible()}
    assert set(panels) == {"deletion_auc", "insertion_auc", "average_drop", "increase_in_confidence"}
    for title, axes in panels.items():
        drawn = [title, f"random_{title}"] if title.endswith("_auc") else [title]
        assert len(axes.containers) == len(drawn)
        for container, column in zip(axes.containers, drawn, strict=True):
            numbers = summary.metrics[column]
            assert container.lines[0].get_xydata().tolist() == [[20, pytest.approx(numbers["mean"])]]
            (segment,) = container.lines[2][0].get_segments()
            np.testing.assert_allclose(segment, [[20, numbers["ci95"][0]], [20, numbers["ci95"][1]]])


def test_the_protocol_is_chosen_by_name(model, tmp_path):
    with pytest.raises(ValueError, match="unknown protocol 'rise'; expected one of default, torchcam"):
        evaluate_dataset("cifar10", [model], tmp_path / "refused", metrics=["deletion"], protocol="rise")
    assert not (tmp_path / "refused").exists()
    options = dict(metrics=["deletion"], limit=3, workers=0, progress=False)
    summary = evaluate_dataset("cifar10", [model], tmp_path / "out", protocol="torchcam", **options)[ARCH]
    assert json.loads((tmp_path / "out" / "run.json").read_text())["protocol"] == "torchcam"
    assert "zeros after normalisation" in summary.against_random["deletion"]["protocol"]
    assert "ties in raster order" in summary.against_random["deletion"]["protocol"]
    with pytest.raises(ValueError, match="other settings"):  # rows of two protocols never mix
        evaluate_dataset("cifar10", [model], tmp_path / "out", **options)


@pytest.mark.slow
def test_a_protocol_of_ones_own_gives_sanitys_areas_and_resumes_by_its_fields(model, tmp_path):
    """A protocol given as itself (4x4 patches, zero fill: what the Explanation checks tab offers): each row's
    areas are ``sanity``'s under that protocol and the row's seed; ``run.json`` records its fields, and the command
    line's ``--fill``/``--patch`` name the same run (it resumes with nothing to add), a named protocol another."""
    protocol = Protocol(fill="zero", patch=4)
    out = tmp_path / "out"
    options = dict(metrics=["deletion", "insertion"], limit=4, workers=0, progress=False)
    summary = evaluate_dataset("cifar10", [model], out, protocol=protocol, batch_size=3, **options)[ARCH]
    setting = json.loads((out / "run.json").read_text())["protocol"]
    assert setting == {"fill": "zero", "patch": 4, "steps": 16, "ties": "random", "schedule": "equal"}
    assert "4x4 patches" in summary.against_random["deletion"]["protocol"]
    images, _, _ = cifar10.load_subset()
    rows = ds.dataset(out / "rows", format="parquet").to_table().to_pylist()
    for row in rows:
        photo = Image.fromarray(images[int(row["path"].split(":")[1]) // 20])
        report = sanity_check(model, photo, protocol=protocol, seed=row["seed"])
        for name in ("deletion", "random_deletion", "insertion", "random_insertion"):
            assert abs(row[f"{name}_auc"] - getattr(report, name).auc) <= 1e-5, (row["path"], name)
    evaluate_dataset("cifar10", [model], tmp_path / "pixels", batch_size=3, **options)
    pixels = {row["path"]: row for row in ds.dataset(tmp_path / "pixels" / "rows").to_table().to_pylist()}
    assert max(abs(row["deletion_auc"] - pixels[row["path"]]["deletion_auc"]) for row in rows) > 0.01  # not ignored
    args = ["evaluate", "cifar10", "--archs", ARCH, "--metrics", "deletion", "insertion", "--limit", "4"]
    with redirect_stdout(io.StringIO()):
        assert cli([*args, "--fill", "zero", "--patch", "4", "--workers", "0", "--json", "--out", str(out)]) == 0
    assert len(ds.dataset(out / "rows", format="parquet").to_table()) == 4
    refused = io.StringIO()
    with redirect_stderr(refused):
        assert cli([*args, "--protocol", "torchcam", "--workers", "0", "--json", "--out", str(out)]) != 0
    assert "holds a run with other settings" in refused.getvalue()
