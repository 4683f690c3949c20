"""Hugging Face ZeroGPU: the work that runs a network asks for a GPU with ``spaces.GPU``, where that package exists.

On ZeroGPU a GPU is attached only while a function decorated with ``spaces.GPU(duration=...)`` runs, so every
event handler that runs a network is wrapped at wiring time (``layout``) with a duration that fits its work. Where
``spaces`` is not installed (a laptop, a CPU or dedicated-GPU machine) the handlers are used as they are; on a
Space without ZeroGPU the decorator does nothing. Results outlive a request only in host memory
(``AnalysisStore.put`` keeps CPU copies), and nothing touches CUDA at import time.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

__all__ = ["DURATIONS", "on_gpu"]

# Seconds of GPU time each kind of work may take (ZeroGPU's default is 60; shorter asks queue sooner).
DURATIONS = {"analysis": 30, "compare": 60, "checks": 90, "visualize": 120, "frame": 10}


def on_gpu(handler: Callable, work: str) -> Callable:
    """``handler`` under ``spaces.GPU(duration=DURATIONS[work])`` when the ``spaces`` package is installed."""
    if importlib.util.find_spec("spaces") is None:
        return handler
    import spaces

    return spaces.GPU(duration=DURATIONS[work])(handler)
