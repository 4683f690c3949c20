"""ResNet Explorer's library: the ResNet family, its pretrained weights, and what happens inside it."""

from .architectures import ARCHITECTURES, ArchSpec, get_arch, list_models
from .complexity import CostTable, cost_table
from .factory import ModelCard, card, create_model
from .models import ResNet, cifar_resnet
from .preprocess import Preprocess, load_image
from .weights import WEIGHTS, WeightEntry, WeightsUnavailableError, default_weights, get_weights, list_weights

__all__ = [
    "ARCHITECTURES",
    "WEIGHTS",
    "ArchSpec",
    "CostTable",
    "ModelCard",
    "Preprocess",
    "ResNet",
    "WeightEntry",
    "WeightsUnavailableError",
    "card",
    "cifar_resnet",
    "cost_table",
    "create_model",
    "default_weights",
    "get_arch",
    "get_weights",
    "list_models",
    "list_weights",
    "load_image",
]
__version__ = "0.1.0"
