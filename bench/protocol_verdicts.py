"""Which explanation checks can judge one image: for each shipped CIFAR-10 network and each deletion/insertion
protocol the Explanation checks tab offers (blur or zero fill; pixels or 4x4 or 8x8 patches), does the protocol
separate Grad-CAM from a random ranking over the 500 shipped test images?

    python -m bench.protocol_verdicts [--archs ...] [--fills ...] [--patches ...] [--out FILE]

A protocol separates the map from random for a network when, on the images where it is valid, the map beats random
on at least 75% of them and the 95% bootstrap interval of the mean gap (map - random) excludes 0. The Explanation
checks tab gives a per-image verdict only for a protocol that separates, naming these figures; for the others it
says that one image cannot decide. Writes the table the app ships (by default assets/explanation_verdicts.json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from resnet_core import evaluate_dataset
from resnet_core.assets import ASSETS_DIR
from resnet_core.explain.saliency import FILLS
from resnet_core.explain.sanity import PATCHES, Protocol, protocol_setting, separates

ARCHS = ["cifar10_resnet20", "cifar10_resnet32", "cifar10_resnet44", "cifar10_resnet56"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=ARCHS)
    parser.add_argument("--fills", nargs="+", choices=FILLS, default=list(FILLS))
    parser.add_argument("--patches", nargs="+", type=int, default=list(PATCHES))
    parser.add_argument("--out", type=Path, default=ASSETS_DIR / "explanation_verdicts.json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    table: dict[str, list[dict]] = {name: [] for name in args.archs}
    start = time.perf_counter()
    for fill in args.fills:
        for patch in args.patches:
            protocol = Protocol(fill=fill, patch=patch)
            with tempfile.TemporaryDirectory() as folder:
                summaries = evaluate_dataset("cifar10", args.archs, Path(folder), metrics=["deletion", "insertion"],
                                             protocol=protocol, workers=0, progress=False)  # fmt: skip
            for name, summary in summaries.items():
                entry = {"protocol": protocol_setting(protocol)}
                for curve, versus in summary.against_random.items():
                    entry[curve] = {**versus, "method": "gradcam", "separates": separates(versus)}
                    verdict = "separates" if entry[curve]["separates"] else "does not separate"
                    low, high = versus["gap_to_random"]["ci95"]
                    print(f"{name:<18} {fill:<5} {patch}px {curve:<9} valid {100 * versus['valid_share']:5.1f}%  "
                          f"beats random {100 * versus['beats_random']:5.1f}%  gap "
                          f"{versus['gap_to_random']['mean']:+.3f} [{low:+.3f}, {high:+.3f}]  {verdict}",
                          flush=True)  # fmt: skip
                table[name].append(entry)
    payload = {"images": "the 500 shipped CIFAR-10 test images", "method": "gradcam", "networks": table}
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"{time.perf_counter() - start:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
