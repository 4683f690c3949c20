"""The same evaluation where one machine is not enough: Ray Data runs it, not a scheduler of ours.

Ray Data reads and preprocesses the images as tasks (the very :class:`~resnet_core.evaluate.loader.PreprocessedImages`
and :class:`~resnet_core.evaluate.loader.Collate` the local loop uses), an actor pool of the very
:class:`~resnet_core.evaluate.batch.BatchEvaluator` (one network built per actor) maps the batches, and Ray writes
the Parquet files into the network's rows folder, where a later run (local or on Ray) finds them to resume. Ray is
an optional extra: ``pip install "resnet-explorer[scale]"``; every node needs this package and its dependencies.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..data.sources import ImageSource
from ..zoo.models import ResNet
from .batch import BatchEvaluator, Network
from .loader import Collate, PreprocessedImages
from .store import row_schema

__all__ = ["LOCAL", "run_on_ray"]

LOCAL = "local"  # start a Ray on this machine for the run, rather than join a cluster


class _Rows(BatchEvaluator):
    """The evaluator as Ray's actor: the rows as an Arrow table of the local run's schema, so parts written by
    either agree column for column."""

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        # Ray's blocks carry a missing label or error as NaN: back to None, as the local loop has them.
        missing = [value is None or (isinstance(value, float) and np.isnan(value)) for value in batch["label_index"]]
        columns = {
            "path": [str(path) for path in batch["path"]],
            "label_index": [
                None if gone else int(value) for gone, value in zip(missing, batch["label_index"], strict=True)
            ],
            "error": [value if isinstance(value, str) else None for value in batch["error"]],
            "inputs": batch["inputs"],
        }
        return pa.table(super().__call__(columns), schema=row_schema(self.columns))


def _load(batch: dict[str, np.ndarray], images: PreprocessedImages, collate: Collate) -> dict[str, np.ndarray]:
    """Read and preprocess a batch of positions into the evaluator's columns (numpy, as Ray Data carries them)."""
    collated = collate(images.__getitems__([int(position) for position in batch["position"]]))
    objects = {name: np.array(collated[name], dtype=object) for name in ("path", "label_index", "error")}
    return {**objects, "inputs": collated["inputs"].numpy()}


def run_on_ray(
    network: Network | ResNet,
    evaluator: BatchEvaluator,
    source: ImageSource,
    labels: Sequence[int | None],
    todo: Sequence[int],
    folder: Path,
    batch_size: int,
    address: str,
    actors: int | None = None,
) -> None:
    """Evaluate ``source``'s images at ``todo`` with ``network`` on Ray (``address``: a cluster, ``auto``, or
    :data:`LOCAL`), ``actors`` copies of the network at a time (default: one per CPU Ray has, at most 8); the rows
    land in ``folder``. ``evaluator`` is the driver's copy, read for its settings only."""
    import ray  # the optional extra: imported only when asked for

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        if address == LOCAL:  # a Ray of this run alone: on loopback, reachable from nowhere else
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    images = PreprocessedImages(source, evaluator.card.preprocess, labels, todo)
    pool = actors or max(1, min(8, int(ray.cluster_resources().get("CPU", 1))))
    dataset = ray.data.from_items([{"position": position} for position in range(len(todo))])
    loading = {"images": images, "collate": Collate.of(evaluator.card.preprocess)}
    dataset = dataset.map_batches(_load, fn_kwargs=loading, batch_size=batch_size)
    dataset = dataset.map_batches(
        _Rows,
        fn_constructor_args=(network, evaluator.residuals, evaluator.metrics, evaluator.topk),
        fn_constructor_kwargs={"protocol": evaluator.protocol},
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=pool),
        batch_format="numpy",
    )
    folder.mkdir(parents=True, exist_ok=True)
    dataset.write_parquet(str(folder))
