"""`evaluate`: a trained CIFAR-10 net over folders, CSVs and the shipped test images, rows checked against analyze."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pyarrow.dataset as ds
import pytest
import torch
from PIL import Image

from resnet_core import create_model, evaluate_dataset
from resnet_core.__main__ import main as cli
from resnet_core.data import cifar10
from resnet_core.data.sources import ImageSource, match_labels, open_source
from resnet_core.evaluate import batch as batch_module
from resnet_core.evaluate.batch import BatchEvaluator, Network
from resnet_core.evaluate.loader import Collate, PreprocessedImages
from resnet_core.evaluate.metrics import METRICS, Metric, MetricBatch, metric_columns
from resnet_core.evaluate.summary import Summary, accuracy_figure, confusion_figure, per_class_accuracy
from resnet_core.explain.analysis import analyze
from resnet_core.zoo.label_spaces import IMAGENET
from resnet_core.zoo.preprocess import Preprocess

from .conftest import PHOTOS

ARCH = "cifar10_resnet20"  # trained weights ship in assets/: no download anywhere
IMAGENET_EVAL = Preprocess()  # resize 256, crop 224


@pytest.fixture(scope="module")
def model():
    return create_model(ARCH, weights="DEFAULT")


@pytest.fixture(scope="module")
def shipped():
    images, labels, _ = cifar10.load_subset()
    return images, labels


@pytest.fixture()
def folder(tmp_path, shipped):
    """Class folders (one named in capitals, one with a nested folder) of shipped test images and a photo, with a
    corrupt JPEG, a text file and a hidden file among them."""
    images, labels = shipped
    root = tmp_path / "data"
    for index in range(12):
        name = cifar10.CLASSES[labels[index]]
        target = root / (name.upper() if name == "cat" else name) / ("nested" if index % 5 == 0 else "")
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[index]).save(target / f"{index:03d}.png")
    shutil.copy(PHOTOS / "chelsea.png", root / "CAT" / "chelsea.png")  # 451x300: the crop resizes this one
    (root / "CAT" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "CAT" / "notes.txt").write_text("not an image")
    (root / "CAT" / ".DS_Store").write_bytes(b"\0")
    return root


def read_rows(out) -> list[dict]:
    return sorted(ds.dataset(out / "rows", format="parquet").to_table().to_pylist(), key=lambda r: r["path"])


def test_rows_equal_single_photo_analyze(model, folder, tmp_path):
    summary = evaluate_dataset(folder, [model], tmp_path / "out", batch_size=4, workers=0, progress=False)[ARCH]
    rows = read_rows(tmp_path / "out")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name[0] != ".")
    assert [row["path"] for row in rows] == files and len(files) == 15
    failed = {row["path"]: row["error"] for row in rows if row["error"]}
    assert set(failed) == {"CAT/broken.jpg", "CAT/notes.txt"}
    assert all("not a readable image" in error for error in failed.values())
    for row in rows:
        assert row["network"] == ARCH
        label = row["path"].split("/")[0].lower()
        assert (row["label"], row["label_index"]) == (label, cifar10.CLASSES.index(label))
        if row["error"]:
            assert row["topk"] is row["correct"] is row["residual_ratios"] is None
            continue
        expected = analyze(model, folder / row["path"])
        assert [entry["index"] for entry in row["topk"]] == [index for index, _, _ in expected.topk]
        assert [entry["label"] for entry in row["topk"]] == [label for _, label, _ in expected.topk]
        assert np.allclose([e["probability"] for e in row["topk"]], [p for *_, p in expected.topk], atol=1e-5)
        ratios = [stats.residual_ratio for stats in expected.blocks.values()]
        assert np.allclose(row["residual_ratios"], ratios, atol=1e-5, rtol=0)
        assert row["correct"] == (row["topk"][0]["index"] == row["label_index"])
    assert (summary.images, summary.errors, summary.labelled) == (15, 2, 13)
    assert summary.accuracy == sum(bool(row["correct"]) for row in rows) / 13
    assert sum(map(sum, summary.confusion)) == 13 and summary.confusion_classes == list(cifar10.CLASSES)
    # Every cell is the rows' count of (label, top-1 answer), and each class's accuracy its rows' share correct.
    counted = np.zeros((10, 10), dtype=int)
    for row in rows:
        if not row["error"]:
            counted[row["label_index"], row["topk"][0]["index"]] += 1
    assert summary.confusion == counted.tolist()
    for name, share in per_class_accuracy(summary).items():
        labelled = [row for row in rows if row["label"] == name.lower() and not row["error"]]
        assert share == (sum(bool(row["correct"]) for row in labelled) / len(labelled) if labelled else None)
    drawn = confusion_figure([summary]).axes[0]
    assert np.allclose(drawn.images[0].get_array() * counted.sum(1, keepdims=True).clip(1), counted)
    assert {text.get_text() for text in drawn.texts} == {str(count) for count in counted.ravel() if count}


@pytest.mark.slow
def test_the_shipped_test_images_give_the_pinned_accuracy(model, shipped, tmp_path):
    """The 500 shipped images (uint8 arrays, no files) through the same loop, in a DataLoader worker."""
    out = tmp_path / "out"
    summary = evaluate_dataset("cifar10", [ARCH], out, batch_size=100, workers=1, progress=False)[ARCH]
    errors = json.loads(cifar10.SUBSET_JSON.read_text())["reference_errors"][ARCH]
    assert (summary.images, summary.labelled, summary.accuracy) == (500, 500, 1 - errors / 500)
    assert np.trace(summary.confusion) == 500 - errors
    assert set(summary.median_residual_ratios) == set(model.block_names())
    rows = {row["path"]: row for row in read_rows(out)}
    images, _ = shipped
    for index in (0, 7, 499):
        row = rows[f"cifar10:{20 * index}"]
        expected = analyze(model, Image.fromarray(images[index]))
        assert np.allclose(row["topk"][0]["probability"], expected.topk[0][2], atol=1e-5)
    saved = Summary(**json.loads((out / "summary" / f"{ARCH}.json").read_text()))
    assert saved.confusion == summary.confusion and saved.accuracy == summary.accuracy
    figure = accuracy_figure([saved])  # the plot draws the network's point, not an empty frame
    assert [tuple(line.get_xydata()[0]) for line in figure.axes[0].lines] == [(20, 100 * summary.accuracy)]
    assert {p.name for p in (out / "plots").iterdir()} == {
        "accuracy_vs_depth.png",
        "confusion.png",
        "residual_ratios.png",
    }


def test_a_batch_of_pixels_in_memory_equals_each_image_through_pillow(model, monkeypatch):
    """The loader normalises CIFAR-10's in-memory 32x32 pixels for its networks as one tensor: bit for bit what each
    image gives through Pillow, as ``analyze`` reads a photo. Pixels the crop would change (an ImageNet network's
    224 crop of them) go image by image."""
    source = open_source("cifar10")
    labels = match_labels(source.labels, model.card.categories)
    positions = [3, 0, 499, 17]
    images = PreprocessedImages(source, model.card.preprocess, labels, range(len(source)))
    assert model.card.preprocess.keeps((32, 32)) and not IMAGENET_EVAL.keeps((32, 32))
    together = images.__getitems__(positions)
    for item, position in zip(together, positions, strict=True):
        alone = images[position]
        assert torch.equal(item["inputs"], alone["inputs"]) and item["inputs"].dtype == torch.float32
        assert {k: v for k, v in item.items() if k != "inputs"} == {k: v for k, v in alone.items() if k != "inputs"}
    resized = PreprocessedImages(source, IMAGENET_EVAL, labels, range(len(source)))
    assert [item["inputs"].shape[-1] for item in resized.__getitems__(positions)] == [224] * 4
    monkeypatch.setattr(ImageSource, "image", lambda self, index: 1 / 0)  # Pillow is not asked for the batch
    assert all(item["error"] is None for item in images.__getitems__(positions))
    assert all(item["error"] == "division by zero" for item in resized.__getitems__(positions))


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_rows(model, tmp_path, monkeypatch):
    options = dict(limit=64, batch_size=16, workers=0, rows_per_part=32, progress=False)
    evaluate_dataset("cifar10", [model], tmp_path / "whole", **options)
    calls = []
    original = BatchEvaluator.__call__

    def interrupted(self, batch):
        calls.append(len(batch["path"]))
        if len(calls) == 3:  # after two batches, one part file
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(BatchEvaluator, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate_dataset("cifar10", [model], tmp_path / "resumed", **options)
    assert len(read_rows(tmp_path / "resumed")) == 32
    monkeypatch.setattr(BatchEvaluator, "__call__", original)
    summary = evaluate_dataset("cifar10", [model], tmp_path / "resumed", **options)[ARCH]
    assert read_rows(tmp_path / "resumed") == read_rows(tmp_path / "whole") and summary.images == 64
    again = evaluate_dataset("cifar10", [model], tmp_path / "resumed", **options)[ARCH]  # nothing left to do
    assert again.images_per_second is None and read_rows(tmp_path / "resumed") == read_rows(tmp_path / "whole")
    with pytest.raises(ValueError, match="other settings"):  # rows of another kind never join these
        evaluate_dataset("cifar10", [model], tmp_path / "resumed", **{**options, "metrics": ["none"]})


def test_predictions_only_is_a_bare_forward(model, tmp_path, monkeypatch):
    def no_hooks(*args):
        raise AssertionError("predictions only must not hook the network")

    options = dict(limit=20, workers=0, progress=False)
    full = evaluate_dataset("cifar10", [model], tmp_path / "full", **options)[ARCH]
    monkeypatch.setattr(batch_module, "residual_stats", no_hooks)
    bare = evaluate_dataset("cifar10", [model], tmp_path / "bare", metrics=["none"], **options)
    assert bare[ARCH].accuracy == full.accuracy and bare[ARCH].median_residual_ratios is None
    rows, with_ratios = read_rows(tmp_path / "bare"), read_rows(tmp_path / "full")
    assert all(row["residual_ratios"] is None for row in rows)
    assert [row["topk"] for row in rows] == [row["topk"] for row in with_ratios]
    assert {p.name for p in (tmp_path / "bare" / "plots").iterdir()} == {"accuracy_vs_depth.png", "confusion.png"}


@pytest.mark.slow
def test_a_new_metric_is_one_entry_and_an_unknown_one_is_refused(model, shipped, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown metric 'sharpness'; available: .*average_drop"):
        evaluate_dataset("cifar10", [model], tmp_path / "out", metrics=["sharpness"])
    assert not (tmp_path / "out").exists()

    def brightness(batch: MetricBatch) -> dict:
        means = batch.inputs.mean((1, 2, 3))
        return {"brightness": means, "bright": (means > 0).tolist()}

    monkeypatch.setitem(METRICS, "brightness", Metric({"brightness": float, "bright": bool}, brightness))
    evaluate_dataset("cifar10", [model], tmp_path / "out", metrics=["all"], limit=8, workers=0, progress=False)
    images, _ = shipped
    mean, std = np.array(model.card.preprocess.mean), np.array(model.card.preprocess.std)
    expected = ((images[:8] / 255 - mean) / std).mean((1, 2, 3))
    rows = sorted(read_rows(tmp_path / "out"), key=lambda row: int(row["path"].split(":")[1]))
    assert np.allclose([row["brightness"] for row in rows], expected, atol=1e-5)
    assert [row["bright"] for row in rows] == (expected > 0).tolist()
    assert all(row["residual_ratios"] for row in rows)
    assert set(metric_columns(list(METRICS))) <= set(rows[0])  # "all": every registered metric's columns


def test_labels_are_matched_to_each_networks_classes(folder, tmp_path):
    categories = cifar10.CLASSES
    assert match_labels(["Cat", "AUTOMOBILE", 9, None], categories) == [3, 1, 9, None]
    assert match_labels(["n01440764", "Great_White shark"], IMAGENET.categories, IMAGENET.wnids) == [0, 2]
    with pytest.raises(ValueError, match=r"2 label\(s\) are not classes of net: kitten, 10"):
        match_labels(["kitten", "cat", 10], categories, network="net")
    (folder / "kitten").mkdir()
    (folder / "kitten" / "one.png").write_bytes((folder / "CAT" / "chelsea.png").read_bytes())
    with pytest.raises(ValueError, match="kitten"):  # refused before a row is written
        evaluate_dataset(folder, [ARCH], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="not classes of resnet18"):  # an ImageNet net has no class "cat"
        evaluate_dataset("cifar10", [Network("resnet18", "none")], tmp_path / "out")


def test_a_csv_and_a_flat_folder(model, folder, tmp_path):
    table = tmp_path / "list.csv"
    table.write_text("path,label\ndata/CAT/chelsea.png,cat\ndata/frog/007.png,6\ndata/CAT/notes.txt,\n")
    source = open_source(table)
    assert source.keys == ("data/CAT/chelsea.png", "data/frog/007.png", "data/CAT/notes.txt")
    assert source.labels == ("cat", 6, None)
    evaluate_dataset(table, [model], tmp_path / "csv", workers=0, progress=False)
    rows = read_rows(tmp_path / "csv")
    assert [(row["label"], row["error"] is None) for row in rows] == [("cat", True), (None, False), ("frog", True)]
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in (folder / "CAT" / "chelsea.png", folder / "frog" / "007.png"):
        shutil.copy(path, flat / path.name)
    summary = evaluate_dataset(flat, [model], tmp_path / "flat_out", workers=0, progress=False)[ARCH]
    assert (summary.images, summary.labelled, summary.accuracy) == (2, 0, None)
    assert all(row["label"] is row["correct"] is None for row in read_rows(tmp_path / "flat_out"))


def test_the_per_batch_function_travels(model, folder):
    """Ray's map_batches sends the class and a Network to an actor: the same rows come back from a copy."""
    source = open_source(folder)
    labels = match_labels(source.labels, model.card.categories)
    items = PreprocessedImages(source, model.card.preprocess, labels, range(len(source)))
    batch = Collate.of(model.card.preprocess)([items[i] for i in range(len(source))])
    here = BatchEvaluator(Network(ARCH))(batch)
    travelled = pickle.loads(pickle.dumps(BatchEvaluator(Network(ARCH))))(batch)
    assert here == travelled and len(here["path"]) == len(source)
    assert sum(error is not None for error in here["error"]) == 2


def test_the_command_line(folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli(["evaluate", str(folder), "--archs", ARCH, "--out", str(out), "--batch-size", "4", "--workers", "1"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert f"{ARCH}" in stdout and "15 images     2 errors" in stdout and str(out) in stdout
    assert "img/s" in stderr  # the progress bar
    assert cli(["evaluate", str(folder), "--archs", ARCH, "--out", str(out), "--json"]) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    assert summary["images"] == 15 and summary["images_per_second"] is None  # resumed: nothing left
    cases = [
        (("cifar10", "--archs", "resnet9"), "unknown architecture"),
        (("cifar10:full", "--archs", ARCH), "--download"),
        (("cifar10", "--archs", ARCH, "--metrics", "sharpness"), "unknown metric"),
        (("cifar10", "--archs", ARCH, "--weights", "a", "b"), "one entry per architecture"),
        (("cifar10",), "name the networks"),
        ((str(tmp_path / "nowhere"), "--archs", ARCH), "no such folder"),
    ]
    for args, expected in cases:
        code = cli(["evaluate", *args, "--out", str(tmp_path / "refused")])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "refused").exists()


def test_a_local_ray_gets_an_environment_that_keeps_it_on_this_machine():
    """Without starting Ray (the slow lane runs one): its statistics off, single-machine mode, and a proxy on
    loopback that refuses at once, loopback itself exempt."""
    import socket

    from resnet_core.evaluate.on_ray import local_ray_environment

    environment = local_ray_environment()
    assert environment["RAY_USAGE_STATS_ENABLED"] == "0" and environment["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    proxy = environment["http_proxy"]
    assert proxy == environment["https_proxy"] and "127.0.0.1" in environment["no_proxy"]
    host, port = proxy.removeprefix("http://").split(":")
    assert host == "127.0.0.1"
    with socket.socket() as client, pytest.raises(ConnectionRefusedError):
        client.settimeout(5)
        client.connect((host, int(port)))
