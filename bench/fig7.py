"""The paper's Fig. 7: standard deviation of every 3x3 layer's response, for the trained CIFAR-10 ResNets and the
degradation lab's plain and residual digit nets.

    python -m bench.fig7 [--data DIR] [--weights-dir DIR] [--out DIR] [--batch-size 500]

CIFAR-10 nets run on all 10,000 test images from ``--data`` or ``$RESNET_EXPLORER_CIFAR10`` (else the 500 shipped
ones, said in the output); the digit nets on the 5,000 shipped MNIST digits. Writes ``fig7.png`` and ``fig7.json``
to ``--out`` and prints, per network, the mean, median and largest deviation, so the paper's two claims (ResNets
respond less than plain nets; deeper ResNets respond less) can be read as the numbers fall.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from bench.cifar10_accuracy import ARCHS, trained_model
from resnet_core import create_model
from resnet_core.data.cifar10 import available_test_images, to_batches
from resnet_core.degradation.data import load_mnist_5k
from resnet_core.measure.layer_responses import ResponseStd, response_std
from resnet_core.render import response_figure
from resnet_core.settings import ENV_TEST_SET

DIGIT_NETS = ["digits_plain20", "digits_resnet20", "digits_plain56", "digits_resnet56"]


def cifar_curve(arch: str, images: np.ndarray, args: argparse.Namespace) -> ResponseStd:
    model, _ = trained_model(arch, args.weights_dir)
    mean, std = model.card.preprocess.mean, model.card.preprocess.std
    return response_std(model, to_batches(images, mean, std, args.batch_size), network=arch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help=f"the CIFAR-10 test set (default ${ENV_TEST_SET})")
    parser.add_argument("--weights-dir", type=Path, default=None, help="a folder of the published .th files")
    parser.add_argument("--out", type=Path, default=Path("fig7"))
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    images, _, source = available_test_images(args.data)
    cifar = [cifar_curve(arch, images, args) for arch in ARCHS]
    digits, _ = load_mnist_5k()
    lab = [response_std(create_model(name, weights="DEFAULT"), digits.split(args.batch_size)) for name in DIGIT_NETS]

    args.out.mkdir(parents=True, exist_ok=True)
    groups = {"CIFAR-10 ResNets (trained, akamaster)": cifar, "Digits: plain against residual (the lab)": lab}
    response_figure(groups).savefig(args.out / "fig7.png", dpi=110)
    (args.out / "fig7.json").write_text(json.dumps([curve.as_dict() for curve in cifar + lab], indent=1))
    print(f"{'network':<18} {'3x3 layers':>10} {'mean std':>9} {'median':>7} {'largest':>8} {'last 10 mean':>12}")
    for curve in cifar + lab:
        mean, median, last = statistics.fmean(curve.std), statistics.median(curve.std), curve.std[-10:]
        print(f"{curve.network:<18} {len(curve.std):>10} {mean:>9.3f} {median:>7.3f} {max(curve.std):>8.3f} "
              f"{statistics.fmean(last):>12.3f}")  # fmt: skip
    print(f"CIFAR-10 nets on {source}; digit nets on {len(digits):,} digits; {time.perf_counter() - start:.0f} s; "
          f"wrote {args.out / 'fig7.png'} and fig7.json")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
