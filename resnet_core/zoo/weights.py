"""Pretrained weights: what exists, where it comes from, and one loader that says why it failed.

Every entry is data: torchvision's entries are read off its ``Weights`` enums (URL with hash prefix, transforms,
categories, params, GMACs, accuracy); timm's are its pretrained configs and published results. Sources are tried
in order and each failure is recorded, so an offline user learns exactly which file to put where:

1. a local folder named by ``$RESNET_EXPLORER_WEIGHTS``;
2. the copies shipped in ``assets/`` (the paper's CIFAR-10 nets);
3. the ``torch.hub`` cache (``$TORCH_HOME/hub/checkpoints``) and the Hugging Face cache (how a Space's
   ``preload_from_hub`` bakes weights in);
4. only then the network: the published URL through ``torch.hub`` (``check_hash=True``, a progress bar), and the
   Hugging Face hub copy (``timm/<arch>.<tag>``, safetensors). A stalled download gives up after
   ``$RESNET_EXPLORER_DOWNLOAD_TIMEOUT`` seconds without data (default 30).

Nothing falls back to random weights: random init happens only for ``weights=None``.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
import torchvision.models as tvm
from torch import nn

from ..assets import ASSETS_DIR
from ..registry import registry
from ..settings import ENV_DOWNLOAD_RETRY, ENV_WEIGHTS_DIR, download_retry, download_timeout, weights_dir
from .architectures import ARCHITECTURES, ArchSpec, get_arch
from .file_kinds import not_a_checkpoint
from .pickled_models import PickledModelError, read_pickled_model, state_of
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from .recognition import normalised

__all__ = [
    "SHIPPED_WEIGHTS_DIR",
    "WEIGHTS",
    "WeightEntry",
    "WeightsUnavailableError",
    "default_weights",
    "eval_size",
    "file_sha256",
    "get_weights",
    "list_weights",
    "load_checkpoint_file",
    "load_state_dict",
    "locally_available",
    "weights_or_default",
]

HF_FILENAME = "model.safetensors"
SHIPPED_WEIGHTS_DIR = ASSETS_DIR / "cifar10" / "weights"

_TV_TAGS = {"IMAGENET1K_V1": "tv_in1k", "IMAGENET1K_V2": "tv2_in1k"}


@dataclass(frozen=True)
class WeightEntry:
    """One published checkpoint of one architecture, with everything needed to use it correctly."""

    arch: str
    tag: str
    preprocess: Preprocess
    acc1: float | None  # on the label space's test set; None where none was measured (the lab's digit nets)
    acc5: float | None
    url: str | None = None
    hf_hub_id: str | None = None
    num_params: int | None = None
    gmacs: float | None = None
    origin: str = ""
    recipe: str = ""
    license: str = ""
    is_default: bool = False
    paper_acc1: float | None = None  # the paper's own figure, where it reports this exact network
    shipped: str | None = None  # the copy in the project's assets/, relative to it, where there is one

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.tag}"

    @property
    def categories(self) -> tuple[str, ...]:
        return get_arch(self.arch).label_space.categories

    @property
    def dataset(self) -> str:
        return get_arch(self.arch).label_space.name

    @property
    def file_name(self) -> str | None:
        """torchvision's file name, whose ``-<hex>`` suffix is the sha256 prefix ``torch.hub`` checks."""
        return self.url.rsplit("/", 1)[-1] if self.url else None


def _torchvision_entries() -> list[WeightEntry]:
    entries = []
    for arch, spec in ARCHITECTURES.items():
        if spec.reference != "torchvision":
            continue
        enum = tvm.get_model_weights(arch)
        for member in enum:
            meta = member.meta
            metrics = meta["_metrics"]["ImageNet-1K"]
            entries.append(
                WeightEntry(
                    arch=arch,
                    tag=_TV_TAGS[member.name],
                    preprocess=Preprocess.from_torchvision(member.transforms()),
                    acc1=metrics["acc@1"],
                    acc5=metrics["acc@5"],
                    url=member.url,
                    hf_hub_id=f"timm/{arch}.{_TV_TAGS[member.name]}",
                    num_params=meta["num_params"],
                    gmacs=meta["_ops"],
                    origin=f"torchvision {enum.__name__}.{member.name}",
                    recipe=meta.get("recipe", ""),
                    license="BSD-3-Clause",
                    is_default=member is enum.DEFAULT,
                )
            )
    return entries


_Normalisation = tuple[tuple[float, float, float], tuple[float, float, float]]  # mean, std
_IMAGENET: _Normalisation = (IMAGENET_MEAN, IMAGENET_STD)
_HALF: _Normalisation = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # timm's later recipes (its pretrained_cfg says which)
# timm's published results (results-imagenet.csv): top-1, top-5 at the test size and crop it lists.
_TIMM_RESULTS: tuple[tuple[str, float, float, int, float, str, _Normalisation], ...] = (
    ("resnet50c.gluon_in1k", 78.012, 93.988, 224, 0.875, "bicubic", _IMAGENET),
    ("resnet101c.gluon_in1k", 79.542, 94.586, 224, 0.875, "bicubic", _IMAGENET),
    ("resnet152c.gluon_in1k", 79.910, 94.844, 224, 0.875, "bicubic", _IMAGENET),
    ("resnet18d.ra2_in1k", 73.794, 91.838, 288, 0.95, "bicubic", _IMAGENET),
    ("resnet26d.bt_in1k", 77.408, 93.638, 288, 0.95, "bicubic", _IMAGENET),
    ("resnet34d.ra2_in1k", 78.436, 94.344, 288, 0.95, "bicubic", _IMAGENET),
    ("resnet50d.ra2_in1k", 81.356, 95.738, 288, 0.95, "bicubic", _IMAGENET),
    ("resnet101d.ra2_in1k", 83.016, 96.452, 320, 1.0, "bicubic", _IMAGENET),
    ("resnet152d.ra2_in1k", 83.684, 96.740, 320, 1.0, "bicubic", _IMAGENET),
    ("resnet200d.ra2_in1k", 83.964, 96.824, 320, 1.0, "bicubic", _IMAGENET),
    ("resnest50d.in1k", 80.964, 95.384, 224, 0.875, "bilinear", _IMAGENET),
    ("resnetv2_18.ra4_e3600_r224_in1k", 75.364, 92.692, 288, 1.0, "bicubic", _HALF),
    ("resnetv2_34.ra4_e3600_r224_in1k", 79.070, 94.560, 288, 1.0, "bicubic", _HALF),
    ("resnetv2_50.a1h_in1k", 81.406, 95.712, 288, 1.0, "bicubic", _HALF),
)
# timm's names for our architectures where they differ: its ResNetV2 is He et al. (2016)'s pre-activation ResNet.
_TIMM_NAMES = {f"resnetv2_{depth}": f"preact_resnet{depth}" for depth in (18, 34, 50)}


def _timm_entries() -> list[WeightEntry]:
    entries = []
    for name, acc1, acc5, size, crop_pct, interpolation, (mean, std) in _TIMM_RESULTS:
        timm_arch, tag = name.split(".")
        entries.append(
            WeightEntry(
                arch=_TIMM_NAMES.get(timm_arch, timm_arch),
                tag=tag,
                preprocess=Preprocess.from_crop_pct(size, crop_pct, interpolation, mean, std),
                acc1=acc1,
                acc5=acc5,
                hf_hub_id=f"timm/{name}",
                origin=f"timm {name}",
                license="Apache-2.0",
                is_default=True,
            )
        )
    return entries


# The paper's CIFAR-10 nets as trained by Yerlan Idelbayev (BSD 2-Clause): depth, file (its "-<hex>" suffix is the
# sha256 prefix), the paper's Table 6 test error, and the error that repository publishes (reproduced here to
# 0.01 points on all 10,000 test images by ``bench.cifar10_accuracy``).
_CIFAR10_RELEASE = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
_CIFAR10_RESULTS: tuple[tuple[int, str, float, float], ...] = (
    (20, "resnet20-12fca82f.th", 8.75, 8.27),
    (32, "resnet32-d509ac18.th", 7.51, 7.37),
    (44, "resnet44-014dd654.th", 7.17, 6.90),
    (56, "resnet56-4bfd9763.th", 6.97, 6.61),
    (110, "resnet110-1d1ed7c2.th", 6.43, 6.32),
    (1202, "resnet1202-f3b1deed.th", 7.93, 6.18),
)


def _cifar10_entries() -> list[WeightEntry]:
    return [
        WeightEntry(
            arch=f"cifar10_resnet{depth}",
            tag="akamaster",
            preprocess=get_arch(f"cifar10_resnet{depth}").label_space.preprocess,
            acc1=round(100 - error, 2),
            acc5=None,
            url=_CIFAR10_RELEASE + file_name,
            origin="akamaster/pytorch_resnet_cifar10 (Yerlan Idelbayev)",
            recipe="paper section 4.2: SGD, batch 128, lr 0.1, 64k iterations (1202 layers: lr 0.01 warm-up)",
            license="BSD-2-Clause",
            is_default=True,
            paper_acc1=round(100 - paper_error, 2),
            shipped=f"cifar10/weights/{file_name}",
        )
        for depth, file_name, paper_error, error in _CIFAR10_RESULTS
    ]


def _digits_entries() -> list[WeightEntry]:
    """The degradation lab's reference nets, trained here on the 5,000 MNIST digits and shipped (CC BY-SA 3.0)."""
    return [
        WeightEntry(
            arch=arch,
            tag="lab",
            preprocess=spec.label_space.preprocess,
            acc1=None,  # trained and measured on the same 5,000 digits: a training error, not a test accuracy
            acc5=None,
            origin="the degradation lab's reference run (seed 0), shipped with ResNet Explorer",
            recipe="widths 8/16/32, option A shortcuts, 500 SGD steps on the 5,000 MNIST digits",
            license="CC-BY-SA-3.0",
            is_default=True,
            shipped=f"degradation/{arch}.safetensors",
        )
        for arch, spec in ARCHITECTURES.items()
        if spec.labels == "digits"
    ]


_ENTRIES = _torchvision_entries() + _timm_entries() + _cifar10_entries() + _digits_entries()
WEIGHTS: dict[str, WeightEntry] = registry(_ENTRIES, lambda entry: entry.name, "weight entries")


def list_weights(arch: str | None = None) -> list[WeightEntry]:
    """Weight entries, of one architecture if given, the recommended one first."""
    entries = [entry for entry in WEIGHTS.values() if arch is None or entry.arch == arch]
    return sorted(entries, key=lambda entry: (entry.arch, not entry.is_default))


def default_weights(arch: str) -> WeightEntry | None:
    """The recommended entry (torchvision's ``DEFAULT``), or None where nobody publishes weights."""
    get_arch(arch)
    return next((entry for entry in list_weights(arch) if entry.is_default), None)


def weights_or_default(arch: str, weights: str | None = None) -> str:
    """The weights asked for, else ``DEFAULT`` where weights are published, else ``none``: an architecture without
    any (plain34) runs untrained, and every command says so."""
    return weights or ("DEFAULT" if default_weights(arch) else "none")


def eval_size(arch: str | ArchSpec, weights: str | WeightEntry | None = None) -> int:
    """The input side ``weights`` are evaluated at: their preprocessing's crop. ``None`` means the default weights
    (what a randomly initialised network is fed too), or the label space's crop where none are published."""
    spec = get_arch(arch) if isinstance(arch, str) else arch
    if isinstance(weights, str):
        weights = get_weights(spec.name, weights)
    elif weights is None and ARCHITECTURES.get(spec.name) == spec:
        weights = default_weights(spec.name)
    return (weights.preprocess if weights is not None else spec.label_space.preprocess).crop_size


def get_weights(arch: str, weights: str) -> WeightEntry:
    """Resolve ``"DEFAULT"``, a tag (``"tv2_in1k"``), a full name or a torchvision name (``"IMAGENET1K_V2"``)."""
    if weights.upper() == "DEFAULT":
        entry = default_weights(arch)
        if entry is None:
            raise ValueError(f"no pretrained weights are published for {arch}; use weights=None for random init")
        return entry
    tag = _TV_TAGS.get(weights, weights)
    for candidate in (tag, f"{arch}.{tag}"):
        if candidate in WEIGHTS and WEIGHTS[candidate].arch == arch:
            return WEIGHTS[candidate]
    known = ", ".join(entry.name for entry in list_weights(arch)) or "none"
    raise ValueError(f"unknown weights {weights!r} for {arch}; known: {known}")


class WeightsUnavailableError(RuntimeError):
    """No source could deliver a checkpoint. Carries every source tried and why each failed."""

    def __init__(self, weight: str, attempts: list[tuple[str, str]], hint: str = "") -> None:
        self.weight = weight
        self.attempts = attempts
        self.hint = hint
        lines = [f"could not load weights {weight}:"] + [f"  - {source}: {reason}" for source, reason in attempts]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))

    @property
    def summary(self) -> str:
        """One line for a status bar or a CLI error."""
        reasons = "; ".join(f"{source}: {reason.splitlines()[0]}" for source, reason in self.attempts)
        return f"weights {self.weight} unavailable ({reasons})"


class _SourceFailed(Exception):
    pass


def load_checkpoint_file(path: str | Path, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Read a .safetensors file or a torch pickle (.pth, .pt, .bin, .ckpt, .th) and return its state dict (see
    :func:`read_checkpoint_file`)."""
    return read_checkpoint_file(path, mmap).state


def read_checkpoint_file(path: str | Path, mmap: bool = False, key: str | None = None) -> Contents:
    """Read a .safetensors file or a torch pickle (.pth, .pt, .bin, .ckpt, .th): its state dict and where in the
    file it was.

    Pickles load with ``weights_only=True``, so no code in them runs; one that needs code (a whole module saved
    with ``torch.save(model)``) is refused with a sentence saying how to save its weights instead. ``mmap`` maps
    a pickle's tensors rather than reading them (the shapes are known at once; a loader copies the data once).
    A state dict under any key of a trainer's dict (Lightning's ``state_dict``, ``model``, ``state``, ...,
    nested too) is taken out of it: ``key`` (``"ema"``, ``"state.model"``) where the file holds several, else the
    plain weights rather than an EMA copy, the others named in :class:`Contents`.
    """
    path = Path(path)
    if not path.is_file():
        raise _SourceFailed(f"no file at {path}")
    if path.stat().st_size == 0:
        raise _SourceFailed(f"{path.name} is empty")
    kind = not_a_checkpoint(path)
    if kind is not None:
        raise _SourceFailed(kind)
    state: object  # a state dict, or a trainer's dict holding one (_unwrap finds it)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = _torch_load(path, mmap)
    except pickle.UnpicklingError:  # objects that need code: whole modules are read as stand-ins where known
        state = _pickled_model(path, mmap)
    except Exception as error:  # truncated zip, bad header, ...: all mean "this file is unusable"
        detail = " ".join(str(error).split())[:200]
        raise _SourceFailed(f"{path.name} is corrupt or truncated ({type(error).__name__}: {detail})") from None
    return _unwrap(state, path, key)


def _torch_load(path: Path, mmap: bool) -> object:
    if mmap:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:  # files from before torch 1.6's zip format cannot be mapped
            if "mmap" not in str(error):
                raise
    return torch.load(path, map_location="cpu", weights_only=True)


def _pickled_model(path: Path, mmap: bool) -> object:
    """A pickle of whole modules (``torch.save(model)``), its known ResNet classes read as stand-ins (see
    :mod:`.pickled_models`); any other pickled object is refused with how to save the weights alone."""
    try:
        return read_pickled_model(path, mmap)
    except PickledModelError as error:
        raise _SourceFailed(
            f"{path.name} {error}, so it is not loaded; save the weights alone instead: "
            "torch.save(model.state_dict(), 'model.pth')"
        ) from None


# Where trainers keep the state dict, preferred in this order where a file has several; any other key is searched too.
CONTAINERS = ("state_dict", "model_state_dict", "model", "net", "state", "weights", "params")


class _Source(Protocol):
    label: str

    def fetch(self, entry: WeightEntry, progress: bool) -> tuple[dict[str, torch.Tensor], str]: ...


class _LocalDir:
    label = f"local folder (${ENV_WEIGHTS_DIR})"

    def fetch(self, entry: WeightEntry, progress: bool) -> tuple[dict[str, torch.Tensor], str]:
        folder = weights_dir()
        if folder is None:
            raise _SourceFailed("not set")
        names = _local_names(entry)
        for name in names:
            path = Path(folder) / name
            if path.is_file():
                return load_checkpoint_file(path), str(path)
        raise _SourceFailed(f"none of {', '.join(names)} in {folder}")


def _local_names(entry: WeightEntry) -> list[str]:
    """The names a copy of ``entry`` may have in a folder of the user's: ours, or the publisher's file name."""
    return [f"{entry.name}.safetensors", f"{entry.name}.pth"] + ([entry.file_name] if entry.file_name else [])


class _Shipped:
    """Copies in the project's ``assets/``, under their published file names, hash-checked like a download."""

    label = "shipped with ResNet Explorer"

    def fetch(self, entry: WeightEntry, progress: bool) -> tuple[dict[str, torch.Tensor], str]:
        path = ASSETS_DIR / entry.shipped if entry.shipped else None
        if path is None or not path.is_file():
            raise _SourceFailed("not shipped")
        _verify_hash_prefix(path)
        return load_checkpoint_file(path), str(path)


class _TorchHub:
    """torchvision's URL through ``torch.hub``: its cache only (``offline``), or a download into that cache."""

    def __init__(self, offline: bool) -> None:
        self.offline = offline
        self.label = "torch.hub cache ($TORCH_HOME)" if offline else "published URL (torch.hub download)"

    def fetch(self, entry: WeightEntry, progress: bool) -> tuple[dict[str, torch.Tensor], str]:
        if not entry.url:
            raise _SourceFailed("no published file for this weight")
        assert entry.file_name is not None  # the last part of its url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / entry.file_name
        if cached.is_file():
            # torch.hub checks the hash only while downloading; a cache file edited later would load silently.
            _verify_hash_prefix(cached)
            if self.offline:
                return load_checkpoint_file(cached), str(cached)
        elif self.offline:
            raise _SourceFailed(f"no {cached}")
        with FAILED_DOWNLOADS.attempt(entry.url):
            try:
                with _socket_timeout(download_timeout()):
                    state = torch.hub.load_state_dict_from_url(
                        entry.url, progress=progress, check_hash=True, weights_only=True, map_location="cpu"
                    )
            except pickle.UnpicklingError as error:
                raise _SourceFailed(f"{cached} refused: not a plain tensor checkpoint ({error})") from None
            except RuntimeError as error:
                if "invalid hash value" in str(error):
                    raise _SourceFailed(f"{entry.url} failed the sha256 check: {error}") from None
                raise _SourceFailed(f"{cached} is corrupt or truncated ({error})") from None
            except OSError as error:  # URLError, HTTPError, timeouts, permission problems
                reason = getattr(error, "reason", error)
                if isinstance(reason, TimeoutError):
                    raise _SourceFailed(f"{entry.url} sent nothing for {download_timeout():g} s (timed out)") from None
                raise _SourceFailed(f"{entry.url} unreachable ({reason})") from None
        return _unwrap(state, cached).state, f"{entry.url} (cache {cached})"


class _FailedDownloads:
    """Downloads that failed in this process, not tried again for ``download_retry()`` seconds (default 300).

    Offline each download fails at once, but on a slow or filtered network each would add its wait to every
    Analyze and every live frame of a network whose weights cannot be had (90 tries for resnet18 in one session of
    the app, 26 in a 25 s camera stream). Keyed by what was fetched (a URL, a hub address), not by weight name, so a
    file put where a local source looks is still found at once.
    """

    def __init__(self) -> None:
        self._failed: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        with self._lock:
            self._failed.clear()

    @contextlib.contextmanager
    def attempt(self, where: str) -> Iterator[None]:
        """Run a download of ``where`` unless it failed recently; remember it if it fails now."""
        retry = download_retry()
        with self._lock:
            when, reason = self._failed.get(where, (None, ""))
        if when is not None and time.monotonic() - when < retry:
            left = retry - (time.monotonic() - when)
            raise _SourceFailed(f"{reason}; not tried again for another {left:.0f} s (${ENV_DOWNLOAD_RETRY})")
        try:
            yield
        except _SourceFailed as failure:
            with self._lock:
                self._failed[where] = (time.monotonic(), str(failure))
            raise
        with self._lock:
            self._failed.pop(where, None)


FAILED_DOWNLOADS = _FailedDownloads()
_TIMEOUT_LOCK = threading.Lock()


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """A timeout for the sockets ``torch.hub`` opens, which it offers no parameter for.

    Python's default socket timeout is process-wide, so it is set only around the download, under a lock (two
    downloads must not restore each other's value). Servers are unaffected: asyncio puts every socket it accepts
    into non-blocking mode itself.
    """
    with _TIMEOUT_LOCK:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(seconds)
        try:
            yield
        finally:
            socket.setdefaulttimeout(previous)


@dataclass(frozen=True)
class Contents:
    """The state dict a checkpoint file holds, where in the file it was (``""``: the file is the state dict;
    ``"state"``, ``"ema.module"``: under those keys of a trainer's dict) and the other state dicts beside it."""

    state: dict[str, torch.Tensor]
    key: str = ""
    others: tuple[str, ...] = ()
    module: str = ""  # the class of the whole pickled module the weights were read from ("": a dict of tensors)

    def sentence(self) -> str:
        """What a card says of where the weights came from in the file ("" for a bare state dict)."""
        whole = f"a whole pickled {self.module}, its tensors read without running its code" if self.module else ""
        if not self.key:
            return whole
        also = f"; also in the file: {', '.join(self.others)} (pick one with key=)" if self.others else ""
        return f"{whole + ', ' if whole else ''}the weights under '{self.key}' of the file{also}"


CONTAINER_DEPTH = 3  # a trainer's dict around another's around the state dict


def state_dicts_in(content: object, where: str = "", depth: int = 0) -> list[tuple[str, dict[str, torch.Tensor], str]]:
    """Every state dict of tensors in a checkpoint's content, with the class of the whole pickled module it was read
    from ("" for a dict of tensors): the content itself, or one under any key of a trainer's dict
    (``{'state': ..., 'acc': ..., 'epoch': ...}``), nested up to :data:`CONTAINER_DEPTH` deep."""
    if isinstance(content, dict) and content and all(isinstance(v, torch.Tensor) for v in content.values()):
        return [(where, content, "")]
    model = state_of(content)
    if model is not None:
        return [(where, model.state, model.stands_for)] if model.state else []
    if not isinstance(content, dict) or depth >= CONTAINER_DEPTH:
        return []
    found = []
    for name, value in content.items():
        if isinstance(name, str):
            found += state_dicts_in(value, f"{where}.{name}" if where else name, depth + 1)
    return found


def _is_average(key: str) -> bool:
    """Whether a container holds averaged weights (EMA, SWA) rather than the trained ones themselves."""
    return any(part in key.lower() for part in ("ema", "swa", "average"))


def _unwrap(content: object, path: Path, key: str | None = None) -> Contents:
    """The state dict inside a checkpoint: ``key`` where given, else the plain one (not EMA or SWA weights),
    preferring the usual containers' names, the others named on the card."""
    everything = state_dicts_in(content)
    found = {where: state for where, state, _ in everything}
    modules = {where: module for where, _, module in everything}
    if key is not None:
        if key not in found:
            offered = ", ".join(f"'{name}'" for name in found) or "none"
            raise _SourceFailed(f"{path.name} has no state dict under '{key}'; it has: {offered}")
        return Contents(found[key], key, tuple(name for name in found if name != key), modules[key])
    if not found:
        keys = list(content)[:8] if isinstance(content, dict) else []
        inside = f" (its keys: {', '.join(map(str, keys))})" if keys else ""
        raise _SourceFailed(f"{path.name} holds no state dict of tensors{inside}")

    def rank(name: str) -> tuple:
        last = name.rsplit(".", 1)[-1]
        return (_is_average(name), CONTAINERS.index(last) if last in CONTAINERS else len(CONTAINERS), name.count("."))

    chosen = min(found, key=rank)
    return Contents(found[chosen], chosen, tuple(name for name in found if name != chosen), modules[chosen])


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in chunks: a checkpoint can be larger than the memory one wants to spend."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_hash_prefix(path: Path) -> None:
    match = torch.hub.HASH_REGEX.search(path.name)
    if match is None:
        return
    found = file_sha256(path)
    if not found.startswith(match.group(1)):
        mismatch = f"{found[:8]} != {match.group(1)}"
        raise _SourceFailed(f"{path} fails its sha256 check ({mismatch}); delete it to re-download")


class _HuggingFaceHub:
    """The Hugging Face copy: its local cache only (``offline``), or the hub itself.

    ``huggingface_hub`` retries a host that does not answer, five times with back-off, which against a host that
    accepts connections but never replies takes minutes. The download therefore runs in a thread of its own and is
    given up after the download timeout (it may still complete into the cache in the background). With
    ``HF_HUB_OFFLINE`` set nothing is tried.
    """

    def __init__(self, offline: bool) -> None:
        self.offline = offline
        self.label = "Hugging Face cache" if offline else "Hugging Face hub"

    def fetch(self, entry: WeightEntry, progress: bool) -> tuple[dict[str, torch.Tensor], str]:
        if not entry.hf_hub_id:
            raise _SourceFailed("no Hugging Face copy")
        path = hub_file(entry.hf_hub_id, HF_FILENAME, self.offline)
        return load_checkpoint_file(path), f"hf://{entry.hf_hub_id} ({path})"


def hub_file(repo_id: str, filename: str, offline: bool) -> str:
    """The local path of ``filename`` of a Hugging Face repository: from the cache alone (``offline``), else
    downloaded, given up after the download timeout (see :class:`_HuggingFaceHub`), never with ``HF_HUB_OFFLINE``."""
    from huggingface_hub import constants, try_to_load_from_cache

    if offline:  # the file system alone: hf_hub_download would still ask the hub for its agent registry
        cached = try_to_load_from_cache(repo_id, filename)
        if not isinstance(cached, str):
            raise _SourceFailed(f"{repo_id}/{filename} not in the local cache")
        return cached
    if constants.HF_HUB_OFFLINE:
        raise _SourceFailed("offline (HF_HUB_OFFLINE is set)")
    with FAILED_DOWNLOADS.attempt(f"{constants.ENDPOINT}/{repo_id}/{filename}"):
        return _download_from_hub(repo_id, filename)


def _download_from_hub(repo_id: str, filename: str) -> str:
    from huggingface_hub import hf_hub_download

    seconds = download_timeout()
    outcome: dict[str, object] = {}

    def download() -> None:
        try:
            outcome["path"] = hf_hub_download(repo_id, filename, etag_timeout=seconds)
        except Exception as error:  # handed to the caller below
            outcome["error"] = error

    worker = threading.Thread(target=download, name=f"hf-download-{repo_id}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _SourceFailed(f"{repo_id}/{filename}: no answer within {seconds:g} s (timed out)")
    error = outcome.get("error")
    if error is not None:  # unreachable, repository missing, HTTP errors
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise _SourceFailed(f"{repo_id}/{filename} not downloadable ({reason})") from None
    return str(outcome["path"])


# Every local copy before any network: a Space whose image already holds the weights never downloads them again.
SOURCES: tuple[_Source, ...] = (
    _LocalDir(),
    _Shipped(),
    _TorchHub(offline=True),
    _HuggingFaceHub(offline=True),
    _TorchHub(offline=False),
    _HuggingFaceHub(offline=False),
)


def locally_available(entry: WeightEntry | None) -> bool:
    """Whether a local source (no network) holds a file for ``entry``: checked by name only, nothing is read."""
    if entry is None:
        return False
    folder = weights_dir()
    places = [folder / name for name in _local_names(entry)] if folder else []
    if entry.shipped:
        places.append(ASSETS_DIR / entry.shipped)
    if entry.file_name:
        places.append(Path(torch.hub.get_dir()) / "checkpoints" / entry.file_name)
    if any(place.is_file() for place in places):
        return True
    if entry.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(entry.hf_hub_id, HF_FILENAME), str)
    return False


def _where_to_put(entry: WeightEntry) -> str:
    options = [f"put {entry.name}.safetensors (or .pth) in a folder named by ${ENV_WEIGHTS_DIR}"]
    if entry.file_name:
        options.append(f"put {entry.file_name} in {Path(torch.hub.get_dir()) / 'checkpoints'}")
    if entry.hf_hub_id:
        options.append(f"run `huggingface-cli download {entry.hf_hub_id} {HF_FILENAME}` where the hub is reachable")
    return "To fix: " + "; or ".join(options) + "."


def _check_fits(model: nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Load strictly, under our key names (a wrapper's ``module.`` prefix and a ``linear`` classifier, as in the
    published CIFAR-10 files, are renamed first)."""
    state, *_ = normalised(state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise _SourceFailed(f"checkpoint does not fit {name} ({detail[:300]})") from None


def load_state_dict(model: nn.Module, entry: WeightEntry, progress: bool = True) -> str:
    """Load ``entry`` into ``model`` strictly from the first source that delivers; return that source."""
    attempts = []
    for source in SOURCES:
        try:
            state, origin = source.fetch(entry, progress)
            _check_fits(model, state, entry.arch)
            return f"{source.label}: {origin}"
        except _SourceFailed as failure:
            attempts.append((source.label, str(failure)))
    raise WeightsUnavailableError(entry.name, attempts, _where_to_put(entry))


def load_file_into(model: nn.Module, path: str | Path, arch: str) -> str:
    """Load a user's own checkpoint file strictly; errors name the file and the reason."""
    try:
        _check_fits(model, load_checkpoint_file(path), arch)
    except _SourceFailed as failure:
        raise WeightsUnavailableError(str(path), [("local file", str(failure))]) from None
    return f"local file: {Path(path).resolve()}"
