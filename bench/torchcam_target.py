"""Which score Grad-CAM explains, and what it does to Average Drop: ours (the class logit, as Selvaraju et al.)
against TorchCAM's documented use (``ClassificationMetric(GradCAM(...), softmax)``, whose maps explain the softmax
probability), both measured on the softmax probability as TorchCAM measures it, on the 500 shipped CIFAR-10 test
images with cifar10_resnet56 (last stage, top-1 class).

    python -m bench.torchcam_target
"""

from __future__ import annotations

import time
from functools import partial

import numpy as np
import torch
from PIL import Image
from torchcam.methods import GradCAM
from torchcam.metrics import ClassificationMetric

from resnet_core import create_model
from resnet_core.data import cifar10
from resnet_core.evaluate.metrics import METRICS, MetricBatch


def main() -> None:
    model = create_model("cifar10_resnet56", weights="DEFAULT")
    images, _, _ = cifar10.load_subset()
    batches = torch.stack([model.card.preprocess(Image.fromarray(image)) for image in images]).split(100)
    start = time.perf_counter()
    drops = []
    for batch in batches:
        with torch.inference_mode():
            classes = model(batch).argmax(1)
        drops += METRICS["average_drop"].compute(MetricBatch(model, batch, classes, seeds=[0] * len(batch)))[
            "average_drop"
        ]
    print(f"ours, maps of the logit: Average Drop {np.mean(drops):.3f} ({time.perf_counter() - start:.0f} s)")
    start = time.perf_counter()
    model.requires_grad_(True)  # a graph for TorchCAM to backpropagate through (ours builds its own)
    extractor = GradCAM(model, model.get_submodule(model.feature_info[-1].module))
    metric = ClassificationMetric(extractor, partial(torch.softmax, dim=-1))  # as its docstring shows it
    for batch in batches:
        metric.update(batch)
    extractor.remove_hooks()
    summary = metric.summary()
    print(
        f"TorchCAM's documented use, maps of the softmax probability: Average Drop {summary['avg_drop']:.3f}, "
        f"Increase in Confidence {summary['conf_increase']:.3f} ({time.perf_counter() - start:.0f} s)"
    )


if __name__ == "__main__":
    main()
