"""One analysis as a download: the pictures as PNG files and every number as JSON, in one zip.

For slides and papers: what the network saw, its Grad-CAM, the feature maps of every stage, and a JSON with the
top-k, the weights and where they came from, and every block's residual statistics. Built from the stored
analysis (recomputed if it has expired), so it is exactly what the tab shows.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from resnet_core.explain.analysis import topk_rows
from resnet_core.render import cam_overlay, feature_grid

from .app_state import stored_analysis
from .image_outputs import download_path, encode_png
from .network_map import RESIDUAL_RATIO, drawn_map
from .public_text import without_paths
from .sessions import Stored, TabState

__all__ = ["analysis_report", "report_numbers"]


def report_numbers(state: TabState, stored: Stored) -> dict:
    """Every number of the analysis, JSON-ready."""
    result = stored.result
    card = result.card
    return {
        "image": Path(state["image"]).name,
        "arch": card.arch.name,
        "weights": card.label,
        "source": without_paths(card.source),
        "pretrained": card.pretrained,
        "label_space": card.label_space.name,
        "preprocess": card.preprocess.describe(),
        "topk": topk_rows(result.topk),
        "grad_cam": {
            "class": card.categories[state["cam_class"]],
            "class_index": state["cam_class"],
            "layer": state["cam_layer"] or result.cam_layer,
        },
        "blocks": {
            name: {
                "residual_ratio": stats.residual_ratio,
                "cosine": stats.cosine,
                "zero_fraction": stats.zero_fraction,
                "projection_shortcut": stats.projection,
            }
            for name, stats in result.blocks.items()
        },
    }


def analysis_report(state: TabState | None) -> str:
    """A zip of the tab's analysis: crop, Grad-CAM overlay, one feature grid per stage, the network map coloured
    by the photo's residual ratios, and analysis.json."""
    state, stored = stored_analysis(state)
    result = stored.result
    pictures: dict[str, Image.Image | np.ndarray] = {
        "crop.png": result.crop,
        "grad_cam.png": cam_overlay(result.crop, stored.cam, 0.5),
        **{f"features_{stage}.png": feature_grid(feature, 64)[0] for stage, feature in result.stages.items()},
        "network_map.png": drawn_map(state["arch"], state["weights"], RESIDUAL_RATIO, state)[0].image,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, picture in pictures.items():
            archive.writestr(name, encode_png(picture))
        archive.writestr("analysis.json", json.dumps(report_numbers(state, stored), indent=2))
    return download_path(buffer.getvalue(), f"resnet-explorer-{result.card.arch.name}.zip")
