"""What an evaluation says of each network, read back from its rows (so rows of earlier, resumed runs count), and the
plots across networks: accuracy against depth, and the median residual ratio of every block.

Rows are read a batch at a time; only the residual ratios are held whole (images x blocks float32), since an exact
median needs them all.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..render import residual_figure
from ..zoo.create import ModelCard
from .store import PLOTS, SUMMARY

__all__ = ["Summary", "accuracy_figure", "summarize", "write_plots"]

FULL_CONFUSION = 100  # up to this many classes the matrix has them all; above, only those that occur


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

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(
    rows: Path,
    model_card: ModelCard,
    blocks: Sequence[str],
    topk: int,
    data: str,
    images_per_second: float | None = None,
) -> Summary:
    """The summary of the rows in ``rows`` (one network's part files)."""
    images = errors = labelled = top1_hits = topk_hits = 0
    pairs: Counter[tuple[int, int]] = Counter()
    ratios: list[np.ndarray] = []
    columns = ["label_index", "topk", "residual_ratios", "error"]
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
            values = pc.list_flatten(recorded.filter(pc.is_valid(recorded))).fill_null(float("nan"))
            ratios.append(values.to_numpy(zero_copy_only=False).reshape(-1, len(blocks)))
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
    )


def accuracy_figure(summaries: Sequence[Summary]) -> Figure:
    """Top-1 accuracy against depth, one named point per network (the paper's deeper-is-better question)."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    for summary in summaries:
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


def _data_name(summaries: Sequence[Summary]) -> str:
    return Path(summaries[0].data).name if summaries else ""


def write_plots(out: Path) -> list[Path]:
    """``accuracy_vs_depth.png`` and ``residual_ratios.png`` of every network summarised in ``out``, each where
    there is something to draw (labels; residual ratios). Returns the files written."""
    summaries = [Summary(**json.loads(path.read_text())) for path in sorted((out / SUMMARY).glob("*.json"))]
    written = []
    scored = [summary for summary in summaries if summary.accuracy is not None]
    series = {s.network: s.median_residual_ratios for s in summaries if s.median_residual_ratios}
    title = f"{next(iter(series)) + ': ' if len(series) == 1 else ''}median per block on {_data_name(summaries)}"
    figures = {
        "accuracy_vs_depth.png": accuracy_figure(scored) if scored else None,
        "residual_ratios.png": residual_figure(series, title=title) if series else None,
    }
    for name, figure in figures.items():
        if figure is not None:
            (out / PLOTS).mkdir(parents=True, exist_ok=True)
            figure.savefig(out / PLOTS / name, dpi=110)
            written.append(out / PLOTS / name)
    return written
