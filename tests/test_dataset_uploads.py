"""A visitor's own data and network in the Data set tab: a zip of images and a checkpoint opened under Your model,
run through the tab's handlers, give the library's numbers; the run stays in the session's folder and goes with
it; every hostile zip is one sentence with nothing written anywhere (the test lists the file system)."""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections import Counter
from pathlib import Path

import gradio as gr
import pyarrow.dataset as ds
import pytest
import torch
from PIL import Image

from demo import across_data, analysis_panel, app_state, dataset_tab, uploads
from demo.model_cache import ModelCache
from demo.public_text import without_paths
from resnet_core import evaluate_dataset
from resnet_core.cache import cache_dir
from resnet_core.data import cifar10
from resnet_core.evaluate.batch import Network
from resnet_core.measure.dataset_probe import probe_dataset
from resnet_core.measure.layer_responses import response_std
from resnet_core.measure.lesion import lesion_study
from resnet_core.settings import ENV_CACHE

from .conftest import ROOT
from .test_archives import hostile, make_zip, png, tree

RESNET20 = ROOT / "assets" / "cifar10" / "weights" / "resnet20-12fca82f.th"
CAT = next(sorted(cifar10.GALLERY_DIR.glob("cat_*.png")).__iter__())
IMAGES = 32


@pytest.fixture(autouse=True)
def private_places(request, tmp_path, monkeypatch):
    """The shared cache and the temporary folder (where sessions' folders go) inside the test's own folder; not
    for a launched app (its uploads are checked against the temporary folder it started with). Handlers called
    outside a request belong to the session "": whatever a test left there is closed after it, as a closed tab's."""
    if request.node.get_closest_marker("browser"):
        yield
        return
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    app_state.configure(ModelCache(capacity=2, device="cpu"))
    yield
    app_state.forget_uploads(uploads.session_tokens(""))


def quiet(*args, **kwargs) -> None:
    """A stand-in for gr.Progress outside a request."""


def class_folders(path: Path, count: int = IMAGES) -> Path:
    """The first ``count`` shipped CIFAR-10 test images as PNGs in folders named by class, zipped."""
    _, labels, _ = cifar10.load_subset()
    return make_zip(path, {f"{cifar10.CLASSES[labels[i]]}/{i:03d}.png": png(i) for i in range(count)})


def rows(folder: Path) -> list[dict]:
    table = ds.dataset(folder, format="parquet").to_table().to_pylist()
    return sorted(table, key=lambda row: row["path"])


def test_a_zip_and_a_checkpoint_give_the_librarys_rows_and_go_with_the_session(tmp_path):
    archive = class_folders(tmp_path / "mine.zip")
    _, arch, token, _, opened = analysis_panel.open_checkpoint(str(RESNET20), None, [])
    said, data, mine = dataset_tab.take_images(str(archive), [])
    assert data == dataset_tab.YOUR_ZIP and f"Unpacked mine.zip: {IMAGES} images, class folders" in said
    network = f"{arch}@{token}"
    returned = dataset_tab.dataset_run([network], data, ["residual ratios"], str(archive), mine, progress=quiet)
    text, board, _, confusion, *_, worst, files, _, _, _, download, shown, kept = returned
    assert kept == mine and confusion is not None and shown.visible

    # The library on the same folder with the same file.
    reference = tmp_path / "reference"
    with zipfile.ZipFile(archive) as opened_zip:
        opened_zip.extractall(reference / "images")
    (summary,) = evaluate_dataset(
        reference / "images", [Network(checkpoint=str(RESNET20))], reference / "out", workers=0, progress=False
    ).values()
    assert board.values.tolist()[0][:7] == [
        summary.network,
        20,
        summary.weights,
        IMAGES,
        0,
        round(100 * summary.accuracy, 2),
        round(100 * summary.topk_accuracy, 2),
    ]
    assert f"1 network(s) over your images (mine.zip: {IMAGES} images, class folders)" in text
    (images,) = [uploads.get_images(t) for t in mine]
    (run,) = (images.folder / "runs").iterdir()  # the session's folder, not the shared cache
    assert not cache_dir("datasets").exists() or not any(cache_dir("datasets").iterdir())
    ours = rows(run / "rows")
    theirs = rows(reference / "out" / "rows")
    assert len(ours) == IMAGES
    for mine_row, library_row in zip(ours, theirs, strict=True):
        assert mine_row == library_row

    # The confusion matrix downloaded is the rows' counts.
    with zipfile.ZipFile(download) as got:
        (name,) = [n for n in got.namelist() if n.startswith("summary/")]
        drawn = json.loads(got.read(name))
    index = {cls: i for i, cls in enumerate(drawn["confusion_classes"])}
    counted = Counter((row["label"], row["topk"][0]["label"]) for row in ours)
    cells = Counter(
        {
            (truth, said): drawn["confusion"][index[truth]][index[said]]
            for truth in index
            for said in index
            if drawn["confusion"][index[truth]][index[said]]
        }
    )
    assert cells == counted and sum(cells.values()) == IMAGES

    # A wrong image, clicked: it goes to the photo box with that checkpoint picked for Analyze.
    wrong = [row for row in ours if not row["correct"]]
    assert len(worst.value) == len(files) == min(len(wrong), dataset_tab.WORST) > 0
    event = gr.SelectData(None, {"index": 0, "value": None})
    image, family, arch_pick, weights_pick = dataset_tab.pick_worst(files, event)
    assert (family, arch_pick["value"], weights_pick["value"]) == ("CIFAR-10", arch, token)
    most = max(wrong, key=lambda row: row["topk"][0]["probability"])
    assert Image.open(image).tobytes() == Image.open(reference / "images" / most["path"]).convert("RGB").tobytes()

    # The session ends: its checkpoint, its images and the run over them are gone.
    app_state.forget_uploads([*opened, *mine])
    assert not images.folder.exists() and not list(Path(tempfile.gettempdir()).glob("resnet-explorer-uploads/*"))
    with pytest.raises(LookupError, match="upload the zip again"):
        uploads.get_images(images.token)


def test_a_shipped_network_over_a_zip_and_a_checkpoint_over_shipped_data(tmp_path):
    """The shipped network runs on the visitor's images (their run in their folder); the visitor's checkpoint
    runs on the shipped images (its run in the checkpoint's folder); labels that do not fit are one sentence."""
    archive = class_folders(tmp_path / "few.zip", 8)
    _, _, mine = dataset_tab.take_images(str(archive), [])
    ran = dataset_tab.dataset_run(["cifar10_resnet20"], dataset_tab.YOUR_ZIP, [], str(archive), mine, progress=quiet)
    assert ran[1].values.tolist()[0][:5] == ["cifar10_resnet20", 20, "cifar10_resnet20.akamaster", 8, 0]
    (images,) = [uploads.get_images(t) for t in mine]
    assert len(list((images.folder / "runs").iterdir())) == 1

    _, arch, token, _, opened = analysis_panel.open_checkpoint(str(RESNET20), None, [])
    shipped = next(iter(dataset_tab.data_choices()))
    board = dataset_tab.dataset_run([f"{arch}@{token}"], shipped, [], None, [], progress=quiet)[1]
    assert board.values.tolist()[0][3:6] == [500, 0, 90.0]  # the published ResNet-20's 50 errors on the 500
    assert len(list((uploads.get(token).folder / "runs").iterdir())) == 1
    assert not cache_dir("datasets").exists() or not any(cache_dir("datasets").iterdir())
    app_state.forget_uploads(opened)

    leaves = make_zip(tmp_path / "leaves.zip", {f"{kind}/{i}.png": png(i) for i, kind in enumerate(["rust", "scab"])})
    _, _, mine = dataset_tab.take_images(str(leaves), mine)
    with pytest.raises(gr.Error, match="rust"):
        dataset_tab.dataset_run(["cifar10_resnet20"], dataset_tab.YOUR_ZIP, [], str(leaves), mine, progress=quiet)
    app_state.forget_uploads(mine)


def test_the_same_zip_twice_is_unpacked_once_and_a_run_without_one_is_a_sentence(tmp_path):
    archive = class_folders(tmp_path / "a.zip", 4)
    first = dataset_tab.take_images(str(archive), [])[2]
    again = dataset_tab.take_images(str(archive), first)[2]  # the same upload: found by its path
    copy = tmp_path / "copy.zip"
    copy.write_bytes(archive.read_bytes())
    same = dataset_tab.take_images(str(copy), first)[2]  # the same bytes uploaded again: found by their digest
    assert first == again == same
    assert len(list((Path(tempfile.gettempdir()) / "resnet-explorer-uploads").iterdir())) == 1
    with pytest.raises(gr.Error, match="Upload a zip of images first"):
        dataset_tab.dataset_run(["cifar10_resnet20"], dataset_tab.YOUR_ZIP, [], None, [], progress=quiet)
    with pytest.raises(gr.Error, match="'resnet50' is not offered"):
        dataset_tab.dataset_run(["resnet50"], dataset_tab.YOUR_ZIP, [], str(archive), first, progress=quiet)
    app_state.forget_uploads(first)


def test_every_hostile_zip_through_the_app_is_one_sentence_and_writes_nothing(tmp_path, monkeypatch):
    zips = tmp_path / "zips"
    zips.mkdir()
    uploads._folder().mkdir()  # where every session's folder goes: made by the first upload, and kept
    for what, archive, sentence, limits in hostile(zips):
        before = tree(tmp_path)
        monkeypatch.setenv("RESNET_EXPLORER_UPLOAD_IMAGES", str(limits.images))
        monkeypatch.setenv("RESNET_EXPLORER_UPLOAD_ZIP_MB", str(limits.zip_bytes / 2**20))
        monkeypatch.setenv("RESNET_EXPLORER_UPLOAD_UNPACKED_MB", str(limits.unpacked_bytes / 2**20))
        for call, arguments in (
            (dataset_tab.take_images, (str(archive), [])),
            (dataset_tab.dataset_run, (["cifar10_resnet20"], dataset_tab.YOUR_ZIP, [], str(archive), [])),
        ):
            with pytest.raises(gr.Error) as refused:
                call(*arguments)
            # As the library says it, less any server path (the app never shows one).
            assert without_paths(sentence) in refused.value.message and "\n" not in refused.value.message, what
            assert str(tmp_path) not in refused.value.message
            assert tree(tmp_path) == before, what  # no session folder left, nothing beside or above it
    # The server goes on serving: a good zip right after.
    assert dataset_tab.take_images(str(class_folders(tmp_path / "ok.zip", 2)), [])[1] == dataset_tab.YOUR_ZIP


def test_a_space_bounds_uploads_tighter_unless_its_operator_says(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/resnet-explorer")
    assert dataset_tab.settings.upload_limits().describe() == "at most 1,000 images, 50 MB zipped and 200 MB unpacked"
    monkeypatch.setenv("RESNET_EXPLORER_UPLOAD_IMAGES", "3000")
    assert dataset_tab.settings.upload_limits().images == 3000
    monkeypatch.delenv("SPACE_ID")
    assert dataset_tab.settings.upload_limits().zip_bytes == 200 * 2**20


def test_images_without_labels_give_predictions_and_say_so(tmp_path):
    archive = make_zip(tmp_path / "bare.zip", {f"{i}.png": png(i) for i in range(4)})
    _, _, mine = dataset_tab.take_images(str(archive), [])
    text, board, _, confusion, *_ = dataset_tab.dataset_run(
        ["cifar10_resnet20"], dataset_tab.YOUR_ZIP, ["none"], str(archive), mine, progress=quiet
    )
    assert "no labels: predictions only" in text and confusion is None
    assert board.values.tolist()[0][3] == 4 and board.isna().values[0][5]
    app_state.forget_uploads(mine)


def test_the_checkpoint_opened_joins_the_networks(tmp_path):
    _, arch, token, _, _ = analysis_panel.open_checkpoint(str(RESNET20), None, [])
    offered = dataset_tab.offer_checkpoint(token, ["cifar10_resnet20"])
    assert ("resnet20-12fca82f.th (your cifar10_resnet20)", f"{arch}@{token}") in offered["choices"]
    assert offered["value"] == ["cifar10_resnet20"]  # joins the list, unticked
    assert dataset_tab.offer_checkpoint("DEFAULT", []) == gr.update()
    app_state.forget_uploads([token])
    with pytest.raises(gr.Error, match="open it again under Your model"):
        dataset_tab.dataset_run([f"{arch}@{token}"], dataset_tab.data_choices().popitem()[0], [], progress=quiet)


@pytest.mark.browser
def test_through_gradio_client_and_in_chromium_a_checkpoint_a_zip_and_a_wrong_image_analysed(served_app, tmp_path):
    """/open_checkpoint then /dataset with the zip and ARCH@TOKEN in one client session; then a visitor in
    Chromium: open the checkpoint, upload the zip, run, see the confusion matrix and the wrong images, click one,
    Analyze: the predictions are that checkpoint's on that image."""
    expect = pytest.importorskip("playwright.sync_api").expect
    from gradio_client import Client, handle_file

    from bench.browser import chromium_page, open_your_model, run_only, upload_images

    archive = class_folders(tmp_path / "mine.zip")
    client = Client(served_app, verbose=False)
    _, arch, token, _ = client.predict(handle_file(str(RESNET20)), None, api_name="/open_checkpoint")
    ran = client.predict([f"{arch}@{token}"], dataset_tab.YOUR_ZIP, [], handle_file(str(archive)), api_name="/dataset")
    assert ran[1]["data"][0][3:5] == [IMAGES, 0] and "your images (mine.zip: 32 images" in ran[0]

    with chromium_page(served_app) as page:
        open_your_model(page, str(RESNET20), "cifar10_resnet20", timeout=60_000)
        upload_images(page, str(archive), "Unpacked mine.zip: 32 images", timeout=60_000)
        run_only(page, "resnet20-12fca82f.th (your cifar10_resnet20)")
        page.get_by_role("button", name="Run over the data set").click()
        expect(page.locator("#dataset-board")).to_contain_text("resnet20-12fca82f.th", timeout=120_000)
        expect(page.locator("#dataset-confusion img")).to_be_visible(timeout=60_000)
        expect(page.locator("#dataset-worst img").first).to_be_visible(timeout=60_000)
        tile = page.locator("#dataset-worst .caption-label").first.inner_text()  # "is T, said S (P%): NETWORK"
        said, share = tile.split("said ")[1].split(")")[0].split(" (")
        for shown in ("#dataset-ratios img", "#dataset-worst img >> nth=0"):  # pictures load once scrolled to
            page.locator(shown).scroll_into_view_if_needed()
            expect(page.locator(shown)).to_be_visible(timeout=60_000)
        (ROOT / "screenshots").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "screenshots" / "dataset_your_zip.png"), full_page=True)
        page.locator("#dataset-worst img").first.click()
        expect(page.locator("#photo img")).to_have_count(1, timeout=60_000)
        page.get_by_role("button", name="Analyze").click()
        expect(page.locator("#weights-status")).to_contain_text("Your checkpoint", timeout=120_000)
        # The label's heading is the top class ("cat (3)"), then each class with its probability.
        _, top, _, probability, *_ = page.locator("#predictions").inner_text().split("\n")
        assert top.split(" (")[0] == said and probability == share, (top, probability, tile)
        assert "Error" not in page.locator("body").inner_text()


def test_a_session_closed_during_its_run_keeps_its_folder_until_the_run_ends(tmp_path):
    _, _, mine = dataset_tab.take_images(str(class_folders(tmp_path / "a.zip", 2)), [])
    folder = uploads.get_images(mine[0]).folder
    with uploads.in_use(mine):
        app_state.forget_uploads(mine)  # the tab closed: forgotten at once, so never offered again ...
        with pytest.raises(LookupError):
            uploads.get_images(mine[0])
        assert folder.is_dir()  # ... but the run still reading and writing it keeps the folder
    assert not folder.exists()


def test_the_checkpoint_analysed_across_the_visitors_zip_is_the_librarys(tmp_path):
    """The views under the runs, on a visitor's checkpoint and zip: the residual ratios and the lesion study equal
    the library's on the zip's images fed by hand (the PNGs are CIFAR-10's pixels, losslessly), the classes to
    browse are the zip's, and nothing of either reaches the shared cache."""
    archive = class_folders(tmp_path / "mine.zip", 24)
    _, arch, token, _, opened = analysis_panel.open_checkpoint(str(RESNET20), None, [])
    _, data, mine = dataset_tab.take_images(str(archive), [])
    *_, state = analysis_panel.analyze_image(str(CAT), arch, token, chart=False)
    figure, text = across_data.residual_view(state, data, str(archive), mine)
    source = uploads.get_images(mine[0]).unpacked.source
    pixels, labels, _ = cifar10.load_subset()
    order = [int(Path(key).stem) for key in source.keys]
    model = app_state.models().get(arch, token).model
    inputs = cifar10.to_batch(pixels[order], model.card.preprocess.mean, model.card.preprocess.std)
    medians = probe_dataset(model, inputs).median_ratios()
    drawn = next(line for line in figure.axes[0].lines if line.get_label().startswith("median over"))
    # Equal to float32's rounding: to_batch's tensor is channels-last in memory (a permuted NHWC array), the
    # app's a stack of images, and the convolutions sum in another order (measured: 1.7e-6 relative at most).
    assert list(drawn.get_ydata()) == pytest.approx(list(medians.values()), rel=1e-5)
    assert "over your images (mine.zip: 24 images, class folders)" in text

    figure, text = across_data.lesion_view(state, data, str(archive), mine)
    study = lesion_study(model, inputs, torch.from_numpy(labels[order]))
    line = figure.axes[0].lines[0]
    assert dict(zip(line.get_xdata(), line.get_ydata(), strict=True)) == pytest.approx(study.accuracy)
    assert f"intact {study.baseline:.1%}" in text

    figure, text = across_data.fig7_view(state, data, str(archive), mine)
    direct = response_std(model, [inputs])
    yours = figure.axes[2]  # the third column's top: the analysed network's curve in layer order
    assert list(yours.get_lines()[0].get_ydata()) == pytest.approx(list(direct.std), rel=1e-5)
    assert "cifar10_resnet20 (resnet20-12fca82f.th) over your images (mine.zip: 24 images" in text

    classes = across_data.classes_of(data, str(archive), mine)
    assert classes["choices"] == sorted({cifar10.CLASSES[label] for label in labels[:24]})
    items, _ = across_data.browse(data, str(archive), mine, "cat", 1)
    assert [name for _, name in items] == [key for key in source.keys if key.startswith("cat/")]
    assert not cache_dir("probes").exists() or not any(cache_dir("probes").iterdir())
    app_state.forget_uploads([*opened, *mine])


def test_any_network_learns_concepts_over_the_visitors_zip(tmp_path):
    """An ImageNet network (untrained here) has no data of its kind in the app: over the visitor's zip it learns,
    and the tab's dictionary is the library's on the same images (never written to the shared cache)."""
    from demo import concepts_tab
    from resnet_core.explain.concepts import learn_concepts

    with pytest.raises(gr.Error, match="Upload a zip of images in the Data set tab first"):
        concepts_tab.concepts_views(None, "resnet18", "random init", "layer3", 4, 0, concepts_tab.YOURS, progress=quiet)
    archive = class_folders(tmp_path / "few.zip", 12)
    _, _, mine = dataset_tab.take_images(str(archive), [])
    text, *_ = concepts_tab.concepts_views(
        None, "resnet18", "random init", "layer3", 4, 0, concepts_tab.YOURS, progress=quiet
    )
    model = app_state.models().get("resnet18", "random init").model
    expected = learn_concepts(model, "layer3", uploads.get_images(mine[0]).unpacked.source, k=4, use_cache=False)
    assert f"explain **{100 * expected.explained:.1f}%**" in text
    assert "over 12 images of few.zip: 12 images, class folders" in text
    assert not cache_dir("concepts").exists() or not any(cache_dir("concepts").iterdir())
    app_state.forget_uploads(mine)


@pytest.mark.slow  # an optimisation of 256 steps
def test_nothing_learned_from_a_visitors_checkpoint_reaches_the_shared_cache(tmp_path):
    """Concepts of the visitor's network over the shipped images, and what a concept or a channel wants to see:
    computed, shown, and kept nowhere but in memory."""
    from demo import concepts_tab, feature_vis_view

    _, arch, token, _, opened = analysis_panel.open_checkpoint(str(RESNET20), None, [])
    text, *_ = concepts_tab.concepts_views(None, arch, token, "layer3", 4, 0, concepts_tab.SHIPPED, progress=quiet)
    assert "4 concepts of cifar10_resnet20 (resnet20-12fca82f.th)'s layer3" in text
    concepts_tab.concept_wanted(arch, token, "layer3", 4, 0, concepts_tab.SHIPPED, progress=quiet)
    feature_vis_view.visualize(arch, token, "layer3", 5, 8, progress=quiet)
    assert not cache_dir("concepts").exists() or not any(cache_dir("concepts").rglob("*.*"))
    assert not cache_dir("feature_vis").exists() or not any(cache_dir("feature_vis").rglob("*.*"))
    concepts_tab.concepts_views(None, arch, "DEFAULT", "layer3", 4, 0, concepts_tab.SHIPPED, progress=quiet)
    assert any(cache_dir("concepts").rglob("*.*"))  # the published network's dictionary is kept, as before
    app_state.forget_uploads(opened)


def test_an_unreadable_image_in_the_zip_is_left_out_of_the_views_across_it(tmp_path):
    _, labels, _ = cifar10.load_subset()
    members = {f"{cifar10.CLASSES[labels[i]]}/{i}.png": png(i) for i in range(4)}
    archive = make_zip(tmp_path / "broken.zip", {**members, "cat/broken.png": b"\x89PNG but cut off"})
    _, data, mine = dataset_tab.take_images(str(archive), [])
    *_, state = analysis_panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT", chart=False)
    _, text = across_data.residual_view(state, data, str(archive), mine)
    assert "over 4 of the 5 images of your images (broken.zip: 5 images, class folders)" in text
