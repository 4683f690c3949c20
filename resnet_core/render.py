"""Pictures of an analysis: feature-map grids, Grad-CAM overlays, cost and residual charts.

Grids are tiled with numpy and coloured through a 256-entry lookup table taken from a matplotlib colormap:
a 64-channel grid costs milliseconds, where one matplotlib subplot per channel costs most of a second.
Charts are ``matplotlib.figure.Figure`` objects (no pyplot state), safe to build from several threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter
from PIL import Image, ImageDraw, ImageFont

from .measure.complexity import CostTable
from .measure.lesion import LesionStudy

if TYPE_CHECKING:
    from .explain.concepts import ConceptDictionary
    from .explain.evidence import EvidenceSplit
    from .explain.paths import Curve, PathGradients
    from .explain.sanity import SanityReport
    from .measure.layer_responses import ResponseStd

__all__ = [
    "blockwise_lines",
    "cam_overlay",
    "channel_figure",
    "channel_order",
    "colorize",
    "colormap_lut",
    "concept_overlay",
    "concept_strip",
    "cost_figure",
    "enlarge",
    "enlargement",
    "evidence_figure",
    "evidence_maps",
    "feature_grid",
    "field_overlay",
    "grid_index",
    "importance_figure",
    "lesion_figure",
    "paths_figure",
    "perturbation_figure",
    "randomization_figure",
    "residual_figure",
    "response_figure",
]

RATIO_LABEL = "||F(x)|| / ||shortcut(x)||"


@cache
def colormap_lut(name: str = "viridis") -> np.ndarray:
    """(256, 3) uint8 RGB table of a matplotlib colormap."""
    colors = matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3]
    return np.round(colors * 255).astype(np.uint8)


def colorize(values: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """Map values in [0, 1] to RGB uint8 through the lookup table."""
    index = np.clip(np.nan_to_num(values) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return colormap_lut(cmap)[index]


def channel_order(feature: torch.Tensor, sort: str = "mean") -> list[int]:
    """Channel indices, strongest mean activation first (``sort="mean"``) or in index order."""
    if sort == "index":
        return list(range(feature.shape[0]))
    if sort != "mean":
        raise ValueError(f"sort must be 'mean' or 'index', got {sort!r}")
    return feature.float().mean(dim=(1, 2)).argsort(descending=True, stable=True).tolist()


def feature_grid(
    feature: torch.Tensor,
    max_channels: int = 64,
    sort: str = "mean",
    cmap: str = "viridis",
    cell: int = 56,
    pad: int = 2,
) -> tuple[np.ndarray, list[int]]:
    """Tile up to ``max_channels`` channels of a (C, H, W) map into one RGB image.

    Each channel is scaled to its own [min, max] so weak channels stay visible; the returned list says which
    channel sits in which cell (row-major), for a click-to-enlarge UI.
    """
    order = channel_order(feature, sort)[: max(1, max_channels)]
    maps = feature[order].float()
    if maps.shape[-1] != cell:
        maps = torch.nn.functional.interpolate(maps[None], size=(cell, cell), mode="nearest")[0]
    values = maps.cpu().numpy()
    low = values.min(axis=(1, 2), keepdims=True)
    span = values.max(axis=(1, 2), keepdims=True) - low
    values = np.where(span > 0, (values - low) / np.where(span > 0, span, 1), 0.0)
    count = len(order)
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    canvas = np.ones((rows * (cell + pad) + pad, cols * (cell + pad) + pad), dtype=np.float32) * np.nan
    for index in range(count):
        r, c = divmod(index, cols)
        top, left = pad + r * (cell + pad), pad + c * (cell + pad)
        canvas[top : top + cell, left : left + cell] = values[index]
    image = colorize(canvas, cmap)
    image[np.isnan(canvas)] = 255  # white gutters
    return image, order


def enlargement(size: int, at_least: int = 320) -> int:
    """The whole factor that brings a picture ``size`` pixels across to at least ``at_least``.

    A picture a user clicks is enlarged here, by whole pixels, not by CSS in the browser: Gradio maps a click to
    image pixels assuming a picture is never shown larger than it is, so on a picture stretched by CSS only its
    central natural-size square answered, mapped onto the whole image.
    """
    return max(1, -(-at_least // max(1, size)))


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Every pixel of an ``(H, W[, C])`` picture as a ``factor`` x ``factor`` block: sharp, and pixel (x, y) of
    the result is pixel (x // factor, y // factor) of the original."""
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def grid_index(count: int, x: float, y: float, cell: int = 56, pad: int = 2) -> int | None:
    """Which of ``count`` cells of a :func:`feature_grid` holds pixel (x, y); None on a gutter or past the end."""
    cols = int(np.ceil(np.sqrt(count)))
    col, x_in = divmod(int(x) - pad, cell + pad)
    row, y_in = divmod(int(y) - pad, cell + pad)
    if min(col, row, x_in, y_in) < 0 or x_in >= cell or y_in >= cell or col >= cols:
        return None
    index = row * cols + col
    return index if index < count else None


def channel_figure(feature: torch.Tensor, channel: int, title: str = "", cmap: str = "viridis") -> Figure:
    """One channel, large, with its value scale (activation units, after the block's ReLU)."""
    values = feature[channel].float().cpu().numpy()
    figure = Figure(figsize=(4.2, 3.6), layout="constrained")
    axes = figure.add_subplot()
    shown = axes.imshow(values, cmap=cmap, interpolation="nearest")
    figure.colorbar(shown, ax=axes, label="activation")
    axes.set_title(title or f"channel {channel}  ({values.shape[0]}x{values.shape[1]})", fontsize=10)
    axes.set_axis_off()
    return figure


def cam_overlay(crop: Image.Image, cam: np.ndarray, opacity: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heat map over the crop the model saw; ``opacity`` 0 shows the photo, 1 the map."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    photo = np.asarray(crop.convert("RGB"), dtype=np.float32)
    if cam.shape != photo.shape[:2]:
        raise ValueError(f"CAM {cam.shape} and crop {photo.shape[:2]} differ in size")
    heat = colorize(cam, cmap).astype(np.float32)
    return np.round(photo * (1.0 - opacity) + heat * opacity).astype(np.uint8)


def concept_overlay(crop: Image.Image, coefficients: np.ndarray, top: float, opacity: float = 0.5) -> np.ndarray:
    """A concept's coefficient map (its stage's resolution) over the crop, upsampled bilinearly and scaled by
    ``top`` (the same for every picture compared, so a brighter overlay is a stronger concept)."""
    size = crop.size[::-1]
    upsampled = torch.nn.functional.interpolate(
        torch.as_tensor(coefficients, dtype=torch.float32)[None, None], size=size, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    return cam_overlay(crop, np.clip(upsampled / max(top, 1e-12), 0.0, 1.0), opacity)


STRIP_CELL, STRIP_PAD = 96, 4  # a concept strip's picture side and the white between pictures, in pixels


def strip_row_at(y: float, rows: int, cell: int = STRIP_CELL, pad: int = STRIP_PAD) -> int | None:
    """The row of a :func:`concept_strip` at pixel row ``y`` (a click), None on the white between rows."""
    row, within = divmod(int(y) - pad, cell + pad)
    return row if 0 <= row < rows and within < cell else None


def concept_strip(
    rows: Sequence[tuple[str, np.ndarray, Sequence[np.ndarray]]], cell: int = STRIP_CELL, pad: int = STRIP_PAD
) -> np.ndarray:
    """One row per concept: its label, then pictures (the photo's overlay, then its exemplars' overlays), each
    enlarged to ``cell`` pixels by whole pixels. Returns an RGB array."""
    label_width, columns = 120, max(1 + len(exemplars) for _, _, exemplars in rows)
    width = label_width + columns * (cell + pad)
    canvas = Image.new("RGB", (width, len(rows) * (cell + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=cell // 5)
    for row, (label, photo, exemplars) in enumerate(rows):
        top = pad + row * (cell + pad)
        draw.text((4, top + cell // 2), label, fill="black", font=font, anchor="lm")
        for column, picture in enumerate([photo, *exemplars]):
            if picture is None:
                continue
            factor = max(1, cell // max(picture.shape[:2]))
            tile = Image.fromarray(enlarge(picture, factor)).resize((cell, cell), Image.Resampling.NEAREST)
            canvas.paste(tile, (label_width + column * (cell + pad), top))
    return np.asarray(canvas)


def importance_figure(dictionary: ConceptDictionary, categories: Sequence[str], title: str = "") -> Figure:
    """Each concept's mean contribution to each class's logit over the data set: classes down, concepts across."""
    shown = np.flatnonzero(dictionary.class_counts)
    values = dictionary.importance[shown]
    figure = Figure(figsize=(1.2 + 0.45 * dictionary.k, 1.0 + 0.32 * len(shown)), layout="constrained")
    axes = figure.subplots()
    limit = float(np.abs(values).max()) or 1.0
    image = axes.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axes.set_xticks(range(dictionary.k), [f"#{j}" for j in range(dictionary.k)], fontsize=8)
    axes.set_yticks(range(len(shown)), [categories[int(i)] for i in shown], fontsize=8)
    axes.set_xlabel("concept")
    figure.colorbar(image, ax=axes, label="mean contribution to the class logit")
    axes.set_title(title or f"{dictionary.arch} {dictionary.layer}: concepts by class", fontsize=9)
    return figure


def field_overlay(crop: Image.Image, gradient: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """A unit's effective field (its input gradient, in [0, 1]) as a heat map on the crop, inside the outline of its
    theoretical field (``box``: left, top, right, bottom; right and bottom exclusive)."""
    picture = Image.fromarray(cam_overlay(crop, gradient, 0.6))
    left, top, right, bottom = box
    ImageDraw.Draw(picture).rectangle((left, top, right - 1, bottom - 1), outline=(255, 255, 255))
    return np.asarray(picture)


def cost_figure(table: CostTable) -> Figure:
    """Per-row multiply-adds and parameters, coloured by stage: where the compute and the weights live."""
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    macs_axes, params_axes = figure.subplots(2, 1, sharex=True)
    names = [row.name for row in table.rows]
    stages = list(dict.fromkeys(row.stage for row in table.rows))
    palette = matplotlib.colormaps["tab10"]
    colors = [palette(stages.index(row.stage) % 10) for row in table.rows]
    positions = np.arange(len(names))
    macs_axes.bar(positions, [row.macs / 1e6 for row in table.rows], color=colors)
    macs_axes.set_ylabel("MACs (millions)")
    macs_axes.set_title(
        f"{table.arch} at {table.input_size}x{table.input_size}: {table.total_macs / 1e9:.2f} GMACs "
        f"({table.total_flops / 1e9:.2f} GFLOPs), {table.total_params / 1e6:.2f} M parameters",
        fontsize=10,
    )
    params_axes.bar(positions, [row.params / 1e6 for row in table.rows], color=colors)
    params_axes.set_ylabel("parameters (millions)")
    step = max(1, len(names) // 40)
    params_axes.set_xticks(positions[::step], names[::step], rotation=90, fontsize=7)
    return figure


def blockwise_lines(axes: Axes, series: Mapping[str, Mapping[str, float]], **style) -> None:
    """One line per series of per-block values, named in the legend.

    Where every series has the same blocks (one network on a test set and on a photo) the x axis names them; else
    (networks of different depths) it counts blocks from the input, so every line runs left to right instead of
    zig-zagging over a shared axis of names.
    """
    blocks = [list(values) for values in series.values()]
    shared = all(names == blocks[0] for names in blocks)
    for name, values in series.items():
        x = list(values) if shared else list(range(1, len(values) + 1))
        axes.plot(x, list(values.values()), marker="o", markersize=3, linewidth=1.2, label=name, **style)
    if shared:
        axes.tick_params(axis="x", labelrotation=90, labelsize=7)
    else:
        axes.set_xlabel("block number, from the input")
    axes.legend(fontsize=8)


def residual_figure(
    series: Mapping[str, Mapping[str, float | None]], stages: Mapping[str, str] | None = None, title: str = ""
) -> Figure:
    """``||F(x)|| / ||shortcut(x)||`` per block, on a log scale with the line where branch and shortcut are equal.

    One series (one network on one photo) is drawn as one bar per block, coloured by the block's stage
    (``stages``: block -> stage). Several series are lines named in the legend: where they share their blocks (a
    network on a test set and on a photo) the x axis names the blocks; else (networks of different depths) it counts
    blocks from the input, so a 20- and a 56-layer net read left to right. Blocks without a shortcut (plain nets,
    ``None``) are not drawn.
    """
    drawn = {name: {block: r for block, r in ratios.items() if r is not None} for name, ratios in series.items()}
    drawn = {name: ratios for name, ratios in drawn.items() if ratios} or drawn
    values = [r for ratios in drawn.values() for r in ratios.values() if np.isfinite(r) and r > 0]
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    axes = figure.subplots()
    axes.set_yscale("log")
    if len(drawn) == 1:
        (ratios,) = drawn.values()
        groups = list(dict.fromkeys((stages or {}).get(block, "") for block in ratios))
        palette = matplotlib.colormaps["tab10"]
        colors = [palette(groups.index((stages or {}).get(block, "")) % 10) for block in ratios]
        positions = np.arange(len(ratios))
        axes.bar(positions, list(ratios.values()), color=colors, width=0.7)
        step = max(1, len(ratios) // 60)
        axes.set_xticks(positions[::step], list(ratios)[::step], rotation=90, fontsize=7)
        axes.set_xlim(-0.6, len(ratios) - 0.4)
        handles = [Patch(color=palette(i % 10), label=group) for i, group in enumerate(groups)]
        if stages:
            axes.legend(handles=handles, fontsize=8, title="stage", title_fontsize=8)
    else:
        blockwise_lines(axes, drawn)
    if values:
        axes.set_ylim(min(values) / 1.6, max(max(values) * 1.6, 1.3))
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    # 0.2, 0.5, 1, 2 rather than 2 x 10^-1: minor ticks labelled at 2 and 5 of each decade, so labels never crowd.
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.yaxis.set_minor_formatter(
        FuncFormatter(lambda value, _: f"{value:g}" if round(value / 10 ** np.floor(np.log10(value))) in (2, 5) else "")
    )
    axes.tick_params(axis="y", which="minor", labelsize=7)
    axes.set_ylabel(RATIO_LABEL)
    axes.grid(True, which="both", axis="y", alpha=0.3)
    if title:
        axes.set_title(title, fontsize=10)
    return figure


def evidence_figure(split: EvidenceSplit, title: str = "") -> Figure:
    """Each block's first-order evidence for the class, stacked by sign: the shortcut's part and the branch's part
    (a part of the other sign hangs below zero), with the block's total as a dot."""
    blocks = [entry.block for entry in split.blocks]
    branch = np.array([entry.branch for entry in split.blocks])
    shortcut = np.array([entry.shortcut for entry in split.blocks])
    positions = np.arange(len(blocks))
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    axes = figure.subplots()
    # Stack by sign: the branch starts at 0; the shortcut sits on it when both point the same way.
    same_sign = np.sign(branch) == np.sign(shortcut)
    axes.bar(positions, shortcut, color="#4c72b0", width=0.7, label="through the shortcut")
    bottom = np.where(same_sign, shortcut, 0.0)
    axes.bar(positions, branch, bottom=bottom, color="#dd8452", width=0.7, label="added by the branch F(x)")
    axes.plot(positions, branch + shortcut, "k.", markersize=5, label="total <dS/dz, z>")
    axes.axhline(0.0, color="grey", linewidth=0.8)
    step = max(1, len(blocks) // 60)
    axes.set_xticks(positions[::step], blocks[::step], rotation=90, fontsize=7)
    axes.set_xlim(-0.6, len(blocks) - 0.4)
    axes.set_ylabel(f"evidence for '{split.class_name}' (logit units)", fontsize=8)
    axes.legend(fontsize=8, loc="best")
    axes.set_title(title, fontsize=9)
    return figure


def evidence_maps(split: EvidenceSplit, block: str, opacity: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Where a block's evidence sits: the branch's and the shortcut's channel-summed maps, each blended over the
    crop, red for evidence for the class and blue against, on one shared scale so the two can be compared."""
    entry = split.block(block)
    scale = max(float(np.abs(entry.branch_map).max()), float(np.abs(entry.shortcut_map).max())) or 1.0
    photo = np.asarray(split.crop.convert("L").convert("RGB"), dtype=np.float32)
    size = split.crop.size

    def blend(values: np.ndarray) -> np.ndarray:
        signed = torch.from_numpy(values / scale)[None, None].float()
        upsampled = torch.nn.functional.interpolate(signed, size=size[::-1], mode="nearest")[0, 0].numpy()
        heat = colorize((upsampled + 1.0) / 2.0, "RdBu_r").astype(np.float32)
        return np.round(photo * (1.0 - opacity) + heat * opacity).astype(np.uint8)

    return blend(entry.branch_map), blend(entry.shortcut_map)


def response_figure(groups: Mapping[str, Sequence[ResponseStd]]) -> Figure:
    """The paper's Fig. 7 for each group of networks (a column): the standard deviation of every 3x3 layer's
    response in layer order (top) and sorted from largest to smallest (bottom), one line per network."""
    figure = Figure(figsize=(5.2 * len(groups), 6.4), layout="constrained")
    axes = figure.subplots(2, len(groups), squeeze=False)
    for column, (title, curves) in enumerate(groups.items()):
        top, bottom = axes[0, column], axes[1, column]
        for curve in curves:
            positions = np.arange(1, len(curve.std) + 1)
            label = f"{curve.network} ({curve.images:,} images)"
            top.plot(positions, curve.std, marker=".", markersize=3, linewidth=1, label=label)
            bottom.plot(positions, curve.descending(), marker=".", markersize=3, linewidth=1, label=label)
        top.set_title(title, fontsize=9)
        top.set_xlabel("layer index (original order)", fontsize=8)
        bottom.set_xlabel("layer index (sorted by magnitude)", fontsize=8)
        for axis in (top, bottom):
            axis.set_ylabel("std of the response", fontsize=8)
            axis.tick_params(labelsize=7)
            axis.grid(alpha=0.3)
        top.legend(fontsize=7)
    return figure


def randomization_figure(report: SanityReport) -> Figure:
    """The model's map as loaded, then after each step of the cascading randomization, with its correlations.

    A map that explains the network must fall apart as the weights it depends on are scrambled (Adebayo et al.).
    An untrained network's first map is labelled so: there is nothing trained to scramble.
    """
    first = "trained" if report.pretrained else "UNTRAINED (random weights)"
    maps = [(first, report.saliency, None)] + [
        (f"+ {step.step} random", step.saliency, step) for step in report.randomization
    ]
    spreads = {spread.step: spread for spread in report.randomization_spread}
    figure = Figure(figsize=(2.3 * len(maps), 2.7), layout="constrained")
    for axes, (title, saliency, step) in zip(figure.subplots(1, len(maps), squeeze=False)[0], maps, strict=True):
        if report.crop is None or saliency is None:
            raise ValueError(f"the report has no crop or no {title!r} map to draw")
        axes.imshow(cam_overlay(report.crop, saliency, 0.6), interpolation="nearest")
        axes.set_axis_off()
        if step is not None:
            rho = "n/a" if step.spearman is None else f"{step.spearman:.2f}"  # n/a: the new map is flat
            title = f"{title}\nSpearman {rho}, SSIM {step.ssim:.2f}"
            summary = spreads[step.step].spearman_range() if step.step in spreads else None
            if summary is not None:  # the steps drawn with several seeds: this map is the first seed's
                median, low, high = summary
                title += f"\n{len(spreads[step.step].seeds)} seeds: median {median:.2f} [{low:.2f}, {high:.2f}]"
        axes.set_title(title, fontsize=8)
    figure.suptitle(
        f"{report.method}: cascading randomization from the classifier down ({report.arch}, class {report.class_name})",
        fontsize=9,
    )
    return figure


def perturbation_figure(report: SanityReport) -> Figure:
    """Deletion and insertion curves of the map against a random ranking, each captioned with its protocol."""
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    for axes, (curve, random) in zip(
        figure.subplots(1, 2),
        ((report.deletion, report.random_deletion), (report.insertion, report.random_insertion)),
        strict=True,
    ):
        axes.plot(curve.fractions, curve.probabilities, marker=".", label=f"{report.method} (AUC {curve.auc:.3f})")
        axes.plot(random.fractions, random.probabilities, linestyle="--", label=f"random (AUC {random.auc:.3f})")
        better = "lower" if curve.protocol.mode == "deletion" else "higher"
        axes.set_title(f"{curve.protocol.mode} ({better} AUC is better)", fontsize=10)
        axes.set_xlabel("fraction of the image changed")
        axes.set_ylabel(f"p({report.class_name})")
        axes.set_ylim(-0.02, 1.02)
        axes.legend(fontsize=8)
    return figure


def paths_figure(networks: Mapping[str, tuple[Curve, Curve | None, PathGradients | None]], measured_on: str) -> Figure:
    """The ensemble of short paths (Veit et al. 2016), one colour per network: its error with k blocks deleted and
    after k swaps (mean, the band one standard deviation over the draws), and the gradient that all its paths of each
    length carry, as a share of the total, its effective lengths shaded."""
    figure = Figure(figsize=(13, 3.8), layout="constrained")
    deleted, swapped, lengths = figure.subplots(1, 3)
    for color, (name, (deletions, swaps, gradients)) in enumerate(networks.items()):
        for ax, curve in ((deleted, deletions), (swapped, swaps)):
            if curve is None:
                continue
            ks, mean, std = (
                list(curve.mean()),
                np.array(list(curve.mean().values())),
                np.array(list(curve.std().values())),
            )
            ax.plot(ks, 100 * mean, marker="o", markersize=3, color=f"C{color}", label=name)
            ax.fill_between(ks, 100 * (mean - std), 100 * (mean + std), color=f"C{color}", alpha=0.2, linewidth=0)
        if gradients is not None:
            total = np.asarray(gradients.total, dtype=np.float64)
            first, last = gradients.effective()
            lengths.plot(range(gradients.blocks + 1), 100 * total / total.sum(), color=f"C{color}", label=name)
            lengths.axvspan(first, last, color=f"C{color}", alpha=0.12)
    for ax, title, xlabel in (
        (deleted, "deleting k random blocks", "blocks deleted"),
        (swapped, "swapping k random pairs of blocks of one shape", "pairs swapped"),
        (lengths, "gradient carried by all paths of each length (shaded: 90%)", "path length (blocks)"),
    ):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    deleted.set_ylabel("error (%)")
    figure.suptitle(f"Measured on {measured_on}", fontsize=10)
    lengths.set_ylabel("share of the input gradient (%)")
    return figure


def lesion_figure(studies: Mapping[str, LesionStudy], measured_on: str) -> Figure:
    """Accuracy after deleting each block, one line per model, its intact accuracy dotted in the same colour.

    Models of different depths are drawn against the deleted block's number from the input (each line runs left
    to right); a single model against the blocks' names.
    """
    figure = Figure(figsize=(10, 4), layout="constrained")
    ax = figure.subplots()
    blockwise_lines(ax, {name: study.accuracy for name, study in studies.items()})
    for color, study in enumerate(studies.values()):
        ax.axhline(study.baseline, color=f"C{color}", linestyle=":", linewidth=1)
    ax.set_ylim(0.0, 1.02)
    ax.set_title("one block deleted at a time (dotted: intact)", fontsize=10)
    ax.set_ylabel(f"accuracy on {measured_on}")
    ax.grid(True, alpha=0.3)
    return figure
