"""Concepts (NMF of a stage's activations): what fitting costs, how much the dictionary explains, how fast a photo is
projected, and whether the contribution ranking predicts the logit's fall better than random.

    python -m bench.concepts [--data cifar10] [--layers layer2 layer3] [--ks 8 16 32] [--check 200] [--fits-only]

``--data cifar10:full`` reads all 10,000 test images where ``$RESNET_EXPLORER_CIFAR10`` points at them. Each fit runs
uncached on cifar10_resnet56's published weights, one after another (no other CPU job beside it). The per-photo
view (projection, ranking, deletion curves) is timed against one ``analyze`` of the same photo, interleaved, medians
of 5. The deletion check runs on the first ``--check`` images at k = 16.
"""

from __future__ import annotations

import argparse
import statistics
import time

from resnet_core import create_model
from resnet_core.assets import ASSETS_DIR
from resnet_core.data.sources import open_source
from resnet_core.explain.analysis import analyze
from resnet_core.explain.concepts import (
    channels_at,
    concept_deletion,
    concepts_of_photo,
    deletion_check,
    learn_concepts,
)

PHOTO = ASSETS_DIR / "photos" / "chelsea.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="cifar10")
    parser.add_argument("--layers", nargs="+", default=["layer2", "layer3"])
    parser.add_argument("--ks", nargs="+", type=int, default=[8, 16, 32])
    parser.add_argument("--check", type=int, default=200)
    parser.add_argument("--fits-only", action="store_true", help="the fits alone: no photo timing, no deletion check")
    args = parser.parse_args()
    model = create_model("cifar10_resnet56", weights="DEFAULT")
    source = open_source(args.data)
    print(f"cifar10_resnet56, {len(source)} images of {source.description}")
    print(f"{'layer':<8} {'k':>3} {'fit s':>8} {'iterations':>11} {'explained':>10}")
    fitted = {}
    for layer in args.layers:
        for k in args.ks:
            if k > channels_at(model, layer):
                continue
            found = fitted[layer, k] = learn_concepts(model, layer, source, k=k, use_cache=False)
            limit = "" if found.converged else " (limit)"
            print(f"{layer:<8} {k:>3} {found.seconds:>8.1f} {found.iterations:>11}{limit} {found.explained:>10.3f}")
    for layer in [] if args.fits_only else args.layers:
        dictionary = fitted.get((layer, 16)) or learn_concepts(model, layer, source, k=16, use_cache=False)
        photo, analysis = [], []
        for _ in range(5):
            started = time.perf_counter()
            concept_deletion(model, dictionary, concepts_of_photo(model, dictionary, PHOTO))
            photo.append(time.perf_counter() - started)
            started = time.perf_counter()
            analyze(model, PHOTO)
            analysis.append(time.perf_counter() - started)
        ratio = statistics.median(photo) / statistics.median(analysis)
        print(f"{layer}: a photo's concepts, ranking and deletion curves take {ratio:.1f}x one analysis")
        check = deletion_check(model, dictionary, source.head(args.check))
        low, high = check["ci95"]
        print(
            f"{layer}, k=16: the ranking beats random on {100 * check['beats_random']:.1f}% of {check['images']} "
            f"images (95% interval {100 * low:.1f}-{100 * high:.1f}%)"
        )


if __name__ == "__main__":
    main()
