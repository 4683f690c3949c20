"""The same evaluation on Ray Data (a local Ray on this machine's CPUs): the same rows as the local loop."""

from __future__ import annotations

import importlib.util
import math

import pyarrow.dataset as ds
import pytest

from resnet_core import evaluate_dataset
from resnet_core.__main__ import main as cli
from resnet_core.data.sources import open_source

if importlib.util.find_spec("ray") is None:  # not imported here: the run imports Ray in its own environment
    pytest.skip("the scale extra (ray[data]) is not installed", allow_module_level=True)
pytestmark = pytest.mark.slow  # a Ray starts in about 10 s and runs its actors beside the tests


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    yield
    import ray

    ray.shutdown()


def rows(folder) -> list[dict]:
    return ds.dataset(folder, format="parquet").to_table().sort_by("path").to_pylist()


def assert_same_rows(ours: list[dict], theirs: list[dict]) -> None:
    assert [row["path"] for row in ours] == [row["path"] for row in theirs]
    for mine, other in zip(ours, theirs, strict=True):
        assert [t["index"] for t in mine["topk"]] == [t["index"] for t in other["topk"]]
        for a, b in zip(mine["topk"], other["topk"], strict=True):
            assert math.isclose(a["probability"], b["probability"], rel_tol=1e-5, abs_tol=1e-7)
        assert (mine["label"], mine["correct"], mine["error"]) == (other["label"], other["correct"], other["error"])
        for a, b in zip(mine["residual_ratios"], other["residual_ratios"], strict=True):
            assert math.isclose(a, b, rel_tol=1e-5)


def test_ray_rows_equal_the_local_rows_and_resume_across_engines(tmp_path):
    source = open_source("cifar10").head(48)
    local = evaluate_dataset(source, ["cifar10_resnet20"], tmp_path / "local", workers=0, progress=False)
    on_ray = evaluate_dataset(source, ["cifar10_resnet20"], tmp_path / "ray", progress=False, ray="local",
                              batch_size=16, actors=2)  # fmt: skip
    assert_same_rows(rows(tmp_path / "local" / "rows"), rows(tmp_path / "ray" / "rows"))
    assert on_ray["cifar10_resnet20"].accuracy == local["cifar10_resnet20"].accuracy
    assert on_ray["cifar10_resnet20"].median_residual_ratios == pytest.approx(
        local["cifar10_resnet20"].median_residual_ratios, rel=1e-5
    )
    # Half done locally, the rest on Ray: the same rows again, none twice.
    evaluate_dataset(source.head(20), ["cifar10_resnet20"], tmp_path / "mixed", workers=0, progress=False)
    evaluate_dataset(source, ["cifar10_resnet20"], tmp_path / "mixed", progress=False, ray="local", batch_size=16)
    assert_same_rows(rows(tmp_path / "local" / "rows"), rows(tmp_path / "mixed" / "rows"))


def test_the_command_line_runs_on_ray(tmp_path, capsys):
    code = cli(["evaluate", "cifar10", "--archs", "cifar10_resnet20", "--limit", "16", "--batch-size", "8",
                "--out", str(tmp_path / "run"), "--ray", "--json"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert len(rows(tmp_path / "run" / "rows")) == 16


def test_a_local_ray_stays_on_this_machine():
    """The Ray a run starts: its processes on loopback, HTTP from its own processes into a port that refuses, the
    workers with the caller's proxy settings, and the suite's guard inside the workers too."""
    import os
    import socket

    from resnet_core.evaluate.on_ray import LOCAL, _ray, local_ray_environment

    from . import conftest

    environment = local_ray_environment()
    host, port = environment["http_proxy"].removeprefix("http://").split(":")
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect((host, int(port)))
    assert environment["RAY_USAGE_STATS_ENABLED"] == "0" and "127.0.0.1" in environment["no_proxy"]

    ray = _ray(LOCAL)
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}

    @ray.remote
    def probe() -> tuple[str, str | None]:
        try:
            socket.getaddrinfo("example.com", 80)
        except OSError as error:
            return str(error), os.environ.get("http_proxy")
        return "reached", os.environ.get("http_proxy")

    before = len(conftest.outside_attempts())
    refusal, proxy = ray.get(probe.remote())
    attempts = conftest.outside_attempts()[before:]
    conftest.forget_attempts_since(before)  # this attempt was the point
    assert "beyond this machine" in refusal and proxy == os.environ.get("http_proxy", "")
    assert [(a["event"], a["host"]) for a in attempts] == [("socket.getaddrinfo", "'example.com'")]
    assert "default_worker.py" in attempts[0]["argv"][0]
