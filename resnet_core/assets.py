"""Where the files that ship with the project live (example photos, digits, CIFAR-10 samples, trained nets).

In a checkout they are the repository's ``assets/``; ``pip install`` puts the same tree under
``<prefix>/share/resnet-explorer/assets`` (pyproject's data-files), so an installed library works offline too.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["ASSETS_DIR"]


def _find() -> Path:
    checkout = Path(__file__).resolve().parent.parent / "assets"
    installed = Path(sys.prefix) / "share" / "resnet-explorer" / "assets"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


ASSETS_DIR = _find()
