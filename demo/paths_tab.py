"""The Short paths tab: why residual networks work, measured on the trained network picked (Veit, Wilber and
Belongie 2016). Unravelled, n residual blocks are 2^n paths of every length; deleting blocks or swapping them at test
time barely hurts a residual network but breaks a plain one, and most of the gradient flows through short paths."""

from __future__ import annotations

import gradio as gr

from resnet_core.explain.paths import (
    EFFECTIVE_SHARE,
    deletion_curve,
    labelled_test_images,
    path_gradients,
    reordering_curve,
)
from resnet_core.render import paths_figure

from . import catalog
from .app_state import marked_name, models, settled_weights, user_error
from .gpu import on_gpu
from .image_outputs import png_figures
from .shared import SESSION_BOUND, Shared, chart

TITLE = "Short paths"
IMAGES = 500  # test images per error: the 500 CIFAR-10 images shipped, the first 500 digits
GRADIENT_IMAGES = 32  # images each path's gradient is averaged over
DRAWS = 3  # random draws of k blocks (or k swaps) per k
SAMPLES = 8  # random paths measured per length


def build(shared: Shared, tab: gr.Tab) -> None:
    gr.Markdown(
        "**A residual network as an ensemble of short paths** (Veit, Wilber and Belongie, NeurIPS 2016). Each block "
        "lets its input through its residual branch or its shortcut, so n blocks are 2^n paths, most of middling "
        "length. Pick a trained CIFAR-10 or digit network, then measure: its error with k random blocks deleted, "
        "after k random swaps of two blocks of the same shape, and how much of the gradient reaches the input "
        "through paths of each length. A digit network is drawn beside its trained plain twin. About half a minute "
        "for cifar10_resnet56."
    )
    run = gr.Button("Measure the paths of the picked network", elem_id="paths-run")
    summary = gr.Markdown(elem_id="paths-summary")
    plot = chart("Deleting blocks, swapping blocks, and the gradient per path length", elem_id="paths-chart")
    run.click(
        png_figures(on_gpu(paths_views, "checks")),
        [shared.arch, shared.weights],
        [plot, summary],
        api_name="paths",
        concurrency_id="lab",  # minutes of the CPU at worst: one at a time, beside the lab's lesions
        concurrency_limit=1,
        **SESSION_BOUND,
    )


def paths_views(arch: str, weights: str, progress: gr.Progress = gr.Progress()):  # noqa: B008 - Gradio's own idiom
    """The three curves of ``arch`` (and its plain twin, where trained weights of both are picked) on its own test
    images, and a sentence on what they show.

    Args:
        arch: a CIFAR-10 or digit network, e.g. "cifar10_resnet56" or "digits_resnet56".
        weights: "DEFAULT", a weight name, or "random init".
    """
    weights, _ = settled_weights(arch, weights)
    twin, _ = catalog.plain_twin(arch, weights)  # beside it where both are trained, or both untrained
    measured = dict([(arch, weights), *([twin] if twin else [])])
    curves, described = {}, ""
    for step, (name, chosen) in enumerate(measured.items()):
        progress(step / len(measured), desc=f"{name}: deleting and swapping blocks")
        with models().using(name, chosen) as loaded:
            model = loaded.model
            try:
                images, labels, described = labelled_test_images(model, IMAGES)
            except ValueError as error:
                raise user_error(f"{str(error)[0].upper()}{str(error)[1:]}.") from None
            ks = _ks(len(model.block_names()))
            deletions = deletion_curve(model, images, labels, ks=ks, draws=DRAWS)
            residual = model.shortcut
            swaps = reordering_curve(model, images, labels, ks=ks, draws=DRAWS) if residual else None
            gradients = (
                path_gradients(model, images[:GRADIENT_IMAGES], labels[:GRADIENT_IMAGES], SAMPLES) if residual else None
            )
            curves[marked_name(model)] = (deletions, swaps, gradients)
    return paths_figure(curves, described), paths_summary(curves)


def _ks(blocks: int) -> list[int]:
    """The numbers of deleted blocks drawn: 0, 1, 2, 3, then doubling, and all of them (the whole curve's shape in
    a handful of points, so a 27-block network answers in seconds)."""
    ks = [k for k in (0, 1, 2, 3) if k <= blocks]
    while ks[-1] * 2 < blocks:
        ks.append(ks[-1] * 2)
    return sorted({*ks, blocks})


def paths_summary(curves: dict) -> str:
    """What the curves show, in a sentence per network."""
    lines = []
    for name, (deletions, _, gradients) in curves.items():
        mean = deletions.mean()
        own, one = 100 * mean[0], 100 * mean[1]
        line = f"**{name}**: {own:.1f}% error intact, {one:.1f}% with one random block deleted"
        if gradients is None:
            lines.append(line + ": a plain network has one path, so deleting any block cuts it.")
            continue
        first, last = gradients.effective()
        lines.append(
            f"{line}; {100 * EFFECTIVE_SHARE:.0f}% of the gradient reaches the input through paths of {first} to "
            f"{last} of its {gradients.blocks} blocks (Veit et al.: 5 to 17 of ResNet-110's 54)."
        )
    return "\n\n".join(lines)
