"""What each residual block adds to its shortcut, per image: the one hook behind ``analyze`` and ``probe_dataset``.

The statistics are read at the block's addition (``y = F(x) + shortcut(x)``, before the final ReLU), where both
terms are at hand: ``||F(x)|| / ||shortcut(x)||`` (the paper's question of how far a block is from an identity) and
their cosine (whether F adds to or cancels the shortcut). The share of zeros the final ReLU leaves is not counted
here: only ``analyze`` shows it, and it reads it off the block output it keeps anyway, when asked (a count in the
hook cost a pass over every block of every image).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ..hooks import forward_hooks

__all__ = ["ResidualRecorder", "ResidualStats", "residual_stats"]


@dataclass(frozen=True)
class ResidualStats:
    """One block over a batch, one value per image. ``ratio`` and ``cosine`` are NaN in a plain block (no shortcut)
    and where the shortcut or F(x) is all zeros (a constant image can do that): there is no direction to compare."""

    ratio: Tensor  # (N,)
    cosine: Tensor  # (N,)

    @classmethod
    def of(cls, residual: Tensor, shortcut: Tensor | None) -> ResidualStats:
        """From the addition's two terms: the three dot products <f,f>, <s,s>, <f,s> per image."""
        with torch.no_grad():
            if shortcut is None:
                nan = torch.full((residual.shape[0],), torch.nan, device=residual.device)
                return cls(nan, nan)
            f, s = _per_image(residual, like=residual).float(), _per_image(shortcut, like=residual).float()
            if f.shape[0] == 1:
                # One image (an analysis): three BLAS dot products on views, 3-7x faster there than stacking the
                # two terms into a copy for the Gram matrix below.
                f, s = f[0], s[0]
                ff, ss, fs = (torch.dot(a, b)[None] for a, b in ((f, f), (s, s), (f, s)))
            else:
                # A batch: one 2x2 Gram matrix per image in a single batched product (measured 5x faster than
                # three elementwise dot products, whose products each fill a temporary, and 10x faster than a
                # batched vector product).
                terms = torch.stack([f, s], 1)
                gram = torch.bmm(terms, terms.transpose(1, 2))  # (N, 2, 2): <f,f> <f,s> / <s,f> <s,s>
                ff, ss, fs = gram[:, 0, 0], gram[:, 1, 1], gram[:, 0, 1]
            ratio = torch.where(ss > 0, (ff / ss).sqrt(), torch.nan)
            cosine = torch.where((ff > 0) & (ss > 0), fs / (ff * ss).sqrt(), torch.nan)
            return cls(ratio, cosine)


def _per_image(tensor: Tensor, like: Tensor | None = None) -> Tensor:
    """(N, everything else), as a view in channels-last layout too (where ``flatten`` would copy): sums and dot
    products need no particular order, only the same one in both operands, which ``like`` decides."""
    like = tensor if like is None else like
    if like.dim() == 4 and not like.is_contiguous() and like.is_contiguous(memory_format=torch.channels_last):
        tensor = tensor.permute(0, 2, 3, 1)
    return tensor.flatten(1)


class ResidualRecorder:
    """Collects :class:`ResidualStats` of every block, batch after batch, on the model's device until read."""

    def __init__(self, blocks: list[str]) -> None:
        self._batches: dict[str, list[ResidualStats]] = {block: [] for block in blocks}

    def hook(self, block: str):
        def record(module, args: tuple[Tensor, Tensor | None], output: Tensor) -> None:
            self._batches[block].append(ResidualStats.of(*args))

        return record

    def result(self) -> dict[str, ResidualStats]:
        """Every block's statistics over all batches so far, in host memory (one copy per block)."""
        names = [f.name for f in fields(ResidualStats)]
        return {
            block: ResidualStats(*(torch.cat([getattr(b, name) for b in batches]).cpu() for name in names))
            for block, batches in self._batches.items()
        }


@contextmanager
def residual_stats(model) -> Iterator[ResidualRecorder]:
    """Record every block of ``model`` (a :class:`~resnet_core.zoo.models.ResNet`) for the ``with`` block; the hooks go
    when it ends, exception or not."""
    blocks = model.block_names()
    recorder = ResidualRecorder(blocks)
    with forward_hooks(model, [(f"{block}.residual_add", recorder.hook(block)) for block in blocks]):
        yield recorder
