"""A whole data set through ``evaluate_dataset`` against a bare batched forward over the same images, in one run.

    python -m bench.evaluate_speed [--data DIR] [--arch cifar10_resnet56] [--batch-size 64] [--workers 1] [--reps 1]
    python -m bench.evaluate_speed --ray [--data DIR]     # a local Ray against the local loop, start-up apart

``--data`` (or ``$RESNET_EXPLORER_CIFAR10``) holds all 10,000 CIFAR-10 test images; without it the 500 shipped ones
are used and said so. Per repetition, side by side: the bare loop (the test set already normalised in memory, one
``model(batch)`` per batch under ``inference_mode``, in the channels-last layout the evaluator uses on the CPU),
then ``evaluate_dataset`` with ``--metrics none`` (predictions only) and with the default residual ratios, each
into a fresh folder, timed from the call to its return (model build, data loading, Parquet writing, summary and
plots included). Prints images/s and the ratio to the bare loop,
the share of the predictions-only run spent in the network's forward (measured inside that run, so the machine's
noise, which moves whole runs by 30% here, cancels), the median of each over the repetitions, the test error of each
mode, and the process's resident memory after 1,000 and after all images.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from resnet_core import create_model, evaluate_dataset
from resnet_core.data.cifar10 import load_subset, load_test_set, to_batch
from resnet_core.settings import ENV_TEST_SET
from resnet_core.zoo.models import ResNet


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def bare_rate(arch: str, images, batch_size: int) -> float:
    """The bare loop, each batch in channels-last layout as the evaluator feeds the CPU (about 1.3x faster than
    the default layout for cifar10_resnet56 here), so the baseline is the fastest forward, not a slower one."""
    model = create_model(arch, weights="DEFAULT")
    inputs = to_batch(images, model.card.preprocess.mean, model.card.preprocess.std)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in inputs.split(batch_size):
            model(batch.contiguous(memory_format=torch.channels_last))
    return len(inputs) / (time.perf_counter() - start)


@contextmanager
def forward_clock() -> Iterator[list[float]]:
    """Seconds spent inside every ``ResNet.forward`` while in the block: the share of a run the network itself
    takes, measured in that run, so it holds however loud the machine is (a ratio of two runs does not)."""
    spent = [0.0]
    original = ResNet.forward

    def timed(self, x):
        start = time.perf_counter()
        try:
            return original(self, x)
        finally:
            spent[0] += time.perf_counter() - start

    ResNet.forward = timed
    try:
        yield spent
    finally:
        ResNet.forward = original


def evaluate_rate(data: str, arch: str, metrics, args, root: Path, tag: str, limit: int | None = None):
    """Images/s of one ``evaluate_dataset`` call, its summary, and the share of its time spent in the forward."""
    out = root / tag
    with forward_clock() as spent:
        start = time.perf_counter()
        (summary,) = evaluate_dataset(data, [arch], out, metrics=metrics, batch_size=args.batch_size,
                                      workers=args.workers, limit=limit, progress=False).values()  # fmt: skip
        seconds = time.perf_counter() - start
    return summary.images / seconds, summary, spent[0] / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help=f"the CIFAR-10 test set (default ${ENV_TEST_SET})")
    parser.add_argument("--arch", default="cifar10_resnet56")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ray", action="store_true", help="time a local Ray run against the local loop instead")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.data is not None:
        os.environ[ENV_TEST_SET] = str(args.data)
    try:
        images, _ = load_test_set()
        data = "cifar10:full"
    except FileNotFoundError:
        images, _, _ = load_subset()
        data = "cifar10"
        print(f"no --data or ${ENV_TEST_SET}: the 500 shipped test images")
    if args.ray:
        return ray_against_local(data, args)
    print(f"{args.arch} on {len(images):,} test images, batch {args.batch_size}, {args.workers} loader worker(s), "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"{'rep':>3} {'bare img/s':>10} {'none img/s':>10} {'ratio':>6} {'in forward':>10} {'default img/s':>13} "
          f"{'ratio':>6}  errors")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        ratios = []
        for rep in range(args.reps):
            bare = bare_rate(args.arch, images, args.batch_size)
            none, plain, share = evaluate_rate(data, args.arch, ["none"], args, root, f"none{rep}")
            full, default, _ = evaluate_rate(data, args.arch, None, args, root, f"default{rep}")
            errors = f"{100 * (1 - plain.accuracy):.2f}% / {100 * (1 - default.accuracy):.2f}%"
            ratios.append((none / bare, share, full / bare))
            figures = f"{none:>10.0f} {none / bare:>6.2f} {100 * share:>9.1f}% {full:>13.0f} {full / bare:>6.2f}"
            print(f"{rep:>3} {bare:>10.0f} {figures}  {errors}", flush=True)
        medians = [statistics.median(column) for column in zip(*ratios, strict=True)]
        print(f"median: predictions only {medians[0]:.2f}x a bare forward ({100 * medians[1]:.1f}% of the run in the "
              f"forward), default {medians[2]:.2f}x")  # fmt: skip
        gc.collect()
        evaluate_rate(data, args.arch, None, args, root, "memory", limit=1000)
        gc.collect()
        after_1000 = rss_mb()
        evaluate_rate(data, args.arch, None, args, root, "memory-all")
        gc.collect()
        after_all = rss_mb()
    print(f"resident memory: {after_1000:.0f} MB after a 1,000-image run, {after_all:.0f} MB after a "
          f"{len(images):,}-image run ({after_all - after_1000:+.0f} MB)")  # fmt: skip
    return 0


def ray_against_local(data: str, args: argparse.Namespace) -> int:
    """The same run through a local Ray (started first and timed apart) and through the local loop."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - start
    cpus = int(ray.cluster_resources().get("CPU", 1))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        local, plain, _ = evaluate_rate(data, args.arch, None, args, root, "local")
        start = time.perf_counter()
        (summary,) = evaluate_dataset(data, [args.arch], root / "ray", batch_size=args.batch_size, progress=False,
                                      ray="local").values()  # fmt: skip
        on_ray = summary.images / (time.perf_counter() - start)
    print(f"{args.arch} on {summary.images:,} images, {cpus} CPUs: Ray start-up {startup:.1f} s (apart); local loop "
          f"{local:.0f} img/s, Ray {on_ray:.0f} img/s ({on_ray / local:.2f}x); accuracy {plain.accuracy:.4f} / "
          f"{summary.accuracy:.4f}")  # fmt: skip
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
