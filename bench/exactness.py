"""Per architecture: build time and the largest output difference from the reference implementation.

    python -m bench.exactness [--size 224]

The reference (torchvision or timm, timm being a dev dependency) is built with random weights and
non-trivial BatchNorm statistics; its state dict is loaded into ours with strict=True and both run one
eval-mode forward on the same random batch. Build time is ``create_model(name)`` (kaiming init), median of 3.
"""

from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch
import torchvision

from resnet_core import ARCHITECTURES, create_model


def reference(name: str) -> torch.nn.Module:
    if ARCHITECTURES[name].reference == "torchvision":
        return getattr(torchvision.models, name)()
    return timm.create_model(name, pretrained=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(2, 3, args.size, args.size)
    print(f"{'architecture':<18} {'reference':<12} {'max |ours - ref|':>17} {'build ms':>9}")
    for name, spec in ARCHITECTURES.items():
        times = []
        for _ in range(3):
            start = time.perf_counter()
            ours = create_model(name)
            times.append(1000 * (time.perf_counter() - start))
        difference = "-"
        if spec.reference:
            ref = reference(name).eval()
            for module in ref.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 1.5)
                    module.weight.data.uniform_(0.5, 1.5)
                    module.bias.data.uniform_(-0.2, 0.2)
            ours.load_state_dict(ref.state_dict(), strict=True)
            with torch.no_grad():
                difference = f"{(ours(x) - ref(x)).abs().max().item():.3g}"
        print(f"{name:<18} {spec.reference or '(none)':<12} {difference:>17} {statistics.median(times):>9.0f}")


if __name__ == "__main__":
    main()
