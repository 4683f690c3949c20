"""The degradation lab tab: the shipped reference run at once, a live run on demand, gradients and lesions.

Live training occupies every core for minutes. On a machine of one's own that is the point; on a shared Space it
would stall every other visitor, so there it is off unless ``RESNET_EXPLORER_LIVE_TRAINING=1`` turns it on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import cache

import gradio as gr
from matplotlib.figure import Figure

from resnet_core import degradation
from resnet_core.render import lesion_figure

from . import settings
from .catalog import LAB_FAMILY
from .image_outputs import png_figures
from .shared import PRIVATE, SESSION_BOUND, Shared, chart

TITLE = "Degradation lab"

# Four models of these depths stay under about three minutes on two cores within these steps: measured on a quiet
# machine, digits_plain20, digits_plain56, digits_resnet20 and digits_resnet56 take 103 + 328 + 109 + 280 ms per step,
# ~165 s for 200.
LIVE_DEPTHS = (20, 32, 44, 56)
MIN_STEPS, MAX_STEPS = 50, 200
STREAM_EVERY = 10  # steps between plot updates


def build(shared: Shared, tab: gr.Tab) -> None:
    gr.Markdown(
        "The paper's central experiment, on a CPU: plain networks get *worse on their own training data* as they "
        "get deeper; the same networks with identity shortcuts get better. Small CIFAR-style networks (section 4.2: "
        "depth 6n+2, widths 8/16/32, option A shortcuts) train on 5,000 real MNIST digits. The trained reference "
        f"nets also appear in the model picker under *{LAB_FAMILY}*, so their feature maps and Grad-CAM can be "
        "explored offline."
    )
    reference_plot = chart("Reference run: training loss, plain (left) vs residual (right)")
    reference_md = gr.Markdown()
    with gr.Group():
        gr.Markdown(
            "**Run it yourself.** Trains plain and residual nets of two depths with the same seed and batch order, "
            "streaming the curves. One run at a time: others wait in the queue, their position shown. 200 steps of "
            "the 20- and 56-layer pairs take about three minutes on two cores. A run much shorter, or of depths "
            "closer together, may end before the deeper plain net falls behind; the run says whether it shows the "
            "effect, from its own numbers."
        )
        with gr.Row():
            shallow = gr.Dropdown(list(LIVE_DEPTHS), value=20, label="Shallow depth")
            deep = gr.Dropdown(list(LIVE_DEPTHS), value=56, label="Deep depth")
            steps = gr.Slider(MIN_STEPS, MAX_STEPS, value=200, step=10, label="SGD steps per model")
        with gr.Row():
            train = gr.Button("Train four networks", variant="primary")
            stop = gr.Button("Stop")
        live_status = gr.Markdown()
        live_plot = chart("Live training loss")
    with gr.Row():
        gradient_plot = chart("Gradient reaching each stage at initialisation")
        with gr.Column():
            gr.Markdown(
                "**Lesion study** (Veit et al., 2016): delete one block at a time from the trained reference nets "
                "and measure accuracy. A residual net behaves like an ensemble of shorter paths and barely notices; "
                "a plain net is a single path and collapses."
            )
            lesion = gr.Button("Delete blocks one at a time")
            lesion_md = gr.Markdown()
    lesion_plot = chart("Accuracy with one block deleted (dotted: intact)")

    tab.select(png_figures(reference_view), None, [reference_plot, reference_md], api_name="lab_reference")
    tab.select(png_figures(gradient_view), None, gradient_plot, **PRIVATE)
    lab = {"concurrency_id": "lab", "concurrency_limit": 1}  # training and lesions: one at a time
    lesion.click(png_figures(lesion_view), None, [lesion_plot, lesion_md], api_name="lab_lesion", **lab)
    training = train.click(
        png_figures(run_live),
        [shallow, deep, steps],
        [live_plot, live_status],
        api_name="lab_train",
        **SESSION_BOUND,
        **lab,
    )
    stop.click(None, None, None, cancels=[training])  # front-end only: no API endpoint


@cache
def reference_view() -> tuple[Figure, str]:
    """Curves of the shipped reference run (3 seeds) and its summary table."""
    runs = degradation.load_runs()
    if not runs:
        return Figure(), "No reference run is shipped in assets/degradation."
    note = (
        f"Reference run shipped with the app: {len(runs)} seeds, widths {runs[0].config.widths}, option "
        f"{runs[0].config.shortcut} shortcuts, {runs[0].config.steps} SGD steps on the 5,000 MNIST digits. "
        "Training loss and error are measured on the whole set in eval mode after training."
    )
    return degradation.plot_curves(runs), note + "\n\n" + degradation.summary_table(runs)


@cache
def gradient_view() -> Figure:
    """Gradient norm reaching each stage at initialisation, plain vs residual, on one batch of digits."""
    images, labels = degradation.load_mnist_5k()
    images, labels = images[::20], labels[::20]  # 250 digits of every class: the file is sorted by label
    models = degradation.build_lab_models(degradation.LabConfig())
    return degradation.plot_gradient_flow(
        {name: degradation.gradient_flow(m, images, labels) for name, m in models.items()}
    )


@cache
def lesion_view() -> tuple[Figure, str]:
    """Delete one block at a time from the shipped trained nets and measure accuracy on 1,000 of the digits.

    Every fifth digit (all classes, since the file is sorted by label): a fifth of the time of all 5,000.
    """
    images, labels = degradation.load_mnist_5k()
    images, labels = images[::5], labels[::5]
    studies = {
        name: degradation.lesion_study(model, images, labels) for name, model in degradation.load_lab_models().items()
    }
    lines = ["| model | intact accuracy | mean accuracy with one block deleted | worst |", "|---|---|---|---|"]
    for name, study in studies.items():
        values = list(study.accuracy.values())
        lines.append(f"| {name} | {study.baseline:.1%} | {sum(values) / len(values):.1%} | {min(values):.1%} |")
    return lesion_figure(studies, f"{len(labels):,} of the digits"), "\n".join(lines)


def run_live(shallow: int, deep: int, steps: int) -> Iterator[tuple[Figure, str]]:
    """Train plain and residual nets of two depths, streaming the curves; cancelling stops the generator."""
    if not settings.live_training():
        raise gr.Error(
            f"Live training is off on this shared Space (it would stall every other visitor for minutes); run the "
            f"app on your own machine, or set {settings.ENV_LIVE_TRAINING}=1.",
            print_exception=False,
        )
    shallow, deep, steps = int(shallow), int(deep), int(steps)
    if shallow not in LIVE_DEPTHS or deep not in LIVE_DEPTHS or shallow >= deep:
        raise gr.Error(f"pick two different depths from {LIVE_DEPTHS}, the shallow one first", print_exception=False)
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise gr.Error(f"steps must lie in {MIN_STEPS}..{MAX_STEPS}", print_exception=False)
    config = degradation.LabConfig(depths=(shallow, deep), steps=steps, warmup=degradation.default_warmup(steps))
    images, labels = degradation.load_mnist_5k()
    models = degradation.build_lab_models(config)
    losses: dict[str, list[float]] = {name: [] for name in models}
    total = steps * len(models)
    start = time.perf_counter()
    for done, (name, step, loss) in enumerate(degradation.train_iter(models, images, labels, config), 1):
        losses[name].append(loss)
        if step % STREAM_EVERY == STREAM_EVERY - 1 or step == steps - 1:
            elapsed = time.perf_counter() - start
            left = elapsed / done * (total - done)
            status = f"training {name}: step {step + 1}/{steps} · {elapsed:.0f} s elapsed · about {left:.0f} s left"
            yield _partial_plot(config, losses), status
    finals = {name: degradation.evaluate(model, images, labels) for name, model in models.items()}
    rows = [f"| {name} | {loss:.4f} | {error:.2%} |" for name, (loss, error) in finals.items()]
    summary = "\n".join(["| model | final training loss | training error |", "|---|---|---|", *rows])
    verdict = live_verdict(finals, shallow, deep, steps)
    yield _partial_plot(config, losses), f"done in {time.perf_counter() - start:.0f} s\n\n{summary}\n\n{verdict}"


def live_verdict(finals: dict[str, tuple[float, float]], shallow: int, deep: int, steps: int) -> str:
    """What this run shows of the paper's claim, from its own final training losses, and where it does not, why
    and what will: a short run (50 steps, 20 against 32 layers) can end with the deeper plain net ahead, because
    both are still far from fitting their data, which is not where degradation lives."""
    name = degradation.model_name
    plain = finals[name(shallow, True)][0], finals[name(deep, True)][0]
    residual = finals[name(shallow, False)][0], finals[name(deep, False)][0]
    degraded, helped = plain[1] > plain[0], residual[1] <= residual[0]
    if degraded and helped:
        return (
            f"**This run shows it:** the {deep}-layer plain net ends with a higher training loss than the "
            f"{shallow}-layer one ({plain[1]:.4f} against {plain[0]:.4f}), while the {deep}-layer residual net does "
            f"not ({residual[1]:.4f} against {residual[0]:.4f})."
        )
    missing = "the deeper plain net is not worse" if not degraded else "the deeper residual net is not better"
    return (
        f"**This run does not show it yet** ({missing}): after {steps} steps these networks are still far from "
        "fitting their training data, and degradation is about how well a network can fit it. It shows with "
        f"longer training and a larger gap in depth: the lab's reference run (500 steps, 20 against 56 layers) "
        f"{REFERENCE_CLAIM}"
    )


# From the lab's seed study (BENCHMARKS.md, "Choosing 500 steps"), the figures the reference run stands on.
REFERENCE_CLAIM = (
    "ends with the 56-layer plain net at 18 to 31 times the 20-layer one's training loss on each of 6 seeds on the "
    "CPU (at least 11 times on each of 14 seeds on a GPU), and the 56-layer residual net at or below the 20-layer "
    "one on 5 of those 6 (14 of those 14)."
)


def _partial_plot(config: degradation.LabConfig, losses: dict[str, list[float]]) -> Figure:
    runs = {
        name: degradation.ModelRun(name, values, values[-1], float("nan"), 0.0)
        for name, values in losses.items()
        if values
    }
    return degradation.plot_curves([degradation.LabRun(config, runs)])
