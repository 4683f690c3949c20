"""CIFAR ResNets as training repositories write them: projection shortcuts, any class count, a stem bias, four stages.

The reference networks are written here, in the two styles most CIFAR repositories and model hubs use (a
``shortcut`` or a ``downsample`` Sequential of 1x1 conv + BN where the shape changes, the classifier ``linear`` or
``fc``), with random weights and randomised BN statistics. Each must open as the CIFAR layout its shapes spell out,
with the reference's logits.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from resnet_core import ARCHITECTURES, load_checkpoint, load_image
from resnet_core.data import cifar10
from resnet_core.zoo.architectures import CIFAR_VARIANTS, cifar_variant

from .conftest import randomize_batchnorm
from .test_cli import in_process


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, inputs: int, planes: int, stride: int, shortcut: str, option: str = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut_name = shortcut
        change = _projection(inputs, planes, stride) if option == "B" else _ZeroPad(inputs, planes, stride)
        setattr(self, shortcut, change)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + getattr(self, self.shortcut_name)(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inputs: int, planes: int, stride: int, shortcut: str, option: str = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.shortcut_name = shortcut
        setattr(self, shortcut, _projection(inputs, planes * 4, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.relu(self.bn3(self.conv3(out)) + getattr(self, self.shortcut_name)(x))


def _projection(inputs: int, outputs: int, stride: int) -> nn.Sequential:
    """Option B: a 1x1 conv + BN where the shape changes, else the identity (an empty Sequential, no keys)."""
    if stride == 1 and inputs == outputs:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs))


class _ZeroPad(nn.Module):
    """Option A: every other pixel, and zero channels on both sides where the width grows (no weights)."""

    def __init__(self, inputs: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride, self.pad = stride, (planes - inputs) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))


class _CifarResNet(nn.Module):
    """A 3x3 stem conv at stride 1, no pool, stages of blocks (the first at stride 1), global pool, a classifier."""

    def __init__(
        self, block, layers, widths, classes, shortcut="shortcut", head="linear", stem_bias=False, option="B"
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=stem_bias)
        self.bn1 = nn.BatchNorm2d(widths[0])
        inputs = widths[0]
        for index, (count, planes) in enumerate(zip(layers, widths, strict=True)):
            blocks = []
            for position in range(count):
                blocks.append(block(inputs, planes, 2 if index and not position else 1, shortcut, option))
                inputs = planes * block.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.head, self.stages = head, len(layers)
        setattr(self, head, nn.Linear(inputs, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        for index in range(self.stages):
            out = getattr(self, f"layer{index + 1}")(out)
        return getattr(self, self.head)(F.adaptive_avg_pool2d(out, 1).flatten(1))


def reference(*args, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(_CifarResNet(*args, **kwargs), seed).eval()


def gap(ours: nn.Module, theirs: nn.Module) -> float:
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return (ours(x) - theirs(x)).abs().max().item()


CASES = {  # file name: (reference, the variant it opens as, what the card says)
    "chenyaofo_resnet56_cifar100.pth": (
        lambda: reference(_Basic, (9, 9, 9), (16, 32, 64), 100, shortcut="downsample", head="fc"),
        "cifar_resnet56_b",
        "a CIFAR ResNet-56 (basic blocks, 3 stages of widths 16/32/64) with projection shortcuts",
    ),
    "resnet20_bias.pth": (
        lambda: reference(_Basic, (3, 3, 3), (16, 32, 64), 10, stem_bias=True),
        "cifar_resnet20_b_bias",
        "with projection shortcuts, a bias on the stem conv",
    ),
    "wide.safetensors": (
        lambda: reference(_Basic, (1, 1, 1), (32, 64, 128), 7),
        "cifar_resnet8_b_w32-64-128",
        "3 stages of widths 32/64/128",
    ),
    "resnet14_option_a.pth": (
        lambda: reference(_Basic, (2, 2, 2), (16, 32, 64), 10, option="A"),
        "cifar_resnet14",
        "with zero-padding shortcuts, from its keys and shapes (torch pickle; 10 classes; 3 input channels",
    ),
    "kuangliu_resnet18.pth": (
        lambda: reference(_Basic, (2, 2, 2, 2), (64, 128, 256, 512), 10),
        "cifar_resnet18_b",
        "a CIFAR ResNet-18 (basic blocks, 4 stages of widths 64/128/256/512)",
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_a_cifar_layout_from_a_training_repository_opens_as_what_its_shapes_say(name, tmp_path):
    make, variant, words = CASES[name]
    theirs = make()
    path = tmp_path / name
    if path.suffix == ".safetensors":  # sorted keys: names alone decide, the order is not needed
        save_file(theirs.state_dict(), str(path))
    else:
        torch.save({"epoch": 200, "net": theirs.state_dict(), "acc": 94.1}, path)
    assert variant not in ARCHITECTURES  # none of these is registered: read off the file
    model = load_checkpoint(path)
    assert model.card.arch.name == variant and model.card.arch.family == CIFAR_VARIANTS
    assert gap(model, theirs) <= 1e-5
    sentence = model.card.checkpoint.sentence()
    assert f"recognised as {variant}, " in sentence and words in sentence
    if variant == "cifar_resnet14":  # option A: said, since a plain net of these layers could have written the file
        assert "option A shortcuts hold no weights: a plain network of these layers has the same keys" in sentence
    classes = theirs.fc.out_features if hasattr(theirs, "fc") else theirs.linear.out_features
    assert len(model.card.categories) == classes == model.card.checkpoint.num_classes
    if classes == 10:
        assert model.card.categories[3] == "cat"  # CIFAR-10's own classes at CIFAR-10's count


def test_the_variant_is_built_from_its_parameters_and_costs_and_lesions_take_it(tmp_path):
    spec = cifar_variant("bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), "B")
    assert (spec.name, spec.depth, spec.num_blocks) == ("cifar_resnet50_b", 50, 16)
    theirs = reference(_Bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), 100, head="linear")
    torch.save(theirs.state_dict(), tmp_path / "resnet50.pth")
    model = load_checkpoint(tmp_path / "resnet50.pth")
    assert model.card.arch.name == "cifar_resnet50_b" and gap(model, theirs) <= 1e-5
    from resnet_core.measure.complexity import cost_table
    from resnet_core.measure.lesion import lesioned

    table = cost_table(model.card.arch, 32)
    assert table.total_params == sum(p.numel() for p in theirs.parameters())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad(), lesioned(model, "layer3.2"):  # a deleted identity block: its branch gone
        block = theirs.layer3[2]
        block.forward = lambda inputs: inputs  # the same deletion, by hand, on the reference
        assert (model(x) - theirs(x)).abs().max().item() <= 1e-5


def test_a_projection_cifar_checkpoint_through_inspect_and_predict(tmp_path, capsys):
    make, variant, words = CASES["chenyaofo_resnet56_cifar100.pth"]
    torch.save(make().state_dict(), tmp_path / "r56.pth")
    code, out, err = in_process(capsys, "inspect", str(tmp_path / "r56.pth"), "--json")
    found = json.loads(out)
    assert code == 0 and found["arch"] == variant and found["num_classes"] == 100 and words in found["sentence"]
    cat = next(iter(sorted(cifar10.GALLERY_DIR.glob("cat_*.png"))))
    code, out, err = in_process(capsys, "predict", str(cat), "--checkpoint", str(tmp_path / "r56.pth"), "--json")
    assert code == 0, err
    model = load_checkpoint(tmp_path / "r56.pth")
    with torch.inference_mode():
        expected = model(model.card.preprocess(load_image(cat))[None]).softmax(-1)[0].topk(5)
    assert [row["index"] for row in json.loads(out)["topk"]] == expected.indices.tolist()


def test_the_app_opens_a_cifar_variant_lists_it_and_runs_every_view_on_it(tmp_path):
    """Your model: a projection ResNet-56 of 100 classes is listed among the CIFAR networks by its variant's name,
    picked again after another network, and answers as the library does in Analyze, the facts and the costs."""
    from demo import analysis_panel as panel
    from demo import app_state, catalog
    from demo.model_cache import ModelCache
    from resnet_core.explain.analysis import analyze

    app_state.configure(ModelCache(capacity=2, device="cpu"))
    make, variant, _ = CASES["chenyaofo_resnet56_cifar100.pth"]
    torch.save(make().state_dict(), tmp_path / "r56.pth")
    family, arch, token, status, opened = panel.open_checkpoint(str(tmp_path / "r56.pth"), None, [], None)
    try:
        assert (family, arch) == (catalog.CIFAR_FAMILY, variant) and f"recognised as {variant}, " in status
        arch_pick, weights_pick = panel.checkpoint_pickers(arch, token)
        assert arch_pick["choices"][-1] == variant and "cifar10_resnet56" in arch_pick["choices"]
        assert weights_pick["value"] == token
        # Another network, then the family again and the variant again: its checkpoint comes back as its weights.
        assert panel.on_family(catalog.CIFAR_FAMILY, opened)[0]["choices"][-1] == variant
        assert panel.on_arch(variant, opened)["value"] == token
        cat = next(iter(sorted(cifar10.GALLERY_DIR.glob("cat_*.png"))))
        label, *_ = panel.analyze_image(str(cat), variant, token)
        expected = analyze(load_checkpoint(tmp_path / "r56.pth"), cat, topk=5)
        assert label == {f"{name} ({index})": p for index, name, p in expected.topk}
        facts = app_state.model_facts(variant, token)
        assert f"**{variant}** · {CIFAR_VARIANTS} · 56 weighted layers · 27 blocks" in facts
        assert catalog.costs(variant, token).total_params == sum(p.numel() for p in make().parameters())
    finally:
        app_state.forget_uploads(opened)
