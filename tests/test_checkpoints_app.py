"""Your model in the app: a visitor's checkpoint through the handlers, gradio_client and Chromium."""

from __future__ import annotations

import json
import re
import time
import zipfile

import gradio as gr
import pytest
import torch
import torchvision
from gradio_client import Client, handle_file

from bench.browser import chromium_page, open_your_model
from demo import analysis_panel as panel
from demo import app_state, catalog, compare_tab, cost_tab, explain_tab, uploads
from demo.model_cache import ModelCache
from resnet_core import load_checkpoint
from resnet_core.explain.analysis import analyze, topk_rows

from .conftest import ROOT, randomize_batchnorm
from .test_checkpoints import bad_inputs
from .test_preact import PreActResNet, seeded

LEAVES = ["healthy", "rust", "scab", "blight", "mildew"]
SCREENSHOTS = ROOT / "screenshots"


@pytest.fixture(scope="module")
def cache():
    models = ModelCache(capacity=3, device="cpu")
    app_state.configure(models)
    return models


def held(cache: ModelCache) -> list[str]:
    """The weights of every model in the cache."""
    return [weights for _, weights in cache.keys()]  # noqa: SIM118 - a method of ModelCache, not a dict's


@pytest.fixture()
def leaves(tmp_path):
    """A 5-class ResNet-18 (random weights, as a fine-tune would leave the shapes) and its labels file."""
    torch.manual_seed(5)
    network = randomize_batchnorm(torchvision.models.resnet18(num_classes=5), 5).eval()
    torch.save({"state_dict": {f"model.{k}": v for k, v in network.state_dict().items()}}, tmp_path / "leaves.ckpt")
    (tmp_path / "leaves.txt").write_text("\n".join(LEAVES))
    return tmp_path / "leaves.ckpt", tmp_path / "leaves.txt"


@pytest.mark.slow
def test_an_opened_checkpoint_runs_in_every_view_and_goes_with_its_session(cache, leaves, photos):
    checkpoint, labels = leaves
    family, arch, token, status, opened = panel.open_checkpoint(str(checkpoint), str(labels), [], None)
    assert (family, arch, opened) == ("ResNet", "resnet18", [token]) and "recognised as resnet18" in status
    arch_pick, weights_pick = panel.checkpoint_pickers(arch, token)
    assert arch_pick["value"] == "resnet18" and "resnet34" in arch_pick["choices"]
    assert ("leaves.ckpt (your checkpoint)", token) in weights_pick["choices"] and weights_pick["value"] == token
    label, status, *_, state = panel.analyze_image(str(photos / "chelsea.png"), "resnet18", token)
    expected = analyze(load_checkpoint(checkpoint, labels=labels), photos / "chelsea.png", topk=5)
    assert label == {f"{name} ({index})": p for index, name, p in expected.topk}
    assert {name for _, name, _ in expected.topk} == set(LEAVES)
    assert "Your checkpoint: leaves.ckpt recognised as resnet18" in status
    facts = app_state.model_facts("resnet18", token)
    assert "your checkpoint" in facts and "5 classes: healthy, rust, scab, blight, mildew" in facts
    assert catalog.costs("resnet18", token).total_params == sum(
        p.numel() for p in load_checkpoint(checkpoint).parameters()
    )
    # Every other view: compare beside another network of its architecture, the checks, the costs, the report.
    pair = [f"resnet18@{token}", f"resnet18@{catalog.RANDOM_INIT}"]
    _, table, _, _, numbers = compare_tab.compare_networks(str(photos / "chelsea.png"), pair)
    assert list(table.columns)[1:] == ["resnet18 (leaves.ckpt)", "resnet18 (UNTRAINED)"]
    assert numbers["networks"][0]["topk"] == topk_rows(expected.topk)
    assert compare_tab.offer_checkpoint(token)["choices"][-1] == (
        "leaves.ckpt (your resnet18)",
        f"resnet18@{token}",
    )
    *_, verdict, report = explain_tab.check_explanation(str(photos / "chelsea.png"), "resnet18", token)
    assert report["class"] == expected.topk[0][1] and report["pretrained"] and "UNTRAINED" not in verdict
    summary, _, rows = cost_tab.cost_views("resnet18", token)
    assert "**resnet18**" in summary
    assert sum(row[1] for row in rows) == sum(p.numel() for p in load_checkpoint(checkpoint).parameters())
    with zipfile.ZipFile(panel.analysis_report(state)) as archive:
        saved = json.loads(archive.read("analysis.json"))
    assert [row["label"] for row in saved["topk"]] == [name for _, name, _ in expected.topk]
    # Another visitor cannot reach it by name, and once the session ends it is gone: model, file and choice.
    assert token in held(cache) and app_state.results().get(state["token"]) is not None
    folder = uploads.get(token).path.parent
    app_state.forget_uploads(opened)
    assert token not in held(cache) and not folder.exists() and app_state.results().get(state["token"]) is None
    with pytest.raises(gr.Error, match="closed when its session ended"):
        panel.analyze_image(str(photos / "chelsea.png"), "resnet18", token)


def test_your_model_takes_how_the_network_was_fed(cache, tmp_path):
    """The app's fields say how a visitor's network was trained (crop, normalisation): the model runs on exactly that
    input, and the status says it."""
    reference = randomize_batchnorm(torchvision.models.resnet18(num_classes=3)).eval()
    torch.save(reference.state_dict(), tmp_path / "raw.pth")
    *_, token, status, _ = panel.open_checkpoint(str(tmp_path / "raw.pth"), None, [], 64, None, "", "", False)
    assert status.startswith("Opened **raw.pth**")
    with app_state.models().using("resnet18", token) as loaded:
        fed = loaded.model.card.preprocess
    assert (fed.crop_size, fed.resize_size, fed.mean, fed.std) == (64, 73, (0.0,) * 3, (1.0,) * 3)
    assert "Preprocessing: resize 73" in catalog.load("resnet18", token, torch.device("cpu")).status
    app_state.forget_uploads([token])  # as its session's end would: other tests count the uploads left open
    with pytest.raises(gr.Error, match="the mean is numbers separated by commas"):
        panel.open_checkpoint(str(tmp_path / "raw.pth"), None, [], None, None, "half", "", True)
    with pytest.raises(gr.Error, match="the std needs 3 value"):
        panel.open_checkpoint(str(tmp_path / "raw.pth"), None, [], None, None, "", "0.5", True)


def test_the_architecture_a_visitor_asks_for_is_the_one_that_runs(cache, tmp_path, photos):
    """Keys that fit two functions (a PreActResNet whose projections read the raw input, as RobustBench's
    PreActBlock): the card names the other; asked for it in the Architecture box, the app runs that one, with the
    reference's answer on the photo; a name the keys do not fit is one sentence."""
    theirs = seeded(lambda: PreActResNet((1, 1, 1, 1), closing_bn=False, reads_preact=False))
    torch.save(theirs.state_dict(), tmp_path / "wong.pt")
    *_, unasked, status, _ = panel.open_checkpoint(str(tmp_path / "wong.pt"), None, [], None)
    assert "ask for cifar_preact_resnet10_nofinal_inputproj for those" in status
    wanted = "cifar_preact_resnet10_nofinal_inputproj"
    family, arch, token, status, opened = panel.open_checkpoint(
        str(tmp_path / "wong.pt"), None, [unasked], None, None, "", "", True, f" {wanted} "
    )
    assert (family, arch, opened) == (catalog.CIFAR_FAMILY, wanted, [unasked, token])
    assert "opened with projections reading the raw input, as asked" in status
    label, *_ = panel.analyze_image(str(photos / "chelsea.png"), arch, token)
    expected = analyze(load_checkpoint(tmp_path / "wong.pt", arch=wanted), photos / "chelsea.png", topk=5)
    assert label == pytest.approx({f"{name} ({index})": p for index, name, p in expected.topk})
    fits = "does not fit resnet50 (its keys and shapes are those of cifar_preact_resnet10_nofinal)"
    with pytest.raises(gr.Error, match=re.escape(fits)):
        panel.open_checkpoint(str(tmp_path / "wong.pt"), None, [], None, None, "", "", True, "resnet50")
    app_state.forget_uploads([unasked, token])


def test_bad_checkpoints_and_labels_are_one_sentence_in_the_app(cache, tmp_path):
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    (tmp_path / "model.tar").write_bytes(bytes(range(256)) * 4)  # no suffix we take, no signature we know
    wrong_kinds = [
        (tmp_path / "three.txt", None, "three.txt is a text file (6 bytes, beginning 'a'), not a checkpoint"),
        (tmp_path / "model.tar", None, "model.tar: a checkpoint is one of .safetensors, .pth"),
    ]
    cases = [*bad_inputs(tmp_path), *wrong_kinds]
    for path, labels, message in cases:
        with pytest.raises(gr.Error) as info:
            panel.open_checkpoint(str(path), str(labels) if labels else None, [], None)
        assert message in str(info.value) and "/tmp" not in str(info.value), (path, str(info.value))
    names = {path.name for path, _, _ in cases}
    assert not [upload for upload in uploads._uploads.values() if upload.name in names]  # nothing half-opened stays
    assert not any(uploads.get(weights).name in names for weights in held(cache) if uploads.is_upload(weights))


@pytest.mark.browser
def test_gradio_client_and_chromium_open_a_five_class_checkpoint(served_app, leaves, photos, tmp_path, monkeypatch):
    """Through the launched app: /open_checkpoint then /analyze in one client session; then the same in Chromium,
    where the predictions and the Grad-CAM class picker name the user's classes."""
    monkeypatch.chdir(tmp_path)
    expect = pytest.importorskip("playwright.sync_api").expect
    checkpoint, labels = leaves
    url = served_app
    client = Client(url, verbose=False)
    _, arch, weights, status = client.predict(  # the session's list of checkpoints is a state: not returned
        handle_file(str(checkpoint)), handle_file(str(labels)), api_name="/open_checkpoint"
    )
    assert arch == "resnet18" and weights.startswith(uploads.PREFIX) and "recognised as resnet18" in status
    label, *_ = client.predict(handle_file(str(photos / "chelsea.png")), arch, weights, api_name="/analyze")
    assert {entry["label"].rsplit(" (", 1)[0] for entry in label["confidences"]} == set(LEAVES)

    with chromium_page(url) as page:
        open_your_model(page, str(checkpoint), "resnet18", labels=str(labels), timeout=60_000)
        page.set_input_files("#photo input[type=file]", str(photos / "chelsea.png"))
        page.get_by_role("button", name="Analyze").click()
        expect(page.locator("#predictions")).to_contain_text("healthy", timeout=120_000)
        shown = page.locator("#predictions").inner_text()
        assert all(name in shown for name in LEAVES)
        page.get_by_role("tab", name="Grad-CAM").click()
        page.locator("#cam-class input").click()
        expect(page.get_by_role("option", name="4: mildew")).to_be_visible(timeout=30_000)
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "your_model_gradcam.png"), full_page=True)
        # This browser's opening of this file (other tests in this process may have left uploads of their own).
        (browser,) = [
            u
            for u in uploads._uploads.values()
            if isinstance(u, uploads.Upload) and u.name == checkpoint.name and u.session != client.session_hash
        ]
    # The tab closed: its checkpoint goes at once (demo.unload), the client's, still open, stays.
    deadline = time.monotonic() + 60
    while browser.token in uploads._uploads and time.monotonic() < deadline:
        time.sleep(0.2)
    assert browser.token not in uploads._uploads and not browser.path.parent.exists()
    assert uploads.get(weights).session == client.session_hash
