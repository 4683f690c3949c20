"""Test error of the paper's CIFAR-10 ResNets (section 4.2, Table 6) on all 10,000 test images, as we load them.

    python -m bench.cifar10_accuracy [--data DIR] [--archs cifar10_resnet20 ...] [--weights-dir DIR] [--json]

The test set comes from ``--data`` or ``$RESNET_EXPLORER_CIFAR10`` (a folder with ``test_batch.png`` and
``test_labels.json``, or torchvision's ``cifar-10-batches-py/``; ``--download`` lets torchvision fetch it there).
Weights are ``create_model(arch, weights="DEFAULT")``: resnet20 and resnet56 ship in ``assets/``; for the others
``--weights-dir`` names a folder holding the published ``.th`` files by their published names (without it, or where
the file is missing there, ``create_model`` looks in its caches and then downloads). Beside each measured error: the
paper's Table 6 figure, the figure akamaster/pytorch_resnet_cifar10 publishes for these weights, and the error count
on the shipped 500-image subset next to the one pinned in ``assets/cifar10/test_subset.json``. Exit status 1 if a
measured error differs from the published one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from resnet_core import create_model, default_weights
from resnet_core.data.cifar10 import SUBSET_JSON, load_subset, load_test_set, to_batches
from resnet_core.settings import ENV_TEST_SET
from resnet_core.zoo.weights import SHIPPED_WEIGHTS_DIR

ARCHS = ["cifar10_resnet20", "cifar10_resnet32", "cifar10_resnet44", "cifar10_resnet56"]


def predict(model: torch.nn.Module, images: np.ndarray, batch_size: int) -> np.ndarray:
    mean, std = model.card.preprocess.mean, model.card.preprocess.std
    with torch.inference_mode():
        return np.concatenate([model(batch).argmax(1).numpy() for batch in to_batches(images, mean, std, batch_size)])


def trained_model(arch: str, weights_dir: Path | None) -> tuple[torch.nn.Module, str | Path]:
    """The published CIFAR-10 net: shipped ones as users get them, the others from ``weights_dir`` when it has them
    (else ``create_model``'s caches, then a download)."""
    entry = default_weights(arch)
    file_name = Path(urlparse(entry.url).path).name  # the published name, e.g. resnet32-d509ac18.th
    weights: str | Path = "DEFAULT"
    given = weights_dir / file_name if weights_dir is not None else None
    if given is not None and given.is_file() and not (SHIPPED_WEIGHTS_DIR / file_name).is_file():
        weights = given
    return create_model(arch, weights=weights), weights


def evaluate(arch: str, args: argparse.Namespace, test_set: tuple[np.ndarray, np.ndarray]) -> dict:
    entry = default_weights(arch)
    model, weights = trained_model(arch, args.weights_dir)
    images, labels = test_set
    start = time.perf_counter()
    wrong = int((predict(model, images, args.batch_size) != labels).sum())
    seconds = time.perf_counter() - start
    subset_images, subset_labels, _ = load_subset()
    return {
        "arch": arch,
        "weights": str(weights),
        "source": model.card.source,
        "errors": wrong,
        "images": len(labels),
        "error_pct": round(100 * wrong / len(labels), 2),
        "paper_error_pct": round(100 - entry.paper_acc1, 2),
        "published_error_pct": round(100 - entry.acc1, 2),
        "subset_errors": int((predict(model, subset_images, args.batch_size) != subset_labels).sum()),
        "subset_pinned": json.loads(SUBSET_JSON.read_text()).get("reference_errors", {}).get(arch),
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help=f"the test set's folder (default ${ENV_TEST_SET})")
    parser.add_argument("--download", action="store_true", help="let torchvision download the test set into --data")
    parser.add_argument("--archs", nargs="+", default=ARCHS)
    parser.add_argument("--weights-dir", type=Path, default=None, help="a folder of the published .th files")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for arch in args.archs:
        entry = default_weights(arch)  # raises ValueError for a name that is not registered
        if entry is None or entry.paper_acc1 is None or entry.url is None:
            parser.error(f"{arch} has no published CIFAR-10 weights with the paper's figure; try {', '.join(ARCHS)}")

    start = time.perf_counter()
    try:
        test_set = load_test_set(args.data, download=args.download)
    except FileNotFoundError as error:
        parser.error(f"{error} (here: --data DIR, and --download to let torchvision fetch it)")
    if not args.json:
        print(f"{'architecture':<18} {'test error':>17} {'paper':>6} {'published':>9} {'subset':>7} {'pinned':>6} "
              f"{'seconds':>7}  weights")  # fmt: skip
    rows = []
    for arch in args.archs:
        row = evaluate(arch, args, test_set)
        rows.append(row)
        if not args.json:
            error = f"{row['error_pct']:.2f}% ({row['errors']:,})"
            print(f"{arch:<18} {error:>17} {row['paper_error_pct']:>5.2f}% {row['published_error_pct']:>8.2f}% "
                  f"{row['subset_errors']:>7} {row['subset_pinned'] if row['subset_pinned'] is not None else '-':>6} "
                  f"{row['seconds']:>7.1f}  {row['source']}", flush=True)  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{len(test_set[1]):,} test images; wall time {time.perf_counter() - start:.0f} s (loading included) on "
              f"{torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    # Exit 1 where a measured error misses the published one: a loading or preprocessing mistake.
    return 0 if all(abs(row["error_pct"] - row["published_error_pct"]) < 0.005 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
