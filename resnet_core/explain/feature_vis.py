"""What a channel wants to see: an input image optimised to excite one channel of one block (feature visualization).

The method of Olah, Mordvintsev and Schubert, "Feature Visualization" (Distill, 2017). Plain gradient ascent on
pixels finds high-frequency noise that excites a channel without looking like anything, so three things steer it
towards images a person can read:

* the image is learned as a Fourier spectrum scaled by ``1 / frequency``, which makes every frequency equally easy
  to change for the optimiser (natural images have that falloff), instead of favouring the many high ones;
* its colours are learned in a decorrelated space and mixed by the square root of ImageNet's RGB covariance, then
  squashed to [0, 1] by a sigmoid, so a step changes luminance and colour like natural images vary;
* every step sees a randomly shifted, scaled and rotated copy, so only a pattern that survives those transforms can
  raise the objective, not one tuned to exact pixel positions.

The transforms are one ``F.affine_grid`` / ``F.grid_sample`` per step (Lucent did them with kornia; its design, not
its code, is followed here). The model is shared, so it is left as found: parameters untouched (gradients come from
``torch.autograd.grad`` on the image alone), eval mode only while running, and the one hook that stops the forward at
the target layer lives inside :func:`~resnet_core.hooks.forward_hooks`.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from ..cache import fingerprint
from ..hooks import eval_mode, forward_hooks
from ..zoo.create import card
from ..zoo.models import ResNet

__all__ = [
    "DEFAULT_STEPS",
    "FeatureVisualization",
    "channel_activation",
    "layer_channels",
    "visualize_channel",
    "visualize_direction",
]

DEFAULT_STEPS = 256
# Changes whenever the algorithm does, so a cache never serves an image made by an older one.
ALGORITHM_VERSION = 1

# sqrt of ImageNet's RGB covariance (columns: the decorrelated directions), as published with Lucid, then scaled so
# that the largest column has unit norm: a unit step in the learned space is at most a unit step in RGB.
_COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_CORRELATION = _COLOR_SQRT / _COLOR_SQRT.norm(dim=0).max()

SPECTRUM_INIT_STD = 0.01
# Lucid's constant: scales the image's logits, so that Adam, moving each coefficient by about ``lr`` per step, changes
# the image at a moderate pace (the 1/f scale reaches ``size`` at the lowest frequency).
SPECTRUM_GAIN = 1 / 4
MAX_SCALE_CHANGE = 0.1  # zoom drawn from [0.9, 1.1]
MAX_ROTATION_DEGREES = 10.0
JITTER_FRACTION = 1 / 16  # shift up to 14 px at 224 px, 2 px at 32 px

Progress = Callable[[int, int, float], None]


@dataclass(frozen=True)
class FeatureVisualization:
    """The optimised image and how it was made.

    ``activation`` is the channel's mean over its spatial map on the saved 8-bit image itself, untransformed (what
    anyone re-feeding the PNG gets); ``objective`` is that mean on each step's randomly transformed copy.
    """

    image: Image.Image = field(repr=False)  # RGB, or L for a one-channel model
    activation: float
    objective: tuple[float, ...] = field(repr=False)
    seconds_per_step: float
    layer: str
    channel: int
    steps: int
    size: int
    seed: int
    lr: float
    from_cache: bool = False
    # A direction in the layer's channel space (a concept of resnet_core.explain.concepts), unit length, instead of
    # one channel (``channel`` is then -1): the objective is the activation's projection on it.
    direction: tuple[float, ...] | None = None

    def as_dict(self) -> dict:
        """Everything but the image (the JSON beside a cached PNG, and the CLI's output)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("image", "from_cache")}
        direction = None if self.direction is None else list(self.direction)
        return {**values, "objective": list(self.objective), "direction": direction, "algorithm": ALGORITHM_VERSION}


def layer_channels(model: ResNet) -> dict[str, int]:
    """Every layer that can be visualised and its number of channels: the stages (``stem``, ``layer1`` ...) and
    the blocks (``layer1.0`` ...), in forward order, as ``model.feature_info`` names them."""
    layers = {}
    for stage in model.feature_info:
        layers[stage.name] = stage.channels
        layers.update(dict.fromkeys(stage.blocks, stage.channels))
    return layers


def _target(model: ResNet, layer: str, channel: int) -> str:
    """The submodule to read ``layer`` from; a ValueError a user understands for a bad layer or channel.

    A block's (or stage's last block's) ``residual_add``: its output is the block's output before the final ReLU,
    which gives a gradient even where the channel is still zero. The stem is read where it ends (``maxpool``).
    Either way ``relu(output)`` is the layer's output.
    """
    layers = layer_channels(model)
    if layer not in layers:
        name = card(model).arch.name
        raise ValueError(
            f"unknown layer {layer!r} of {name}: expected a stage ({', '.join(s.name for s in model.feature_info)}) "
            f"or a block ({model.block_names()[0]} ... {model.block_names()[-1]})"
        )
    if not 0 <= channel < layers[layer]:
        raise ValueError(f"{layer} has {layers[layer]} channels (0 to {layers[layer] - 1}), got channel {channel}")
    stage = next((stage for stage in model.feature_info if stage.name == layer), None)
    if stage is None:
        return f"{layer}.residual_add"
    return f"{stage.blocks[-1]}.residual_add" if stage.blocks else stage.module


class _Reached(Exception):
    """Carries the target layer's output out of the forward pass: the layers after it would be wasted work."""

    def __init__(self, output: Tensor) -> None:
        super().__init__()
        self.output = output


@contextmanager
def _forward_to(model: ResNet, module: str) -> Iterator[Callable[[Tensor], Tensor]]:
    """A function from input to ``module``'s output, running the network only that far, in eval mode.

    Eval mode because batch-norm in train mode would use one image's statistics and overwrite its running ones;
    each module's own mode is put back on exit. The stop hook acts only in this thread, so another user's full
    forward of the same shared model passes it by.
    """
    owner = threading.get_ident()

    def stop(_module: nn.Module, _args: tuple, output: Tensor) -> None:
        if threading.get_ident() == owner:
            raise _Reached(output)

    def run(inputs: Tensor) -> Tensor:
        try:
            model(inputs)
        except _Reached as reached:
            return reached.output
        raise RuntimeError(f"{module} did not run in the forward pass")

    with eval_mode(model), forward_hooks(model, [(module, stop)]):
        yield run


def channel_activation(model: ResNet, layer: str, channel: int, inputs: Tensor) -> Tensor:
    """Mean activation of ``channel`` of ``layer`` per image of ``inputs`` (N, C, H, W, already normalised)."""
    module = _target(model, layer, channel)
    device = next(model.parameters()).device
    with torch.no_grad(), _forward_to(model, module) as forward:
        return forward(inputs.to(device))[:, channel].float().relu().mean((1, 2)).cpu()


def _spectrum_scale(size: int) -> Tensor:
    """``1 / frequency`` for each coefficient of a real 2-D FFT of ``size``x``size``, capped at the lowest one."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    return 1 / torch.sqrt(fx**2 + fy**2).clamp(min=1 / size)


def _to_pixels(spectrum: Tensor, scale: Tensor, size: int) -> Tensor:
    """(1, C, size, size) pixels in [0, 1] from the learned spectrum: inverse FFT, colour mixing, sigmoid."""
    logits = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(size, size), norm="ortho") * SPECTRUM_GAIN
    if logits.shape[0] == 3:
        logits = torch.einsum("ij,jhw->ihw", COLOR_CORRELATION.to(logits.device), logits)
    return torch.sigmoid(logits).unsqueeze(0)


def _random_affine(generator: torch.Generator, size: int) -> Tensor:
    """A (1, 2, 3) ``affine_grid`` matrix: random zoom, rotation and shift (in pixels of a ``size`` image)."""
    zoom, turn, dx, dy = (2 * torch.rand(4, generator=generator, dtype=torch.float64) - 1).tolist()
    scale = 1 + MAX_SCALE_CHANGE * zoom
    angle = math.radians(MAX_ROTATION_DEGREES * turn)
    shift = 2 * max(1.0, JITTER_FRACTION * size) / size  # normalised coordinates span 2 across the image
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    return torch.tensor([[[cos, -sin, shift * dx], [sin, cos, shift * dy]]])


def _quantised(pixels: Tensor) -> Tensor:
    """The 8-bit (C, H, W) image the PNG will hold."""
    return (pixels[0] * 255).round().clamp(0, 255).to(torch.uint8).cpu()


def visualize_channel(
    model: ResNet,
    layer: str,
    channel: int,
    steps: int = DEFAULT_STEPS,
    size: int | None = None,
    seed: int = 0,
    lr: float = 0.05,
    progress: Progress | None = None,
    cache_dir: Path | None = None,
) -> FeatureVisualization:
    """Optimise an image (Adam on a Fourier parameterisation) to maximise the mean of ``channel`` of ``layer``.

    ``layer``: a stage (``layer3``) or block (``layer3.8``) name, see :func:`layer_channels`. ``size``: side in
    pixels, by default the crop the model is evaluated at (32 for CIFAR-10, 224 for ImageNet, 28 for the digit nets).
    One seed gives one image. ``progress(step, steps, objective)`` is called after every step; an exception it
    raises stops the optimisation (the model is left as found either way). While it runs, a hook sits on ``model``
    (it acts in this thread only); an app sharing the model holds the lock it takes for hooks if other code's hooks
    must not see these forward passes.
    With ``cache_dir`` (e.g. ``cache_dir("feature_vis")`` of :mod:`resnet_core.cache`) the result is kept there as
    a PNG plus a JSON, keyed by a hash of the weights and every setting, and read back instead of optimised again
    (``from_cache=True``).
    Raises ``ValueError`` for an unknown layer, a channel out of range or a step budget or size below 1.
    """
    module = _target(model, layer, channel)
    settings = (steps, size, seed, lr, progress, cache_dir)
    return _visualize(model, layer, module, lambda out: out[channel], f"c{channel}", channel, None, *settings)


def visualize_direction(
    model: ResNet,
    layer: str,
    direction: Sequence[float],
    steps: int = DEFAULT_STEPS,
    size: int | None = None,
    seed: int = 0,
    lr: float = 0.05,
    progress: Progress | None = None,
    cache_dir: Path | None = None,
) -> FeatureVisualization:
    """:func:`visualize_channel` for a direction in ``layer``'s channel space (a concept's, from
    :mod:`resnet_core.explain.concepts`): the image maximises the mean over positions of the activation's
    projection on the unit ``direction`` (Olah et al.'s direction objective), so it shows what the concept wants to
    see rather than any one channel. ``ValueError`` for a direction of the wrong length or of zero length."""
    module = _target(model, layer, 0)
    unit = torch.tensor(list(direction), dtype=torch.float64)
    channels = layer_channels(model)[layer]
    if unit.shape != (channels,) or not float(unit.norm()) > 0:
        raise ValueError(f"{layer} has {channels} channels: a direction is {channels} numbers, not all zero")
    unit = unit / unit.norm()
    digest = hashlib.sha256(unit.numpy().tobytes()).hexdigest()[:12]
    settings = (steps, size, seed, lr, progress, cache_dir)
    weights = unit.float().view(-1, 1, 1)

    def project(out: Tensor) -> Tensor:
        return (out * weights.to(out.device, out.dtype)).sum(0)

    return _visualize(model, layer, module, project, f"d{digest}", -1, tuple(unit.tolist()), *settings)


def _visualize(
    model: ResNet,
    layer: str,
    module: str,
    score: Callable[[Tensor], Tensor],
    target: str,
    channel: int,
    direction: tuple[float, ...] | None,
    steps: int,
    size: int | None,
    seed: int,
    lr: float,
    progress: Progress | None,
    cache_dir: Path | None,
) -> FeatureVisualization:
    """The optimisation both objectives share: ``score`` maps one image's (C, H, W) activation before the ReLU to
    the (H, W) map whose ReLU's mean is maximised; ``target`` names it in the cache."""
    model_card = card(model)
    size = model_card.preprocess.crop_size if size is None else size
    if steps < 1 or size < 1:
        raise ValueError(f"steps and size must be at least 1, got steps={steps}, size={size}")
    mean, std = model_card.preprocess.mean, model_card.preprocess.std
    if len(mean) != model.in_chans:
        raise ValueError(f"the model takes {model.in_chans} channels but its card normalises {len(mean)}")
    stem = None
    if cache_dir is not None:
        stem = Path(cache_dir) / fingerprint(model) / _cache_name(layer, target, steps, size, seed, lr)
        found = _load(stem)
        if found is not None:
            return found

    device = next(model.parameters()).device
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    generator = torch.Generator().manual_seed(seed)
    shape = (model.in_chans, size, size // 2 + 1, 2)
    spectrum = (SPECTRUM_INIT_STD * torch.randn(shape, generator=generator)).to(device).requires_grad_(True)
    scale = _spectrum_scale(size).to(device)
    optimizer = torch.optim.Adam([spectrum], lr=lr)
    objective: list[float] = []
    start = time.perf_counter()
    with _forward_to(model, module) as forward, torch.enable_grad():
        for step in range(1, steps + 1):
            inputs = (_to_pixels(spectrum, scale, size) - mean_t) / std_t
            grid = F.affine_grid(_random_affine(generator, size).to(device), list(inputs.shape), align_corners=False)
            # Zero padding in normalised space is the data set's mean colour where a zoom-out or shift uncovers edges.
            moved = F.grid_sample(inputs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            before_relu = score(forward(moved)[0])
            value = before_relu.relu().mean()
            # A channel that is zero everywhere has no gradient: raise its input to the ReLU until it fires.
            (gradient,) = torch.autograd.grad(-torch.where(value > 0, value, before_relu.mean()), [spectrum])
            spectrum.grad = gradient
            optimizer.step()
            objective.append(float(value.detach()))
            if progress is not None:
                progress(step, steps, objective[-1])
        seconds_per_step = (time.perf_counter() - start) / steps
        with torch.no_grad():
            pixels = _quantised(_to_pixels(spectrum, scale, size))
            final = forward((pixels.to(device, torch.float32).unsqueeze(0) / 255 - mean_t) / std_t)
    activation = float(score(final[0]).float().relu().mean())
    result = FeatureVisualization(
        _to_image(pixels),
        activation,
        tuple(objective),
        seconds_per_step,
        layer,
        channel,
        steps,
        size,
        seed,
        lr,
        direction=direction,
    )
    if stem is not None:
        _save(result, stem)
    return result


def _to_image(pixels: Tensor) -> Image.Image:
    array = pixels.permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0], "L") if array.shape[-1] == 1 else Image.fromarray(array, "RGB")


def _cache_name(layer: str, target: str, steps: int, size: int, seed: int, lr: float) -> str:
    """A cache entry's name: ``target`` is ``c<channel>`` or ``d<digest of the direction>``."""
    return f"{layer}-{target}-{steps}steps-{size}px-seed{seed}-lr{lr:g}-v{ALGORITHM_VERSION}"


def _save(result: FeatureVisualization, stem: Path) -> None:
    """PNG first, then the JSON, each written aside and renamed: a JSON on disk means a complete entry."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    for suffix, write in (
        (".png", lambda path: result.image.save(path, format="PNG")),
        (".json", lambda path: path.write_text(json.dumps(result.as_dict()) + "\n")),
    ):
        temporary = stem.with_name(f"{stem.name}.{uuid.uuid4().hex}.tmp")
        write(temporary)
        temporary.replace(stem.with_name(stem.name + suffix))


def _load(stem: Path) -> FeatureVisualization | None:
    """The cached result at ``stem``, or None when there is none (or it cannot be read: then it is recomputed)."""
    meta_path, png_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".png")
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        with Image.open(png_path) as opened:
            image = opened.copy()
        meta.pop("algorithm")
        meta["objective"] = tuple(meta["objective"])
        meta["direction"] = None if meta.get("direction") is None else tuple(meta["direction"])
        return FeatureVisualization(image=image, from_cache=True, **meta)
    except (OSError, ValueError, KeyError, TypeError):
        return None
