"""``evaluate_dataset``: networks over a data set, batch by batch, into a resumable Parquet data set and summaries."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.sources import ImageSource, match_labels, open_source
from ..explain.sanity import Protocol, protocol_setting
from ..zoo.create import card
from ..zoo.models import ResNet
from .batch import BatchEvaluator, Network
from .loader import Collate, PreprocessedImages
from .metrics import resolve_metrics
from .store import (
    NETWORK_RUN,
    ROWS,
    ROWS_PER_PART,
    SUMMARY,
    PartWriter,
    claim,
    file_name,
    row_schema,
    write_json,
    written_paths,
)
from .summary import Summary, summarize, write_plots

__all__ = ["DEFAULT_WORKERS", "evaluate_dataset"]

DEFAULT_WORKERS = min(4, (os.cpu_count() or 1) - 1)  # reading and preprocessing beside the forward, one core spared


def evaluate_dataset(
    data: str | Path | ImageSource,
    networks: Sequence[str | Network | ResNet],
    out: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    limit: int | None = None,
    topk: int = 5,
    download: bool = False,
    device: str | torch.device | None = None,
    protocol: str | Protocol = "default",
    rows_per_part: int = ROWS_PER_PART,
    progress: bool = True,
    ray: str | None = None,
    actors: int | None = None,
) -> dict[str, Summary]:
    """Every image of ``data`` through every network: a row per image and network in ``out/rows`` (Parquet, read
    it with ``pyarrow.dataset.dataset(out / "rows")``), a summary per network in ``out/summary/<network>.json``
    and plots across networks in ``out/plots``.

    ``data``: a folder (class folders give labels), a CSV with a ``path,label`` header, ``cifar10`` or
    ``cifar10:full`` (see :func:`~resnet_core.data.sources.open_source`). ``networks``: architecture names (their
    default weights), :class:`~resnet_core.evaluate.batch.Network` descriptions, or models (run where they are:
    a ``device`` only places the networks built here). ``metrics``: see
    :func:`~resnet_core.evaluate.metrics.resolve_metrics`; by default predictions and residual ratios, ``["none"]``
    predictions alone. ``protocol``: the deletion and insertion metrics'
    :class:`~resnet_core.explain.sanity.Protocol`, or its name in :data:`~resnet_core.explain.sanity.PROTOCOLS`.
    A run into an ``out`` that already holds rows skips the images it has and adds the rest.

    Everything a user can get wrong (an unknown network, labels that are not a network's classes, a missing data
    set, an ``out`` of another run) raises ``ValueError`` or ``FileNotFoundError`` before any image is read. An
    image that cannot be read is a row with its ``error``, never the end of the run.

    ``ray``: run on Ray instead of this process (``"local"`` starts one here; an address joins a cluster), with
    ``actors`` copies of each network (see :func:`~resnet_core.evaluate.on_ray.run_on_ray`); the rows are the same.
    """
    residuals, metric_names = resolve_metrics(metrics)
    setting = protocol_setting(protocol)  # a wrong name is refused before any image is read
    if not networks:
        raise ValueError("no networks to evaluate")
    source = data if isinstance(data, ImageSource) else open_source(data, download=download)
    if limit is not None:
        source = source.head(limit)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    models = [_model(network, device, progress) for network in networks]
    names = [card(model).name for model in models]
    twice = [name for name, count in Counter(names).items() if count > 1]
    if twice:
        raise ValueError(f"{', '.join(twice)} given more than once: evaluate other weights into another output folder")
    labels = [
        match_labels(source.labels, card(model).categories, card(model).label_space.wnids, name)
        for model, name in zip(models, names, strict=True)
    ]
    out = Path(out)
    claim(
        out,
        {
            "data": source.description,
            "residual_ratios": residuals,
            "metrics": list(metric_names),
            "topk": topk,
            "protocol": setting,
        },
    )
    for model, name in zip(models, names, strict=True):  # a network's rows are of one preprocessing, one weights
        fed = {"network": name, "preprocess": card(model).preprocess.as_dict()}
        claim(out / ROWS / file_name(name), fed, NETWORK_RUN)
    summaries = {}
    for network, name in zip(networks, names, strict=True):
        # Each model is freed after its run.
        evaluator = BatchEvaluator(models.pop(0), residuals, metric_names, topk, protocol=protocol)
        if ray is None:
            summaries[name] = _run(evaluator, source, labels.pop(0), out, batch_size, workers, rows_per_part, progress)
        else:
            summaries[name] = _run_on_ray(network, evaluator, source, labels.pop(0), out, batch_size, ray, actors)
    write_plots(out)
    return summaries


def _model(network: str | Network | ResNet, device: torch.device, progress: bool) -> ResNet:
    if isinstance(network, ResNet):
        return network
    return (Network(arch=network) if isinstance(network, str) else network).build(device, progress=progress)


def _run_on_ray(
    network: str | Network | ResNet,
    evaluator: BatchEvaluator,
    source: ImageSource,
    labels: Sequence[int | None],
    out: Path,
    batch_size: int,
    address: str,
    actors: int | None,
) -> Summary:
    """One network on Ray: the images its rows lack, then its summary, as :func:`_run` does here."""
    from .on_ray import run_on_ray

    folder, todo = _remaining(evaluator, source, out)
    start = time.perf_counter()
    if todo:
        spec = Network(arch=network) if isinstance(network, str) else network
        run_on_ray(spec, evaluator, source, labels, todo, folder, batch_size, address, actors)
    return _summarised(evaluator, folder, out, source, len(todo) / (time.perf_counter() - start) if todo else None)


def _remaining(evaluator: BatchEvaluator, source: ImageSource, out: Path) -> tuple[Path, list[int]]:
    """The network's rows folder, and the images it does not hold yet (what a resumed run does, on either engine)."""
    folder = out / ROWS / file_name(evaluator.name)
    done = written_paths(folder)
    return folder, [index for index, key in enumerate(source.keys) if key not in done]


def _summarised(evaluator: BatchEvaluator, folder: Path, out: Path, source: ImageSource, rate: float | None) -> Summary:
    """The network's summary of every row in ``folder``, also written as its JSON."""
    summary = summarize(
        folder,
        evaluator.card,
        evaluator.blocks,
        evaluator.topk,
        source.description,
        rate,
        evaluator.metrics,
        evaluator.protocol,
    )
    write_json(out / SUMMARY / f"{file_name(evaluator.name)}.json", summary.as_dict())
    return summary


def _run(
    evaluator: BatchEvaluator,
    source: ImageSource,
    labels: Sequence[int | None],
    out: Path,
    batch_size: int,
    workers: int | None,
    rows_per_part: int,
    progress: bool,
) -> Summary:
    """One network: the images its rows lack, then its summary."""
    folder, todo = _remaining(evaluator, source, out)
    preprocess = evaluator.card.preprocess
    loader = DataLoader(
        PreprocessedImages(source, preprocess, labels, todo),
        batch_size=batch_size,
        num_workers=DEFAULT_WORKERS if workers is None else workers,
        collate_fn=Collate.of(preprocess),
        pin_memory=evaluator.device.type == "cuda",
    )
    writer = PartWriter(folder, row_schema(evaluator.columns), rows_per_part)
    start = time.perf_counter()
    bar = tqdm(total=len(todo), desc=evaluator.name, unit="img", disable=not progress or not todo, file=sys.stderr)
    with bar:
        try:
            for batch in loader if todo else ():
                writer.add(evaluator(batch))
                bar.update(len(batch["path"]))
        finally:
            writer.flush()  # the rows in hand are whole: keep them, whatever stopped the run
    return _summarised(evaluator, folder, out, source, len(todo) / (time.perf_counter() - start) if todo else None)
