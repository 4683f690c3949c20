"""Hostile files, many users at once, and broken weight files: the app keeps serving and answers correctly."""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from demo import app_state
from demo.catalog import RANDOM_INIT
from demo.sessions import release_memory
from resnet_core import WEIGHTS, create_model, load_image
from resnet_core.__main__ import main as cli
from resnet_core.explain.analysis import analyze
from resnet_core.render import cam_overlay
from resnet_core.zoo.preprocess import WORKING_PIXELS

from .conftest import hooks_left, read_png, rss_mb
from .hostile import PHOTO, build_cases, exif_rotated_jpeg, write_cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_cases(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def server(served_app):
    return served_app


@pytest.mark.slow
def test_corpus_is_large_enough():
    cases = build_cases()
    assert len(cases) >= 25 and len({case.name for case in cases}) == len(cases)


@pytest.mark.slow
def test_every_hostile_file_through_the_cli(corpus, capsys):
    for case, path in corpus:
        code = cli(["predict", str(path), "--arch", "resnet18", "--weights", "none", "--json", "--topk", "3"])
        out, err = capsys.readouterr()
        if case.readable:
            assert code == 0, (case.name, err)
            probabilities = [row["probability"] for row in json.loads(out)["topk"]]
            assert len(probabilities) == 3 and np.isfinite(probabilities).all(), case.name
        else:
            assert code == 2, case.name
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, (case.name, err)


def test_readable_oddities_give_finite_analyses(corpus):
    model = create_model("resnet18")
    for case, path in corpus:
        if not case.readable:
            continue
        image = load_image(path)
        assert image.mode == "RGB" and image.size[0] * image.size[1] <= WORKING_PIXELS, case.name
        result = analyze(model, image)
        assert np.isfinite(result.cam).all() and torch.isfinite(result.probabilities).all(), case.name
        for stats in result.blocks.values():
            values = [stats.residual_ratio, stats.cosine, stats.zero_fraction]
            assert all(v is None or np.isfinite(v) for v in values), case.name


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    path.write_bytes(exif_rotated_jpeg())
    upright = load_image(path)
    original = Image.open(PHOTO).convert("RGB")
    assert Image.open(path).size == (300, 451) and upright.size == (451, 300)  # stored sideways, shown landscape
    difference = np.abs(np.asarray(upright, dtype=int) - np.asarray(original, dtype=int)).mean()
    assert difference < 6  # JPEG noise only; a wrong rotation would not even have the same shape


@pytest.mark.slow
def test_every_hostile_file_through_the_app_then_a_normal_request(server, corpus, photos):
    client = Client(server, verbose=False)
    for case, path in corpus:
        if case.readable:
            outputs = client.predict(handle_file(str(path)), "resnet18", RANDOM_INIT, api_name="/analyze")
            assert len(outputs[0]["confidences"]) == 5, case.name
        else:
            with pytest.raises(AppError) as info:
                client.predict(handle_file(str(path)), "resnet18", RANDOM_INIT, api_name="/analyze")
            message = str(info.value)
            assert "Could not read the image" in message and "Traceback" not in message, (case.name, message)
    outputs = client.predict(handle_file(str(photos / "chelsea.png")), "resnet18", RANDOM_INIT, api_name="/analyze")
    expected = analyze(app_state.models().get("resnet18", RANDOM_INIT).model, photos / "chelsea.png")
    assert outputs[0]["label"] == f"{expected.topk[0][1]} ({expected.topk[0][0]})"


@pytest.mark.slow
def test_photos_above_their_cap_are_refused_before_decoding(server, tmp_path):
    """Gradio's upload cap is the checkpoints' (250 MB); a photo's 20 MB is ours, said in one sentence."""
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(21 * 2**20))
    with pytest.raises(AppError, match="That photo is 21 MB; photos up to 20 MB are accepted"):
        Client(server, verbose=False).predict(handle_file(str(big)), "resnet18", RANDOM_INIT, api_name="/analyze")


# Sixteen clients on three cached models may add their in-flight activations, not a copy per session: the store
# keeps at most 8 analyses. The process's absolute RSS is measured by bench.memory on a server of its own (this
# process also holds every earlier test's objects).
RSS_GROWTH_MB = 400


@pytest.mark.slow
def test_sixteen_clients_at_once_get_their_own_correct_answers(server, photos):
    jobs = [
        ("chelsea.png", "resnet18", 281),
        ("coffee.png", "resnet50", 967),
        ("rocket.jpg", "plain18", 657),
        ("grace_hopper.jpg", "resnet18", 652),
    ]
    cache = app_state.models()
    expected = {}
    for photo, arch, cam_class in jobs:  # serial answers first, from the very models the server uses
        result = analyze(cache.get(arch, RANDOM_INIT).model, photos / photo)
        expected[(photo, arch)] = (result, cam_overlay(result.crop, result.cam_for(cam_class), 0.5))

    failures: list[str] = []
    rss_before = rss_mb()

    def user(index: int) -> None:
        client = Client(server, verbose=False)
        for round_ in range(2):
            photo, arch, cam_class = jobs[(index + round_) % len(jobs)]
            result, retargeted = expected[(photo, arch)]
            outputs = client.predict(handle_file(str(photos / photo)), arch, RANDOM_INIT, api_name="/analyze")
            top = outputs[0]["confidences"][0]
            if top["label"] != f"{result.topk[0][1]} ({result.topk[0][0]})":
                failures.append(f"user {index} round {round_}: {top['label']} for {photo}/{arch}")
            if np.abs(read_png(outputs[4]).astype(int) - cam_overlay(result.crop, result.cam, 0.5)).max() > 1:
                failures.append(f"user {index} round {round_}: CAM differs for {photo}/{arch}")
            overlay = client.predict(f"{cam_class}: x", "layer4", 0.5, api_name="/cam")
            if np.abs(read_png(overlay).astype(int) - retargeted).max() > 1:
                failures.append(f"user {index} round {round_}: re-targeted CAM differs for {photo}/{arch}")

    threads = [threading.Thread(target=user, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    for arch in ("resnet18", "resnet50", "plain18"):
        assert hooks_left(cache.get(arch, RANDOM_INIT).model) == 0
    release_memory()
    assert rss_mb() - rss_before < RSS_GROWTH_MB


@pytest.fixture()
def broken_weights(tmp_path, monkeypatch):
    """A weights folder and a hub cache full of the failures users meet."""
    from safetensors.torch import save_file

    folder = tmp_path / "weights"
    folder.mkdir()
    good = tmp_path / "good.pth"
    torch.save(create_model("resnet18").state_dict(), good)
    (folder / "resnet18.tv_in1k.pth").write_bytes(good.read_bytes()[:1000])  # truncated
    save_file(create_model("resnet18").state_dict(), str(folder / "resnet34.tv_in1k.safetensors"))  # wrong arch

    class Exploit:
        def __reduce__(self):
            return (print, ("code ran",))

    torch.save({"conv1.weight": Exploit()}, folder / "resnet50.tv_in1k.pth")  # executes code if unpickled
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet152-394f9c45.pth").write_bytes(good.read_bytes())  # right name, wrong hash
    monkeypatch.setenv("RESNET_EXPLORER_WEIGHTS", str(folder))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for arch in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        # No network source can deliver either, by construction: the same result with or without internet.
        entry = WEIGHTS[f"{arch}.tv_in1k"]
        dead = dataclasses.replace(entry, url=(tmp_path / "gone" / entry.file_name).as_uri(), hf_hub_id=None)
        monkeypatch.setitem(WEIGHTS, entry.name, dead)
    return {
        "resnet18": ("tv_in1k", "corrupt or truncated"),
        "resnet34": ("tv_in1k", "does not fit resnet34"),
        "resnet50": ("tv_in1k", "so it is not loaded"),
        "resnet152": ("tv_in1k", "fails its sha256 check"),
        "resnet101": ("tv_in1k", "none of resnet101.tv_in1k.safetensors"),  # missing
    }


@pytest.mark.slow
def test_weight_faults_in_the_cli(broken_weights, photos, capsys):
    for arch, (tag, reason) in broken_weights.items():
        code = cli(["predict", str(photos / "chelsea.png"), "--arch", arch, "--weights", tag])
        _, err = capsys.readouterr()
        assert code == 2 and reason in err and "Traceback" not in err and "code ran" not in err, (arch, err)


@pytest.mark.slow
def test_weight_faults_in_the_app_and_it_keeps_serving(server, broken_weights, photos, capfd):
    client = Client(server, verbose=False)
    for arch, (tag, reason) in broken_weights.items():
        outputs = client.predict(handle_file(str(photos / "coffee.png")), arch, f"{arch}.{tag}", api_name="/analyze")
        status = outputs[1]
        assert "could not be loaded" in status and reason in status, (arch, status)
        assert "UNTRAINED" in status
    assert "code ran" not in capfd.readouterr().out
    outputs = client.predict(handle_file(str(photos / "chelsea.png")), "resnet18", RANDOM_INIT, api_name="/analyze")
    assert len(outputs[0]["confidences"]) == 5
