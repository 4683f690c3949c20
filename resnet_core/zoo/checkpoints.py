"""Your own ResNet: a checkpoint file or a timm-format Hugging Face repository, opened as a ready model.

The file is read once: its shapes from a safetensors header or a memory-mapped pickle (enough to recognise the
architecture, see :mod:`.recognition`), its tensors only when a model is built. Every way it can fail is one
sentence: a pickle that needs code, a file cut short, a network that is not a ResNet, NaNs, labels that disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .architectures import ARCHITECTURES, ArchSpec, build
from .create import ModelCard, ready
from .file_kinds import not_a_checkpoint
from .label_spaces import LabelSpace
from .models import ResNet
from .preprocess import Preprocess
from .recognition import (
    BN_STEPS,
    HUB_PREFIX,
    INPUT_NORMALISATION,
    CheckpointError,
    Recognition,
    display_name,
    key_prefix,
    normalised,
    recognise,
)
from .weights import Contents, _check_fits, _SourceFailed, default_weights, hub_file, read_checkpoint_file

__all__ = ["SOURCE", "CheckpointError", "CheckpointInfo", "inspect_checkpoint", "load_checkpoint", "read_labels"]

SOURCE = "checkpoint: "  # how a model card's source names the file a checkpoint was read from
BINARY = 2  # a one-output head's classes: its sigmoid read as two answers


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint is before it is loaded: its recognition and, when recognised, the classes, where their
    names come from and the preprocessing a model of it will use."""

    recognition: Recognition
    categories: tuple[str, ...] = ()
    labels_source: str = ""
    preprocess: Preprocess | None = None
    container: str = ""  # where in a trainer's dict the weights were ("": the file is the state dict)
    others: tuple[str, ...] = ()  # the other state dicts in the file (EMA weights, a second model)
    module: str = ""  # the class of the whole pickled module the weights were read from ("": a dict of tensors)

    @property
    def binary(self) -> bool:
        """One output: a binary classifier, read as two classes (its sigmoid and one minus it)."""
        return self.recognition.num_classes == 1

    def sentence(self) -> str:
        """The recognition's sentence, and where in the file the weights came from when that was a choice."""
        where = Contents({}, self.container, self.others, self.module).sentence()
        binary = (
            f"; one output, read as a binary classifier: p({self.categories[1]}) = sigmoid(output)"
            if self.binary and self.categories
            else ""
        )
        return self.recognition.sentence() + (f" ({where})" if where else "") + binary

    @property
    def spec(self) -> ArchSpec:
        """The recognised architecture with the checkpoint's classes and input channels."""
        found = self.recognition
        if not found.recognised:
            raise CheckpointError(found.sentence())
        # recognise() gives every checkpoint it recognises an architecture and input channels; _inspect a preprocess
        assert found.arch is not None and found.in_chans is not None and self.preprocess is not None
        title = f"{len(self.categories)} classes of {found.name}"
        space = LabelSpace("checkpoint", title, self.categories, self.preprocess)
        return replace(found.spec, labels=space, in_chans=found.in_chans)

    def as_dict(self) -> dict:
        """What ``python -m resnet_core inspect --json`` prints."""
        found = self.recognition
        payload = {
            "source": found.name,
            "format": found.format,
            "recognised": found.recognised,
            "arch": found.arch,
            "num_classes": found.num_classes,
            "in_chans": found.in_chans,
            "sentence": self.sentence(),
            "container": self.container,
            "others": list(self.others),
            "pickled_module": self.module,
        }
        if found.recognised:
            extra = {"ties": list(found.ties), "prefix": found.prefix, "head": found.head}
            preprocess = self.preprocess.as_dict() if self.preprocess else None
            labels = {"labels": list(self.categories), "labels_source": self.labels_source}
            return {**payload, **extra, **labels, "preprocess": preprocess}
        keys = {"missing": list(found.missing), "unexpected": list(found.unexpected)}
        return {**payload, "nearest": found.nearest, **keys, "shape_mismatch": list(found.shape_mismatch)}


def inspect_checkpoint(
    source: str | Path,
    labels: str | Path | Sequence[str] | None = None,
    arch: str | None = None,
    preprocess: Preprocess | None = None,
    key: str | None = None,
) -> CheckpointInfo:
    """What :func:`load_checkpoint` would build, from the keys and shapes alone (no tensor data is read).

    A checkpoint that is readable but fits no architecture is no error here: its recognition names the nearest
    architecture and the keys that differ. Arguments as for :func:`load_checkpoint`.
    """
    return _inspect(_Found.read(source, data=False, key=key), labels, arch, preprocess)


def load_checkpoint(
    source: str | Path,
    labels: str | Path | Sequence[str] | None = None,
    arch: str | None = None,
    preprocess: Preprocess | None = None,
    device: str | torch.device | None = None,
    key: str | None = None,
) -> ResNet:
    """A ready model (eval mode, frozen, weights loaded strictly) from a user's own ResNet-family checkpoint.

    ``source``: a ``.safetensors`` file, a torch pickle (``.pth``, ``.pt``, ``.bin``, ``.ckpt``, ``.th``; loaded
    with ``weights_only``, so no code runs) holding a state dict bare or in a trainer's container, or
    ``hf-hub:OWNER/NAME`` for a timm-format repository (``config.json`` + weights; the local cache when offline).
    The architecture, class count and input channels are recognised from the keys and shapes; ``arch`` only breaks
    ties (the paper's bottleneck "A" and torchvision's "B" share every key and shape: B is chosen unless asked).
    ``labels``: a file (one name per line, a JSON list, or a JSON object index -> name) or a list; else the
    safetensors metadata key ``labels`` or the hub config's label names; else the architecture's own classes
    where the count is theirs (ImageNet's 1,000, CIFAR-10's 10 on a CIFAR net); else ``class 0`` ... ``class N-1``.
    ``preprocess``: else the hub config's, else that of the architecture's published default weights.
    ``key``: which state dict of a file that holds several (``"ema"``, ``"state.model"``); else the plain one.
    Raises :class:`CheckpointError` with one sentence for anything that cannot be opened as asked.
    """
    found = _Found.read(source, data=True, key=key)
    info = _inspect(found, labels, arch, preprocess)
    spec = info.spec  # raises for a checkpoint that fits no architecture
    state = found.normalised_state()
    if info.recognition.renamed:  # matched by position: our names; the file's BN step counters feed no output
        renaming = dict(info.recognition.renamed)
        state = {renaming[key]: value for key, value in state.items() if key in renaming}
    if info.binary:  # logits (-z/2, +z/2): their softmax is (1 - sigmoid(z), sigmoid(z)), and each class has a map
        state = {**state, **{key: torch.cat([-state[key] / 2, state[key] / 2]) for key in ("fc.weight", "fc.bias")}}
    bad = [key for key, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise CheckpointError(
            f"{found.name} has NaN or infinite values in {len(bad)} tensor(s) (first: {bad[0]}): the training run "
            "that wrote it diverged, so its answers would be meaningless"
        )
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten by the strict load below
        model = build(spec)
    # BN's step counters are the only keys a checkpoint may lack: they feed no output, so the model's own stay.
    state = {**{k: v for k, v in model.state_dict().items() if k.endswith(BN_STEPS)}, **state}
    try:  # the one strict loader; recognised already, so only a disagreement with arch= could fail here
        _check_fits(model, state, spec.name)
    except _SourceFailed as failure:
        raise CheckpointError(f"{found.name}: {failure}") from None
    source_line = f"{SOURCE}{found.where}"
    assert info.preprocess is not None  # recognised (info.spec raised otherwise): _inspect chose one
    model_card = ModelCard(spec, None, source_line, info.preprocess, info.recognition, info.labels_source)
    return ready(model, model_card, device)


def _inspect(
    found: _Found, labels: str | Path | Sequence[str] | None, arch: str | None, preprocess: Preprocess | None
) -> CheckpointInfo:
    recognition = found.recognition(arch)
    if not recognition.recognised:
        return CheckpointInfo(recognition, container=found.container, others=found.others, module=found.module)
    # recognise() gives every checkpoint it recognises an architecture, a class count and input channels
    assert recognition.arch is not None and recognition.num_classes is not None and recognition.in_chans is not None
    classes = BINARY if recognition.num_classes == 1 else recognition.num_classes  # one output: a binary classifier
    names, labels_source = _labels(labels, found, recognition.spec, classes, recognition.num_classes == 1)
    preprocess = preprocess or found.preprocess() or found.normalising(_default_preprocess(recognition.spec))
    if recognition.in_chans != len(preprocess.mean):
        preprocess = _for_channels(preprocess, recognition.in_chans)
    return CheckpointInfo(
        recognition,
        tuple(names),
        labels_source,
        preprocess,
        container=found.container,
        others=found.others,
        module=found.module,
    )


def read_labels(path: str | Path) -> list[str]:
    """Class names from a file: one per line, a JSON list, or a JSON object mapping index to name."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(parsed, list) and all(isinstance(name, str) for name in parsed):
        return parsed
    if isinstance(parsed, dict):
        try:
            pairs = sorted((int(index), str(name)) for index, name in parsed.items())
        except ValueError:
            pairs = []
        if pairs and [index for index, _ in pairs] == list(range(len(pairs))):
            return [name for _, name in pairs]
    raise CheckpointError(
        f"{Path(path).name} is JSON but not a list of class names or an object from 0, 1, 2, ... to names"
    )


@dataclass
class _Found:
    """A checkpoint as read: its shapes (and tensors, when asked), metadata and, for a hub repository, config."""

    source: str
    where: str  # the file read
    format: str
    shapes: dict[str, tuple[int, ...]]
    state: dict[str, torch.Tensor] | None
    metadata: dict[str, str]
    config: dict
    container: str = ""
    others: tuple[str, ...] = ()
    module: str = ""
    inner: tuple[torch.Tensor, torch.Tensor] | None = None  # the mean and std the network applies to its input

    @property
    def name(self) -> str:
        return display_name(self.source)

    @classmethod
    def read(cls, source: str | Path, data: bool, key: str | None = None) -> _Found:
        source = str(source)
        config: dict = {}
        path = source
        if source.startswith(HUB_PREFIX):
            path, config = _hub_files(source.removeprefix(HUB_PREFIX))
        if Path(path).suffix == ".safetensors":  # flat by format: no container to choose from
            shapes, metadata = _safetensors_header(Path(path))
            contents = _read(path, mmap=False) if data else Contents({})
            kind = "safetensors"
        else:
            contents = _read(path, mmap=True, key=key)
            shapes, metadata, kind = {k: tuple(v.shape) for k, v in contents.state.items()}, {}, "torch pickle"
        if config:
            kind = "hf-hub (timm)"
        state = contents.state if data else None
        prefix = key_prefix(shapes)
        keys = [prefix + name for name in INPUT_NORMALISATION]
        inner = None
        if all(name in shapes for name in keys):  # two small tensors, read even where only shapes are asked for
            from_header = Path(path).suffix == ".safetensors" and not data
            inner = (
                _safetensors_tensors(Path(path), keys)
                if from_header
                else (contents.state[keys[0]], contents.state[keys[1]])
            )
        return cls(
            source,
            str(path),
            kind,
            shapes,
            state,
            metadata,
            config,
            contents.key,
            contents.others,
            contents.module,
            inner,
        )

    def recognition(self, arch: str | None) -> Recognition:
        wanted = arch or (self.config.get("architecture") if self.config.get("architecture") in ARCHITECTURES else None)
        return recognise(self.shapes, self.source, self.format, wanted)

    def normalised_state(self) -> dict[str, torch.Tensor]:
        assert self.state is not None, "read(data=True) keeps the tensors"
        state, *_ = normalised(self.state)
        return state

    def normalising(self, preprocess: Preprocess) -> Preprocess:
        """``preprocess`` with the mean and std the network applies to its own input, where it holds them
        (:data:`~.recognition.INPUT_NORMALISATION`): our networks leave that to the preprocessing."""
        if self.inner is None:
            return preprocess
        mean, std = (tuple(float(v) for v in tensor.flatten()) for tensor in self.inner)
        return replace(preprocess, mean=mean, std=std)

    def preprocess(self) -> Preprocess | None:
        """The hub config's preprocessing (timm's ``pretrained_cfg``), where there is one."""
        cfg = self.config.get("pretrained_cfg") or {}
        if "input_size" not in cfg:
            return None
        mean, std = tuple(cfg.get("mean", Preprocess.mean)), tuple(cfg.get("std", Preprocess.std))
        return Preprocess.from_crop_pct(
            cfg["input_size"][-1], cfg.get("crop_pct", 0.875), cfg.get("interpolation", "bicubic"), mean, std
        )


def _read(path: str, mmap: bool, key: str | None = None) -> Contents:
    try:
        return read_checkpoint_file(path, mmap=mmap, key=key)
    except _SourceFailed as failure:
        raise CheckpointError(str(failure)) from None


def _safetensors_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """Shapes and metadata from the header alone: the tensors are not read."""
    from safetensors import safe_open

    if not path.is_file() or path.stat().st_size == 0 or not_a_checkpoint(path):
        _read(str(path), mmap=False)  # raises the reader's own sentence (no file, empty, what the file is)
    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
            return shapes, dict(handle.metadata() or {})
    except Exception as error:  # a bad header: the file is cut short or is not safetensors
        raise CheckpointError(f"{path.name} is corrupt or truncated ({type(error).__name__}: {error})") from None


def _safetensors_tensors(path: Path, keys: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        first, second = (handle.get_tensor(key) for key in keys)
    return first, second


def _hub_files(repo: str) -> tuple[str, dict]:
    """A timm-format repository's weights and config: from the Hugging Face cache, else downloaded."""
    if repo.count("/") != 1:
        raise CheckpointError(f"{HUB_PREFIX}{repo}: expected {HUB_PREFIX}OWNER/NAME")
    failures = []
    for offline in (True, False):
        try:
            config = json.loads(Path(hub_file(repo, "config.json", offline)).read_text())
        except _SourceFailed as failure:
            failures.append(str(failure))
            continue
        for filename in ("model.safetensors", "pytorch_model.bin"):
            try:
                return hub_file(repo, filename, offline), config
            except _SourceFailed as failure:
                failures.append(str(failure))
    raise CheckpointError(f"{HUB_PREFIX}{repo} could not be opened: {'; '.join(failures[-2:])}")


def _labels(
    given: str | Path | Sequence[str] | None, found: _Found, arch: ArchSpec, num_classes: int, binary: bool = False
) -> tuple[list[str], str]:
    """The class names and where they came from (see :func:`load_checkpoint`); a count that disagrees with the
    classifier is an error."""
    own = arch.label_space
    if isinstance(given, (str, Path)):
        names, origin = read_labels(given), Path(given).name
    elif given is not None:
        names, origin = [str(name) for name in given], "given"
    elif "labels" in found.metadata:
        names, origin = json.loads(found.metadata["labels"]), "the file's metadata"
    elif found.config.get("label_names") or (found.config.get("pretrained_cfg") or {}).get("label_names"):
        names = found.config.get("label_names") or found.config["pretrained_cfg"]["label_names"]
        origin = "the hub config"
    elif own.num_classes == num_classes:  # the published CIFAR-10 files, a saved copy of ImageNet weights
        return list(own.categories), f"{own.name}, the architecture's own classes (same count; no labels given)"
    elif binary:
        return ["negative", "positive"], "a binary classifier's two answers (no labels given)"
    else:
        return [f"class {index}" for index in range(num_classes)], "numbered (no labels given)"
    if len(names) != num_classes:
        has = "one output, a binary classifier: name its 2 answers, the negative first" if binary else None
        raise CheckpointError(
            f"{origin} names {len(names)} classes, but {found.name}'s classifier has {has or f'{num_classes} outputs'}"
        )
    return list(names), origin


def _default_preprocess(spec: ArchSpec) -> Preprocess:
    entry = default_weights(spec.name) if spec.name in ARCHITECTURES else None  # a CIFAR variant has none
    return entry.preprocess if entry is not None else spec.label_space.preprocess


def _for_channels(preprocess: Preprocess, in_chans: int) -> Preprocess:
    """A network fine-tuned on one channel sees the photo in grayscale, normalised by the mean of the channel
    statistics (timm's convention when it adapts a first convolution)."""
    if in_chans != 1:
        raise CheckpointError(
            f"the network takes {in_chans} input channels; pass a preprocess with {in_chans} means and stds"
        )
    mean, std = sum(preprocess.mean) / len(preprocess.mean), sum(preprocess.std) / len(preprocess.std)
    return replace(preprocess, mean=(mean,), std=(std,), grayscale=True)
