"""A user's own ResNet: checkpoints written here by torchvision and timm, recognised and loaded to the same logits."""

from __future__ import annotations

import json
import zipfile

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from resnet_core import (
    ARCHITECTURES,
    CheckpointError,
    create_model,
    default_weights,
    inspect_checkpoint,
    load_checkpoint,
    load_image,
)
from resnet_core.explain.analysis import analyze
from resnet_core.zoo.recognition import normalised

from .conftest import ROOT, hub_snapshot, randomize_batchnorm
from .test_cifar10_reference import checkpoint_path
from .test_cli import in_process

CHELSEA = ROOT / "assets" / "photos" / "chelsea.png"
CAT = ROOT / "assets" / "cifar10" / "gallery" / "cat_0000.png"


def logits_gap(ours: nn.Module, reference: nn.Module, size: int = 64, channels: int = 3) -> float:
    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return (ours(x) - reference.eval()(x)).abs().max().item()


def torchvision_net(name: str, num_classes: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(torchvision.models.get_model(name, weights=None, num_classes=num_classes), seed).eval()


def test_a_fine_tuned_torchvision_resnet18_with_seven_classes(tmp_path):
    reference = torchvision_net("resnet18", 7)
    torch.save(reference.state_dict(), tmp_path / "defects.pth")
    model = load_checkpoint(tmp_path / "defects.pth")
    assert model.card.arch.name == "resnet18" and model.card.checkpoint.num_classes == 7
    assert model.card.categories == tuple(f"class {i}" for i in range(7))
    assert model.card.labels_source == "numbered (no labels given)"
    assert model.card.preprocess == default_weights("resnet18").preprocess  # resize 256, crop 224, ImageNet stats
    assert logits_gap(model, reference) <= 1e-5
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


@pytest.mark.slow
def test_a_lightning_container_around_resnet50_keeps_b_and_names_the_tie(tmp_path):
    reference = torchvision_net("resnet50", 4)
    state = {f"model.{key}": value for key, value in reference.state_dict().items()}
    torch.save({"epoch": 3, "global_step": 120, "state_dict": state, "lr_schedulers": []}, tmp_path / "leaf.ckpt")
    found = inspect_checkpoint(tmp_path / "leaf.ckpt").recognition
    assert (found.arch, found.prefix, found.ties) == ("resnet50", "model.", ("resnet50a",))
    assert "resnet50a has the same keys and shapes" in found.sentence()
    model = load_checkpoint(tmp_path / "leaf.ckpt")
    assert logits_gap(model, reference) <= 1e-5
    # The paper's bottleneck A has the same keys and shapes; asked for, it is what is built.
    assert load_checkpoint(tmp_path / "leaf.ckpt", arch="resnet50a").card.arch.stride_in_1x1
    with pytest.raises(CheckpointError, match=r"does not fit resnet18 .*resnet50, resnet50a"):
        load_checkpoint(tmp_path / "leaf.ckpt", arch="resnet18")


def test_a_timm_resnet26d_as_safetensors_with_labels_in_its_metadata(tmp_path):
    torch.manual_seed(0)
    reference = randomize_batchnorm(timm.create_model("resnet26d", num_classes=3)).eval()
    save_file(reference.state_dict(), str(tmp_path / "r26d.safetensors"), metadata={"labels": '["a", "b", "c"]'})
    model = load_checkpoint(tmp_path / "r26d.safetensors")
    assert model.card.arch.name == "resnet26d" and model.card.categories == ("a", "b", "c")
    assert model.card.labels_source == "the file's metadata"
    assert logits_gap(model, reference) <= 1e-5


@pytest.mark.slow  # 69 M parameters built twice and saved: the fast lane has the prefix in the Lightning test
def test_a_data_parallel_wide_resnet50_2(tmp_path):
    reference = torchvision_net("wide_resnet50_2", 12)
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, tmp_path / "wide.pt")
    model = load_checkpoint(tmp_path / "wide.pt")
    assert model.card.arch.name == "wide_resnet50_2" and model.card.checkpoint.prefix == "module."
    assert logits_gap(model, reference) <= 1e-5


@pytest.mark.slow
def test_a_dropout_and_linear_head_and_a_grayscale_first_convolution(tmp_path):
    reference = torchvision_net("resnet34", 5)
    reference.fc = nn.Sequential(nn.Dropout(0.3), nn.Linear(512, 5))
    reference.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save({"model_state_dict": reference.state_dict()}, tmp_path / "xray.bin")
    model = load_checkpoint(tmp_path / "xray.bin")
    found = model.card.checkpoint
    assert (found.arch, found.in_chans, found.head) == ("resnet34", 1, "Dropout + Linear head (fc.1)")
    assert model.card.preprocess.grayscale and len(model.card.preprocess.mean) == 1
    assert logits_gap(model, reference, channels=1) <= 1e-5


def test_the_published_cifar10_file_is_recognised_without_being_told():
    """akamaster's release: DataParallel's ``module.`` prefix and a classifier named ``linear``, in a .th pickle."""
    model = load_checkpoint(checkpoint_path(20))
    assert model.card.arch.name == "cifar10_resnet20" and model.card.checkpoint.head == "classifier named linear"
    assert model.card.preprocess.crop_size == 32  # the preprocessing of the architecture's published weights
    assert model.card.categories[3] == "cat" and model.card.labels_source.startswith("CIFAR-10, the architecture's")
    assert logits_gap(model, create_model("cifar10_resnet20", weights="DEFAULT"), size=32) == 0.0


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("ok\nscratch\n\ndent\n", ["ok", "scratch", "dent"]),
        ('["ok", "scratch", "dent"]', ["ok", "scratch", "dent"]),
        ('{"2": "dent", "0": "ok", "1": "scratch"}', ["ok", "scratch", "dent"]),
    ],
)
def test_labels_files_in_three_forms(tmp_path, text, names):
    reference = torchvision_net("resnet18", 3)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    (tmp_path / "labels.txt").write_text(text)
    model = load_checkpoint(tmp_path / "r18.pth", labels=tmp_path / "labels.txt")
    assert list(model.card.categories) == names and model.card.labels_source == "labels.txt"


def test_a_timm_hub_repository_from_the_local_cache(tmp_path, monkeypatch):
    """``hf-hub:OWNER/NAME`` laid out as huggingface_hub caches it; the test never reaches the network."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    torch.manual_seed(1)
    reference = randomize_batchnorm(timm.create_model("resnet18d", num_classes=2), 1).eval()
    config = {
        "architecture": "resnet18d",
        "num_classes": 2,
        "label_names": ["cat", "dog"],
        "pretrained_cfg": {"input_size": [3, 160, 160], "crop_pct": 0.8, "interpolation": "bicubic"},
    }
    hub_snapshot(tmp_path / "hf", "someone/cats-or-dogs", reference.state_dict(), config)
    snapshot = next((tmp_path / "hf").glob("models--someone--cats-or-dogs/snapshots/*"))
    model = load_checkpoint("hf-hub:someone/cats-or-dogs")
    assert model.card.arch.name == "resnet18d" and model.card.categories == ("cat", "dog")
    assert (model.card.preprocess.crop_size, model.card.preprocess.resize_size) == (160, 200)
    assert model.card.checkpoint.format == "hf-hub (timm)"
    assert logits_gap(model, reference) <= 1e-5
    config["architecture"] = "resnet34d"  # a config that disagrees with the weights is an error, not a guess
    (snapshot / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not fit resnet34d"):
        load_checkpoint("hf-hub:someone/cats-or-dogs")


def test_prefixes_are_stripped_only_when_every_key_has_them():
    keys = {"module.model.conv1.weight": 0, "module.model.fc.weight": 0}
    assert normalised(keys)[0].keys() == {"conv1.weight", "fc.weight"}
    assert normalised({"model.conv1.weight": 0, "fc.weight": 0})[1] == ""


# Bad inputs: one sentence each, never a traceback and never a guess.


def test_whole_pickled_torchvision_and_timm_resnets_open_without_running_their_code(tmp_path):
    cases = [
        (torchvision_net("resnet18", 3), "torchvision.models.resnet.ResNet", "resnet18"),
        (randomize_batchnorm(timm.create_model("resnet26d", num_classes=5), 1).eval(), "timm.models.resnet.ResNet",
         "resnet26d"),
    ]  # fmt: skip
    for reference, module, arch in cases:
        torch.save({"model": reference, "epoch": 3, "acc": 0.9}, tmp_path / "whole.pth")  # as tutorials save it
        model = load_checkpoint(tmp_path / "whole.pth")
        assert model.card.arch.name == arch and logits_gap(model, reference) <= 1e-5
        sentence = inspect_checkpoint(tmp_path / "whole.pth").sentence()
        assert f"a whole pickled {module}, its tensors read without running its code" in sentence
    allowed = [entry[0] if isinstance(entry, tuple) else entry for entry in torch.serialization.get_safe_globals()]
    assert not [entry for entry in allowed if hasattr(entry, "stands_for")]  # no stand-in is left allowed after
    # (a comparison with the list before would fail on torch's own: it adds classes of its own on first use)


class _Allocates:
    """Pickled as a call of an allowed class with the file's own arguments: nn.Linear(8192, 8192), 256 MB."""

    def __reduce__(self):
        return nn.Linear, (8192, 8192)


def test_a_pickle_that_calls_an_allowed_class_is_refused_and_stored_hooks_never_run(tmp_path):
    torch.save({"model": torchvision_net("resnet18", 2), "head": _Allocates()}, tmp_path / "calls.pth")
    with pytest.raises(CheckpointError, match=r"calls.pth asks the loader to call torch.nn.modules.linear.Linear"):
        load_checkpoint(tmp_path / "calls.pth")
    # Hooks a file stores run when the real module's state_dict() or forward is called: a stand-in keeps none.
    reference = torchvision_net("resnet18", 2)
    hooked = torchvision_net("resnet18", 2)
    hooked._state_dict_hooks[0] = torchvision.models.resnet.ResNet  # would be called as ResNet(module, state, ...)
    hooked.layer1[0]._forward_hooks[0] = nn.Linear  # would be called as Linear(module, input, output)
    torch.save(hooked, tmp_path / "hooks.pth")
    assert logits_gap(load_checkpoint(tmp_path / "hooks.pth"), reference) <= 1e-5


def test_a_pickled_model_of_any_other_class_is_refused_with_the_classes_it_asks_for(tmp_path):
    torch.save(_RenamedResNet20(), tmp_path / "own.pth")  # a ResNet whose forward only its own code knows
    message = r"own.pth holds pickled objects of tests.test_checkpoints._RenamedBlock, tests.test_checkpoints._Ren"
    with pytest.raises(CheckpointError, match=message + r".*torch.save\(model.state_dict\(\), 'model.pth'\)"):
        load_checkpoint(tmp_path / "own.pth")
    torch.save({"model": torchvision_net("resnet18", 2), "run": print}, tmp_path / "print.pth")
    with pytest.raises(CheckpointError, match=r"print.pth holds pickled objects of builtins.print,"):
        load_checkpoint(tmp_path / "print.pth")  # one unknown name is enough, whatever else the file holds


def test_a_network_that_is_not_a_resnet_names_the_nearest(tmp_path):
    state = torchvision.models.mobilenet_v3_small(num_classes=3).state_dict()
    torch.save(state, tmp_path / "mobilenet.pth")
    found = inspect_checkpoint(tmp_path / "mobilenet.pth").recognition
    assert not found.recognised and found.nearest in ARCHITECTURES
    assert set(found.unexpected) == {key for key in state if not key.endswith("num_batches_tracked")}
    with pytest.raises(CheckpointError, match=r"mobilenet.pth is not a ResNet-family checkpoint.*nearest architect"):
        load_checkpoint(tmp_path / "mobilenet.pth")


@pytest.mark.slow
def test_a_sequential_linear_head_opens_and_a_two_layer_head_is_refused(tmp_path):
    reference = torchvision_net("resnet18", 3)
    reference.fc = nn.Sequential(reference.fc)  # fc.0: refused before
    torch.save(reference.state_dict(), tmp_path / "seq.pth")
    model = load_checkpoint(tmp_path / "seq.pth")
    assert model.card.checkpoint.head == "Linear head in a Sequential (fc.0)" and logits_gap(model, reference) <= 1e-5
    deeper = torchvision_net("resnet18", 3)
    deeper.fc = nn.Sequential(nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, 3))  # another architecture: says so
    torch.save(deeper.state_dict(), tmp_path / "mlp.pth")
    with pytest.raises(CheckpointError, match="is not a ResNet-family checkpoint that ResNet Explorer knows"):
        load_checkpoint(tmp_path / "mlp.pth")


class _RenamedBlock(nn.Module):
    """The paper's CIFAR basic block (option A shortcut) under other module names."""

    def __init__(self, inputs: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv_cell = nn.Sequential(
            nn.Conv2d(inputs, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False),
            nn.BatchNorm2d(planes),
        )
        self.pad = (planes - inputs) // 2 if stride != 1 or inputs != planes else None

    def forward(self, x):
        shortcut = x if self.pad is None else nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return nn.functional.relu(self.conv_cell(x) + shortcut)


class _RenamedResNet20(nn.Module):
    """A ResNet-20 for CIFAR-10 that is exactly cifar10_resnet20 in its tensors, in order, under other names."""

    def __init__(self) -> None:
        super().__init__()
        self.pre_conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.pre_bn = nn.BatchNorm2d(16)
        widths, inputs, stages = (16, 32, 64), 16, []
        for index, planes in enumerate(widths):
            blocks = [
                _RenamedBlock(inputs if b == 0 else planes, planes, 2 if index and b == 0 else 1) for b in range(3)
            ]
            stages.append(nn.Sequential(*blocks))
            inputs = planes
        self.res_layer1, self.res_layer2, self.res_layer3 = stages
        self.classifier = nn.Linear(64, 10)

    def forward(self, x):
        x = nn.functional.relu(self.pre_bn(self.pre_conv(x)))
        x = self.res_layer3(self.res_layer2(self.res_layer1(x)))
        return self.classifier(x.mean((2, 3)))


def test_renamed_modules_are_matched_by_position_in_a_pickle_only(tmp_path):
    torch.manual_seed(0)
    reference = randomize_batchnorm(_RenamedResNet20()).eval()
    torch.save(reference.state_dict(), tmp_path / "renamed.pth")
    model = load_checkpoint(tmp_path / "renamed.pth")
    found = model.card.checkpoint
    assert model.card.arch.name == "cifar10_resnet20" and found.renamed[0] == ("pre_conv.weight", "conv1.weight")
    assert "modules matched by position, every tensor in order: pre_conv.weight -> conv1.weight" in found.sentence()
    assert logits_gap(model, reference, size=32) <= 1e-5
    # safetensors sorts its keys: the order is gone, so no match by position is claimed.
    save_file(reference.state_dict(), str(tmp_path / "renamed.safetensors"))
    assert not inspect_checkpoint(tmp_path / "renamed.safetensors").recognition.recognised
    # One tensor of another shape: no partial match.
    state = reference.state_dict()
    state["res_layer3.2.conv_cell.3.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, tmp_path / "almost.pth")
    assert not inspect_checkpoint(tmp_path / "almost.pth").recognition.recognised


def test_a_one_output_head_is_a_binary_classifier(tmp_path):
    """A one-output head opened as "1 classes" that always said 100%. It is a binary classifier: p(positive) is the
    sigmoid of its output, each answer has its Grad-CAM, and a labels file names both answers."""
    reference = torchvision_net("resnet18", 1)
    torch.save(reference.state_dict(), tmp_path / "defect_or_not.pth")
    model = load_checkpoint(tmp_path / "defect_or_not.pth")
    assert model.card.categories == ("negative", "positive") and model.fc.out_features == 2
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = torch.sigmoid(reference(x)[:, 0])
        assert torch.allclose(model(x).softmax(-1)[:, 1], expected, atol=1e-6)
    info = inspect_checkpoint(tmp_path / "defect_or_not.pth")
    assert "one output, read as a binary classifier: p(positive) = sigmoid(output)" in info.sentence()
    (tmp_path / "names.txt").write_text("sound\ncracked\n")
    assert load_checkpoint(tmp_path / "defect_or_not.pth", labels=tmp_path / "names.txt").card.categories == (
        "sound",
        "cracked",
    )
    with pytest.raises(CheckpointError, match="one output, a binary classifier: name its 2 answers"):
        load_checkpoint(tmp_path / "defect_or_not.pth", labels=["cracked"])


def test_the_preprocessing_a_network_was_trained_with_can_be_given(capsys, tmp_path):
    """A network trained on pixels in [0, 1] opened with ImageNet's mean and std and lost most of its accuracy
    without a word. --no-normalize, --crop, --resize, --mean and --std say how it was fed; the answer is then the
    reference network's on exactly that input."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    reference = torchvision_net("resnet18", 4)
    torch.save(reference.state_dict(), tmp_path / "raw.pth")
    photo = ROOT / "assets" / "photos" / "chelsea.png"
    code, out, err = in_process(capsys, "predict", str(photo), "--checkpoint", str(tmp_path / "raw.pth"),
                                "--no-normalize", "--crop", "64", "--json")  # fmt: skip
    assert code == 0, err
    crop = TF.center_crop(TF.resize(Image.open(photo).convert("RGB"), [73], antialias=True), [64])  # 64 * 256 / 224
    with torch.no_grad():
        expected = reference(TF.to_tensor(crop)[None]).softmax(-1)[0]
    top = json.loads(out)["topk"][0]
    assert abs(top["probability"] - float(expected[top["index"]])) <= 1e-5 and top["index"] == int(expected.argmax())
    base = inspect_checkpoint(tmp_path / "raw.pth").preprocess
    changed = base.changed(crop=32, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    assert (changed.crop_size, changed.resize_size, changed.mean, changed.std) == (32, 37, (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(ValueError, match="the std needs 3 value"):
        base.changed(std=[0.5])
    code, _, err = in_process(capsys, "predict", str(photo), "--arch", "resnet18", "--weights", "none", "--crop", "64")
    assert code == 2 and "describe a --checkpoint: give the checkpoint too" in err


def test_a_trainers_dict_under_any_key_with_ema_weights_beside_them(tmp_path):
    """{'state': ..., 'acc': ..., 'epoch': ...} was refused with "holds no state dict of tensors", which was false.
    Any key, nested, is searched; of plain and EMA weights the plain ones are taken and the EMA named; key= picks."""
    plain, averaged = torchvision_net("resnet18", 4, seed=0), torchvision_net("resnet18", 4, seed=1)
    trainer = {"state": plain.state_dict(), "acc": 93.1, "epoch": 200, "ema": {"module": averaged.state_dict()}}
    torch.save(trainer, tmp_path / "run.pth")
    info = inspect_checkpoint(tmp_path / "run.pth")
    assert (info.container, info.others) == ("state", ("ema.module",)) and info.recognition.arch == "resnet18"
    assert "the weights under 'state' of the file; also in the file: ema.module (pick one with key=)" in info.sentence()
    assert logits_gap(load_checkpoint(tmp_path / "run.pth"), plain) <= 1e-5
    assert logits_gap(load_checkpoint(tmp_path / "run.pth", key="ema.module"), averaged) <= 1e-5
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(tmp_path / "run.pth", key="model")
    assert str(refused.value) == "run.pth has no state dict under 'model'; it has: 'state', 'ema.module'"
    torch.save({"acc": 93.1, "epoch": 200}, tmp_path / "none.pth")
    with pytest.raises(CheckpointError, match=r"none.pth holds no state dict of tensors \(its keys: acc, epoch\)"):
        load_checkpoint(tmp_path / "none.pth")
    torch.save(plain.state_dict(), tmp_path / "bare.pth")  # a bare state dict: nothing to say about where
    assert (
        inspect_checkpoint(tmp_path / "bare.pth").container == ""
        and "under" not in inspect_checkpoint(tmp_path / "bare.pth").sentence()
    )


def test_cli_inspect_prints_json_on_every_exit(capsys, tmp_path):
    (tmp_path / "notes.pth").write_text("epoch 90: top-1 76.1\n")
    code, out, err = in_process(capsys, "inspect", str(tmp_path / "notes.pth"), "--json")
    payload = json.loads(out)
    assert code == 2 and payload["recognised"] is False and payload["sentence"].startswith("notes.pth is a text file")
    assert err.count("\n") == 1 and "notes.pth is a text file" in err  # the one line on stderr too
    torch.save({"state": torchvision_net("resnet18", 4).state_dict()}, tmp_path / "run.pth")
    code, out, _ = in_process(capsys, "inspect", str(tmp_path / "run.pth"), "--json", "--key", "state")
    assert code == 0 and json.loads(out)["container"] == "state"


def write_files_that_are_not_checkpoints(folder) -> list[tuple]:
    """Files people hand over in place of a checkpoint, each with the start of the sentence it must get."""
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 94365217\n".format("0" * 64)
    (folder / "lfs.pth").write_text(pointer)
    (folder / "lfs.safetensors").write_text(pointer)
    (folder / "page.pth").write_text("<!DOCTYPE html>\n<html><head><title>resnet50.pth</title></head></html>")
    (folder / "keras.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    (folder / "notes.pth").write_text("epoch 90: top-1 76.1\n")
    with zipfile.ZipFile(folder / "bundle.pth", "w") as archive:
        archive.writestr("weights/model.bin", b"\x00" * 16)
    (folder / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(64))
    return [
        (folder / "lfs.pth", "lfs.pth is a Git LFS pointer to a 94 MB file, not the file itself: run `git lfs pull`"),
        (folder / "lfs.safetensors", "lfs.safetensors is a Git LFS pointer to a 94 MB file"),
        (folder / "page.pth", "page.pth is a web page"),
        (folder / "keras.h5", "keras.h5 is an HDF5 file (Keras or TensorFlow weights)"),
        (folder / "notes.pth", "notes.pth is a text file (21 bytes, beginning 'epoch 90: top-1 76.1')"),
        (folder / "bundle.pth", "bundle.pth is a zip archive of 1 file (weights/model.bin), not a PyTorch checkpoint"),
        (folder / "model.onnx", "model.onnx is an ONNX model"),
    ]


def test_files_that_are_not_checkpoints_are_named_for_what_they_are(tmp_path):
    for path, sentence in write_files_that_are_not_checkpoints(tmp_path):
        for read in (load_checkpoint, inspect_checkpoint):
            with pytest.raises(CheckpointError) as refused:
                read(path)
            assert str(refused.value).startswith(sentence), (path.name, str(refused.value))
    # A legacy (pre-zip) pickle and a real zip checkpoint still open.
    state = torchvision_net("resnet18", 2).state_dict()
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(state, tmp_path / "zipped.pth")
    for name in ("legacy.pth", "zipped.pth"):
        assert load_checkpoint(tmp_path / name).card.checkpoint.num_classes == 2


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_and_empty_files(tmp_path, suffix):
    state = torchvision_net("resnet18", 2).state_dict()
    path = tmp_path / f"cut{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut.* is corrupt or truncated"):
        load_checkpoint(path)
    (tmp_path / f"empty{suffix}").write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"empty{suffix} is empty"):
        load_checkpoint(tmp_path / f"empty{suffix}")


def test_nans_and_labels_that_do_not_match(tmp_path):
    state = torchvision_net("resnet18", 3).state_dict()
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "diverged.pth")
    with pytest.raises(CheckpointError, match=r"NaN or infinite values in 1 tensor\(s\) \(first: layer2.0.conv1"):
        load_checkpoint(tmp_path / "diverged.pth")
    torch.save(torchvision_net("resnet18", 3).state_dict(), tmp_path / "r18.pth")
    (tmp_path / "four.txt").write_text("a\nb\nc\nd\n")
    with pytest.raises(CheckpointError, match=r"four.txt names 4 classes, but r18.pth.s classifier has 3 outputs"):
        load_checkpoint(tmp_path / "r18.pth", labels=tmp_path / "four.txt")


# The command line: every command that runs a network takes --checkpoint (and --labels); inspect says what one is.


@pytest.fixture()
def defects(tmp_path):
    """A torchvision ResNet-18 fine-tuned (here: randomised) on 5 kinds of defect, with its labels file."""
    reference = torchvision_net("resnet18", 5, seed=3)
    torch.save(reference.state_dict(), tmp_path / "defects.pth")
    (tmp_path / "defects.txt").write_text("ok\nscratch\ndent\ncrack\nstain\n")
    return reference, tmp_path / "defects.pth", tmp_path / "defects.txt"


def test_cli_inspect_says_what_a_checkpoint_is_or_why_not(capsys, defects, tmp_path):
    _, path, labels = defects
    code, out, _ = in_process(capsys, "inspect", str(path), "--labels", str(labels), "--json")
    payload = json.loads(out)
    assert code == 0 and (payload["arch"], payload["num_classes"], payload["format"]) == ("resnet18", 5, "torch pickle")
    assert (
        payload["labels"] == ["ok", "scratch", "dent", "crack", "stain"] and payload["labels_source"] == "defects.txt"
    )
    assert (payload["preprocess"]["crop_size"], payload["preprocess"]["resize_size"]) == (224, 256)
    state = torchvision.models.mobilenet_v3_small(num_classes=3).state_dict()
    torch.save(state, tmp_path / "mobilenet.pth")
    code, out, _ = in_process(capsys, "inspect", str(tmp_path / "mobilenet.pth"), "--json")
    payload = json.loads(out)
    assert code == 2 and payload["arch"] is None and payload["nearest"] in ARCHITECTURES
    assert len(payload["unexpected"]) == len([key for key in state if not key.endswith("num_batches_tracked")])
    assert payload["missing"] and payload["shape_mismatch"] == []


def test_cli_predict_info_and_verify_run_the_users_network(capsys, defects):
    reference, path, labels = defects
    options = ("--checkpoint", str(path), "--labels", str(labels), "--topk", "5", "--json")
    code, out, _ = in_process(capsys, "predict", str(CHELSEA), *options)
    payload = json.loads(out)
    model = load_checkpoint(path, labels=labels)
    with torch.no_grad():
        probabilities = reference(model.card.preprocess(load_image(CHELSEA)).unsqueeze(0)).softmax(-1)[0]
    expected = [model.card.categories[i] for i in probabilities.argsort(descending=True).tolist()]
    assert code == 0 and payload["arch"] == "resnet18" and [r["label"] for r in payload["topk"]] == expected
    code, out, _ = in_process(capsys, "info", "--checkpoint", str(path), "--json")
    assert code == 0 and json.loads(out)["total_params"] == sum(p.numel() for p in reference.parameters())
    code, out, _ = in_process(capsys, "verify", "--checkpoint", str(path), "--json")
    payload = json.loads(out)
    assert code == 0 and payload["reference"] == "torchvision" and payload["max_abs_diff"] <= 1e-5


@pytest.mark.slow
def test_cli_compare_takes_several_checkpoints_each_with_its_labels(capsys, defects, tmp_path):
    _, path, labels = defects
    other = torchvision_net("resnet34", 3, seed=4)
    torch.save(other.state_dict(), tmp_path / "other.pth")
    (tmp_path / "other.txt").write_text("x\ny\nz\n")
    first = ("--checkpoint", str(path), "--labels", str(labels))
    second = ("--checkpoint", str(tmp_path / "other.pth"), "--labels", str(tmp_path / "other.txt"))
    code, out, err = in_process(
        capsys, "compare", str(CHELSEA), "--archs", "resnet18", "--weights", "none", *first, *second, "--json"
    )
    networks = json.loads(out)
    assert code == 0, err
    assert [n["arch"] for n in networks] == ["resnet18", "resnet18", "resnet34"]
    assert {row["label"] for row in networks[1]["topk"]} <= {"ok", "scratch", "dent", "crack", "stain"}
    assert {row["label"] for row in networks[2]["topk"]} == {"x", "y", "z"}


def test_each_checkpoint_of_compare_and_evaluate_takes_its_own_key_and_feeding(capsys, tmp_path):
    """--key, --crop, --no-normalize, ... belong to the --checkpoint before them, as --labels does; evaluate's rows
    of a network are of one preprocessing: a resume with another is refused before any image is read."""
    plain, averaged = torchvision_net("resnet18", 3, seed=0), torchvision_net("resnet18", 3, seed=1)
    torch.save({"model": plain.state_dict(), "model_ema": averaged.state_dict()}, tmp_path / "run.pth")
    first = ("--checkpoint", str(tmp_path / "run.pth"), "--key", "model_ema", "--no-normalize", "--crop", "64")
    second = ("--checkpoint", str(checkpoint_path(20)), "--labels", str(tmp_path / "ten.txt"))
    (tmp_path / "ten.txt").write_text("\n".join(f"c{index}" for index in range(10)))
    code, out, err = in_process(capsys, "compare", str(CHELSEA), *first, *second, "--json")
    assert code == 0, err
    ema, cifar = json.loads(out)
    fed = inspect_checkpoint(tmp_path / "run.pth").preprocess.changed(crop=64, normalize=False)
    expected = analyze(load_checkpoint(tmp_path / "run.pth", key="model_ema", preprocess=fed), CHELSEA, topk=3)
    assert [row["index"] for row in ema["topk"][:3]] == [index for index, _, _ in expected.topk]
    assert abs(ema["topk"][0]["probability"] - expected.topk[0][2]) <= 1e-5
    assert cifar["topk"][0]["label"].startswith("c")  # its own labels, not the first checkpoint's
    twice = ("--checkpoint", "x.pth", "--crop", "8", "--crop", "9")
    for wrong, message in ((("--key", "ema"), "--key follows the --checkpoint"), (twice, "--crop follows the")):
        code, _, err = in_process(capsys, "compare", str(CHELSEA), *wrong)
        assert code == 2 and message in err
    # evaluate: the rows of a network are of one preprocessing
    run = ("evaluate", "cifar10", "--limit", "4", "--out", str(tmp_path / "eval"), "--json")
    code, _, err = in_process(capsys, *run, "--checkpoint", str(checkpoint_path(20)), "--crop", "32")
    assert code == 0, err
    code, _, err = in_process(capsys, *run, "--checkpoint", str(checkpoint_path(20)), "--no-normalize")
    assert code == 2 and "holds a run with other settings (preprocess=" in err


def test_cli_sanity_and_visualize_take_the_published_cifar10_file(capsys, tmp_path):
    path = str(checkpoint_path(20))
    code, out, err = in_process(capsys, "sanity", str(CAT), "--checkpoint", path, "--steps", "4", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert (payload["arch"], payload["class"], payload["pretrained"]) == ("cifar10_resnet20", "cat", True)
    options = ("--layer", "layer3", "--channel", "3", "--steps", "2", "--out", str(tmp_path / "c3.png"), "--no-cache")
    code, out, err = in_process(capsys, "visualize", "--checkpoint", path, *options, "--json")
    assert code == 0 and json.loads(out)["arch"] == "cifar10_resnet20" and (tmp_path / "c3.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--weights", "DEFAULT"), "give --checkpoint or --weights, not both"),
        (("--arch", "resnet34"), "does not fit resnet34"),
    ],
)
def test_cli_checkpoint_misuse_is_one_line(capsys, defects, extra, message):
    _, path, _ = defects
    code, _, err = in_process(capsys, "predict", str(CHELSEA), "--checkpoint", str(path), *extra)
    assert code == 2 and message in err and err.count("\n") == 1


def bad_inputs(folder) -> list[tuple[object, object, str]]:
    """Every kind of bad input as (checkpoint, labels, what the one sentence must say): a pickled module, a
    network that is not a ResNet, a file cut short, an empty file, NaNs, labels of another count."""
    torch.save(_RenamedResNet20(), folder / "whole.pth")  # a whole model of the user's own classes
    torch.save(torchvision.models.mobilenet_v3_small(num_classes=2).state_dict(), folder / "mobilenet.pth")
    save_file(torchvision_net("resnet18", 2).state_dict(), str(folder / "cut.safetensors"))
    (folder / "cut.safetensors").write_bytes((folder / "cut.safetensors").read_bytes()[:100_000])
    (folder / "empty.pth").write_bytes(b"")
    state = torchvision_net("resnet18", 2).state_dict()
    state["fc.bias"][0] = float("nan")
    torch.save(state, folder / "nan.pth")
    torch.save(torchvision_net("resnet18", 2).state_dict(), folder / "two.pth")
    (folder / "three.txt").write_text("a\nb\nc\n")
    kinds = write_files_that_are_not_checkpoints(folder)
    return [
        *((path, None, sentence) for path, sentence in kinds),
        (folder / "whole.pth", None, "torch.save(model.state_dict()"),
        (folder / "mobilenet.pth", None, "is not a ResNet-family checkpoint"),
        (folder / "cut.safetensors", None, "cut.safetensors is corrupt or truncated"),
        (folder / "empty.pth", None, "empty.pth is empty"),
        (folder / "nan.pth", None, "NaN or infinite values"),
        (folder / "two.pth", folder / "three.txt", "names 3 classes, but two.pth's classifier has 2 outputs"),
    ]


@pytest.mark.slow
def test_cli_bad_checkpoints_are_one_line_each(capsys, tmp_path):
    for path, labels, message in bad_inputs(tmp_path):
        extra = ("--labels", str(labels)) if labels else ()
        code, _, err = in_process(capsys, "predict", str(CHELSEA), "--checkpoint", str(path), *extra)
        assert code == 2 and message in err and err.count("\n") == 1, (path.name, err)
    code, _, err = in_process(capsys, "predict", str(CHELSEA), "--labels", str(tmp_path / "x.txt"))
    assert code == 2 and "give the checkpoint too" in err
