"""The network map as a service of the app: the picked network drawn stem to head from its own description, each
block coloured by a number from the costs, the photo's analysis, or the test-set studies. The Network map tab
shows it; the report downloads it."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import gradio as gr
import torch

from resnet_core.diagram import NetworkMap, draw_network_map
from resnet_core.zoo.architectures import ArchSpec
from resnet_core.zoo.architectures import build as build_model
from resnet_core.zoo.models import ResNet

from . import catalog
from .app_state import costs, results, settled_weights, stored_evidence
from .lab_results import computed_fig7, recent_lesion
from .sessions import Stored, TabState

__all__ = [
    "EVIDENCE_SHARE",
    "FIG7",
    "LESION",
    "OVERLAYS",
    "RESIDUAL_RATIO",
    "drawn_map",
    "stored_analysis_of",
    "structure",
]

RESIDUAL_RATIO = "residual ratio ||F(x)|| / ||shortcut(x)|| (photo)"
EVIDENCE_SHARE = "evidence through the shortcut (photo)"
LESION = "accuracy lost without the block (CIFAR-10 tab's lesion study)"
FIG7 = "std of the block's last 3x3 response (CIFAR-10 tab's Fig. 7)"
# Per-block numbers a map can be coloured by: where they come from, and whether to colour on a log scale.
OVERLAYS: dict[str, tuple[str, bool]] = {
    "multiply-adds": ("costs", True),
    "parameters": ("costs", True),
    "receptive field (px)": ("costs", False),
    RESIDUAL_RATIO: ("analysis", True),
    EVIDENCE_SHARE: ("analysis", False),
    LESION: ("cifar10 tab", False),
    FIG7: ("cifar10 tab", False),
}


@lru_cache(maxsize=64)
def structure(spec: ArchSpec) -> ResNet:
    """The network's modules on the meta device: its layout without a byte of weights."""
    with torch.device("meta"):
        return build_model(spec)


def stored_analysis_of(arch: str, weights: str, state: TabState | None) -> Stored | None:
    """The session's stored analysis where it is of this network and these weights (else None)."""
    if not state or (state["arch"], state["weights"]) != (arch, weights):
        return None
    return results().get(state["token"])


def _values(name: str, arch: str, weights: str, state: TabState | None) -> dict[str, float | None]:
    source, _ = OVERLAYS[name]
    if source == "costs":
        read: Callable = {
            "multiply-adds": lambda row: row.macs,
            "parameters": lambda row: row.params,
            "receptive field (px)": lambda row: row.receptive_field,
        }[name]
        return {row.name: read(row) for row in costs(arch, weights).rows}
    if name == LESION:
        study = recent_lesion(arch, weights)
        return {} if study is None else {block: study.baseline - kept for block, kept in study.accuracy.items()}
    if name == FIG7:
        curve = computed_fig7().get(arch) if weights == catalog.default_choice(arch) else None
        if curve is None:
            return {}
        names = structure(catalog.choice(arch, weights).spec).block_names()
        blocks: dict[str, float | None] = {}
        for layer, std in zip(curve.layers, curve.std, strict=True):  # forward order: a block's last 3x3 wins
            row = next((block for block in names if layer.startswith(f"{block}.")), "stem")  # else the stem's
            blocks[row] = std
        return blocks
    stored = stored_analysis_of(arch, weights, state)
    if stored is None:
        return {}
    if name == RESIDUAL_RATIO:
        return {block: stats.residual_ratio for block, stats in stored.result.blocks.items()}
    return {entry.block: entry.shortcut_share for entry in stored_evidence(state).blocks}


def drawn_map(arch: str, weights: str, overlay: str, state: TabState | None) -> tuple[NetworkMap, str]:
    """The map of the picked network coloured by ``overlay``, and a note on what the colours show."""
    if overlay not in OVERLAYS:
        raise gr.Error(f"Unknown overlay {overlay!r}; expected one of {list(OVERLAYS)}.")
    weights, _ = settled_weights(arch, weights)
    values = _values(overlay, arch, weights, state)
    source, log_scale = OVERLAYS[overlay]
    title = f"{arch}: {overlay}"
    drawn = draw_network_map(structure(catalog.choice(arch, weights).spec), values, overlay, title, log_scale)
    if source == "analysis":
        note = (
            f"On the photo analysed with {arch} ({weights}); plain blocks (no shortcut) are grey."
            if values
            else f"Analyze a photo with {arch} ({weights}) to colour its blocks by this; the map shows its layout."
        )
    elif source == "cifar10 tab":
        where = "Delete each block in turn" if overlay == LESION else "The paper's Fig. 7"
        note = (
            f"From the Data set tab's last run for {arch} ({weights})."
            if values
            else f"Press **{where}** in the Data set tab first (Fig. 7: the trained CIFAR-10 and digit nets)."
        )
    else:
        note = f"Counted for {arch} at the size its weights expect; the head's average pool sees the whole input."
    return drawn, note
