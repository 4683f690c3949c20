"""The Short paths tab: its curves are the library's, on the network's own test images, beside a trained twin."""

from __future__ import annotations

import numpy as np
import pytest

from demo import app_state, paths_tab
from demo.model_cache import ModelCache
from resnet_core import create_model
from resnet_core.explain.paths import deletion_curve, labelled_test_images, path_gradients


@pytest.fixture(autouse=True)
def cache(monkeypatch):
    app_state.configure(ModelCache(capacity=3, device="cpu"))
    # A fifth of the tab's images and paths: the test compares the drawing with the library, not the figures.
    monkeypatch.setattr(paths_tab, "IMAGES", 100)
    monkeypatch.setattr(paths_tab, "GRADIENT_IMAGES", 8)


def lines(axes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {line.get_label(): line.get_data() for line in axes.get_lines()}


@pytest.mark.slow  # each view measures a network hundreds of times over its test images
def test_the_curves_are_the_librarys_for_a_cifar10_network():
    figure, summary = paths_tab.paths_views("cifar10_resnet20", "DEFAULT")
    deleted, swapped, lengths = figure.axes
    model = create_model("cifar10_resnet20", weights="DEFAULT")
    images, labels, _ = labelled_test_images(model, paths_tab.IMAGES)
    ks, errors = lines(deleted)["cifar10_resnet20"]
    assert list(ks) == paths_tab._ks(9) == [0, 1, 2, 3, 6, 9]
    expected = deletion_curve(model, images, labels, ks=list(ks), draws=paths_tab.DRAWS)
    assert errors == pytest.approx([100 * value for value in expected.mean().values()])
    gradients = path_gradients(
        model, images[: paths_tab.GRADIENT_IMAGES], labels[: paths_tab.GRADIENT_IMAGES], paths_tab.SAMPLES
    )
    _, shares = lines(lengths)["cifar10_resnet20"]
    assert shares == pytest.approx(100 * np.asarray(gradients.total) / sum(gradients.total))
    first, last = gradients.effective()
    assert f"{errors[0]:.1f}% error intact" in summary and f"paths of {first} to {last} of its 9 blocks" in summary
    assert "the first 100 of the 500 CIFAR-10 test images" in figure.get_suptitle()
    assert "cifar10_resnet20" in lines(swapped)


@pytest.mark.slow
def test_a_digit_network_is_drawn_beside_its_trained_plain_twin():
    figure, summary = paths_tab.paths_views("digits_resnet20", "DEFAULT")
    deleted, swapped, lengths = figure.axes
    assert set(lines(deleted)) == {"digits_resnet20", "digits_plain20"}
    assert set(lines(swapped)) == set(lines(lengths)) == {"digits_resnet20"}  # a plain net has one path
    plain, residual = lines(deleted)["digits_plain20"][1], lines(deleted)["digits_resnet20"][1]
    # One block deleted leaves the plain net at chance (90% error: its single path is cut), not its residual twin.
    assert plain[1] >= 85 and residual[1] < plain[1] - 20
    assert "**digits_plain20**" in summary and "plain network has one path" in summary


def test_the_deleted_block_counts_cover_the_curve_in_a_handful_of_points():
    assert paths_tab._ks(27) == [0, 1, 2, 3, 6, 12, 24, 27] and paths_tab._ks(1) == [0, 1]


def test_a_network_without_shipped_test_images_is_one_sentence():
    with pytest.raises(Exception, match="ship for the CIFAR-10 and the digit networks"):
        paths_tab.paths_views("resnet18", "random init")
