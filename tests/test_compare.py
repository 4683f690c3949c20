"""Compare: several networks on one photo, in the library, the CLI, the handlers, the launched app and a browser.

ImageNet nets run on random init here (their default weights would be downloaded on a machine with internet);
the trained CIFAR-10 resnet20/56 and the lab's digit nets load from the shipped copies on every machine.
"""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from bench.browser import chromium_page
from demo import app_state, compare_tab
from demo.catalog import RANDOM_INIT
from demo.model_cache import ModelCache
from resnet_core import Preprocess, create_model
from resnet_core.__main__ import main as cli
from resnet_core.data import cifar10
from resnet_core.explain.analysis import analyze
from resnet_core.explain.compare import compare, photo_cams
from resnet_core.render import cam_overlay

from .conftest import ROOT, read_png

SCREENSHOTS = ROOT / "screenshots"
CAT = next(path for path in sorted(cifar10.GALLERY_DIR.glob("cat_*.png")))


@pytest.fixture(scope="module")
def trained():
    return [create_model(f"cifar10_resnet{depth}", weights="DEFAULT", progress=False) for depth in (20, 56)]


def test_columns_equal_the_single_analyses(trained, photos):
    torch.manual_seed(0)
    models = [*trained, create_model("resnet18", weights=None)]
    photo = photos / "chelsea.png"
    comparison = compare(models, photo)
    for model, result in zip(models, comparison.results, strict=True):
        alone = analyze(model, photo)
        assert result.topk == alone.topk
        assert np.array_equal(result.cam, alone.cam)
        assert np.array_equal(np.asarray(result.crop), np.asarray(alone.crop))
        assert {n: s.residual_ratio for n, s in result.blocks.items()} == {
            n: s.residual_ratio for n, s in alone.blocks.items()
        }
    columns = comparison.as_dict()["networks"]
    assert [c["arch"] for c in columns] == ["cifar10_resnet20", "cifar10_resnet56", "resnet18"]
    assert [c["pretrained"] for c in columns] == [True, True, False]
    assert columns[0]["acc1"] == pytest.approx(91.73) and columns[2]["acc1"] is None
    assert columns[2]["gmacs"] == pytest.approx(1.814, abs=0.01) and columns[2]["input_size"] == 224


def test_mixed_label_spaces_compare_no_probabilities(trained, photos):
    comparison = compare([trained[0], create_model("resnet18", weights=None)], photos / "chelsea.png")
    agreement = comparison.agreement
    assert agreement.same_top1 is None and agreement.common_topk is None
    summary = comparison.summary()
    assert "different label spaces (CIFAR-10, ImageNet-1k)" in summary and "top-1" not in summary
    assert summary.startswith("resnet18 is untrained (random weights): answers are noise")


def test_one_label_space_agreement(trained):
    comparison = compare(trained, CAT)
    agreement = comparison.agreement
    assert agreement.same_top1 is True and agreement.common_topk[0] == "cat"
    assert comparison.summary().startswith('Both networks give the same top-1 class, "cat".')
    # A network compared with itself: its two heat maps are the same map, correlation 1.
    assert compare([trained[0], trained[0]], CAT).agreement.cam_correlation == pytest.approx(1.0, abs=1e-6)


def test_cams_are_compared_on_the_part_of_the_photo_every_network_saw():
    """Two crops of one 400x300 photo (ImageNet's 224 of 256, CIFAR's whole centred square): a heat map that is a
    function of the photo's own x coordinate must come back as the same map from both, however each cropped."""
    size = (400, 300)
    geometries = [Preprocess(224, 256), Preprocess(32, 32), Preprocess(288, 320)]
    results = []
    for preprocess in geometries:
        left, _, right, _ = preprocess.crop_box(size)
        side = preprocess.crop_size
        x = left + (np.arange(side) + 0.5) * (right - left) / side  # photo x of each crop pixel's centre
        cam = np.tile(x / size[0], (side, 1))
        results.append(SimpleNamespace(card=SimpleNamespace(preprocess=preprocess), cam=cam))
    cams, region = photo_cams(size, results)
    assert region == pytest.approx((68.75, 18.75, 331.25, 281.25))  # the 224/256 crop: the smallest square
    for cam in cams[1:]:
        assert np.abs(cam - cams[0]).max() < 2e-3
    assert cams[0][0, 0] == pytest.approx((68.75 + 262.5 / 128) / 400, abs=1e-3)


def test_crop_box_is_where_the_crop_comes_from(photos):
    preprocess = Preprocess(224, 256)
    photo = Image.open(photos / "chelsea.png").convert("RGB")
    box = preprocess.crop_box(photo.size)
    by_hand = photo.resize((224, 224), Image.BILINEAR, box=box)
    difference = np.abs(np.asarray(by_hand, float) - np.asarray(preprocess.crop(photo), float)).mean()
    assert difference < 3  # the same region (a shifted box differs by tens of grey levels on this photo)


def test_compare_refuses_too_few_or_too_many(trained):
    with pytest.raises(ValueError, match="2 to 5 networks, got 1"):
        compare(trained[:1], CAT)
    with pytest.raises(ValueError, match="2 to 5 networks, got 6"):
        compare(trained * 3, CAT)


def test_cli_compare_json_matches_predict(capsys):
    assert cli(["compare", str(CAT), "--archs", "cifar10_resnet20", "cifar10_resnet56", "plain34", "--json"]) == 0
    networks = json.loads(capsys.readouterr().out)
    assert [n["arch"] for n in networks] == ["cifar10_resnet20", "cifar10_resnet56", "plain34"]
    assert [n["pretrained"] for n in networks] == [True, True, False]  # plain34 has no published weights
    assert cli(["predict", str(CAT), "--arch", "cifar10_resnet56", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert networks[1]["topk"] == predicted["topk"]


@pytest.mark.parametrize(
    ("archs", "message"),
    [
        (["cifar10_resnet20"], "compare takes 2 to 5 networks, got 1 from --archs and --checkpoint"),
        (["cifar10_resnet20"] * 6, "compare takes 2 to 5 networks, got 6 from --archs and --checkpoint"),
        (["cifar10_resnet20", "resnet999"], "unknown architecture 'resnet999'"),
    ],
)
def test_cli_compare_bad_input_is_one_line(capsys, archs, message):
    assert cli(["compare", str(CAT), "--archs", *archs, "--weights", *(["none"] * len(archs))]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1


@pytest.fixture()
def cache():
    app_state.configure(ModelCache(capacity=3, device="cpu"))


def test_presets_fill_the_picker_with_networks_the_app_offers(cache):
    offered = set(compare_tab.choices())
    for preset, (archs, note) in compare_tab.PRESETS.items():
        assert compare_tab.on_preset(preset) == (archs, note)
        assert 2 <= len(archs) <= 5 and set(archs) <= offered, preset
    with pytest.raises(gr.Error, match="Unknown preset"):
        compare_tab.on_preset("nonsense")


@pytest.mark.parametrize(
    ("archs", "message"),
    [
        (["resnet18"], "Pick 2 to 5 networks to compare; got 1."),
        (["resnet18"] * 6, "Pick 2 to 5 networks to compare; got 6."),
        (["resnet18", "resnet999"], "Unknown architecture 'resnet999'"),
    ],
)
def test_handler_bad_input_is_one_sentence(cache, photos, archs, message):
    with pytest.raises(gr.Error, match=message.replace("(", r"\(")):
        compare_tab.compare_networks(str(photos / "chelsea.png"), archs, ",".join([RANDOM_INIT] * len(archs)))


@pytest.mark.slow
def test_compare_through_gradio_client_equals_analyze(served_app, cache):
    url = served_app
    client = Client(url, verbose=False)
    gallery, table, plot, summary, numbers = client.predict(
        handle_file(str(CAT)),
        ["cifar10_resnet20", "digits_plain56", "resnet18"],
        f"DEFAULT, DEFAULT, {RANDOM_INIT}",
        api_name="/compare",
    )
    assert [n["arch"] for n in numbers["networks"]] == ["cifar10_resnet20", "digits_plain56", "resnet18"]
    assert "different label spaces (CIFAR-10, MNIST digits, ImageNet-1k)" in summary
    captions = [item["caption"].split(":")[0] for item in gallery]
    assert captions == ["cifar10_resnet20", "digits_plain56", "resnet18 (UNTRAINED)"]
    assert table["headers"] == ["", *captions]  # one name per network: caption, column and legend
    assert Image.open(plot).format == "PNG" and np.asarray(Image.open(plot).convert("L")).std() > 0
    # Each column is the single analysis, pixel for pixel: the Grad-CAM tab's picture of the same network.
    archs, choices = ["cifar10_resnet20", "digits_plain56", "resnet18"], ["DEFAULT", "DEFAULT", RANDOM_INIT]
    for item, arch, choice in zip(gallery, archs, choices, strict=True):
        cam = client.predict(handle_file(str(CAT)), arch, choice, api_name="/analyze")[4]
        assert np.array_equal(read_png(item["image"]), read_png(cam)), arch
    expected = analyze(app_state.models().get("cifar10_resnet20", "cifar10_resnet20.akamaster").model, CAT)
    assert np.array_equal(read_png(gallery[0]["image"]), cam_overlay(expected.crop, expected.cam, 0.5))
    # Ours against torchvision, same random weights (the app's cached resnet18), on the same photo.
    table = client.predict(handle_file(str(CAT)), ["resnet18", "cifar10_resnet20"], f"{RANDOM_INIT}, DEFAULT",
                           api_name="/verify")  # fmt: skip
    rows = [dict(zip(table["headers"], row, strict=True)) for row in table["data"]]
    assert rows[0]["network"] == "resnet18" and rows[0]["reference"] == "torchvision"
    assert rows[0]["weights"] == "UNTRAINED: the same random weights in both"
    assert float(rows[0]["max |diff| logits"]) <= 1e-5 and rows[0]["same top-5"] == "yes"
    assert rows[1]["reference"].startswith("none") and rows[1]["max |diff| logits"] == ""
    with pytest.raises(Exception, match="Pick 2 to 5 networks to compare; got 1"):
        client.predict(handle_file(str(CAT)), ["cifar10_resnet20"], "", api_name="/compare")


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_compare_in_a_real_browser(served_app, cache, tmp_path, monkeypatch):
    """Pick the digits preset, a digit example, Compare: two columns of trained nets, their sentence, no error."""
    monkeypatch.chdir(tmp_path)  # the digit example runs on click, and Gradio caches it under ./.gradio
    pytest.importorskip("playwright.sync_api")
    SCREENSHOTS.mkdir(exist_ok=True)
    digit = sorted((ROOT / "assets" / "digits").glob("*.png"))[0]
    url = served_app
    with chromium_page(url) as page:
        page.get_by_role("tab", name="Compare").click()
        page.get_by_label("Preset").click()
        page.get_by_role("option", name="plain vs residual (digits, trained)", exact=True).click()
        page.wait_for_function("() => document.body.innerText.includes('same depth, with and without')")
        networks = page.locator("#compare-networks").inner_text()
        assert "digits_plain56" in networks and "digits_resnet56" in networks and "cifar10_resnet20" not in networks
        page.locator(f"#digit-examples img[src*='{digit.name}']").click()
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Compare", exact=True).click()
        page.wait_for_function(
            "() => document.querySelector('#compare-summary')?.innerText.includes('Grad-CAMs')", timeout=120_000
        )
        assert page.locator("#compare-cams img").count() == 2
        summary = page.locator("#compare-summary").inner_text()
        assert "top-1 class" in summary and "Untrained" not in summary
        shot = SCREENSHOTS / "compare.png"
        page.screenshot(path=str(shot), full_page=True)
        assert Image.open(shot).size[0] == 1400
        assert "Error" not in page.locator("body").inner_text()
        # Another preset: nothing of the digits' comparison stays under its caption.
        page.get_by_label("Preset").click()
        page.get_by_role("option", name="depth (CIFAR-10, trained)", exact=True).click()
        page.wait_for_function("() => document.querySelector('#compare-summary').innerText.includes('Press')")
        assert page.locator("#compare-cams img").count() == 0 and "Table 6" in page.locator("body").inner_text()
        assert "digits_plain56" not in page.locator("#compare-chart").inner_text()
        # A list edited by hand is no longer the preset: its caption goes, and so does the preset's name.
        page.locator("#compare-networks .token", has_text="cifar10_resnet20").locator(".token-remove").click()
        page.wait_for_function("() => !document.body.innerText.includes('Table 6')")
        assert page.get_by_label("Preset").input_value() == ""
