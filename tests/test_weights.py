"""The real loading paths, run offline: file:// downloads, pre-filled caches, refusals, clear errors."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import socket
import threading
import time

import huggingface_hub
import pytest
import timm
import torch
import torchvision.models as tvm
from PIL import Image
from safetensors.torch import save_file

import resnet_core
from resnet_core import WEIGHTS, WeightsUnavailableError, create_model, eval_size, get_weights, list_weights
from resnet_core.settings import ENV_DOWNLOAD_RETRY, ENV_DOWNLOAD_TIMEOUT, ENV_WEIGHTS_DIR
from resnet_core.zoo.architectures import build
from resnet_core.zoo.weights import load_state_dict

from .conftest import hub_snapshot, randomize_batchnorm


def checkpoint(arch: str = "resnet18", seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return randomize_batchnorm(build(arch), seed).state_dict()


def hashed_file(folder, stem: str, state: dict) -> tuple:
    """Save like torchvision does: ``<stem>-<first 8 hex of sha256>.pth``."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = folder / f"{stem}-{digest}.pth"
    tmp.rename(path)
    return path, digest


def served(entry_name: str, path) -> resnet_core.WeightEntry:
    return dataclasses.replace(WEIGHTS[entry_name], url=path.as_uri())


def same_outputs(model_a, model_b) -> bool:
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        return torch.equal(model_a.eval()(x), model_b.eval()(x))


def test_file_url_download_checks_hash_fills_cache_and_loads(tmp_path, torch_home):
    state = checkpoint()
    path, _ = hashed_file(tmp_path / "server", "resnet18", state)
    entry = served("resnet18.tv_in1k", path)
    model = create_model("resnet18", weights=entry, progress=False)
    assert (torch_home / "hub" / "checkpoints" / path.name).is_file()
    assert model.card.weights is entry and model.card.pretrained
    assert model.card.source.startswith("published URL (torch.hub download)")
    reference = build("resnet18")
    reference.load_state_dict(state)
    assert same_outputs(model, reference)
    # Second load comes from the cache: remove the "server" and it still works.
    path.unlink()
    assert same_outputs(create_model("resnet18", weights=entry, progress=False), reference)


def test_tampered_download_is_refused_by_the_hash_check(tmp_path, torch_home):
    path, _ = hashed_file(tmp_path / "server", "resnet18", checkpoint())
    with open(path, "r+b") as handle:  # flip bytes in the middle: still a file, wrong contents
        handle.seek(os.path.getsize(path) // 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(WeightsUnavailableError) as info:
        create_model("resnet18", weights=served("resnet18.tv_in1k", path), progress=False)
    reasons = dict(info.value.attempts)
    assert "sha256" in reasons["published URL (torch.hub download)"]
    # Every local copy is tried before any network source.
    assert list(reasons) == [
        "local folder ($RESNET_EXPLORER_WEIGHTS)",
        "shipped with ResNet Explorer",
        "torch.hub cache ($TORCH_HOME)",
        "Hugging Face cache",
        "published URL (torch.hub download)",
        "Hugging Face hub",
    ]
    assert not (torch_home / "hub" / "checkpoints" / path.name).exists()


def test_prefilled_cache_is_used_and_a_tampered_cache_refused(tmp_path, torch_home):
    state = checkpoint(seed=1)
    cache_dir = torch_home / "hub" / "checkpoints"
    path, _ = hashed_file(cache_dir, "resnet18", state)
    entry = served("resnet18.tv_in1k", tmp_path / "nowhere" / path.name)  # the URL itself is dead
    model = create_model("resnet18", weights=entry, progress=False)
    reference = build("resnet18")
    reference.load_state_dict(state)
    assert same_outputs(model, reference)

    other, _ = hashed_file(tmp_path / "x", "other", checkpoint(seed=2))
    path.write_bytes(other.read_bytes())  # same name, other contents
    with pytest.raises(WeightsUnavailableError, match="fails its sha256 check"):
        create_model("resnet18", weights=entry, progress=False)


def test_truncated_and_empty_files_are_reported(tmp_path, monkeypatch, torch_home):
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(tmp_path))
    # No other source may deliver, on any machine: the published URL points nowhere, the caches are empty.
    monkeypatch.setitem(WEIGHTS, "resnet18.tv_in1k", served("resnet18.tv_in1k", tmp_path / "gone" / "resnet18-x.pth"))
    good = tmp_path / "good.pth"
    torch.save(checkpoint(), good)
    (tmp_path / "resnet18.tv_in1k.pth").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(WeightsUnavailableError, match="corrupt or truncated"):
        create_model("resnet18", weights="tv_in1k", progress=False)
    (tmp_path / "resnet18.tv_in1k.pth").write_bytes(b"")
    with pytest.raises(WeightsUnavailableError, match="is empty"):
        create_model("resnet18", weights="tv_in1k", progress=False)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_executes_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"conv1.weight": _Exploit(marker)}, handle)
    torch.save({"weights": _Exploit(marker)}, tmp_path / "evil_zip.pth")
    for candidate in (path, tmp_path / "evil_zip.pth"):
        with pytest.raises(WeightsUnavailableError, match=r"not loaded; save the weights alone.*state_dict\(\)"):
            create_model("resnet18", weights=candidate)
    assert not marker.exists()


def test_wrong_architecture_is_named(tmp_path):
    path = tmp_path / "r34.safetensors"
    save_file(checkpoint("resnet34"), str(path))
    with pytest.raises(WeightsUnavailableError, match="does not fit resnet18"):
        create_model("resnet18", weights=path)


def test_local_folder_and_own_files_load(tmp_path, monkeypatch):
    state = checkpoint(seed=3)
    save_file(state, str(tmp_path / "resnet18.tv_in1k.safetensors"))
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(tmp_path))
    model = create_model("resnet18", weights="DEFAULT", progress=False)
    assert model.card.source.startswith("local folder")
    own = create_model("resnet18", weights=tmp_path / "resnet18.tv_in1k.safetensors")
    assert own.card.weights is None and own.card.pretrained and "own checkpoint" in own.card.label
    assert same_outputs(model, own)


@pytest.mark.parametrize(
    "arch, timm_name",
    [("resnet18d", "resnet18d.ra2_in1k"), ("preact_resnet18", "resnetv2_18.ra4_e3600_r224_in1k")],
)
def test_hugging_face_cache_delivers_timm_weights(arch, timm_name, tmp_path, monkeypatch, torch_home):
    """A cache laid out as huggingface_hub writes it (what a Space's preload_from_hub fills); timm's ResNetV2 files
    keep timm's module names and load as our pre-activation ResNet."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    reference = randomize_batchnorm(timm.create_model(timm_name.split(".")[0]), 4).eval()
    hub_snapshot(tmp_path / "hf", f"timm/{timm_name}", reference.state_dict(), {})
    model = create_model(arch, weights="DEFAULT")
    assert model.card.weights.hf_hub_id == f"timm/{timm_name}"
    assert model.card.source.startswith("Hugging Face cache")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() <= 1e-5


def test_offline_error_names_every_source_and_where_to_put_the_file(torch_home, monkeypatch):
    monkeypatch.delenv(ENV_WEIGHTS_DIR, raising=False)
    entry = dataclasses.replace(WEIGHTS["resnet50.tv2_in1k"], url="file:///nonexistent/resnet50-11ad3fa6.pth")
    with pytest.raises(WeightsUnavailableError) as info:
        load_state_dict(build("resnet50"), entry, progress=False)
    message = str(info.value)
    assert "resnet50.tv2_in1k" in message and "not set" in message
    assert "resnet50-11ad3fa6.pth" in info.value.hint and str(torch_home) in info.value.hint
    assert "timm/resnet50.tv2_in1k" in message


@pytest.mark.slow
def test_a_stalled_download_times_out_instead_of_hanging(torch_home, monkeypatch):
    """A server on loopback that accepts the connection and says nothing: the loader gives up and says why.

    Without a timeout the request would wait until the server hangs up (here after 60 s) and report a dropped
    connection instead.
    """
    monkeypatch.delenv(ENV_WEIGHTS_DIR, raising=False)
    monkeypatch.setenv(ENV_DOWNLOAD_TIMEOUT, "0.5")
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def stall() -> None:
        connection, _ = server.accept()
        done.wait(60)
        connection.close()

    threading.Thread(target=stall, daemon=True).start()
    entry = dataclasses.replace(
        WEIGHTS["resnet18.tv_in1k"],
        url=f"http://127.0.0.1:{server.getsockname()[1]}/resnet18-f37072fd.pth",
        hf_hub_id=None,
    )
    try:
        with pytest.raises(WeightsUnavailableError) as info:
            load_state_dict(build("resnet18"), entry, progress=False)
    finally:
        done.set()
        server.close()
    assert "sent nothing for 0.5 s (timed out)" in str(info.value)
    assert socket.getdefaulttimeout() is None  # the process-wide default is restored


def test_weight_names_and_untrained_models():
    assert get_weights("resnet50", "DEFAULT").tag == "tv2_in1k"
    assert get_weights("resnet50", "IMAGENET1K_V1").name == "resnet50.tv_in1k"
    assert get_weights("resnet50", "resnet50.tv_in1k").tag == "tv_in1k"
    with pytest.raises(ValueError, match=r"known: resnet50\.tv2_in1k, resnet50\.tv_in1k"):
        get_weights("resnet50", "imagenet22k")
    with pytest.raises(ValueError, match="no pretrained weights are published for plain34"):
        create_model("plain34", weights="DEFAULT")
    model = create_model("plain34")
    assert not model.card.pretrained and "meaningless" in model.card.source
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_entries_carry_torchvision_metadata_and_transforms():
    for arch in ("resnet18", "resnet50", "resnext101_64x4d", "wide_resnet101_2"):
        for member in tvm.get_model_weights(arch):
            entry = get_weights(arch, member.name)
            assert entry.url == member.url and entry.num_params == member.meta["num_params"]
            assert entry.acc1 == member.meta["_metrics"]["ImageNet-1K"]["acc@1"]
            assert list(entry.categories) == member.meta["categories"] and len(entry.categories) == 1000


def test_entries_match_timm_pretrained_configs():
    """Every Hugging Face id exists in timm's registry; timm entries carry its eval preprocessing."""
    for entry in list_weights():
        if entry.hf_hub_id is None:  # the CIFAR-10 nets: published on GitHub only; the lab's: shipped only
            assert (entry.url and entry.dataset == "CIFAR-10") or (entry.shipped and entry.tag == "lab"), entry.name
            continue
        config = timm.models.get_pretrained_cfg(entry.hf_hub_id.removeprefix("timm/"))  # timm's own name
        assert config is not None and config.hf_hub_id == entry.hf_hub_id, entry.name
        if entry.origin.startswith("timm"):
            size = (config.test_input_size or config.input_size)[-1]
            crop_pct = config.test_crop_pct or config.crop_pct
            assert (eval_size(entry.arch, entry), entry.preprocess.crop_size) == (size, size)
            assert entry.preprocess.resize_size == int(size / crop_pct)
            assert entry.preprocess.interpolation.value == config.interpolation
            assert entry.preprocess.mean == config.mean and entry.preprocess.std == config.std


def test_preprocessing_equals_torchvision_and_timm_transforms(photos):
    image = Image.open(photos / "chelsea.png").convert("RGB")
    member = tvm.ResNet50_Weights.IMAGENET1K_V2
    assert torch.equal(get_weights("resnet50", "tv2_in1k").preprocess(image), member.transforms()(image))
    entry = get_weights("resnet50d", "DEFAULT")
    model = timm.create_model("resnet50d")
    config = timm.data.resolve_data_config({"input_size": (3, eval_size("resnet50d"), eval_size("resnet50d")),
                                            "crop_pct": 0.95, "interpolation": "bicubic"}, model=model)  # fmt: skip
    expected = timm.data.create_transform(**config)(image)
    assert (entry.preprocess(image) - expected).abs().max().item() <= 1e-6


@pytest.fixture()
def silent_host():
    """A loopback server that accepts connections and never answers: what a network that drops replies looks like."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in accepted:
        connection.close()


@pytest.mark.slow
def test_a_failed_download_is_not_tried_again_for_a_while(torch_home, tmp_path, monkeypatch):
    """Refused at once here, but on a slow network every Analyze and live frame would wait again: each download that
    failed is remembered for $RESNET_EXPLORER_DOWNLOAD_RETRY seconds, the reason kept; a local copy is still found
    at once, and after the wait the download is tried again."""
    from huggingface_hub import constants

    with socket.socket() as closed:  # a port nobody listens on: connections are refused at once
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setenv(ENV_DOWNLOAD_TIMEOUT, "1")  # the hub retries a refused host with back-off until then
    monkeypatch.delenv(ENV_WEIGHTS_DIR, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", refused)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", refused + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    entry = dataclasses.replace(WEIGHTS["resnet18.tv_in1k"], url=f"{refused}/models/resnet18-f37072fd.pth")
    tries = {"url": 0, "hub": 0}
    real_url, real_hub = torch.hub.load_state_dict_from_url, huggingface_hub.hf_hub_download

    def count(kind, real):
        def counted(*args, **kwargs):
            tries[kind] += 1
            return real(*args, **kwargs)

        return counted

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", count("url", real_url))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", count("hub", real_hub))

    def reasons() -> dict[str, str]:
        with pytest.raises(WeightsUnavailableError) as failure:
            load_state_dict(build("resnet18"), entry, progress=False)
        return dict(failure.value.attempts)

    first = reasons()
    assert tries == {"url": 1, "hub": 1} and "unreachable" in first["published URL (torch.hub download)"]
    for _ in range(3):  # three more clicks: nothing is tried, and each says why with the first reason
        again = reasons()
    assert tries == {"url": 1, "hub": 1}
    assert again["published URL (torch.hub download)"].startswith(first["published URL (torch.hub download)"])
    assert (
        "not tried again for another" in again["Hugging Face hub"] and ENV_DOWNLOAD_RETRY in again["Hugging Face hub"]
    )
    folder = tmp_path / "weights"  # a copy put in a local folder meanwhile: found at once
    folder.mkdir()
    torch.save(build("resnet18").state_dict(), folder / "resnet18.tv_in1k.pth")
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(folder))
    assert load_state_dict(build("resnet18"), entry, progress=False).startswith("local folder")
    monkeypatch.delenv(ENV_WEIGHTS_DIR)
    monkeypatch.setenv(ENV_DOWNLOAD_RETRY, "0")  # the wait is over: tried again
    reasons()
    assert tries == {"url": 2, "hub": 2}


@pytest.mark.parametrize("answer", [pytest.param(answer, marks=pytest.mark.slow) for answer in ("refused", "silence")])
def test_offline_an_uncached_weight_fails_within_twice_the_timeout(
    answer, silent_host, torch_home, tmp_path, monkeypatch
):
    """No name lookup, no circuit breaker. Offline (a refused connection, as a failed name lookup) the hub's own
    five retries with back-off (23 s) are cut at the download timeout; a host that accepts and never answers costs
    each network source one timeout."""
    from huggingface_hub import constants

    with socket.socket() as closed:  # a port nobody listens on: connections are refused at once
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}"
    host = refused if answer == "refused" else silent_host
    monkeypatch.setenv(ENV_DOWNLOAD_TIMEOUT, "2")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as on a laptop that lost its network
    monkeypatch.setattr(constants, "ENDPOINT", host)  # what HF_ENDPOINT sets, both at import
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", host + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    entry = dataclasses.replace(WEIGHTS["resnet18.tv_in1k"], url=f"{host}/models/resnet18-f37072fd.pth")
    monkeypatch.setitem(WEIGHTS, entry.name, entry)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as failure:
        create_model("resnet18", weights=entry.name)
    seconds = time.perf_counter() - start
    reasons = dict(failure.value.attempts)
    if answer == "refused":
        assert seconds < 2 * 2, seconds
        assert "unreachable" in reasons["published URL (torch.hub download)"]
    else:  # the URL's timeout, then the hub's: twice, plus the time to build and give up
        assert seconds < 2 * 2 + 1.0, seconds
        assert "timed out" in reasons["published URL (torch.hub download)"]
    assert "Hugging Face hub" in reasons and "not in the local cache" in reasons["Hugging Face cache"]
