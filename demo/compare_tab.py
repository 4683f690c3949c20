"""The Compare tab: 2 to 5 networks on one photo, one column each, and where they agree.

Every network comes from the model cache and runs its own one-pass analysis under its own lock, one after another;
a comparison is one request in the app's shared network limit. Nothing is kept after the answer: the columns are
plain values, images and the chart are PNG files. A network that could not get the weights it was asked for says
so above the results, not only in a table row.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd
from matplotlib.figure import Figure

from resnet_core.explain.analysis import AnalysisResult, analyze
from resnet_core.explain.compare import MAX_NETWORKS, MIN_NETWORKS, Comparison
from resnet_core.explain.reference import reference_library, verify
from resnet_core.render import cam_overlay, residual_figure

from . import uploads
from .app_state import image_path, load_photo, marked_name, models, user_error, weight_choice
from .catalog import FAMILIES, LoadedModel, architectures_of
from .gpu import on_gpu
from .image_outputs import png_figures, png_path
from .public_text import public
from .shared import NETWORK, PRIVATE, Shared, caption, chart

__all__ = ["CAM_OPACITY", "PRESETS", "choices", "compare_networks", "on_preset", "verify_networks"]

TITLE = "Compare"
CAM_OPACITY = 0.5  # the Grad-CAM tab's default, so a column equals that tab's picture pixel for pixel

# The paper's arguments, each as a set of networks (section 4.1-4.2, Table 3, and the later variants).
PRESETS: dict[str, tuple[list[str], str]] = {
    "plain vs residual (digits, trained)": (
        ["digits_plain56", "digits_resnet56"],
        "The degradation lab's trained 56-layer nets: same depth, with and without shortcuts. Try a digit.",
    ),
    "plain vs residual (ImageNet)": (
        ["plain34", "resnet34"],
        "plain34 has no published weights, so it runs untrained (marked so); resnet34 uses torchvision's.",
    ),
    "depth (CIFAR-10, trained)": (
        ["cifar10_resnet20", "cifar10_resnet32", "cifar10_resnet44", "cifar10_resnet56"],
        "The paper's own CIFAR-10 nets (Table 6): 20 to 56 layers, all four shipped with the app. Try a CIFAR-10 "
        "example.",
    ),
    "depth (ImageNet)": (
        ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
        "18 to 152 layers with torchvision's weights (Table 3).",
    ),
    "B/C/D tricks": (
        ["resnet50a", "resnet50", "resnet50c", "resnet50d"],
        "The original bottleneck (a) against ResNet-B/C/D. Their published weights also differ in training recipe "
        "and evaluation size (224 to 288 px), so differences are not the architecture's alone; resnet50a has no "
        "published weights and runs untrained.",
    ),
    "original vs pre-activation block": (
        ["resnet50", "preact_resnet50"],
        "The same 50 layers with BN-ReLU after each convolution and a ReLU after the sum (the paper) or before each "
        "convolution and nothing after the sum (He et al. 2016, timm's ResNetV2 weights): there the shortcut is a "
        "clean identity from block to block. The two were trained by different recipes and are evaluated at 224 "
        "and 288 px, so accuracy differences are not the block's alone.",
    ),
    "wider or grouped": (
        ["resnet50", "resnext50_32x4d", "wide_resnet50_2"],
        "Same depth: more groups (ResNeXt) or twice the width (Wide ResNet).",
    ),
}


START_PRESET = "depth (CIFAR-10, trained)"


def build(shared: Shared, tab: gr.Tab) -> None:
    gr.Markdown(
        "**Several networks on the photo above**, side by side: the paper's arguments are comparisons (plain against "
        "residual, 18 against 152 layers, the ResNet-B/C/D tricks). Each network runs once on the crop its own "
        "weights expect; Grad-CAM is at its last stage."
    )
    with gr.Row():
        preset = gr.Dropdown(list(PRESETS), value=START_PRESET, label="Preset")
        compared = gr.Dropdown(
            choices(),
            value=PRESETS[START_PRESET][0],
            multiselect=True,
            max_choices=MAX_NETWORKS,
            label="Networks (2 to 5)",
            elem_id="compare-networks",
        )
        weights = gr.Textbox(
            label="Weights, one per network (optional)", placeholder="empty: each network's recommended weights"
        )
    preset_md = gr.Markdown(PRESETS[START_PRESET][1])
    run = gr.Button("Compare", variant="primary")
    summary = gr.Markdown(elem_id="compare-summary")
    caption("Grad-CAM of each network's top-1 class, on the crop it saw")
    cams = gr.Gallery(
        label="Grad-CAM of each network's top-1 class, on the crop it saw",
        show_label=False,
        columns=MAX_NETWORKS,
        fit_columns=False,
        height="auto",
        object_fit="contain",
        allow_preview=False,
        elem_classes="pixelated-tiles",
        elem_id="compare-cams",
    )
    table = gr.Dataframe(label="One column per network", interactive=False, wrap=True)
    plot = chart("||F(x)|| / ||shortcut(x)|| per block, from the input on", elem_id="compare-chart")
    with gr.Accordion("Every number (JSON)", open=False):
        numbers = gr.JSON()
    with gr.Accordion("Ours against torchvision and timm", open=False):
        gr.Markdown(
            "This app writes every network by hand. For each chosen network that torchvision (or timm) also "
            "implements, the library's own network is built with the very same weights and run on the same photo: "
            "the largest differences of the logits and of each stage's output, and both top-5 lists. An untrained "
            "network is checked with the same random weights in both: the check is of the code, not of what a "
            "network learned, and its top-5 lists mean nothing."
        )
        verify_run = gr.Button("Check against the reference implementations")
        # Headers on one line (a dozen columns wrapped them a letter per line); the table scrolls sideways.
        verify_table = gr.Dataframe(interactive=False, wrap=False, elem_id="verify-table")
    preset.input(on_preset, preset, [compared, preset_md], queue=False, **PRIVATE)
    # Results belong to the networks and weights they were made with: a new pick clears them (a preset's too), and
    # a list edited by hand is no longer the preset, whose caption goes.
    results = [cams, table, plot, summary, numbers, verify_table]
    for changed in (compared.change, weights.change):
        changed(cleared, None, results, queue=False, **PRIVATE)
    compared.input(lambda: (None, ""), None, [preset, preset_md], queue=False, **PRIVATE)
    shared.weights.change(offer_checkpoint, shared.weights, compared, queue=False, **PRIVATE)
    request = [shared.image, compared, weights]
    run.click(
        png_figures(on_gpu(compare_networks, "compare")),
        request,
        [cams, table, plot, summary, numbers],
        api_name="compare",
        preprocess=False,  # the photo is decoded by resnet_core.load_image, as in /analyze
        **NETWORK,
    )
    verify_run.click(
        on_gpu(verify_networks, "compare"), request, verify_table, api_name="verify", preprocess=False, **NETWORK
    )


def choices() -> list[str]:
    """Every network the app offers, in picker order."""
    return [arch for family in FAMILIES for arch in architectures_of(family)]


def cleared():
    """What the results show once the networks or weights changed: nothing of the previous comparison."""
    return [], None, None, "Press **Compare** for the networks now picked.", None, None


def on_preset(preset: str) -> tuple[list[str], str]:
    """The preset's networks for the picker, and what the preset shows."""
    if preset not in PRESETS:
        raise user_error(f"Unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}.")
    archs, note = PRESETS[preset]
    return list(archs), note


def _weight_list(archs: list[str], carried: list[str], weights: str | list[str] | None) -> list[str]:
    """One weight choice per network: a network's own (``carried``, from ARCH@WEIGHTS: a checkpoint opened above),
    else the one given for it; none given means each network's default (random init where none is published)."""
    if isinstance(weights, str):
        weights = [w.strip() for w in weights.split(",")] if weights.strip() else []
    weights = list(weights or [])
    if weights and len(weights) != len(archs):
        raise user_error(f"Give one weight name per network ({len(archs)}), or none; got {len(weights)}.")
    given = weights or [None] * len(archs)
    return [weight_choice(arch, own or choice) for arch, own, choice in zip(archs, carried, given, strict=True)]


def _request(image: str | dict | None, archs: list[str] | None, weights: str | list[str] | None):
    """The checked networks, their weight choices and the loaded photo, or one sentence on what is wrong."""
    image_path(image)  # no photo: say so before anything else
    picked = [arch.partition("@") for arch in (archs or []) if arch]
    if not MIN_NETWORKS <= len(picked) <= MAX_NETWORKS:
        raise user_error(f"Pick {MIN_NETWORKS} to {MAX_NETWORKS} networks to compare; got {len(picked)}.")
    names, carried = [name for name, _, _ in picked], [own for _, _, own in picked]
    return names, _weight_list(names, carried, weights), load_photo(image)


def offer_checkpoint(weights: str):
    """A checkpoint opened above joins the networks to compare, named by its file (its value: ARCH@TOKEN)."""
    if not uploads.is_upload(weights):
        return gr.update()
    return gr.update(choices=[*choices(), uploads.get(weights).as_network])


def compare_networks(
    image: str | dict | None,
    archs: list[str],
    weights: str | list[str] | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's own idiom
):
    """Compare 2 to 5 ResNets on one photo: each network's answer, Grad-CAM, residual ratios and costs.

    Returns the Grad-CAM of each network on the crop it saw, a table with one column per network, the residual
    ratio per block, a sentence on where the networks agree, and every number as JSON.

    Args:
        image: the photo.
        archs: 2 to 5 architecture names, e.g. ["resnet18", "resnet50", "resnet152"] or ["cifar10_resnet20",
            "cifar10_resnet56"]; "ARCH@WEIGHTS" gives one its weights (e.g. a checkpoint from /open_checkpoint).
        weights: optional, one weight name per network separated by commas; empty for each network's recommended
            weights ("random init" where none are published).
    """
    archs, chosen, photo = _request(image, archs, weights)
    results: list[AnalysisResult] = []
    missing: list[str] = []
    for step, (arch, weight) in enumerate(zip(archs, chosen, strict=True)):
        progress(step / len(archs), desc=f"{arch} ({weight})")
        with models().using(arch, weight) as loaded:
            results.append(analyze(loaded.model, photo))
        if not loaded.delivered:
            missing.append(_not_delivered(loaded))
    comparison = Comparison.of(photo, results)
    payload = public(comparison.as_dict())
    cams = [(png_path(cam_overlay(result.crop, result.cam, CAM_OPACITY)), _caption(result)) for result in results]
    summary = "\n\n".join([*missing, comparison.summary()])
    table = _table(payload["networks"], [marked_name(result) for result in results])
    return cams, table, residual_chart(results), summary, payload


def _not_delivered(loaded: LoadedModel) -> str:
    """The warning a network gets above the results when it runs without the weights it was asked for."""
    return f"**Warning:** {loaded.status}"


def _caption(result: AnalysisResult) -> str:
    _, name, probability = result.topk[0]
    return f"{marked_name(result)}: {name} {100 * probability:.1f}%"


def _table(networks: list[dict], names: list[str]) -> pd.DataFrame:
    """One column per network, headed by its name; rows a newcomer can read across."""
    rows: dict[str, list[str]] = {
        "weights": [n["weights"] for n in networks],
        "trained": ["yes" if n["pretrained"] else "NO (random weights)" for n in networks],
        "label space": [n["label_space"] for n in networks],
    }
    for rank in range(max(len(n["topk"]) for n in networks)):
        rows[f"top-{rank + 1}"] = [
            f"{n['topk'][rank]['label']} {100 * n['topk'][rank]['probability']:.1f}%" if rank < len(n["topk"]) else ""
            for n in networks
        ]
    rows["parameters (M)"] = [f"{n['params'] / 1e6:.2f}" for n in networks]
    rows["GMACs (at px)"] = [f"{n['gmacs']:.3g} at {n['input_size']}" for n in networks]
    rows["published acc@1"] = [f"{n['acc1']:.2f}%" if n["acc1"] is not None else "-" for n in networks]
    rows["Grad-CAM layer"] = [n["cam_layer"] for n in networks]
    frame = pd.DataFrame(rows, index=names).T
    return frame.reset_index(names="")


def residual_chart(results: list[AnalysisResult]) -> Figure:
    """||F(x)|| / ||shortcut(x)|| per block from the input on, one line per network named in the legend.

    Plain nets have no shortcut, so no line; untrained networks are marked in their legend entry.
    """
    series = {
        marked_name(result): {name: stats.residual_ratio for name, stats in result.blocks.items()} for result in results
    }
    return residual_figure(series, title="each block's residual branch against its shortcut, one line per network")


def verify_networks(image: str | dict | None, archs: list[str], weights: str | list[str] | None = None) -> pd.DataFrame:
    """Check this app's hand-written ResNets against torchvision's (or timm's) on one photo, with the same weights.

    One row per network: its weights (or that it ran untrained, with the same random weights in both), the reference
    library, the largest absolute difference of the logits and of each stage's output, and both top-5 lists.
    Networks without a reference implementation say so.

    Args:
        image: the photo.
        archs: 2 to 5 architecture names, e.g. ["resnet18", "resnet50d"].
        weights: optional, one weight name per network separated by commas; empty for the recommended ones.
    """
    archs, chosen, photo = _request(image, archs, weights)
    rows = []
    for arch, weight in zip(archs, chosen, strict=True):
        if reference_library(arch) is None:
            rows.append({"network": arch, "reference": "none (no namesake in torchvision or timm)"})
            continue
        with models().using(arch, weight) as loaded:
            check = verify(loaded.model, photo)
            card = loaded.model.card
        rows.append(
            {
                "network": arch,
                "weights": card.label if card.pretrained else "UNTRAINED: the same random weights in both",
                "reference": check.reference,
                "max |diff| logits": f"{check.max_abs_diff:.3g}",
                **{f"max |diff| {stage}": f"{value:.3g}" for stage, value in check.stage_diffs.items()},
                "same top-5": "yes" if check.topk_agree else "NO",
                "top-5 (ours)": ", ".join(name for _, name, _ in check.topk),
                "top-5 (reference)": ", ".join(name for _, name, _ in check.reference_topk),
            }
        )
    frame = pd.DataFrame(rows).fillna("")
    first = [name for name in ("network", "weights") if name in frame.columns]
    return frame[first + [name for name in frame.columns if name not in first]]
