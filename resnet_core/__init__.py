"""ResNet Explorer's library: the ResNet family, its pretrained weights, and what happens inside it."""

from . import moved
from .measure.complexity import CostTable, cost_table
from .zoo.architectures import ARCHITECTURES, ArchSpec, cifar_spec, get_arch, list_models
from .zoo.checkpoints import CheckpointError, inspect_checkpoint, load_checkpoint
from .zoo.create import ModelCard, card, create_model
from .zoo.label_spaces import LABEL_SPACES, LabelSpace
from .zoo.models import ResNet, StageInfo
from .zoo.preprocess import Preprocess, load_image
from .zoo.weights import (
    WEIGHTS,
    WeightEntry,
    WeightsUnavailableError,
    default_weights,
    eval_size,
    get_weights,
    list_weights,
)

__all__ = [
    "ARCHITECTURES",
    "LABEL_SPACES",
    "WEIGHTS",
    "ArchSpec",
    "CheckpointError",
    "CostTable",
    "LabelSpace",
    "ModelCard",
    "Preprocess",
    "ResNet",
    "StageInfo",
    "WeightEntry",
    "WeightsUnavailableError",
    "card",
    "cifar_spec",
    "cost_table",
    "create_model",
    "default_weights",
    "eval_size",
    "evaluate_dataset",
    "get_arch",
    "get_weights",
    "inspect_checkpoint",
    "list_models",
    "list_weights",
    "load_checkpoint",
    "load_image",
]
__version__ = "0.1.0"


moved.install()  # the modules' old import paths, for a release (resnet_core.moved)


def __getattr__(name: str):
    """``evaluate_dataset`` on first use: it brings pyarrow, which would add 0.4 s to every ``import resnet_core``.
    A module's old name (``resnet_core.analysis``) gives the module at its new path, with a ``FutureWarning``."""
    if name == "evaluate_dataset":
        from .evaluate.run import evaluate_dataset

        return evaluate_dataset
    if name in moved.MOVED:
        return moved.moved_module(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
