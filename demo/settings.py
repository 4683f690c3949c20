"""Every setting the app reads from the environment, in one place: its name, its default, how it is parsed.

Each has a command-line option of ``resnet-explorer`` too (``launch.py``); the library's own settings are in
``resnet_core/settings.py``. Read when needed, so a test or a Space variable changed before start-up takes effect.
"""

from __future__ import annotations

import os

import torch

from resnet_core.data.archives import ENV_IMAGES, ENV_UNPACKED_MB, ENV_ZIP_MB, ArchiveLimits

__all__ = [
    "ENV_CACHE_SIZE",
    "ENV_DATASET",
    "ENV_DATASET_RUNS",
    "ENV_DEVICE",
    "ENV_IMAGES",
    "ENV_LIVE_TRAINING",
    "ENV_RESULTS",
    "ENV_RESULTS_TTL",
    "ENV_THREADS",
    "ENV_UNPACKED_MB",
    "ENV_UPLOADS_TTL",
    "ENV_ZIP_MB",
    "cache_size",
    "dataset_folder",
    "dataset_runs",
    "device",
    "live_training",
    "on_space",
    "results",
    "results_ttl",
    "threads",
    "upload_limits",
    "uploads_ttl",
]

ENV_DEVICE = "RESNET_EXPLORER_DEVICE"  # cpu, cuda, cuda:1...; default: the GPU when there is one
ENV_CACHE_SIZE = "RESNET_EXPLORER_CACHE_SIZE"  # networks kept in memory (default 3)
ENV_THREADS = "RESNET_EXPLORER_THREADS"  # torch CPU threads per computation (default 0: every core)
ENV_RESULTS = "RESNET_EXPLORER_RESULTS"  # analyses kept for redraws (default 8)
ENV_RESULTS_TTL = "RESNET_EXPLORER_RESULTS_TTL"  # seconds an analysis is kept after its last use (default 600)
ENV_UPLOADS_TTL = "RESNET_EXPLORER_UPLOADS_TTL"  # seconds a visitor's own checkpoint is kept (default 3600)
ENV_LIVE_TRAINING = "RESNET_EXPLORER_LIVE_TRAINING"  # 1/0: live training on or off (default: off on a Space)
ENV_DATASET_RUNS = "RESNET_EXPLORER_DATASET_RUNS"  # 1/0: the Data set tab's runs on or off (default: off on a Space)
ENV_DATASET = "RESNET_EXPLORER_DATASET"  # a folder or CSV on the server the Data set tab offers (never a visitor's)


def device() -> torch.device:
    """``$RESNET_EXPLORER_DEVICE`` if set, else the GPU when there is one, else the CPU."""
    chosen = os.environ.get(ENV_DEVICE)
    if chosen:
        return torch.device(chosen)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cache_size() -> int:
    return int(os.environ.get(ENV_CACHE_SIZE, "3"))


def threads() -> int:
    return int(os.environ.get(ENV_THREADS, "0"))


def results() -> int:
    return int(os.environ.get(ENV_RESULTS, "8"))


def results_ttl() -> float:
    return float(os.environ.get(ENV_RESULTS_TTL, "600"))


def uploads_ttl() -> float:
    """Seconds after opening that a visitor's checkpoint, its model and its file are dropped; Gradio also drops
    them an hour after the browser tab is closed, whichever comes first."""
    return float(os.environ.get(ENV_UPLOADS_TTL, "3600"))


def on_space() -> bool:
    """Running on Hugging Face Spaces (which sets ``SPACE_ID``)."""
    return "SPACE_ID" in os.environ


def _switch(name: str) -> bool:
    """A 1/0 setting that is on by default and off on a Hugging Face Space (minutes of CPU stall every visitor)."""
    setting = os.environ.get(name)
    if setting is not None:
        return setting.strip().lower() in ("1", "true", "yes", "on")
    return not on_space()


def live_training() -> bool:
    """On by default, off on a Hugging Face Space unless ``RESNET_EXPLORER_LIVE_TRAINING`` turns it on."""
    return _switch(ENV_LIVE_TRAINING)


def dataset_runs() -> bool:
    """On by default, off on a Hugging Face Space unless ``RESNET_EXPLORER_DATASET_RUNS`` turns it on."""
    return _switch(ENV_DATASET_RUNS)


def dataset_folder() -> str | None:
    """The server-side folder or CSV named by ``RESNET_EXPLORER_DATASET``, if any."""
    return os.environ.get(ENV_DATASET) or None


# A Space's visitors share one small machine: a zip there is bounded tighter, unless the operator sets the limits.
SPACE_UPLOADS = ArchiveLimits(images=1000, zip_bytes=50 * 2**20, unpacked_bytes=200 * 2**20)


def upload_limits() -> ArchiveLimits:
    """How much a visitor's zip of images may hold: ``RESNET_EXPLORER_UPLOAD_IMAGES``, ``..._ZIP_MB`` and
    ``..._UNPACKED_MB`` (defaults 5,000 images, 200 MB, 1 GB; 1,000, 50 MB and 200 MB on a Space)."""
    return ArchiveLimits.from_env(SPACE_UPLOADS if on_space() else None)
