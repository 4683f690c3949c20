"""The import paths of the modules that moved into ``zoo/``, ``measure/``, ``explain/`` and ``data/``, kept for a
release: scripts written against the README of a month ago still run, and are told where each module is now.

``import resnet_core.analysis`` (and ``from resnet_core.analysis import analyze``, and ``resnet_core.analysis`` as
an attribute) gives the module at its new path itself, imported once and registered under the old name too, with a
``FutureWarning`` naming the new path. A finder on ``sys.meta_path`` answers only for these names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

__all__ = ["MOVED", "install", "moved_module"]

# The old path's last part -> the module's path now.
MOVED = {
    "analysis": "resnet_core.explain.analysis",
    "architectures": "resnet_core.zoo.architectures",
    "attribution": "resnet_core.explain.attribution",
    "capture": "resnet_core.hooks",
    "cifar10": "resnet_core.data.cifar10",
    "compare": "resnet_core.explain.compare",
    "complexity": "resnet_core.measure.complexity",
    "create": "resnet_core.zoo.create",
    "dataset_probe": "resnet_core.measure.dataset_probe",
    "evaluation": "resnet_core.measure.evaluation",
    "feature_vis": "resnet_core.explain.feature_vis",
    "label_spaces": "resnet_core.zoo.label_spaces",
    "lesion": "resnet_core.measure.lesion",
    "metrics": "resnet_core.measure.metrics",
    "models": "resnet_core.zoo.models",
    "preprocess": "resnet_core.zoo.preprocess",
    "reference": "resnet_core.explain.reference",
    "residual_stats": "resnet_core.measure.residual_stats",
    "saliency": "resnet_core.explain.saliency",
    "sanity": "resnet_core.explain.sanity",
    "weights": "resnet_core.zoo.weights",
}
PACKAGE = "resnet_core"


def moved_module(name: str) -> ModuleType:
    """The module an old name stands for, imported (once) at its new path, with the warning a caller sees."""
    new = MOVED[name]
    warnings.warn(
        f"{PACKAGE}.{name} moved to {new}; the old path goes in the next release", FutureWarning, stacklevel=3
    )
    module = importlib.import_module(new)
    sys.modules[f"{PACKAGE}.{name}"] = module
    return module


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers ``import resnet_core.<old name>`` with the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != PACKAGE or name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return moved_module(spec.name.rpartition(".")[2])

    def exec_module(self, module):  # the module ran already, at its new path
        pass


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _OldPaths) for finder in sys.meta_path):
        sys.meta_path.append(_OldPaths())
