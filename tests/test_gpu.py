"""ZeroGPU readiness: network handlers ask for a GPU through `spaces.GPU` where that package exists, nothing touches
CUDA at import, and stored analyses keep their tensors in host memory."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from demo import app_state, gpu
from demo.model_cache import ModelCache
from resnet_core import create_model
from resnet_core.data import cifar10
from resnet_core.explain.analysis import analyze

from .conftest import ROOT

FAKE_SPACES = """
import functools

def GPU(duration=60):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            return fn(*args, **kwargs)
        wrapped.gpu_duration = duration
        return wrapped
    return decorate
"""


def test_network_handlers_ask_for_a_gpu_where_spaces_is_installed(tmp_path, monkeypatch):
    from demo.layout import build_demo

    durations = {name: getattr(fn.fn, "gpu_duration", None) for name, fn in _endpoints(build_demo()).items()}
    assert set(durations.values()) == {None}  # no spaces package here: the handlers as they are
    (tmp_path / "spaces.py").write_text(FAKE_SPACES)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    durations = {name: getattr(fn.fn, "gpu_duration", None) for name, fn in _endpoints(build_demo()).items()}
    assert durations["analyze"] == gpu.DURATIONS["analysis"] and durations["cam"] == gpu.DURATIONS["analysis"]
    assert durations["compare"] == durations["verify"] == gpu.DURATIONS["compare"]
    assert durations["sanity"] == gpu.DURATIONS["checks"] and durations["visualize"] == gpu.DURATIONS["visualize"]
    assert durations["costs"] is None and durations["lab_reference"] is None  # no network runs there


def _endpoints(demo) -> dict:
    return {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}


@pytest.mark.slow
def test_nothing_touches_cuda_at_import_or_build():
    code = "import torch, demo.launch, demo.layout; demo.layout.build_demo(); print(torch.cuda.is_initialized())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_stored_analyses_live_in_host_memory_and_retarget_from_there():
    app_state.configure(ModelCache(capacity=2, device="cpu"))
    image = next(iter(sorted(cifar10.GALLERY_DIR.glob("cat_*.png"))))
    model = create_model("cifar10_resnet20", weights="DEFAULT")
    result = analyze(model, image)
    stored = app_state.results().put("token", result, result.cam)
    tensors = [stored.result.probabilities, *stored.result.stages.values()]
    tensors += [stats.output for stats in stored.result.blocks.values()]
    assert all(tensor.device == torch.device("cpu") for tensor in tensors)
    assert np.array_equal(stored.result.cam_for(5, "layer2", model=model), result.cam_for(5, "layer2"))
