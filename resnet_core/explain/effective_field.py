"""How far one unit of a feature map sees on one image: its theoretical receptive field and its effective one.

The theoretical field (:mod:`resnet_core.measure.receptive_field`) is every input pixel that can reach the unit; the
effective field (Luo et al., 2016) is how much each pixel does reach it, the input gradient of the unit. Luo et al.
found it roughly Gaussian and far smaller than the theoretical square, and skip connections are one reason: a path
through shortcuts passes fewer 3x3 windows, so a residual network's effective field is weighted towards the centre
(Veit et al. 2016 read a ResNet as an ensemble of paths of many lengths).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..hooks import eval_mode
from ..measure.receptive_field import receptive_fields
from ..zoo.models import ResNet
from .analysis import model_input

__all__ = ["UnitField", "unit_field"]


@dataclass(frozen=True)
class UnitField:
    """Unit ``(row, col)`` of ``stage``'s output (all its channels summed), seen on the crop the network took."""

    stage: str
    row: int
    col: int
    grid: tuple[int, int]  # the stage's output height and width
    size: int  # the theoretical field's side, in input pixels
    box: tuple[int, int, int, int]  # the theoretical field on the crop: left, top, right, bottom (right/bottom excl.)
    gradient: np.ndarray  # (H, W) |d unit / d input| summed over input channels, scaled to a maximum of 1
    crop: Image.Image

    def half_mass_side(self) -> int:
        """The side of the smallest square around the unit's centre that holds half of the gradient's mass: the
        effective field's size, to set beside the theoretical one."""
        height, width = self.gradient.shape
        centre_y, centre_x = (self.box[1] + self.box[3] - 1) / 2, (self.box[0] + self.box[2] - 1) / 2
        ys, xs = np.mgrid[0:height, 0:width]
        reach = np.maximum(np.abs(ys - centre_y), np.abs(xs - centre_x))  # square rings around the centre
        order = np.argsort(reach, axis=None, kind="stable")
        mass = np.cumsum(self.gradient.ravel()[order])
        if mass[-1] <= 0:
            return 0
        inside = reach.ravel()[order][np.searchsorted(mass, mass[-1] / 2)]
        return int(2 * np.floor(inside) + 1)


def unit_field(model: ResNet, image: Image.Image | str | Path, stage: str, row: int, col: int) -> UnitField:
    """The theoretical and effective field of unit ``(row, col)`` of ``stage`` ("stem", "layer1", ...) on ``image``:
    the network up to that stage and one backward from the unit; the model's modes are as they were after it."""
    info = model.stage(stage)
    crop, inputs = model_input(model, image)
    names = [entry.name for entry in model.feature_info]
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        inputs = inputs.clone().requires_grad_()
        output = model.stem(inputs)
        for name in names[1 : names.index(stage) + 1]:  # the network up to this stage, no further
            output = model.get_submodule(name)(output)
        height, width = output.shape[-2:]
        if not (0 <= row < height and 0 <= col < width):
            raise ValueError(f"{stage} is {height}x{width}: unit ({row}, {col}) is outside it")
        (gradient,) = torch.autograd.grad(output[0, :, row, col].sum(), inputs)
    field = receptive_fields(model)[info.blocks[-1] if info.blocks else "stem"]
    size_y, size_x = inputs.shape[-2:]
    (left, right), (top, bottom) = field.region(col, size_x), field.region(row, size_y)
    magnitude = gradient[0].abs().sum(0).double()
    top_value = float(magnitude.max())
    scaled = (magnitude / top_value if top_value > 0 else magnitude).float().cpu().numpy()
    return UnitField(stage, row, col, (height, width), field.size, (left, top, right, bottom), scaled, crop)
