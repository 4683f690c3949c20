"""Shared fixtures. Tests never reach a network: the Hugging Face client is put offline before it is imported."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Probes the app caches on disk go to a folder of this run, not the user's ~/.cache.
os.environ["RESNET_EXPLORER_CACHE"] = __import__("tempfile").mkdtemp(prefix="resnet-explorer-tests-")
# The full CIFAR-10 test set is for benchmarks: tests use what the repository ships, on every machine.
os.environ.pop("RESNET_EXPLORER_CIFAR10", None)

import socket
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from .netguard import sitecustomize as netguard

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "assets" / "photos"

# Under pytest-xdist (-n N) each worker takes its share of the cores: N processes of torch's default threads would
# oversubscribe them, and every worker would slow down many times over.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


# ---- no test may reach beyond this machine ------------------------------------------------------------------------
# The suite must give the same result on a laptop that reaches every hub and on a machine that reaches none, so any
# attempt to resolve a name or reach an address outside loopback is refused and fails the test that made it (even if
# the code under test swallows the error), and the session if it came later. The guard is an audit hook
# (tests/netguard/sitecustomize.py) in this process and, through the PYTHONPATH they inherit, in every Python process
# the suite starts: a CLI subprocess, a local Ray's dashboard, agents and workers. They all append to one log.
NET_LOG = Path(os.environ["RESNET_EXPLORER_CACHE"]) / "outside-attempts.jsonl"
os.environ[netguard.LOG] = str(NET_LOG)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(Path(netguard.__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])]
)
netguard.install()


def outside_attempts() -> list[dict]:
    """Every attempt to reach beyond this machine so far, by any process of the suite."""
    return netguard.read_attempts(NET_LOG)


def forget_attempts_since(count: int) -> None:
    """Drop the attempts a guard test made on purpose, so the test and the session stay green."""
    if NET_LOG.exists():
        NET_LOG.write_text("".join(NET_LOG.read_text().splitlines(keepends=True)[:count]))


def describe(attempts: list[dict]) -> str:
    """The attempts as a failure names them: the process, the host, and the code that asked (outside the stdlib)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    return "\n".join(
        f"  {' '.join(a['argv'])} (pid {a['pid']}): {a['event']} {a['host']}, from\n"
        + "\n".join([f"    {frame}" for frame in a["from"] if not frame.startswith(stdlib)][:8])
        for a in attempts
    )


@pytest.fixture(autouse=True)
def _stays_on_this_machine():
    start = len(outside_attempts())
    yield
    attempts = outside_attempts()[start:]
    assert attempts == [], f"a test tried to reach beyond this machine:\n{describe(attempts)}"


def pytest_sessionfinish(session):
    """An attempt that came after its test ended (a Ray process probes on its own clock) fails the session."""
    attempts = outside_attempts()
    if attempts:
        print(f"\nthe suite's processes tried to reach beyond this machine:\n{describe(attempts)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _downloads_forgotten():
    """Each test starts with no download remembered as failed (a process remembers them for minutes)."""
    from resnet_core.zoo.weights import FAILED_DOWNLOADS

    FAILED_DOWNLOADS.forget()


@pytest.fixture(scope="session")
def photos() -> Path:
    return PHOTOS


@pytest.fixture(scope="session")
def page():
    """The whole app, built once, for tests that call the page's own handlers (tests.app_page.Page)."""
    from .app_page import Page

    return Page()


@pytest.fixture()
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty TORCH_HOME, so the hub cache is the test's own."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BN non-trivial statistics and affine terms, so eval-mode comparisons test them too."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) * 0.4 - 0.2)
    return model


SLOW = [pytest.mark.slow]


def hub_snapshot(cache: Path, repo: str, state: dict[str, torch.Tensor], config: dict) -> None:
    """A Hugging Face Hub repository (``model.safetensors`` + ``config.json``) laid out in ``cache`` as
    huggingface_hub caches a download, so ``hf-hub:`` sources open without the network."""
    revision = "1" * 40
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    snapshot = folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    save_file(state, str(snapshot / "model.safetensors"))
    (snapshot / "config.json").write_text(json.dumps(config))


def _big(name: str) -> bool:
    """101 or more layers, or 60 M or more parameters (the wide ones): from the registry's data alone (depth,
    published parameter count), since counting costs at collection took seconds of every run. Every wide net has
    published weights."""
    from resnet_core import default_weights, get_arch

    published = default_weights(name)
    return get_arch(name).depth >= 101 or (published is not None and (published.num_params or 0) >= 60e6)


def structural_kind(name: str) -> tuple:
    """What a network's code path depends on, its depth and width aside: two networks of one kind run the same
    modules, only more or fewer of them."""
    from resnet_core import get_arch

    spec = get_arch(name)
    return (
        spec.block,
        spec.groups > 1,
        spec.width_per_group,
        spec.stem_type,
        spec.downsample,
        spec.zero_pad,
        spec.stride_in_1x1,
        spec.shortcut,
        len(spec.layers),
        spec.label_space.key,
        spec.block_kwargs,
        spec.in_chans,
    )


def one_of_each_kind(values: list) -> list:
    """``values`` (architecture names, or tuples that start with one) as pytest parameters: of the networks of one
    structural kind (:func:`structural_kind`) only the first that is neither deep nor wide stays in the fast lane;
    the others are marked slow, so the full sweep runs in the slow lane."""
    names = [value[0] if isinstance(value, tuple) else value for value in values]
    fast: dict[tuple, str] = {}
    for name in names:
        if not _big(name):
            fast.setdefault(structural_kind(name), name)
    return [
        pytest.param(*(value if isinstance(value, tuple) else (value,)), marks=[] if name in fast.values() else SLOW)
        for name, value in zip(names, values, strict=True)
    ]


def pytest_collection_modifyitems(items):
    """A real browser is the slow lane's: every browser test is also marked slow."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


def hooks_left(model: torch.nn.Module) -> int:
    """Hooks of any kind still registered anywhere in ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def rss_mb() -> float:
    """Resident memory of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def enlarged_from(shown: np.ndarray, original: np.ndarray) -> int:
    """The whole factor by which a clickable picture on the page (``shown``) enlarges ``original``, pixel for pixel,
    to at least 320 px across; 0 where it is not such an enlargement."""
    factor = shown.shape[0] // original.shape[0]
    exact = factor >= 1 and np.array_equal(shown, original.repeat(factor, 0).repeat(factor, 1))
    return factor if exact and max(shown.shape[:2]) >= 320 else 0


def pick_untrained_resnet18(page) -> None:
    """In the page's pickers: resnet18 with random init (its published weights would be downloaded on a laptop)."""
    from demo.catalog import RANDOM_INIT

    page.get_by_label("Family").click()
    page.get_by_role("option", name="ResNet", exact=True).click()
    page.wait_for_function("() => document.body.innerText.includes('resnet18 ·')")
    page.get_by_label("Weights").click()
    page.get_by_role("option", name=RANDOM_INIT, exact=True).click()
    page.wait_for_function("() => document.body.innerText.includes('no accuracy: random weights')")


@pytest.fixture(scope="session")
def served_app(tmp_path_factory):
    """The whole app launched once on loopback for every test that talks to it as a visitor does, its URL; closed
    at the end of the session. Gradio caches examples under the working directory, so from the first such test on
    the session works in a temporary one (a test that needs a server of other options launches its own)."""
    from demo import launch

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("served_app"))
        port = free_port()
        demo = launch.serve(["--port", str(port), "--device", "cpu"], block=False)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            demo.close()
