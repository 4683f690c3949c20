"""Residual networks as ensembles of short paths (Veit et al. 2016): deletions, re-orderings and the gradient per
path length, each against a hand edit or a hand computation."""

from __future__ import annotations

import copy
import itertools
import json
import math

import pytest
import torch
from torch.nn import functional as F

from resnet_core.explain.paths import PathGradients, deletion_curve, path_gradients, reordering_curve
from resnet_core.measure.evaluation import evaluate
from resnet_core.measure.lesion import interchangeable, lesioned, reordered
from resnet_core.zoo.architectures import build
from resnet_core.zoo.models import BasicBlock, ResNet

from .conftest import hooks_left, randomize_batchnorm


@pytest.fixture(scope="module")
def cifar_net() -> ResNet:
    torch.manual_seed(0)
    return randomize_batchnorm(build("cifar10_resnet20")).eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(16, 3, 32, 32, generator=generator), torch.randint(0, 10, (16,), generator=generator)


@pytest.mark.parametrize("block", ["layer1.1", "layer2.0"])  # an identity shortcut, and option A's zero padding
def test_deleting_a_block_is_running_it_with_its_branch_zeroed(cifar_net, batch, block):
    images, _ = batch
    edited = copy.deepcopy(cifar_net)
    branch_end = edited.get_submodule(block).bn2  # the branch's last layer: zero weight and bias, F(x) = 0
    torch.nn.init.zeros_(branch_end.weight)
    torch.nn.init.zeros_(branch_end.bias)
    with torch.no_grad(), lesioned(cifar_net, block):
        deleted = cifar_net(images)
    with torch.no_grad():
        assert torch.allclose(deleted, edited(images), atol=1e-5)
        assert not torch.allclose(deleted, cifar_net(images), atol=1e-3)  # the block is back, and it mattered


def test_a_deleted_projection_block_outputs_its_projection():
    torch.manual_seed(0)
    model = randomize_batchnorm(build("resnet18")).eval()
    block = model.layer2[0]
    x = torch.rand(2, 64, 16, 16)
    with torch.no_grad(), lesioned(model, "layer2.0", "layer2.1"):
        assert torch.equal(model.layer2(x), block.downsample(x))  # the second block is the identity
    assert model.layer2[0] is block  # whole again


def test_swapped_blocks_run_in_each_others_place_and_go_back(cifar_net, batch):
    images, _ = batch
    assert interchangeable(cifar_net) == [["layer1.0", "layer1.1", "layer1.2"], ["layer2.1", "layer2.2"],
                                          ["layer3.1", "layer3.2"]]  # fmt: skip
    first, second = cifar_net.layer1[0], cifar_net.layer1[2]
    with torch.no_grad():
        x = cifar_net.stem(images)
        x = first(cifar_net.layer1[1](second(x)))  # layer1.2, layer1.1, layer1.0
        expected = cifar_net.forward_head(cifar_net.layer3(cifar_net.layer2(x)))
        with reordered(cifar_net, [("layer1.0", "layer1.2")]):
            assert torch.allclose(cifar_net(images), expected, atol=1e-5)
    assert cifar_net.layer1[0] is first and cifar_net.layer1[2] is second
    with pytest.raises(RuntimeError, match="inside"), reordered(cifar_net, [("layer1.0", "layer1.2")]):
        raise RuntimeError("inside")
    assert cifar_net.layer1[0] is first and cifar_net.layer1[2] is second  # back, even after an error
    mismatched = [("layer1.1", "layer2.0")]
    with pytest.raises(ValueError, match="do not have the same shape"), reordered(cifar_net, mismatched):
        pass


def test_the_curves_start_at_the_networks_own_error(cifar_net, batch):
    images, labels = batch
    own = evaluate(cifar_net, images, labels)[1]
    deletions = deletion_curve(cifar_net, images, labels, ks=[0, 1, 9], draws=3)
    assert deletions.errors[0] == (own,) and len(deletions.errors[1]) == 3
    assert len(deletions.errors[9]) == 1  # all nine blocks: one choice
    with lesioned(cifar_net, *cifar_net.block_names()):
        assert deletions.errors[9] == (evaluate(cifar_net, images, labels)[1],)
    swaps = reordering_curve(cifar_net, images, labels, ks=[0, 2], draws=2)
    assert swaps.errors[0] == (own,) and len(swaps.errors[2]) == 2 and swaps.images == 16
    with pytest.raises(ValueError, match="between 0 and 9"):
        deletion_curve(cifar_net, images, labels, ks=[10])


def _by_hand(model: ResNet, images: torch.Tensor, labels: torch.Tensor, branches: tuple[bool, ...]) -> torch.Tensor:
    """The input gradient through one path of a one-stage network, written out: each block's sum lets the gradient
    through its branch or its shortcut, never both."""
    x = images.clone().requires_grad_(True)
    h = F.relu(model.bn1(model.conv1(x)))
    for block, branch in zip(model.layer1, branches, strict=True):
        residual = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(h)))))
        h = F.relu(residual + h.detach() if branch else residual.detach() + h)
    loss = F.cross_entropy(model.fc(torch.flatten(model.avgpool(h), 1)), labels, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, x)
    return gradient


def test_the_gradient_per_path_length_is_the_four_paths_of_a_two_block_network():
    torch.manual_seed(0)
    model = randomize_batchnorm(ResNet(BasicBlock, [2], num_classes=3, widths=(4,), stem_type="cifar")).eval()
    images, labels = torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    paths = {choice: _by_hand(model, images, labels, choice) for choice in itertools.product((False, True), repeat=2)}
    # The unravelled view is exact: the four paths' gradients add up to the network's whole gradient.
    x = images.clone().requires_grad_(True)
    (whole,) = torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)
    assert torch.allclose(sum(paths.values()), whole, atol=1e-5)
    norm = {choice: float(gradient.flatten(1).norm(dim=1).mean()) for choice, gradient in paths.items()}
    measured = path_gradients(model, images, labels)
    expected = [norm[(False, False)], (norm[(True, False)] + norm[(False, True)]) / 2, norm[(True, True)]]
    assert measured.per_path == pytest.approx(expected, rel=1e-5) and measured.samples == (1, 2, 1)
    assert measured.counts == (1, 2, 1) and measured.total == pytest.approx([expected[0], 2 * expected[1], expected[2]])
    assert hooks_left(model) == 0
    with pytest.raises(IndexError):  # a label the head has no class for, raised inside the gated backward pass
        path_gradients(model, images, torch.tensor([0, 1, 2, 0, 7]))
    assert hooks_left(model) == 0 and model.training is False
    with pytest.raises(ValueError, match="single path"):
        path_gradients(build("cifar10_plain20"), images, labels)


def test_the_effective_lengths_are_the_narrowest_range_carrying_the_share():
    gradients = PathGradients(per_path=(1.0, 1.0, 0.5, 1 / 30, 0.0), samples=(1, 4, 6, 4, 1))
    assert gradients.counts == (1, 4, 6, 4, 1)
    assert gradients.total == pytest.approx((1.0, 4.0, 3.0, 4 / 30, 0.0))
    assert gradients.effective(0.8) == (1, 2) and gradients.effective(0.99) == (0, 3)


def test_the_command_line_measures_the_shipped_networks_on_their_own_test_images(capsys):
    from resnet_core import create_model
    from resnet_core.__main__ import main as cli
    from resnet_core.data import cifar10

    options = ["--limit", "32", "--draws", "2", "--samples", "2", "--gradient-images", "8", "--json"]
    assert cli(["paths", "--arch", "cifar10_resnet20", *options]) == 0
    payload = json.loads(capsys.readouterr().out)
    model = create_model("cifar10_resnet20", weights="DEFAULT")
    images, labels, _ = cifar10.load_subset()
    batch = cifar10.to_batch(images[:32], model.card.preprocess.mean, model.card.preprocess.std)
    own = evaluate(model, batch, torch.from_numpy(labels[:32]).long())[1]
    assert payload["images"] == "the first 32 of the 500 CIFAR-10 test images shipped with the app (every 20th)"
    assert payload["deleted_blocks"][0] == {"k": 0, "mean": own, "std": 0.0, "draws": 1}
    assert [row["k"] for row in payload["deleted_blocks"]] == list(range(10))
    assert payload["swapped_pairs"][0]["mean"] == own and len(payload["swapped_pairs"]) == 8  # 7 swappable blocks
    gradients = payload["path_gradients"]
    assert gradients["paths"] == [math.comb(9, k) for k in range(10)] and len(gradients["effective"]) == 2
    assert cli(["paths", "--arch", "digits_plain20", *options]) == 0  # a plain twin: deletions only
    plain = json.loads(capsys.readouterr().out)
    assert plain["swapped_pairs"] is None and plain["path_gradients"] is None and plain["deleted_blocks"][0]["k"] == 0
    assert cli(["paths", "--arch", "resnet18", "--weights", "none", "--limit", "4"]) == 2
    assert "they ship for the CIFAR-10 and the digit networks" in capsys.readouterr().err


def test_the_digits_are_drawn_from_every_class():
    """The shipped digits are sorted by class: their first 500 are all zeros, so a curve on a prefix would measure
    a network on one class."""
    from resnet_core import create_model
    from resnet_core.explain.paths import labelled_test_images

    _, labels, shown = labelled_test_images(create_model("digits_resnet20"), 500)
    assert labels.bincount().tolist() == [50] * 10 and shown.startswith("every 10th of the 5,000 shipped")
