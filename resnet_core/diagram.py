"""A map of the network: stem, every block of every stage and the head, drawn from the network's own description.

Each stage is a row of blocks in forward order, as ``feature_info`` lists them; above each block an arc is its
shortcut: thin for the identity, thick and labelled where the block changes shape (``W_s``: a projection, option B or
ResNet-D's pooled one; ``A``: option A's subsample and zero channels), none in a plain network. Blocks are coloured
by any per-block number (multiply-adds, parameters, a residual ratio, ...). Drawn with Pillow in pixels, so the
boxes it returns are exactly where a click on the image lands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .render import colorize
from .zoo.models import ResNet, ZeroPadShortcut

__all__ = ["MapBox", "NetworkMap", "draw_network_map"]

Shortcut = Literal["identity", "projection", "zeropad", "none"]

WIDTH = 1100
LABEL_WIDTH = 150
ROW_HEIGHT = 74
BOX_HEIGHT = 34
MISSING = (225, 225, 225)


@dataclass(frozen=True)
class MapBox:
    """One drawn box: a row of the cost table (``stem``, ``layer2.1``, ``head``) and where it is, in pixels."""

    name: str
    stage: str
    left: int
    top: int
    right: int
    bottom: int
    shortcut: Shortcut = "none"

    def contains(self, x: float, y: float) -> bool:
        return self.left <= x <= self.right and self.top <= y <= self.bottom


@dataclass(frozen=True)
class NetworkMap:
    """The drawn map and its boxes; :meth:`at` answers which box a click at pixel ``(x, y)`` fell on."""

    image: np.ndarray  # (H, W, 3) uint8
    boxes: tuple[MapBox, ...]
    overlay: str

    def at(self, x: float, y: float) -> str | None:
        for box in self.boxes:
            if box.contains(x, y):
                return box.name
        return None


def _shortcut(block) -> Shortcut:
    if not block.shortcut:
        return "none"
    if block.downsample is None:
        return "identity"
    return "zeropad" if isinstance(block.downsample, ZeroPadShortcut) else "projection"


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_network_map(
    model: ResNet,
    values: Mapping[str, float | None] | None = None,
    overlay: str = "",
    title: str = "",
    log_scale: bool = False,
) -> NetworkMap:
    """Draw ``model`` with each box coloured by ``values`` (row name -> number; missing or None: grey).

    ``log_scale`` colours by the logarithm (for numbers spanning decades: MACs, parameters, residual ratios).
    """
    values = dict(values or {})
    stages = [stage for stage in model.feature_info[1:]]
    height = 40 + ROW_HEIGHT * (len(stages) + 2) + 60
    canvas = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(canvas)
    small, normal = _font(11), _font(13)
    draw.text((10, 10), title, fill="black", font=_font(15))

    shown = [v for v in values.values() if v is not None and np.isfinite(v) and (v > 0 or not log_scale)]
    scale: Callable[[float], float] | None = None
    low, high = 0.0, 1.0
    if shown:
        scale = np.log10 if log_scale else float
        low, high = min(map(scale, shown)), max(map(scale, shown))

    def colour(name: str) -> tuple[int, int, int]:
        value = values.get(name)
        if scale is None or value is None or not np.isfinite(value) or (log_scale and value <= 0):
            return MISSING
        share = (scale(value) - low) / (high - low) if high > low else 0.5
        red, green, blue = colorize(np.array([share]), "viridis")[0]
        return int(red), int(green), int(blue)

    def box(name: str, stage: str, left: int, top: int, right: int, shortcut: Shortcut = "none") -> MapBox:
        fill = colour(name)
        draw.rectangle((left, top, right, top + BOX_HEIGHT), fill=fill, outline=(60, 60, 60))
        label = name.rsplit(".", 1)[-1] if "." in name else name
        text_width = draw.textlength(label, font=small)
        if text_width + 4 <= right - left:
            dark = sum(fill) / 3 < 110
            draw.text(
                ((left + right - text_width) / 2, top + BOX_HEIGHT / 2 - 6),
                label,
                fill="white" if dark else "black",
                font=small,
            )
        return MapBox(name, stage, left, top, right, top + BOX_HEIGHT, shortcut)

    boxes = []
    row_top = 40
    stem = model.feature_info[0]
    draw.text((10, row_top + 10), f"stem\n{stem.channels} ch, /{stem.reduction}", fill="black", font=normal)
    boxes.append(box("stem", "stem", LABEL_WIDTH, row_top + 24, LABEL_WIDTH + 120))
    for stage in stages:
        row_top += ROW_HEIGHT
        label = f"{stage.name} x{len(stage.blocks)}\n{stage.channels} ch, /{stage.reduction}"
        draw.text((10, row_top + 10), label, fill="black", font=normal)
        count = len(stage.blocks)
        pitch = min((WIDTH - LABEL_WIDTH - 20) / max(count, 1), 100)
        width = max(2, int(pitch * 0.75))
        middle = row_top + 24 + BOX_HEIGHT // 2
        # The main path through the stage's blocks, behind them.
        draw.line((LABEL_WIDTH, middle, int(LABEL_WIDTH + (count - 1) * pitch) + width, middle), fill=(90, 90, 90))
        for index, name in enumerate(stage.blocks):
            left = int(LABEL_WIDTH + index * pitch)
            kind = _shortcut(model.get_submodule(name))
            entry = box(name, stage.name, left, row_top + 24, left + width, kind)
            boxes.append(entry)
            if kind != "none":  # the skip: an arc over the block, from its input to its output
                thick = kind != "identity"
                arc = (entry.left - 2, row_top + 12, entry.right + 2, row_top + 40)
                draw.arc(arc, 180, 360, fill=(200, 60, 40) if thick else (90, 90, 90), width=3 if thick else 1)
                if thick and width >= 18:
                    mark = "W_s" if kind == "projection" else "A"
                    draw.text(
                        ((entry.left + entry.right) / 2, row_top), mark, fill=(200, 60, 40), font=small, anchor="ma"
                    )
    row_top += ROW_HEIGHT
    draw.text((10, row_top + 10), "head\npool + fc", fill="black", font=normal)
    boxes.append(box("head", "head", LABEL_WIDTH, row_top + 24, LABEL_WIDTH + 120))

    # The colour scale.
    bar_top = row_top + ROW_HEIGHT
    if shown:
        ramp = colorize(np.linspace(0, 1, 300)[None].repeat(12, 0), "viridis")
        canvas.paste(Image.fromarray(ramp), (LABEL_WIDTH, bar_top))
        unscale = (lambda v: 10**v) if log_scale else (lambda v: v)
        draw.text((LABEL_WIDTH, bar_top + 14), f"{unscale(low):.3g}", fill="black", font=small)
        draw.text((LABEL_WIDTH + 300, bar_top + 14), f"{unscale(high):.3g}", fill="black", font=small, anchor="ra")
        scale_note = f"{overlay}{' (log scale)' if log_scale else ''}; grey: no value"
        draw.text((LABEL_WIDTH + 320, bar_top), scale_note, fill="black", font=small)
    else:
        draw.text((LABEL_WIDTH, bar_top), f"{overlay}: no values to show", fill="black", font=small)
    return NetworkMap(np.asarray(canvas), tuple(boxes), overlay)
