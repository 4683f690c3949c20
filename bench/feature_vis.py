"""What a feature visualization costs, and how strongly its image excites the channel next to real test images.

    python -m bench.feature_vis [--steps 256] [--channels 4] [--threads 2] [--archs ...]

For each network, at the size its weights are evaluated at (32 px CIFAR-10, 224 px ImageNet): milliseconds per
optimisation step and seconds per image for the step budget. resnet18 and resnet50 run with random init by default
(``--imagenet-weights DEFAULT`` where their weights can be had): a step costs the same, but the image means nothing,
so they get one channel and no ratio. For the trained CIFAR-10 nets, ``--channels`` channels of the last block,
evenly spaced, each with the ratio of the optimised image's mean activation to the highest any of the 500 shipped
test images reaches on that channel (above 1: the image excites it more than every real photo). Prints a Markdown
table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from resnet_core import create_model, get_arch
from resnet_core.data import cifar10
from resnet_core.explain.feature_vis import DEFAULT_STEPS, visualize_channel
from resnet_core.measure.dataset_probe import probe_dataset

CIFAR_ARCHS = ("cifar10_resnet20", "cifar10_resnet56")
IMAGENET_ARCHS = ("resnet18", "resnet50")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=[*CIFAR_ARCHS, *IMAGENET_ARCHS])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--channels", type=int, default=4, help="channels of the last block per trained net")
    parser.add_argument("--imagenet-weights", default="none", help="weights for the ImageNet nets (default: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, _, _ = cifar10.load_subset()
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}, {args.steps} steps, seed {args.seed}")

    rows = []
    ratios: dict[str, list[float]] = {}
    for arch in args.archs:
        imagenet = get_arch(arch).labels == "imagenet"
        torch.manual_seed(args.seed)  # the same random-init network on every run
        model = create_model(arch, weights=args.imagenet_weights if imagenet else "DEFAULT", progress=False)
        block = model.block_names()[-1]
        width = model.feature_info[-1].channels
        count = 1 if not model.card.pretrained else max(1, min(args.channels, width))
        channels = torch.linspace(0, width - 1, count).round().int().tolist()
        best = None
        if model.card.label_space.key == "cifar10":
            inputs = cifar10.to_batch(images, model.card.preprocess.mean, model.card.preprocess.std)
            best = probe_dataset(model, inputs).channel_means[block].max(dim=0).values
        for channel in channels:
            start = time.perf_counter()
            result = visualize_channel(model, block, channel, steps=args.steps, seed=args.seed)
            seconds = time.perf_counter() - start
            top = None if best is None else float(best[channel])
            ratio = result.activation / top if top else None
            if ratio is not None:
                ratios.setdefault(arch, []).append(ratio)
            rows.append((arch, model.card.label, result, seconds, top, ratio))
            versus = f", x{ratio:.2f} the best test image" if ratio is not None else ""
            print(f"  {arch} {block} channel {channel}: {1000 * result.seconds_per_step:.1f} ms/step, {seconds:.1f} s, "
                  f"activation {result.activation:.3f}{versus}", flush=True)  # fmt: skip

    print()
    print("| network | weights | px | layer | channel | steps | ms/step | s/image | activation | best of 500 test "
          "images | ratio |")  # fmt: skip
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for arch, weights, result, seconds, best, ratio in rows:
        best_cell = f"{best:.3f}" if best is not None else "-"
        ratio_cell = f"{ratio:.2f}" if ratio is not None else "-"
        print(f"| {arch} | {weights} | {result.size} | {result.layer} | {result.channel} | {result.steps} | "
              f"{1000 * result.seconds_per_step:.1f} | {seconds:.1f} | {result.activation:.3f} | {best_cell} | "
              f"{ratio_cell} |")  # fmt: skip
    print()
    for arch, values in ratios.items():
        print(f"{arch}: median ratio {statistics.median(values):.2f} over {len(values)} channel(s), "
              f"lowest {min(values):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
