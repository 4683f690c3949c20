"""What an evaluation says of each network, read back from its rows (so rows of earlier, resumed runs count), and the
plots across networks: accuracy and each metric against depth, and the median residual ratio of every block.

Rows are read a batch at a time; only the residual ratios and the metrics' numbers are held whole (images x columns
float32), since an exact median and a bootstrap need them all. A metric's mean comes with a 95% percentile bootstrap
interval (:func:`bootstrap_mean`, seeded: the same rows give the same interval).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..explain.sanity import Protocol, as_protocol
from ..render import residual_figure
from ..zoo.create import ModelCard
from .metrics import METRICS, Versus, metric_columns
from .store import PLOTS, SUMMARY

__all__ = [
    "ACCURACY_PLOT",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFUSION_PLOT",
    "METRICS_PLOT",
    "RATIOS_PLOT",
    "Summary",
    "accuracy_figure",
    "bootstrap_mean",
    "confusion_figure",
    "metrics_figure",
    "per_class_accuracy",
    "summarize",
    "write_plots",
]

# The plots of a run, in DIR/plots: what write_plots writes and the app shows.
ACCURACY_PLOT, RATIOS_PLOT, METRICS_PLOT = "accuracy_vs_depth.png", "residual_ratios.png", "metrics_vs_depth.png"
CONFUSION_PLOT = "confusion.png"
ANNOTATED = 20  # up to this many classes each cell of a drawn confusion matrix carries its count
FULL_CONFUSION = 100  # up to this many classes the matrix has them all; above, only those that occur
BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED = 1000, 0


@dataclass(frozen=True)
class Summary:
    """One network over one data set. Accuracies count the readable images with a label (None without any); the
    confusion matrix counts them by label (rows) and top-1 answer (columns), both in ``confusion_classes`` order."""

    network: str
    arch: str
    weights: str
    pretrained: bool
    depth: int
    data: str
    images: int
    errors: int
    labelled: int
    accuracy: float | None
    topk: int
    topk_accuracy: float | None
    blocks: list[str]
    median_residual_ratios: dict[str, float | None] | None  # None where ratios were not recorded (--metrics none)
    confusion_classes: list[str]
    confusion: list[list[int]]
    images_per_second: float | None = None  # of the images this run evaluated (None when it had none left to do)
    # Per number column of the metrics asked for: {"images", "mean", "ci95"} over the readable images (for a curve,
    # those where its protocol is valid); per curve, how it fares against its random baseline (see summarize).
    metrics: dict[str, dict] | None = None
    against_random: dict[str, dict] | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def bootstrap_mean(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """``{"images", "mean", "ci95"}`` of ``values``: the mean and its 95% percentile bootstrap interval (``resamples``
    means of as many values drawn with replacement, from a generator seeded with ``seed``). ``mean`` and ``ci95`` are
    None without values."""
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        return {"images": 0, "mean": None, "ci95": None}
    generator = np.random.default_rng(seed)
    block = max(1, 2**22 // values.size)  # resamples drawn at a time: at most 4M indices in memory
    means = np.concatenate(
        [
            values[generator.integers(0, values.size, (min(block, resamples - start), values.size))].mean(1)
            for start in range(0, resamples, block)
        ]
    )
    low, high = np.percentile(means, [2.5, 97.5])
    return {"images": int(values.size), "mean": float(values.mean()), "ci95": [float(low), float(high)]}


def _against_random(versus: Versus, columns: dict[str, np.ndarray], description: str) -> dict:
    """A curve against its random baseline: on the images where its protocol is valid, how often the map beats
    random (a lower area for deletion, a higher one for insertion) and the mean gap (map - random)."""
    valid = columns[versus.valid].astype(bool)
    gap = columns[versus.score][valid] - columns[versus.random][valid]
    beats = gap < 0 if versus.mode == "deletion" else gap > 0
    return {
        "protocol": description,
        "better": "lower" if versus.mode == "deletion" else "higher",
        "images": int(valid.size),
        "valid_images": int(valid.sum()),
        "valid_share": float(valid.mean()) if valid.size else None,
        "beats_random": float(beats.mean()) if beats.size else None,
        "gap_to_random": bootstrap_mean(gap),
    }


def summarize(
    rows: Path,
    model_card: ModelCard,
    blocks: Sequence[str],
    topk: int,
    data: str,
    images_per_second: float | None = None,
    metrics: Sequence[str] = (),
    protocol: str | Protocol = "default",
) -> Summary:
    """The summary of the rows in ``rows`` (one network's part files), with the ``metrics`` they hold (names of
    :data:`~resnet_core.evaluate.metrics.METRICS`) computed under ``protocol``."""
    images = errors = labelled = top1_hits = topk_hits = 0
    pairs: Counter[tuple[int, int]] = Counter()
    ratios: list[np.ndarray] = []
    numbers = [column for column, kind in metric_columns(metrics).items() if kind in (float, bool)]
    values: dict[str, list[np.ndarray]] = {column: [] for column in numbers}
    columns = ["label_index", "topk", "residual_ratios", "error", *numbers]
    for batch in ds.dataset(rows, format="parquet").to_batches(columns=columns):
        images += batch.num_rows
        read = batch.filter(pc.is_null(batch.column("error")))
        errors += batch.num_rows - read.num_rows
        if not read.num_rows:
            continue
        answers = pc.struct_field(pc.list_flatten(read.column("topk")), "index").to_numpy()
        answers = answers.reshape(read.num_rows, -1)
        labels = read.column("label_index").fill_null(-1).to_numpy()
        known = labels >= 0
        labelled += int(known.sum())
        top1_hits += int((answers[known, 0] == labels[known]).sum())
        topk_hits += int((answers[known] == labels[known, None]).any(1).sum())
        pairs.update(zip(labels[known].tolist(), answers[known, 0].tolist(), strict=True))
        recorded = read.column("residual_ratios")
        if recorded.null_count < read.num_rows:
            flat = pc.list_flatten(recorded.filter(pc.is_valid(recorded))).fill_null(float("nan"))
            ratios.append(flat.to_numpy(zero_copy_only=False).reshape(-1, len(blocks)))
        for column in numbers:
            values[column].append(read.column(column).to_numpy(zero_copy_only=False).astype(np.float64))
    categories = model_card.categories
    if len(categories) <= FULL_CONFUSION:
        classes = list(range(len(categories)))
    else:
        classes = sorted({index for pair in pairs for index in pair})
    position = {index: row for row, index in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for (label, answer), count in pairs.items():
        confusion[position[label], position[answer]] = count
    medians = None
    if ratios:
        every = np.concatenate(ratios)
        finite = [column[~np.isnan(column)] for column in every.T]
        medians = {block: float(np.median(v)) if v.size else None for block, v in zip(blocks, finite, strict=True)}
    held = {column: np.concatenate(parts) if parts else np.zeros(0) for column, parts in values.items()}
    estimates, against = {}, {}
    for name in metrics:
        metric = METRICS[name]
        counted = held[metric.versus.valid].astype(bool) if metric.versus else slice(None)
        for column, kind in metric.columns.items():
            if kind is float:
                kept = held[column][counted]
                estimates[column] = bootstrap_mean(kept[~np.isnan(kept)])  # NaN: None in the row, undefined there
        if metric.versus:
            description = replace(as_protocol(protocol), mode=metric.versus.mode).describe()
            against[name] = _against_random(metric.versus, held, description)
    return Summary(
        network=model_card.name,
        arch=model_card.arch.name,
        weights=model_card.label,
        pretrained=model_card.pretrained,
        depth=model_card.arch.depth,
        data=data,
        images=images,
        errors=errors,
        labelled=labelled,
        accuracy=top1_hits / labelled if labelled else None,
        topk=topk,
        topk_accuracy=topk_hits / labelled if labelled else None,
        blocks=list(blocks),
        median_residual_ratios=medians,
        confusion_classes=[categories[index] for index in classes],
        confusion=confusion.tolist(),
        images_per_second=images_per_second,
        metrics=estimates or None,
        against_random=against or None,
    )


def per_class_accuracy(summary: Summary) -> dict[str, float | None]:
    """Each class's top-1 accuracy over its labelled images (its confusion row's diagonal over its sum), None for a
    class that only occurs as an answer."""
    matrix = np.asarray(summary.confusion)
    totals = matrix.sum(axis=1) if matrix.size else np.zeros(0)
    return {
        name: float(matrix[i, i] / totals[i]) if totals[i] else None for i, name in enumerate(summary.confusion_classes)
    }


def confusion_figure(summaries: Sequence[Summary]) -> Figure:
    """Each network's confusion matrix (true class down, answer across; share of the row, the count written in each
    cell up to :data:`ANNOTATED` classes), with every class's accuracy beside its name: where a network fails."""
    drawn = [summary for summary in summaries if summary.labelled and summary.confusion]
    if not drawn:
        raise ValueError("no network has labelled images: there is no confusion matrix to draw")
    classes = max(len(summary.confusion_classes) for summary in drawn)
    side, across = min(2.5 + 0.45 * classes, 14.0), min(len(drawn), 2)  # two abreast, so a cell stays legible
    down = -(-len(drawn) // across)
    figure = Figure(figsize=(side * across, side * down), layout="constrained")
    panels = figure.subplots(down, across, squeeze=False).ravel()
    for axes in panels[len(drawn) :]:
        axes.set_visible(False)
    for axes, summary in zip(panels, drawn, strict=False):
        matrix = np.asarray(summary.confusion, dtype=float)
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        names = summary.confusion_classes
        rows = [f"{name} ({_percent(share)})" for name, share in per_class_accuracy(summary).items()]
        axes.set_yticks(range(len(names)), rows, fontsize=7)
        axes.set_xticks(range(len(names)), names, fontsize=7, rotation=90)
        if len(names) <= ANNOTATED:
            for (i, j), count in np.ndenumerate(matrix.astype(int)):
                if count:
                    color = "white" if shares[i, j] > 0.5 else "black"
                    axes.text(j, i, str(count), ha="center", va="center", fontsize=7, color=color)
        axes.set_xlabel("answer (top-1)")
        axes.set_ylabel("true class (its accuracy)")
        overall = "" if summary.accuracy is None else f": {100 * summary.accuracy:.1f}%"
        axes.set_title(f"{summary.network}{overall} of {summary.labelled:,}", fontsize=9)
    return figure


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def accuracy_figure(summaries: Sequence[Summary]) -> Figure:
    """Top-1 accuracy against depth, one named point per network (the paper's deeper-is-better question)."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    for summary in summaries:
        if summary.accuracy is None:
            raise ValueError(f"{summary.network} has no accuracy (no labelled images): leave it out of the figure")
        accuracy = 100 * summary.accuracy
        axes.plot(summary.depth, accuracy, marker="o", linestyle="", color="C0" if summary.pretrained else "C3")
        axes.annotate(summary.network, (summary.depth, accuracy), xytext=(4, 4), textcoords="offset points", fontsize=8)
    axes.margins(x=0.2, y=0.15)  # room for the names
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("depth (weighted layers)")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title(f"on {_data_name(summaries)}", fontsize=10)
    axes.grid(True, alpha=0.3)
    return figure


def metrics_figure(summaries: Sequence[Summary]) -> Figure:
    """Each metric's mean against depth with its 95% interval, a panel per metric; a curve's area has its random
    ranking's beside it (grey), since depth can move both. The x axis marks each network's depth."""
    baselines = {metric.versus.score: metric.versus.random for metric in METRICS.values() if metric.versus}
    columns = [
        column
        for column in dict.fromkeys(column for summary in summaries for column in summary.metrics or {})
        if column not in baselines.values()
    ]
    across = math.ceil(math.sqrt(len(columns)))
    down = -(-len(columns) // across)
    figure = Figure(figsize=(4 * across, 3.2 * down), layout="constrained")
    panels = np.atleast_1d(figure.subplots(down, across, squeeze=False).ravel())
    depths = sorted({summary.depth for summary in summaries})
    for axes, column in zip(panels, columns, strict=False):
        for series, color, label in ((column, "C0", "map"), (baselines.get(column), "0.6", "random ranking")):
            points = [(s, (s.metrics or {}).get(series) or {}) for s in summaries if series]
            points = [(s, numbers) for s, numbers in points if numbers.get("mean") is not None]
            if not points:
                continue
            means = np.array([numbers["mean"] for _, numbers in points])
            errors = np.abs(np.array([numbers["ci95"] for _, numbers in points]).T - means)
            marker = dict(fmt="o", color=color, capsize=3, label=label if column in baselines else None)
            axes.errorbar([s.depth for s, _ in points], means, yerr=errors, **marker)
        if column in baselines:
            axes.legend(fontsize=7)
        axes.set_title(column, fontsize=9)
        axes.set_xlabel("depth (weighted layers)", fontsize=8)
        axes.margins(x=0.2, y=0.15)
        axes.set_xticks(depths)
        axes.grid(True, alpha=0.3)
    for axes in panels[len(columns) :]:
        axes.set_visible(False)
    figure.suptitle(f"mean and 95% interval on {_data_name(summaries)}", fontsize=10)
    return figure


def _data_name(summaries: Sequence[Summary]) -> str:
    return Path(summaries[0].data).name if summaries else ""


def write_plots(out: Path) -> list[Path]:
    """``accuracy_vs_depth.png``, ``confusion.png``, ``residual_ratios.png`` and ``metrics_vs_depth.png`` of every
    network summarised
    in ``out``, each where there is something to draw (labels; residual ratios; metrics). Returns the files
    written."""
    summaries = [Summary(**json.loads(path.read_text())) for path in sorted((out / SUMMARY).glob("*.json"))]
    written = []
    scored = [summary for summary in summaries if summary.accuracy is not None]
    series = {s.network: s.median_residual_ratios for s in summaries if s.median_residual_ratios}
    title = f"{next(iter(series)) + ': ' if len(series) == 1 else ''}median per block on {_data_name(summaries)}"
    figures = {
        ACCURACY_PLOT: accuracy_figure(scored) if scored else None,
        CONFUSION_PLOT: confusion_figure(scored) if scored else None,
        RATIOS_PLOT: residual_figure(series, title=title) if series else None,
        METRICS_PLOT: metrics_figure(summaries) if any(s.metrics for s in summaries) else None,
    }
    for name, figure in figures.items():
        if figure is not None:
            (out / PLOTS).mkdir(parents=True, exist_ok=True)
            figure.savefig(out / PLOTS / name, dpi=110)
            written.append(out / PLOTS / name)
    return written
