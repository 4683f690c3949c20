"""The CIFAR-10 tab: what the paper's trained nets do across real test images, next to the user's own photo.

Three views, all from one pass over the test images per model (:func:`resnet_core.measure.dataset_probe.probe_dataset`,
cached on disk): the median residual ratio of every block over the test set beside the same ratio on the photo
just analysed; the test images that excite a chosen channel most and least; and the lesion study (Veit et al.
2016), each block deleted in turn. The images are the 500 shipped with the app, or all 10,000 when
``$RESNET_EXPLORER_CIFAR10`` names a folder that holds them.
"""

from __future__ import annotations

import threading
import weakref

import gradio as gr
import numpy as np
import torch

from resnet_core.cache import cache_dir
from resnet_core.data import cifar10
from resnet_core.measure.dataset_probe import DatasetProbe, probe_dataset
from resnet_core.measure.lesion import lesion_study
from resnet_core.render import lesion_figure, residual_figure, response_figure

from . import feature_vis_view
from .analysis_views import Drawing, View
from .app_state import models, stored_analysis, user_error
from .gpu import on_gpu
from .image_outputs import png_figures, png_path
from .lab_results import FIG7_CIFAR, FIG7_DIGIT_STEP, FIG7_DIGITS, fig7_curves, record_lesion, test_images
from .sessions import TabState
from .shared import NETWORK, PRIVATE, SESSION_BOUND, Shared, caption, chart, picture

TITLE = "CIFAR-10 test set"
PER_PAGE = 20  # test images per page when browsing a class
TILE = 96  # a 32x32 test image shown at 3x


def build(shared: Shared, tab: gr.Tab) -> None:
    gr.Markdown(
        "The paper's own trained CIFAR-10 ResNets (section 4.2) across real test images. Pick the **CIFAR-10** "
        "family, analyse a photo (or a CIFAR-10 example), then look here. One pass over the test images per network "
        "feeds all three views and is cached on disk."
    )
    with gr.Row():
        residual_stats = gr.Button("Residual ratios: test set vs your photo")
        lesion = gr.Button("Delete each block in turn")
        fig7 = gr.Button("The paper's Fig. 7: how strongly each 3x3 layer responds")
    test_md = gr.Markdown()
    test_plot = chart("Across the test images")
    gr.Markdown("**What a channel responds to**: the test images that excite it most and least.")
    with gr.Row():
        block = gr.Dropdown([], label="Block", allow_custom_value=True)
        channel = gr.Number(0, label="Channel", precision=0, minimum=0)
        show_examples = gr.Button("Show test images")
    examples_md = gr.Markdown()
    with gr.Row():
        most = chart("Excite it most (strongest first)")
        least = chart("Excite it least")
        with gr.Column():
            wanted = picture("What it wants to see (optimised, 256 steps)")
            wanted_run = gr.Button("Optimise an image for this channel")
            wanted_md = gr.Markdown()
    gr.Markdown("**Browse the test set by class** (all 10,000 where the full set is configured).")
    with gr.Row():
        browse_class = gr.Dropdown(list(cifar10.CLASSES), value="cat", label="Class")
        browse_page = gr.Number(1, label="Page", precision=0, minimum=1)
        browse_button = gr.Button("Show")
    browse_md = gr.Markdown()
    caption("Test images (click one to put it in the photo box)")
    gallery = gr.Gallery(
        label="Test images (click one to put it in the photo box)",
        show_label=False,
        columns=10,
        height=300,
        allow_preview=False,
        elem_classes="pixelated",
    )
    shared.views.register(View({"example_block": block}, analysis_view))

    session = shared.session
    residual_stats.click(
        png_figures(on_gpu(residual_view, "checks")),
        session,
        [test_plot, test_md],
        api_name="cifar10_residuals",
        **SESSION_BOUND,
        **NETWORK,
    )
    lesion.click(
        png_figures(lesion_view),
        session,
        [test_plot, test_md],
        api_name="cifar10_lesion",
        concurrency_id="lab",
        concurrency_limit=1,
        **SESSION_BOUND,
    )
    fig7.click(
        png_figures(on_gpu(fig7_view, "checks")),
        None,
        [test_plot, test_md],
        api_name="cifar10_fig7",
        concurrency_id="lab",
        concurrency_limit=1,
        **SESSION_BOUND,
    )
    show_examples.click(
        on_gpu(examples_view, "checks"),
        [session, block, channel],
        [most, least, examples_md],
        api_name="cifar10_examples",
        **SESSION_BOUND,
        **NETWORK,
    )
    wanted_run.click(
        on_gpu(feature_vis_view.visualize_selected, "visualize"),
        [session, gr.State(None), block, channel, gr.State(256)],
        [wanted, wanted_md],
        **PRIVATE,
        **NETWORK,
    )
    browse_button.click(browse, [browse_class, browse_page], [gallery, browse_md], **PRIVATE)
    gallery.select(pick_test_image, [browse_class, browse_page], shared.image, **PRIVATE)


def analysis_view(drawing: Drawing) -> dict:
    """After an analysis: the block picker holds the blocks of a CIFAR-10 network (the last picked), else none."""
    result = drawing.result
    blocks = list(result.blocks) if result.card.label_space.key == "cifar10" else []
    return {"example_block": gr.update(choices=blocks, value=blocks[-1] if blocks else None)}


def _cifar_analysis(state: TabState | None):
    state, stored = stored_analysis(state)
    result = stored.result
    if result.card.label_space.key != "cifar10":
        raise user_error("This tab is about the CIFAR-10 nets: pick the CIFAR-10 family, analyse a photo, come back.")
    return state, result


def _inputs(model) -> torch.Tensor:
    """The test images as the model's normalised input batch."""
    images, _, _ = test_images()
    return cifar10.to_batch(images, model.card.preprocess.mean, model.card.preprocess.std)


# A live model's probe stays in memory while the model does (keyed by the module itself: a rebuilt random-init net
# is another network), so a channel click needs no input batch, fingerprint hash or disk read.
_recent: weakref.WeakKeyDictionary[torch.nn.Module, DatasetProbe] = weakref.WeakKeyDictionary()
_recent_guard = threading.Lock()


def _probe(state: TabState | None, progress: gr.Progress) -> tuple[DatasetProbe, object, str]:
    state, result = _cifar_analysis(state)
    described = test_images()[2]

    def report(done: int, total: int) -> None:
        progress(done / total, desc=f"{state['arch']}: {done:,} of {total:,} test images")

    with models().using(state["arch"], state["weights"]) as loaded:
        with _recent_guard:
            probe = _recent.get(loaded.model)
        if probe is None:
            probe = probe_dataset(loaded.model, _inputs(loaded.model), progress=report, cache=cache_dir("probes"))
            with _recent_guard:
                _recent[loaded.model] = probe
    return probe, result, described


def residual_view(state: TabState | None, progress: gr.Progress = gr.Progress()):  # noqa: B008
    """Median ``||F(x)|| / ||shortcut(x)||`` per block over the test images, and on the photo just analysed."""
    probe, result, described = _probe(state, progress)
    medians = probe.median_ratios()
    photo = {name: result.blocks[name].residual_ratio for name in medians}
    figure = residual_figure(
        {f"median over {described}": medians, "your photo": photo}, title=f"{result.card.label} across the test set"
    )
    stages = probe.stage_medians(result.stage_of)
    below = sum(value < 1 for value in medians.values())
    text = (
        f"**{result.card.label}** over {described}: the residual branch is smaller than its shortcut in {below} "
        f"of {len(medians)} blocks (median per block). Median per stage: "
        + ", ".join(f"{stage} {value:.2f}" for stage, value in stages.items())
        + ". Compare the 20- and 56-layer nets: the paper's Fig. 7 finds responses smaller in deeper ResNets."
    )
    return figure, text


def examples_view(state: TabState | None, block: str, channel: float | None, progress: gr.Progress = gr.Progress()):  # noqa: B008
    """The 9 test images that excite ``channel`` of ``block`` most, and the 9 that excite it least."""
    probe, result, described = _probe(state, progress)
    if block not in probe.channel_means:
        raise user_error(f"Pick a block of {result.card.arch.name}: {', '.join(probe.channel_means)}.")
    channels = probe.channel_means[block].shape[1]
    if channel is None or not 0 <= int(channel) < channels:
        raise user_error(f"{block} has channels 0 to {channels - 1}.")
    images, labels, _ = test_images()
    top, bottom = probe.extremes(block, int(channel))
    classes = result.card.categories

    def tiles(indices: list[int]) -> str:
        grid = np.full((3 * (TILE + 4), 3 * (TILE + 4), 3), 255, np.uint8)
        for position, index in enumerate(indices):
            row, col = divmod(position, 3)
            big = np.asarray(images[index]).repeat(TILE // 32, 0).repeat(TILE // 32, 1)
            grid[
                row * (TILE + 4) + 2 : row * (TILE + 4) + 2 + TILE, col * (TILE + 4) + 2 : col * (TILE + 4) + 2 + TILE
            ] = big
        return png_path(grid)

    def names(indices: list[int]) -> str:
        return ", ".join(classes[int(labels[i])] for i in indices)

    text = (
        f"Channel {int(channel)} of {block} ({channels} channels), by mean activation over {described}. "
        f"Most: {names(top)}. Least: {names(bottom)}."
    )
    return tiles(top), tiles(bottom), text


def lesion_view(state: TabState | None, progress: gr.Progress = gr.Progress()):  # noqa: B008
    """Test accuracy with each block's residual branch deleted (its shortcut kept), one block at a time."""
    state, result = _cifar_analysis(state)
    images, labels, described = test_images()
    progress(0.0, desc=f"{state['arch']}: deleting each block in turn")
    with models().using(state["arch"], state["weights"]) as loaded:
        study = lesion_study(loaded.model, _inputs(loaded.model), torch.from_numpy(labels))
    record_lesion(state["arch"], state["weights"], study)  # the Network map colours blocks by it
    intact = f"{result.card.label} (intact {study.baseline:.1%})"
    figure = lesion_figure({intact: study}, f"{len(images):,} test images")
    ranked = sorted(study.accuracy.items(), key=lambda item: item[1])
    values = list(study.accuracy.values())
    text = (
        f"**{result.card.label}** on {described}: intact {study.baseline:.1%}, median {np.median(values):.1%} with "
        f"one block deleted. Hurts most: "
        + ", ".join(f"{block} ({acc:.1%})" for block, acc in ranked[:3])
        + ". Veit et al. (2016) found the blocks that change resolution (layer2.0, layer3.0) the most missed; "
        "on a few hundred images, neighbours in this ranking can swap places."
    )
    return figure, text


def fig7_view():
    """The paper's Fig. 7 on the trained CIFAR-10 ResNets and the lab's digit nets: the standard deviation of every
    3x3 layer's response (after its batch norm, before the ReLU or the addition), in layer order and sorted."""
    curves, missing = fig7_curves()
    _, _, described = test_images()
    cifar = [curves[name] for name in FIG7_CIFAR if name in curves]
    lab = [curves[name] for name in FIG7_DIGITS if name in curves]
    figure = response_figure({"CIFAR-10 ResNets (trained)": cifar, "Digits: plain against residual": lab})
    means = ", ".join(f"{curve.network} {np.mean(curve.std):.3f}" for curve in cifar + lab)
    text = (
        f"Standard deviation of each 3x3 layer's response, pooled over images, channels and positions: CIFAR-10 "
        f"nets on {described}, digit nets on every {FIG7_DIGIT_STEP}th of the 5,000 shipped digits. Mean over "
        f"layers: {means}. "
        "The paper: ResNets respond less than plain nets, and deeper ResNets less than shallower ones "
        "(BENCHMARKS.md has the figures over all 10,000 test images)."
    )
    if missing:
        text += f" Not on this machine, so not drawn: {'; '.join(missing)}."
    return figure, text


def _class_page(class_name: str, page: float | None) -> tuple[np.ndarray, int, int]:
    if class_name not in cifar10.CLASSES:
        raise user_error(f"Pick one of the ten classes: {', '.join(cifar10.CLASSES)}.")
    _, labels, _ = test_images()
    indices = np.flatnonzero(labels == cifar10.CLASSES.index(class_name))
    pages = max(1, -(-len(indices) // PER_PAGE))
    page = min(max(int(page or 1), 1), pages)
    return indices[(page - 1) * PER_PAGE : page * PER_PAGE], page, pages


def browse(class_name: str, page: float | None):
    """One page of the test images of a class, to click into the photo input."""
    chosen, page, pages = _class_page(class_name, page)
    images, _, described = test_images()
    items = [(png_path(images[index]), f"test image {index}") for index in chosen]
    return items, f"{class_name}: page {page} of {pages} of {described}. Click one to analyse it."


def pick_test_image(class_name: str, page: float | None, event: gr.SelectData) -> str:
    """The clicked test image, as a file for the photo input."""
    chosen, _, _ = _class_page(class_name, page)
    images, _, _ = test_images()
    return png_path(images[chosen[event.index]])
