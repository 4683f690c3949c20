"""What the paper's trained CIFAR-10 nets do across the test set: residual ratios, lesions, channel probes.

    python -m bench.cifar10_trained [--data DIR] [--weights-dir DIR] [--every 10] [--threads 2]

Test images from ``--data`` / ``$RESNET_EXPLORER_CIFAR10`` (all 10,000; ``--every N`` keeps every N-th for the
lesion study), weights as ``create_model(arch, weights="DEFAULT")`` or the published ``.th`` files in
``--weights-dir``. Prints, for resnet20 and resnet56 (and 32/44 where their weights are found):

1. the median ``||F(x)|| / ||shortcut(x)||`` per stage and per block over every test image (the paper's Fig. 7
   says responses are smaller in deeper ResNets), and the time of that one probe pass (what the app's CIFAR-10
   tab spends once per model before it caches the result);
2. test accuracy intact and with each block deleted (residual branch removed, shortcut kept; Veit et al. 2016),
   ranked, on every N-th test image.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from resnet_core import create_model, default_weights
from resnet_core.data.cifar10 import load_test_set, to_batch
from resnet_core.measure.dataset_probe import probe_dataset
from resnet_core.measure.lesion import lesion_study


def load(arch: str, weights_dir: Path | None):
    entry = default_weights(arch)
    if weights_dir is not None and (weights_dir / entry.file_name).is_file():
        return create_model(arch, weights=weights_dir / entry.file_name, progress=False)
    return create_model(arch, weights="DEFAULT", progress=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=None)
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--archs", nargs="+", default=["cifar10_resnet20", "cifar10_resnet56"])
    parser.add_argument("--every", type=int, default=10, help="lesion study on every N-th test image")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, labels = load_test_set(args.data)
    print(f"{len(images):,} test images, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for arch in args.archs:
        model = load(arch, args.weights_dir)
        inputs = to_batch(images, model.card.preprocess.mean, model.card.preprocess.std)
        start = time.perf_counter()
        probe = probe_dataset(model, inputs)
        seconds = time.perf_counter() - start
        stages = ", ".join(f"{stage} {value:.3f}" for stage, value in probe.stage_medians(model.block_stages).items())
        medians = probe.median_ratios()
        above = [block for block, value in medians.items() if value > 1]
        per_image = 1000 * seconds / len(images)
        print(f"\n{arch}: probe of {len(images):,} images in {seconds:.1f} s ({per_image:.2f} ms/image)")
        print(f"  median ||F(x)||/||shortcut(x)|| per stage: {stages}")
        print("  per block: " + " ".join(f"{block} {value:.2f}" for block, value in medians.items()))
        print(f"  blocks with median above 1: {', '.join(above) or 'none'}")
        subset = slice(None, None, args.every)
        start = time.perf_counter()
        study = lesion_study(model, inputs[subset], torch.from_numpy(labels[subset]))
        seconds = time.perf_counter() - start
        ranked = sorted(study.accuracy.items(), key=lambda item: item[1])
        values = list(study.accuracy.values())
        print(f"  lesions on {len(inputs[subset]):,} images ({seconds:.0f} s): intact {study.baseline:.2%}, "
              f"median with one block deleted {np.median(values):.2%}")  # fmt: skip
        print("  worst: " + ", ".join(f"{block} {acc:.2%}" for block, acc in ranked[:5]))
        print("  least missed: " + ", ".join(f"{block} {acc:.2%}" for block, acc in ranked[-3:]))


if __name__ == "__main__":
    main()
