"""Every ``RESNET_EXPLORER_*`` setting the library reads, in one place: its name, its default, how it is parsed.

Read when needed, not at import, so a setting changed in a running process (a test, a notebook) takes effect.
The app's own settings are in ``demo/settings.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "ENV_CACHE",
    "ENV_DOWNLOAD_RETRY",
    "ENV_DOWNLOAD_TIMEOUT",
    "ENV_TEST_SET",
    "ENV_WEIGHTS_DIR",
    "cache_root",
    "cifar10_test_set",
    "download_retry",
    "download_timeout",
    "weights_dir",
]

ENV_WEIGHTS_DIR = "RESNET_EXPLORER_WEIGHTS"  # a folder of checkpoints, tried before any other source
ENV_DOWNLOAD_TIMEOUT = "RESNET_EXPLORER_DOWNLOAD_TIMEOUT"  # seconds a download may go without data
ENV_DOWNLOAD_RETRY = "RESNET_EXPLORER_DOWNLOAD_RETRY"  # seconds a failed download is not tried again
ENV_CACHE = "RESNET_EXPLORER_CACHE"  # where results computed once per model are kept
ENV_TEST_SET = "RESNET_EXPLORER_CIFAR10"  # a folder that holds the whole CIFAR-10 test set


def weights_dir() -> Path | None:
    folder = os.environ.get(ENV_WEIGHTS_DIR)
    return Path(folder) if folder else None


def _seconds(name: str, default: str, zero_allowed: bool = False) -> float:
    value = os.environ.get(name, default)
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"${name} must be a number of seconds, got {value!r}") from None
    if seconds < 0 or (seconds == 0 and not zero_allowed):
        raise ValueError(f"${name} must be {'zero or more' if zero_allowed else 'positive'}, got {value!r}")
    return seconds


def download_timeout() -> float:
    """Seconds a download may go without data before it is given up (default 30)."""
    return _seconds(ENV_DOWNLOAD_TIMEOUT, "30")


def download_retry() -> float:
    """Seconds a download that failed is not tried again in this process (default 300; 0: every time)."""
    return _seconds(ENV_DOWNLOAD_RETRY, "300", zero_allowed=True)


def cache_root() -> Path:
    """Where results computed once per model are kept between runs: ``$RESNET_EXPLORER_CACHE`` or
    ``~/.cache/resnet-explorer``. Each kind of result takes its own subfolder (``probes/``, ``feature_vis/``)."""
    return Path(os.environ.get(ENV_CACHE, Path.home() / ".cache" / "resnet-explorer"))


def cifar10_test_set() -> Path | None:
    folder = os.environ.get(ENV_TEST_SET)
    return Path(folder) if folder else None
