"""Where the files that ship with the project live (example photos, digits, CIFAR-10 samples, trained nets)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS_DIR"]

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
