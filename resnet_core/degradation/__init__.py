"""Degradation lab: plain vs residual nets of He et al. (2015, section 4.2) trained on real digits.

The paper's claim is about *training* error: a deeper plain net fits its training set worse than a shallower one,
while a deeper residual net fits it better. This package reproduces that on the 5,000 MNIST digits shipped in
``assets/`` on two CPU cores in a few minutes, and adds two diagnostics the app shows next to the curves: the gradient
reaching each stage at initialisation, and the lesion study of Veit et al. (2016) (:mod:`resnet_core.measure.lesion`).

``data`` loads the digits, ``training`` trains, ``store`` reads and writes results, ``plots`` draws them,
``gradients`` measures gradient flow, ``cli`` is the command line.
"""

from ..measure.evaluation import evaluate
from ..measure.lesion import LesionStudy, lesion_study, lesioned
from .cli import configure_parser, run_cli, run_experiment
from .data import MNIST_5K_PATH, load_mnist_5k
from .gradients import gradient_flow
from .plots import plot_curves, plot_gradient_flow, summary_table
from .store import (
    REFERENCE_DIR,
    describe_reference,
    load_lab_model,
    load_lab_models,
    load_runs,
    reference_models,
    reference_spec,
    save_run,
    save_weights,
)
from .training import (
    LabConfig,
    LabRun,
    ModelRun,
    batch_order,
    build_lab_model,
    build_lab_models,
    default_warmup,
    lab_spec,
    learning_rate,
    model_name,
    run_lab,
    train_iter,
    train_model,
)

__all__ = [
    "MNIST_5K_PATH",
    "REFERENCE_DIR",
    "LabConfig",
    "LabRun",
    "LesionStudy",
    "ModelRun",
    "batch_order",
    "build_lab_model",
    "build_lab_models",
    "configure_parser",
    "default_warmup",
    "describe_reference",
    "evaluate",
    "gradient_flow",
    "lab_spec",
    "learning_rate",
    "lesion_study",
    "lesioned",
    "load_lab_model",
    "load_lab_models",
    "load_mnist_5k",
    "load_runs",
    "model_name",
    "plot_curves",
    "plot_gradient_flow",
    "reference_models",
    "reference_spec",
    "run_cli",
    "run_experiment",
    "run_lab",
    "save_run",
    "save_weights",
    "summary_table",
    "train_iter",
    "train_model",
]
