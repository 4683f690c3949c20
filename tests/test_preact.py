"""Pre-activation ResNets and Wide ResNets, as robustness research publishes them.

The references are written here from the papers (He et al. 2016, "Identity Mappings in Deep Residual Networks";
Zagoruyko and Komodakis 2016, "Wide Residual Networks") with the module names of the layouts their checkpoints
come in: RobustBench's Wide ResNet (``block1.layer.0.bn1``, ``convShortcut`` without BN, ``bn1`` closing the
network, TRADES' never-run ``sub_block1``, a classifier with or without bias), the PreActResNet of the robustness
repositories (``layer1.0.shortcut.0``, an optional closing ``bn``, ``linear``; a projection that reads the block's
pre-activation or its raw input), and timm's ResNetV2 on ImageNet (the installed timm itself). Each file holds
random weights and randomised BN statistics, and must open as the right spec with the reference's logits.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file
from torch import nn

from resnet_core import ARCHITECTURES, create_model, load_checkpoint, load_image
from resnet_core.diagram import draw_network_map
from resnet_core.explain.analysis import analyze
from resnet_core.explain.evidence import evidence_split
from resnet_core.measure.complexity import count_costs
from resnet_core.measure.lesion import lesioned
from resnet_core.measure.receptive_field import receptive_fields
from resnet_core.zoo.architectures import CIFAR_VARIANTS, PREACT_CIFAR_FAMILY, WRN_FAMILY, build, wide_resnet_spec
from resnet_core.zoo.checkpoints import CheckpointError, inspect_checkpoint

from .conftest import SLOW, hub_snapshot, randomize_batchnorm
from .test_evidence import scaled_logit

# --- RobustBench's Wide ResNet layout -------------------------------------------------------------------------


class _WideBlock(nn.Module):
    """WRN's basic block: BN-ReLU before each 3x3; where the width or stride changes, a bare 1x1 projection of the
    pre-activated input (``convShortcut``), else the identity of the raw input."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(inputs), nn.ReLU()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(outputs), nn.ReLU()
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.same = inputs == outputs and stride == 1
        self.convShortcut = None if self.same else nn.Conv2d(inputs, outputs, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        return out + (x if self.convShortcut is None else self.convShortcut(pre))


class _Group(nn.Module):
    def __init__(self, count: int, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        blocks = [_WideBlock(inputs if i == 0 else outputs, outputs, stride if i == 0 else 1) for i in range(count)]
        self.layer = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-k: a 16-wide 3x3 stem, three groups of (depth - 4) / 6 blocks 16k, 32k and 64k wide, BN-ReLU,
    global average pooling, a linear classifier. ``sub_block1`` as TRADES builds it: weights no forward uses."""

    def __init__(self, depth: int, k: int, classes: int = 10, sub_block1: bool = False, bias_last: bool = True):
        super().__init__()
        n, widths = (depth - 4) // 6, (16, 16 * k, 32 * k, 64 * k)
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.block1 = _Group(n, widths[0], widths[1], 1)
        if sub_block1:
            self.sub_block1 = _Group(n, widths[0], widths[1], 1)
        self.block2 = _Group(n, widths[1], widths[2], 2)
        self.block3 = _Group(n, widths[2], widths[3], 2)
        self.bn1, self.relu = nn.BatchNorm2d(widths[3]), nn.ReLU()
        self.fc = nn.Linear(widths[3], classes, bias=bias_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(self.relu(self.bn1(out)), 1).flatten(1))


# --- The PreActResNet layout ----------------------------------------------------------------------------------


class _PreActBlock(nn.Module):
    """He et al. 2016's block, basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 at four times the width out), with a
    ``shortcut`` Sequential holding a bare 1x1 projection where the shape changes. ``reads_preact``: the projection
    reads the pre-activated input (the paper's code); else the raw input (RobustBench's ``PreActBlock``)."""

    def __init__(self, inputs: int, planes: int, stride: int, bottleneck: bool, reads_preact: bool) -> None:
        super().__init__()
        outputs = planes * (4 if bottleneck else 1)
        self.bottleneck, self.reads_preact = bottleneck, reads_preact
        self.bn1 = nn.BatchNorm2d(inputs)
        if bottleneck:
            self.conv1 = nn.Conv2d(inputs, planes, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, outputs, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(inputs, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        skip = x
        if hasattr(self, "shortcut"):
            skip = self.shortcut(pre if self.reads_preact else x)
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        if self.bottleneck:
            out = self.conv3(F.relu(self.bn3(out)))
        return out + skip


class PreActResNet(nn.Module):
    """A 3x3 stem conv (no BN), stages of pre-activation blocks, an optional closing BN-ReLU (``bn``), global
    average pooling and ``linear``."""

    def __init__(
        self,
        layers: tuple[int, ...],
        widths: tuple[int, ...] = (64, 128, 256, 512),
        bottleneck: bool = False,
        closing_bn: bool = True,
        reads_preact: bool = True,
        classes: int = 10,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        inputs = widths[0]
        for index, (count, planes) in enumerate(zip(layers, widths, strict=True)):
            blocks = []
            for i in range(count):
                stride = 2 if index > 0 and i == 0 else 1
                blocks.append(_PreActBlock(inputs, planes, stride, bottleneck, reads_preact))
                inputs = planes * (4 if bottleneck else 1)
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.stages = len(layers)
        if closing_bn:
            self.bn = nn.BatchNorm2d(inputs)
        self.linear = nn.Linear(inputs, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        for index in range(self.stages):
            out = getattr(self, f"layer{index + 1}")(out)
        if hasattr(self, "bn"):
            out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def seeded(make, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_batchnorm(make(), seed).eval()


def gap(ours: nn.Module, theirs: nn.Module, size: int = 32) -> float:
    """The largest logit difference on random inputs, in float64 so the comparison tests the layout, not rounding."""
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        return (ours.double()(x) - theirs.double()(x)).abs().max().item()


# file name: (reference, what to ask for (None: nothing), the architecture it opens as, its family, card words)
CASES = {
    "robustbench_wrn16_8.pt": (
        lambda: WideResNet(16, 8),
        None,
        "cifar10_wrn16_8",
        WRN_FAMILY,
        "RobustBench's WideResNet layout (blockN.layer.M, convShortcut)",
    ),
    "trades_wrn28_10.pt": (
        lambda: WideResNet(28, 10, sub_block1=True),
        None,
        "cifar10_wrn28_10",
        WRN_FAMILY,
        "49 keys of sub_block1 left out: its network builds it and never runs it",
    ),
    "wrn22_4_no_bias_cifar100.safetensors": (
        lambda: WideResNet(22, 4, classes=100, bias_last=False),
        None,
        "cifar_wrn22_4",
        CIFAR_VARIANTS,
        "a classifier without bias, opened with a zero bias (the same function)",
    ),
    "rice2020_preact18.pt": (
        lambda: PreActResNet((2, 2, 2, 2)),
        None,
        "cifar10_preact_resnet18",
        PREACT_CIFAR_FAMILY,
        "ask for cifar10_preact_resnet18_inputproj for those",
    ),
    "wong2020_preact18.pt": (
        lambda: PreActResNet((2, 2, 2, 2), closing_bn=False, reads_preact=False),
        "cifar_preact_resnet18_nofinal_inputproj",
        "cifar_preact_resnet18_nofinal_inputproj",
        CIFAR_VARIANTS,
        "opened with projections reading the raw input, as asked",
    ),
    "kuangliu_preact18.pt": (
        lambda: PreActResNet((2, 2, 2, 2), closing_bn=False),
        None,
        "cifar_preact_resnet18_nofinal",
        CIFAR_VARIANTS,
        "with projection shortcuts reading the block's pre-activation and no BN-ReLU before the pooling",
    ),
    "he2016_preact164.pt": (
        lambda: PreActResNet((18, 18, 18), (16, 32, 64), bottleneck=True),
        None,
        "cifar10_preact_resnet164",
        PREACT_CIFAR_FAMILY,
        "recognised as cifar10_preact_resnet164 from its keys and shapes",
    ),
}
SLOW_CASES = {"trades_wrn28_10.pt", "he2016_preact164.pt"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=SLOW if n in SLOW_CASES else []) for n in CASES])
def test_a_published_layout_opens_as_its_spec_with_the_references_logits(name, tmp_path):
    make, asked, arch, family, words = CASES[name]
    theirs = seeded(make)
    path = tmp_path / name
    if path.suffix == ".safetensors":
        save_file(theirs.state_dict(), str(path))
    else:
        torch.save({"epoch": 100, "state_dict": theirs.state_dict()}, path)
    model = load_checkpoint(path, arch=asked)
    assert model.card.arch.name == arch and model.card.arch.family == family
    assert (arch in ARCHITECTURES) == (family != CIFAR_VARIANTS)
    assert gap(model, theirs) <= 1e-10
    sentence = model.card.checkpoint.sentence()
    assert f"recognised as {arch}" in sentence and words in sentence, sentence
    # Every parameter the reference runs is counted once in the cost table, none twice.
    used = sum(p.numel() for n, p in theirs.named_parameters() if not n.startswith("sub_block1."))
    bias = 0 if getattr(theirs, "fc", None) is None or theirs.fc.bias is not None else theirs.fc.out_features
    assert count_costs(model, 32).total_params == used + bias


def test_projections_reading_the_raw_input_are_a_real_difference_and_only_asked_for(tmp_path):
    """RobustBench's PreActBlock and the paper's have the same keys: the file alone opens as the paper's, which is
    another function, and says how to ask for the other; a network without projections cannot be asked."""
    theirs = seeded(lambda: PreActResNet((2, 2, 2, 2), closing_bn=False, reads_preact=False))
    torch.save(theirs.state_dict(), tmp_path / "wong.pt")
    unasked = load_checkpoint(tmp_path / "wong.pt")
    assert unasked.card.arch.name == "cifar_preact_resnet18_nofinal" and gap(unasked, theirs) > 1e-3
    assert "ask for cifar_preact_resnet18_nofinal_inputproj" in unasked.card.checkpoint.sentence()
    asked = load_checkpoint(tmp_path / "wong.pt", arch="cifar_preact_resnet18_nofinal_inputproj")
    assert gap(asked, theirs) <= 1e-10
    torch.save(build("resnet18").state_dict(), tmp_path / "post.pt")
    with pytest.raises(CheckpointError, match="no projection shortcuts of a pre-activation network"):
        load_checkpoint(tmp_path / "post.pt", arch="resnet18_inputproj")


class _Normalising(PreActResNet):
    """RobustBench's way to ship a network trained on normalised images: it takes pixels in [0, 1] and holds the
    mean and std as buffers (``mu``, ``sigma``) it applies first."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("mu", torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1))
        self.register_buffer("sigma", torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward((x - self.mu) / self.sigma)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_network_that_normalises_its_own_input_gets_that_as_its_preprocessing(suffix, tmp_path, photos):
    """Its buffers are no layer of ours but the preprocessing: the photo's probabilities equal the reference's on
    the same pixels in [0, 1], through inspect (shapes only) and load alike."""
    theirs = seeded(lambda: _Normalising((1, 1, 1, 1), closing_bn=False, reads_preact=False))
    path = tmp_path / f"wong2020fast{suffix}"
    if suffix == ".safetensors":
        save_file(theirs.state_dict(), str(path))
    else:
        torch.save(theirs.state_dict(), path)
    arch = "cifar_preact_resnet10_nofinal_inputproj"
    info = inspect_checkpoint(path, arch=arch)
    assert info.preprocess.mean == pytest.approx((0.4914, 0.4822, 0.4465))
    assert info.preprocess.std == pytest.approx((0.2471, 0.2435, 0.2616))
    model = load_checkpoint(path, arch=arch)
    assert (
        "the network's own input normalisation (mu, sigma) taken as its preprocessing"
        in model.card.checkpoint.sentence()
    )
    crop = model.card.preprocess.crop(load_image(photos / "chelsea.png"))
    pixels = torchvision.transforms.functional.to_tensor(crop).unsqueeze(0)
    with torch.no_grad():
        ours = model(model.card.preprocess.normalize(crop).unsqueeze(0))
        assert (ours - theirs(pixels)).abs().max().item() <= 1e-4


@pytest.mark.parametrize(
    "timm_name, arch", [("resnetv2_18", "preact_resnet18"), pytest.param("resnetv2_50", "preact_resnet50", marks=SLOW)]
)
def test_timms_resnetv2_opens_as_the_imagenet_preact_spec(timm_name, arch, tmp_path):
    timm = pytest.importorskip("timm")
    theirs = seeded(lambda: timm.create_model(timm_name))
    torch.save(theirs.state_dict(), tmp_path / f"{timm_name}.pth")
    info = inspect_checkpoint(tmp_path / f"{timm_name}.pth")
    assert info.recognition.arch == arch and "timm's ResNetV2 layout" in info.recognition.sentence()
    assert "inputproj" not in info.recognition.sentence()  # timm's code fixes what its projections read
    model = load_checkpoint(tmp_path / f"{timm_name}.pth")
    assert gap(model, theirs, 64) <= 1e-9
    assert count_costs(model, 64).total_params == sum(p.numel() for p in theirs.parameters())


def test_timms_published_resnetv2_opens_from_the_hub_cache_with_its_preprocessing(tmp_path, monkeypatch):
    """``hf-hub:timm/resnetv2_18.ra4_e3600_r224_in1k`` as huggingface_hub caches it (random weights in its layout
    and the config timm publishes beside them): the README's way to the ImageNet pre-activation weights."""
    timm = pytest.importorskip("timm")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    theirs = seeded(lambda: timm.create_model("resnetv2_18"))
    cfg = timm.models.get_pretrained_cfg("resnetv2_18.ra4_e3600_r224_in1k").to_dict()
    config = {"architecture": "resnetv2_18", "num_classes": 1000, "pretrained_cfg": cfg}
    hub_snapshot(tmp_path / "hf", "timm/resnetv2_18.ra4_e3600_r224_in1k", theirs.state_dict(), config)
    model = load_checkpoint("hf-hub:timm/resnetv2_18.ra4_e3600_r224_in1k")
    assert model.card.arch.name == "preact_resnet18" and model.card.checkpoint.format == "hf-hub (timm)"
    assert model.card.categories[0] == "tench"  # ImageNet's own classes at ImageNet's count
    assert model.card.preprocess.crop_size == cfg["input_size"][-1]
    assert gap(model, theirs, 64) <= 1e-9


def test_the_wide_resnet_spec_reads_depth_and_factor_as_the_paper_does():
    spec = wide_resnet_spec(28, 10)
    assert spec is not None and spec.name == "cifar10_wrn28_10" and spec == ARCHITECTURES["cifar10_wrn28_10"]
    assert (spec.layers, spec.widths, spec.stem_width) == ((4, 4, 4), (160, 320, 640), 16)
    with pytest.raises(ValueError, match="6n\\+4"):
        wide_resnet_spec(30, 10)
    with torch.device("meta"):  # the paper's Table 1: 36.5 M parameters for WRN-28-10, 2.2 M for WRN-40-2
        assert round(sum(p.numel() for p in build("cifar10_wrn28_10").parameters()) / 1e6, 1) == 36.5
        assert round(sum(p.numel() for p in build("cifar10_wrn40_2").parameters()) / 1e6, 1) == 2.2


def trained_like(name: str) -> nn.Module:
    """The registered network with random weights in every layer (its untrained default zeroes each branch's last
    convolution, as timm's ResNetV2 does) and randomised BN statistics, under its untrained card."""
    model = create_model(name)
    torch.manual_seed(3)
    for block in model.block_names():
        last = model.get_submodule(f"{block}.conv{model.get_submodule(block).convs}")
        nn.init.kaiming_normal_(last.weight, mode="fan_out", nonlinearity="relu")
    return randomize_batchnorm(model, 3).eval()


@pytest.mark.parametrize("name", ["cifar10_preact_resnet18", pytest.param("cifar10_wrn28_10", marks=SLOW)])
def test_every_view_reads_a_preact_network_where_its_features_are(name, photos):
    """The last stage's map, the one Grad-CAM reads, is the closing BN-ReLU's output; residual ratios see both terms;
    the evidence split's terms are the logit's derivatives (finite differences in float64, on a block with a
    projection that reads the pre-activation and on an identity block); a lesioned projection block keeps its
    BN-ReLU; costs count every parameter once; fields grow; the network map draws every block."""
    model = trained_like(name).double()
    result = analyze(model, photos / "chelsea.png")
    crop = model.card.preprocess.normalize(result.crop).unsqueeze(0).double()
    with torch.no_grad():
        features = model.stem(crop)
        for stage in model.stage_names:
            features = model.get_submodule(stage)(features)
        closing = F.relu(model.final_bn(features))[0]
    assert torch.allclose(result.stages[model.stage_names[-1]].double(), closing, atol=1e-5)
    assert result.cam.shape == (32, 32) and np.isfinite(result.cam).all() and result.cam.max() > result.cam.min()
    assert all(stats.residual_ratio > 0 and stats.cosine is not None for stats in result.blocks.values())

    split = evidence_split(model, photos / "chelsea.png")
    step = 1e-7
    for block in ("layer2.0", "layer2.1"):  # a projection reading the pre-activation, then an identity
        entry = split.block(block)
        for term in ("branch", "shortcut"):
            up, down = (scaled_logit(model, crop, block, term, 1 + s, split.class_index) for s in (step, -step))
            assert getattr(entry, term) == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-6), (block, term)

    block = model.get_submodule("layer2.0")
    x = torch.randn(1, block.in_planes, 8, 8, dtype=torch.float64)
    with lesioned(model, "layer2.0"), torch.no_grad():
        assert torch.equal(model.get_submodule("layer2.0")(x), block.downsample(F.relu(block.bn1(x))))
    assert count_costs(model.float(), 32).total_params == sum(p.numel() for p in model.parameters())
    fields = list(receptive_fields(model).values())
    assert all(later.size >= earlier.size for earlier, later in itertools.pairwise(fields))
    picture = draw_network_map(model)
    assert len(picture.boxes) >= len(model.block_names())
