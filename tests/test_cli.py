"""`python -m resnet_core` as a user runs it: real files; one real subprocess, the rest in-process (same ``main``)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from resnet_core import ARCHITECTURES, WEIGHTS, cost_table, create_model, load_image
from resnet_core.__main__ import main as cli
from resnet_core.measure.receptive_field import receptive_fields
from resnet_core.zoo.architectures import build

from .conftest import ROOT, randomize_batchnorm


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command in a fresh interpreter: what `python -m resnet_core` really does, imports and exit code included."""
    return subprocess.run(
        [sys.executable, "-m", "resnet_core", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        timeout=300,
    )


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``main(args)`` in this process (argparse exits through SystemExit)."""
    try:
        code = cli(list(args))
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_list_names_every_architecture_with_figures(capsys):
    code, out, err = in_process(capsys, "list", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert {row["arch"] for row in rows} == set(ARCHITECTURES)
    r50 = next(row for row in rows if row["weights"] == "resnet50.tv2_in1k")
    assert (r50["acc1"], r50["params"], r50["gmacs_224"], r50["default"]) == (80.858, 25557032, 4.089, True)
    r50d = next(row for row in rows if row["arch"] == "resnet50d")
    assert r50d["eval_size"] == 288 and r50d["gmacs"] > 1.6 * r50d["gmacs_224"]  # counted where it is used


def test_info_prints_the_cost_table(capsys):
    code, out, err = in_process(capsys, "info", "resnet50", "--json")
    assert code == 0, err
    table = json.loads(out)
    assert table["total_macs"] == cost_table("resnet50").total_macs
    assert [row["name"] for row in table["rows"]][:3] == ["stem", "layer1.0", "layer1.1"]
    fields = receptive_fields(build("resnet50"))
    assert [row["receptive_field"] for row in table["rows"]] == [f.size for f in fields.values()] + [None]
    assert {name: s["receptive_field"] for name, s in table["stages"].items()} == {
        "stem": 11, "layer1": 35, "layer2": 91, "layer3": 267, "layer4": 427, "head": None
    }  # fmt: skip
    text = in_process(capsys, "info", "resnet18")[1]
    assert "GMACs" in text and "layer4.1" in text and "per stage" in text and "field   435 px" in text


@pytest.mark.slow
def test_predict_with_a_local_checkpoint_matches_the_library(tmp_path, photos):
    torch.manual_seed(0)
    model = randomize_batchnorm(create_model("resnet18"))
    path = tmp_path / "mine.safetensors"
    save_file(model.state_dict(), str(path))
    result = run("predict", str(photos / "chelsea.png"), "--arch", "resnet18", "--weights", str(path), "--json",
                 "--topk", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    with torch.inference_mode():
        probs = model(model.card.preprocess(load_image(photos / "chelsea.png"))[None]).softmax(-1)[0]
    expected = probs.topk(3)
    assert [row["index"] for row in payload["topk"]] == expected.indices.tolist()
    for row, p in zip(payload["topk"], expected.values.tolist(), strict=True):
        assert abs(row["probability"] - p) < 1e-6
    assert payload["source"].startswith("local file")


def test_user_errors_are_one_line_without_traceback(tmp_path, photos, capsys):
    bad_image = tmp_path / "notes.png"
    bad_image.write_text("not an image")
    cases = [
        (("predict", str(photos / "chelsea.png"), "--arch", "resnet9"), "unknown architecture"),
        (("predict", str(bad_image), "--arch", "resnet18", "--weights", "none"), "not a readable image"),
        (("predict", str(tmp_path / "missing.jpg"), "--arch", "resnet18"), "not a readable image"),
        (("predict", str(photos / "chelsea.png"), "--arch", "resnet18", "--weights", "v9"), "unknown weights"),
        (("info", "resnet7"), "unknown architecture"),
        (("predict", str(photos / "chelsea.png"), "--arch", "plain18"), "no pretrained weights are published"),
        (("predict", str(photos / "chelsea.png"), "--arch", "resnet18", "--topk", "-1"), "at least 1"),
    ]
    for args, expected in cases:
        code, _, err = in_process(capsys, *args)
        assert code == 2, (args, err)
        assert expected in err and "Traceback" not in err


def test_unavailable_weights_say_which_sources_failed(photos, tmp_path, monkeypatch, capsys):
    """In-process, so the entry's URL can be made dead by construction: the same result with or without internet."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    dead = dataclasses.replace(WEIGHTS["resnet18.tv_in1k"], url=(tmp_path / "gone" / "resnet18-f37072fd.pth").as_uri())
    monkeypatch.setitem(WEIGHTS, "resnet18.tv_in1k", dead)
    assert cli(["predict", str(photos / "chelsea.png"), "--arch", "resnet18"]) == 2
    stderr = capsys.readouterr().err
    assert "weights resnet18.tv_in1k unavailable" in stderr and "Traceback" not in stderr
    assert "published URL" in stderr and "Hugging Face hub" in stderr and "To fix" in stderr
