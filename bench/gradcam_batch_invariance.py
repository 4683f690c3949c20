"""Why ``saliency_map("gradcam")`` runs one image as a batch of two: without it, a single image's map differs from
the same image's map in a batch (the CPU kernels take another path for one image), and a ranking by the map, so a
deletion curve, then depends on whether the image came alone (the Explanation checks) or in a batch (a data-set
run), which must give the same row.

    python -m bench.gradcam_batch_invariance [--images 100]

cifar10_resnet56, last stage, top-1 class, the shipped test images, one thread: the largest map difference and how
often the deletion AUC (the default protocol, seed 0) differs between the map made alone without the trick and the
map made in a batch of all the images.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from resnet_core import create_model
from resnet_core.data.cifar10 import load_subset, to_batch
from resnet_core.explain.attribution import grad_cams
from resnet_core.explain.saliency import gradcam_maps
from resnet_core.explain.sanity import Protocol, perturbation_curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = create_model("cifar10_resnet56", weights="DEFAULT")
    images, _, _ = load_subset()
    inputs = to_batch(images[: args.images], model.card.preprocess.mean, model.card.preprocess.std)
    with torch.no_grad():
        classes = model(inputs).argmax(1)
    batched, _ = gradcam_maps(model, inputs, classes)
    layer = model.get_submodule(model.feature_info[-1].module)

    def alone(index: int) -> torch.Tensor:  # the map as a batch of one, without the duplication
        image, target = inputs[index : index + 1].clone(), classes[index : index + 1].clone().view(-1, 1)
        with torch.enable_grad():
            return grad_cams(lambda x: model(x).gather(1, target)[:, 0], layer, image, tuple(image.shape[-2:]))[0]

    map_gaps, auc_gaps = [], []
    for index in range(args.images):
        single, in_batch = alone(index), batched[index]
        map_gaps.append(float((single - in_batch).abs().max()))
        aucs = [
            perturbation_curve(model, inputs[index : index + 1], int(classes[index]), m.numpy(), Protocol(), 0).auc
            for m in (single, in_batch)
        ]
        auc_gaps.append(abs(aucs[0] - aucs[1]))
    gaps = np.array(auc_gaps)
    print(
        f"{args.images} images: largest map difference {max(map_gaps):.2e}; deletion AUC differs by more than 1e-5 "
        f"on {(gaps > 1e-5).sum()}, by more than 1e-3 on {(gaps > 1e-3).sum()}, at most {gaps.max():.2e}"
    )


if __name__ == "__main__":
    main()
