"""What a network does across a data set, in one pass: each block's channel responses and residual ratios.

Two questions the app answers with it. *What does a channel respond to?* The images that excite it most and least
(by mean activation of the block's output), as OpenAI Microscope showed for ImageNet nets. *How big are trained
residual branches?* The per-image ``||F(x)|| / ||shortcut(x)||`` of every block, whose median the paper's Fig. 7
discusses (responses are smaller in deeper nets). Both come from the same forward hooks, batch by batch, and can be
cached on disk per weights and image set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..cache import fingerprint
from ..hooks import forward_hooks
from ..zoo.models import ResNet
from .residual_stats import residual_stats

__all__ = ["DatasetProbe", "probe_dataset"]


@dataclass(frozen=True)
class DatasetProbe:
    """Per image and block: the mean activation of every channel, and the residual ratio (NaN in plain blocks)."""

    channel_means: dict[str, Tensor]  # block -> (N, C)
    residual_ratios: dict[str, Tensor]  # block -> (N,)

    def median_ratios(self) -> dict[str, float]:
        """The median ``||F(x)|| / ||shortcut(x)||`` of every block that has a shortcut."""
        return {
            block: float(ratios.nanmedian())
            for block, ratios in self.residual_ratios.items()
            if not torch.isnan(ratios).all()
        }

    def stage_medians(self, stage_of: Mapping[str, str]) -> dict[str, float]:
        """The median over all images and all blocks of each stage (``stage_of``: block -> stage, as the network
        describes itself)."""
        stages: dict[str, list[Tensor]] = {}
        for block, ratios in self.residual_ratios.items():
            if not torch.isnan(ratios).all():
                stages.setdefault(stage_of[block], []).append(ratios)
        return {stage: float(torch.cat(values).nanmedian()) for stage, values in stages.items()}

    def extremes(self, block: str, channel: int, k: int = 9) -> tuple[list[int], list[int]]:
        """Indices of the ``k`` images that excite ``channel`` of ``block`` most (strongest first) and least."""
        means = self.channel_means[block][:, channel]
        order = means.argsort(descending=True, stable=True)
        return order[:k].tolist(), order.flip(0)[:k].tolist()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {f"means/{b}": t.contiguous() for b, t in self.channel_means.items()}
        tensors.update({f"ratios/{b}": t.contiguous() for b, t in self.residual_ratios.items()})
        temporary = path.with_suffix(f".{np.random.randint(1 << 30)}.tmp")
        save_file(tensors, str(temporary))
        temporary.replace(path)  # atomic: a concurrent reader sees the old file or the new one, never half

    @classmethod
    def load(cls, path: Path) -> DatasetProbe:
        tensors = load_file(str(path))
        means = {key.split("/", 1)[1]: value for key, value in tensors.items() if key.startswith("means/")}
        ratios = {key.split("/", 1)[1]: value for key, value in tensors.items() if key.startswith("ratios/")}
        return cls(means, ratios)


@torch.no_grad()
def probe_dataset(
    model: ResNet,
    inputs: Tensor,
    batch_size: int = 250,
    progress: Callable[[int, int], None] | None = None,
    cache: Path | None = None,
) -> DatasetProbe:
    """Run ``inputs`` (N, C, H, W, already normalised) through ``model`` once, recording every block.

    With ``cache`` (a directory), the result is stored under a key of the model's weights and the inputs, and
    read back next time instead of recomputed. ``progress(done, total)`` is called after each batch.
    """
    path = None
    if cache is not None:
        path = Path(cache) / f"{fingerprint(model, inputs)}.safetensors"
        if path.is_file():
            return DatasetProbe.load(path)
    blocks = model.block_names()
    means: dict[str, list[Tensor]] = {block: [] for block in blocks}

    def record(block: str):
        def hook(module, args, output) -> None:
            means[block].append(output.float().mean((2, 3)).cpu())

        return hook

    device = next(model.parameters()).device
    with forward_hooks(model, [(block, record(block)) for block in blocks]), residual_stats(model) as recorder:
        for start in range(0, len(inputs), batch_size):
            model(inputs[start : start + batch_size].to(device))
            if progress is not None:
                progress(min(start + batch_size, len(inputs)), len(inputs))
    probe = DatasetProbe(
        {block: torch.cat(values) for block, values in means.items()},
        {block: stats.ratio for block, stats in recorder.result().items()},
    )
    if path is not None:
        probe.save(path)
    return probe
