"""The Data set tab: its leaderboard and images against the library's run, its limits, the browser."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pyarrow.dataset as ds
import pytest
from gradio_client import Client

from bench.browser import chromium_page
from demo import app_state, dataset_tab
from demo.model_cache import ModelCache
from resnet_core import evaluate_dataset
from resnet_core.cache import cache_dir
from resnet_core.data.cifar10 import SUBSET_JSON
from resnet_core.data.sources import open_source
from resnet_core.settings import ENV_CACHE

from .app_page import Page
from .conftest import ROOT

SCREENSHOTS = ROOT / "screenshots"
SHIPPED = "the 500 CIFAR-10 test images shipped with the app"
PAIR = ["cifar10_resnet20", "cifar10_resnet56"]


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    app_state.configure(ModelCache(capacity=3, device="cpu"))


def quiet(*args, **kwargs) -> None:
    """A stand-in for gr.Progress outside a request."""


def test_the_leaderboard_and_the_wrong_images_are_the_librarys(tmp_path):
    returned = dataset_tab.dataset_run(PAIR, SHIPPED, ["residual ratios"], progress=quiet)
    (
        text,
        board,
        accuracy,
        confusion,
        ratios,
        metrics_caption,
        metrics_plot,
        worst,
        files,
        *explained,
        download,
        _,
        _,
    ) = returned
    assert not metrics_caption.visible and not metrics_plot.visible  # no metric asked: no empty chart either
    assert not explained[0].visible and not explained[1].visible and explained[2] == []
    expected = evaluate_dataset("cifar10", PAIR, tmp_path / "library", workers=0, progress=False)
    pinned = json.loads(SUBSET_JSON.read_text())["reference_errors"]
    assert list(board.columns) == dataset_tab.LEADERBOARD  # no metric asked, no metric column
    for row, (name, summary) in zip(board.values.tolist(), expected.items(), strict=True):
        assert row[:7] == [name, summary.depth, summary.weights, 500, 0, round(100 * summary.accuracy, 2),
                           round(100 * summary.topk_accuracy, 2)]  # fmt: skip
        assert row[5] == round(100 * (500 - pinned[name]) / 500, 2)  # 50 and 26 errors on the shipped 500
    # Copies in the app's output store: the run's folder is in the cache, ~/.cache by default, which Gradio refuses
    # to serve (the tests' cache is a temporary folder, which it would serve, so only this line would notice).
    assert Path(accuracy).name.startswith("accuracy_vs_depth-") and Path(ratios).name.startswith("residual_ratios-")
    assert Path(confusion).name.startswith("confusion-")
    assert Path(accuracy).parent == Path(ratios).parent == Path(download).parent != Path(cache_dir("datasets"))
    assert "2 network(s) over the 500 CIFAR-10 test images" in text and download.endswith(".zip")
    # The gallery: the wrong answers with the highest top-1 probability, across both networks, highest first.
    rows = []
    for name in PAIR:
        table = ds.dataset(tmp_path / "library" / "rows" / name, format="parquet").to_table().to_pylist()
        rows += [
            (r["topk"][0]["probability"], name, r["topk"][0]["label"], r["label"]) for r in table if not r["correct"]
        ]
    rows.sort(key=lambda row: -row[0])
    expected = [f"is {truth}, said {said} ({100 * p:.0f}%): {n}" for p, n, said, truth in rows[: dataset_tab.WORST]]
    assert [item["caption"] for item in worst.value] == expected
    assert len(files) == len(worst.value) == dataset_tab.WORST
    # A click puts the image in the photo box and picks the network that got it wrong, for Analyze.
    image, family, arch, weights = dataset_tab.pick_worst(files, gr.SelectData(None, {"index": 0, "value": None}))
    assert (family, arch["value"], weights["value"]) == ("CIFAR-10", rows[0][1], f"{rows[0][1]}.akamaster")
    assert Path(image).is_file()
    # Asked again, the run is read back from disk: the same board, no speed to report.
    said, again = dataset_tab.dataset_run(PAIR, SHIPPED, ["residual ratios"], progress=quiet)[:2]
    assert again.iloc[:, :7].equals(board.iloc[:, :7]) and again["images/s"].isna().all()
    assert f"No images/s for {', '.join(PAIR)}: their rows were read back from an earlier run" in said  # and why


@pytest.mark.slow
def test_a_metric_asked_for_is_a_leaderboard_column_a_chart_and_a_ranking(tmp_path):
    """Average Drop: its column with its interval, the metrics chart shown, and the worst-explained gallery the
    images of highest Average Drop in the library's rows."""
    returned = dataset_tab.dataset_run(["cifar10_resnet20"], SHIPPED, ["average_drop"], progress=quiet)
    board, metrics_caption, metrics_plot = returned[1], returned[5], returned[6]
    explained_caption, explained, explained_files = returned[9:12]
    out = tmp_path / "library"
    (summary,) = evaluate_dataset("cifar10", ["cifar10_resnet20"], out, metrics=["average_drop"],
                                  workers=0, progress=False).values()  # fmt: skip
    numbers = summary.metrics["average_drop"]
    low, high = numbers["ci95"]
    assert board.loc[0, "average_drop"] == f"{numbers['mean']:.3f} [{low:.3f}, {high:.3f}]"
    assert (
        metrics_caption.visible
        and metrics_plot.visible
        and metrics_plot.value["orig_name"].startswith("metrics_vs_depth-")
    )
    assert explained_caption.visible and "highest Average Drop" in explained_caption.value
    rows = ds.dataset(out / "rows" / "cifar10_resnet20", format="parquet").to_table().to_pylist()
    rows.sort(key=lambda row: -row["average_drop"])
    expected = [f"cifar10_resnet20: {r['topk'][0]['label']}; Average Drop {r['average_drop']:.2f}" for r in rows]
    assert [item["caption"] for item in explained.value] == expected[: dataset_tab.WORST]
    assert len(explained_files) == dataset_tab.WORST


@pytest.mark.slow
def test_the_worst_explained_images_are_insertions_furthest_below_random(tmp_path):
    """With insertion in the run (the curve that separates Grad-CAM from random here), the ranking is the map's
    insertion area below its random ranking's, over the images where the protocol is valid, across networks."""
    out = tmp_path / "out"
    evaluate_dataset("cifar10", PAIR, out, metrics=["average_drop", "insertion"], limit=16, workers=0, progress=False)
    source = open_source("cifar10").head(16)
    measure, images = dataset_tab.worst_explained(out, source, PAIR, ["average_drop", "insertion"])
    assert measure == "insertion area furthest below a random ranking's"
    shortfalls = []
    for name in PAIR:
        for row in ds.dataset(out / "rows" / name, format="parquet").to_table().to_pylist():
            if row["insertion_valid"]:
                short = row["random_insertion_auc"] - row["insertion_auc"]
                figures = f"insertion {row['insertion_auc']:.2f}, random {row['random_insertion_auc']:.2f}"
                shortfalls.append((short, f"{name}: {row['topk'][0]['label']}; {figures}"))
    assert 0 < len(shortfalls) < 32  # some images void (measured: the blurred image keeps the class on several)
    shortfalls.sort(key=lambda item: -item[0])
    assert [label for _, label, _ in images] == [label for _, label in shortfalls[: dataset_tab.WORST]]


def test_what_a_visitor_cannot_ask_for():
    for networks, data, message in [
        ([], SHIPPED, "Pick 1 to 6"),
        (["resnet50"], SHIPPED, "'resnet50' is not offered"),
        (PAIR, "/etc", "Pick one of the data sets offered"),
    ]:
        with pytest.raises(gr.Error, match=message):
            dataset_tab.dataset_run(networks, data, [], progress=quiet)


def test_off_on_a_space_unless_enabled(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/resnet-explorer")
    page = Page([dataset_tab])
    buttons = {block.value for block in page.demo.blocks.values() if isinstance(block, gr.Button)}
    assert "Run over the data set" not in buttons and "Delete each block in turn" in buttons  # the views stay
    assert "dataset-zip" not in {block.elem_id for block in page.demo.blocks.values()}  # no uploads either
    monkeypatch.setenv("RESNET_EXPLORER_DATASET_RUNS", "1")
    assert dataset_tab.settings.dataset_runs()


@pytest.mark.browser
def test_through_gradio_client_and_in_chromium(served_app):
    expect = pytest.importorskip("playwright.sync_api").expect
    url = served_app
    client = Client(url, verbose=False)
    _, board, *_ = client.predict(["cifar10_resnet20"], SHIPPED, [], None, api_name="/dataset")  # no zip
    assert board["data"][0][:6] == ["cifar10_resnet20", 20, "cifar10_resnet20.akamaster", 500, 0, 90.0]
    with chromium_page(url) as page:
        page.get_by_role("tab", name="Data set").click()
        page.get_by_role("button", name="Run over the data set").click()
        expect(page.locator("#dataset-board")).to_contain_text("cifar10_resnet44", timeout=300_000)
        expect(page.locator("#dataset-worst img").first).to_be_visible(timeout=60_000)
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "dataset_leaderboard.png"), full_page=True)
        # Every caption shows whole (they were cut before the true label): nothing overflows its box.
        captions = page.locator("#dataset-worst .caption-label")
        assert captions.count() > 0 and captions.first.inner_text().startswith("is ")
        cut = captions.evaluate_all("labels => labels.filter(label => label.scrollWidth > label.clientWidth).length")
        assert cut == 0
        page.locator("#dataset-worst img").first.click()
        expect(page.locator("#photo img")).to_have_count(1, timeout=60_000)
        assert "Error" not in page.locator("body").inner_text()
        # Another choice: nothing of that run stays under it.
        page.locator("#dataset-networks input").click()
        page.get_by_role("option", name="cifar10_plain20", exact=True).click()  # untrained: nothing to download
        expect(page.locator("#dataset-status")).to_contain_text("Press Run for the networks", timeout=30_000)
        # The run's results go with it (hidden until the next run), so the views below come up the page.
        expect(page.locator("#dataset-board")).to_be_hidden()
        assert page.locator("#dataset-worst img").count() == 0
        # Stop during a run: it says so, and shows nothing of an earlier run.
        page.get_by_role("button", name="Run over the data set").click()
        page.wait_for_timeout(1500)
        page.get_by_role("button", name="Stop").click()
        expect(page.locator("#dataset-status")).to_contain_text("Stopped.", timeout=30_000)
        assert page.locator("#dataset-worst img").count() == 0
