"""The same evaluation where one machine is not enough: Ray Data runs it, not a scheduler of ours.

Ray Data reads and preprocesses the images as tasks (the very :class:`~resnet_core.evaluate.loader.PreprocessedImages`
and :class:`~resnet_core.evaluate.loader.Collate` the local loop uses), an actor pool of the very
:class:`~resnet_core.evaluate.batch.BatchEvaluator` (one network built per actor) maps the batches, and Ray writes
the Parquet files into the network's rows folder, where a later run (local or on Ray) finds them to resume. Ray is
an optional extra: ``pip install "resnet-explorer[scale]"``; every node needs this package and its dependencies.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..data.sources import ImageSource
from ..zoo.models import ResNet
from .batch import Batch, BatchEvaluator, Network
from .loader import Collate, PreprocessedImages
from .store import row_schema

__all__ = ["LOCAL", "local_ray_environment", "run_on_ray"]

LOCAL = "local"  # start a Ray on this machine for the run, rather than join a cluster

_PROXY_VARIABLES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY")
_LOOPBACK = "127.0.0.1,localhost,::1"
_refusing: socket.socket | None = None  # a loopback port bound and never listened on: every connection is refused


def _refusing_address() -> str:
    """``host:port`` on loopback where a connection is refused at once, for as long as this process lives."""
    global _refusing
    if _refusing is None:
        _refusing = socket.socket()
        _refusing.bind(("127.0.0.1", 0))
    host, port = _refusing.getsockname()
    return f"{host}:{port}"


def local_ray_environment() -> dict[str, str]:
    """What the processes of a Ray this package starts on this machine run with, and why: a local Ray otherwise
    reaches beyond the machine on its own (seen with Ray 2.60).

    - ``RAY_USAGE_STATS_ENABLED=0``: Ray's usage statistics, off.
    - ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: Ray's single-machine mode (its default on Windows and macOS). On Linux
      Ray replaces a loopback ``_node_ip_address`` with the machine's outward address, so its agents listen there
      and look it up; in this mode every Ray process uses loopback.
    - ``http_proxy``/``https_proxy`` pointing at a loopback port that refuses, with loopback exempt (``no_proxy``):
      the dashboard process asks the cloud metadata services (169.254.169.254, metadata.google.internal) which
      cloud it runs on, whether or not usage statistics are on, and Ray has no switch for it. Through the refusing
      proxy that question fails at once without a packet leaving the machine. The workers get the user's own proxy
      settings back (:func:`run_on_ray` passes them as the job's environment), so a network's weights still
      download there.
    """
    proxy = f"http://{_refusing_address()}"
    return {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        **{name: proxy for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")},
        "no_proxy": _LOOPBACK,
        "NO_PROXY": _LOOPBACK,
    }


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` while Ray starts its processes (they inherit it), then the caller's back."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _ray(address: str):
    """The ``ray`` module, connected: to the user's cluster at ``address`` as they configured it, or to a Ray of
    this run alone (:data:`LOCAL`) started with :func:`local_ray_environment`. Ray reads its single-machine mode when
    it is first imported, so a local run imports it inside that environment (the command line always imports it
    first; a caller who imported Ray before keeps the mode Ray chose then)."""
    if address != LOCAL:
        import ray  # the optional extra: imported only when asked for

        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False)
        return ray
    # The workers run the evaluation with the caller's own proxy settings ('' where none was set, which Python's
    # HTTP clients read as unset), so a network's weights still download there.
    workers = {name: os.environ.get(name, "") for name in _PROXY_VARIABLES}
    # And the very resnet_core this process runs, wherever it was started from (a checkout that is not installed,
    # run from another folder, is on no worker's path otherwise).
    here = str(Path(__file__).resolve().parents[2])
    workers["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH", "")]))
    with _environment(local_ray_environment()):
        import ray

        if not ray.is_initialized():
            ray.init(
                _node_ip_address="127.0.0.1",
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": workers},
            )
    return ray


class _Rows(BatchEvaluator):
    """The evaluator as Ray's actor: the rows as an Arrow table of the local run's schema, so parts written by
    either agree column for column."""

    def __call__(self, batch: Batch) -> pa.Table:
        # Ray's blocks carry a missing label or error as NaN: back to None, as the local loop has them.
        missing = [value is None or (isinstance(value, float) and np.isnan(value)) for value in batch["label_index"]]
        columns: Batch = {
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
    ray = _ray(address)
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
