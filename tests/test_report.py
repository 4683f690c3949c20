"""One analysis as a download: a zip of the pictures the tab shows and a JSON of every number."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from demo import analysis_panel as panel
from demo import app_state, gradcam_tab, report
from demo.model_cache import ModelCache
from demo.network_map import RESIDUAL_RATIO
from resnet_core.data import cifar10
from resnet_core.diagram import draw_network_map
from resnet_core.render import cam_overlay, feature_grid
from resnet_core.zoo.architectures import build

CAT = next(path for path in sorted(cifar10.GALLERY_DIR.glob("cat_*.png")))


@pytest.fixture(autouse=True)
def cache():
    app_state.configure(ModelCache(capacity=3, device="cpu"))


def read(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(archive.read(name))))


def test_the_report_holds_what_the_tab_shows():
    *_, state = panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT")
    _, state = gradcam_tab.retarget_cam(state, "5: dog", "layer2", 0.5)  # the report follows the tab's current choice
    path = report.analysis_report(state)
    assert path.endswith(".zip") and "resnet-explorer-cifar10_resnet20-" in path
    stored = app_state.results().get(state["token"])
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == sorted(
            ["analysis.json", "crop.png", "grad_cam.png", "features_stem.png", "features_layer1.png",
             "features_layer2.png", "features_layer3.png", "network_map.png"]
        )  # fmt: skip
        ratios = {name: stats.residual_ratio for name, stats in stored.result.blocks.items()}
        title = f"cifar10_resnet20: {RESIDUAL_RATIO}"
        drawn = draw_network_map(build("cifar10_resnet20"), ratios, RESIDUAL_RATIO, title, log_scale=True)
        assert np.array_equal(read(archive, "network_map.png"), drawn.image)
        assert np.array_equal(read(archive, "crop.png"), np.asarray(stored.result.crop))
        assert np.array_equal(read(archive, "grad_cam.png"), cam_overlay(stored.result.crop, stored.cam, 0.5))
        layer3 = feature_grid(stored.result.stages["layer3"], 64)[0]
        assert np.array_equal(read(archive, "features_layer3.png"), layer3)
        numbers = json.loads(archive.read("analysis.json"))
    assert numbers["arch"] == "cifar10_resnet20" and numbers["pretrained"] is True
    assert numbers["topk"][0] == {"index": 3, "label": "cat", "probability": pytest.approx(stored.result.topk[0][2])}
    assert numbers["grad_cam"] == {"class": "dog", "class_index": 5, "layer": "layer2"}
    ratios = {name: stats.residual_ratio for name, stats in stored.result.blocks.items()}
    assert {name: block["residual_ratio"] for name, block in numbers["blocks"].items()} == pytest.approx(ratios)


def test_a_report_needs_an_analysis():
    with pytest.raises(Exception, match="Run an analysis first"):
        report.analysis_report(None)
