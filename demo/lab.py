"""The degradation lab tab: the shipped reference run at once, a live run on demand, gradients and lesions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import cache

import gradio as gr
from matplotlib.figure import Figure

from resnet_core import degradation as lab

# Four models of these depths stay under about three minutes on two cores within these steps: measured on a quiet
# machine, plain-20, plain-56, resnet-20 and resnet-56 take 103 + 328 + 109 + 280 ms per step, ~165 s for 200.
LIVE_DEPTHS = (20, 32, 44, 56)
MIN_STEPS, MAX_STEPS = 50, 200
STREAM_EVERY = 10  # steps between plot updates


@cache
def reference_view() -> tuple[Figure, str]:
    """Curves of the shipped reference run (3 seeds) and its summary table."""
    runs = lab.load_runs()
    if not runs:
        return Figure(), "No reference run is shipped in assets/degradation."
    note = (
        f"Reference run shipped with the app: {len(runs)} seeds, widths {runs[0].config.widths}, option "
        f"{runs[0].config.shortcut} shortcuts, {runs[0].config.steps} SGD steps on the 5,000 MNIST digits. "
        "Training loss and error are measured on the whole set in eval mode after training."
    )
    return lab.plot_curves(runs), note + "\n\n" + lab.summary_table(runs)


@cache
def gradient_view() -> Figure:
    """Gradient norm reaching each stage at initialisation, plain vs residual, on one batch of digits."""
    images, labels = lab.load_mnist_5k()
    models = lab.build_lab_models(lab.LabConfig())
    return lab.plot_gradient_flow(
        {name: lab.gradient_flow(m, images[:256], labels[:256]) for name, m in models.items()}
    )


@cache
def lesion_view() -> tuple[Figure, str]:
    """Delete one block at a time from the shipped trained nets and measure accuracy on 1,000 of the digits.

    Every fifth digit (all classes, since the file is sorted by label) keeps the study to seconds, not minutes.
    """
    images, labels = lab.load_mnist_5k()
    images, labels = images[::5], labels[::5]
    studies = {name: lab.lesion_study(model, images, labels) for name, model in lab.load_lab_models().items()}
    lines = ["| model | intact accuracy | mean accuracy with one block deleted | worst |", "|---|---|---|---|"]
    for name, study in studies.items():
        values = list(study.accuracy.values())
        lines.append(f"| {name} | {study.baseline:.1%} | {sum(values) / len(values):.1%} | {min(values):.1%} |")
    return lab.plot_lesion(studies), "\n".join(lines)


def run_live(shallow: int, deep: int, steps: int) -> Iterator[tuple[Figure, str]]:
    """Train plain and residual nets of two depths, streaming the curves; cancelling stops the generator."""
    shallow, deep, steps = int(shallow), int(deep), int(steps)
    if shallow not in LIVE_DEPTHS or deep not in LIVE_DEPTHS or shallow >= deep:
        raise gr.Error(f"pick two different depths from {LIVE_DEPTHS}, the shallow one first", print_exception=False)
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise gr.Error(f"steps must lie in {MIN_STEPS}..{MAX_STEPS}", print_exception=False)
    config = lab.LabConfig(depths=(shallow, deep), steps=steps, warmup=lab.default_warmup(steps))
    images, labels = lab.load_mnist_5k()
    models = lab.build_lab_models(config)
    losses: dict[str, list[float]] = {name: [] for name in models}
    total = steps * len(models)
    start = time.perf_counter()
    for done, (name, step, loss) in enumerate(lab.train_iter(models, images, labels, config), 1):
        losses[name].append(loss)
        if step % STREAM_EVERY == STREAM_EVERY - 1 or step == steps - 1:
            elapsed = time.perf_counter() - start
            left = elapsed / done * (total - done)
            status = f"training {name}: step {step + 1}/{steps} · {elapsed:.0f} s elapsed · about {left:.0f} s left"
            yield _partial_plot(config, losses), status
    finals = {name: lab.evaluate(model, images, labels) for name, model in models.items()}
    rows = [f"| {name} | {loss:.4f} | {error:.2%} |" for name, (loss, error) in finals.items()]
    summary = "\n".join(["| model | final training loss | training error |", "|---|---|---|", *rows])
    yield _partial_plot(config, losses), f"done in {time.perf_counter() - start:.0f} s\n\n{summary}"


def _partial_plot(config: lab.LabConfig, losses: dict[str, list[float]]) -> Figure:
    runs = {
        name: lab.ModelRun(name, values, values[-1], float("nan"), 0.0) for name, values in losses.items() if values
    }
    return lab.plot_curves([lab.LabRun(config, runs)])
