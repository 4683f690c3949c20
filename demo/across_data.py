"""The network analysed above, across the data picked in the Data set tab: each block's median residual ratio over
the data beside the photo's, the images that excite a channel most and least, each block deleted in turn (Veit et
al. 2016), the paper's Fig. 7, and the data browsed by class.

Any network the panel analyses (a visitor's checkpoint too) on any data the tab offers (a visitor's zip too). The
residual ratios, the channels' images, the lesions and the analysed network's Fig. 7 curve read one batch of the data,
bounded to :data:`MAX_INPUT_MB` of the network's input (the first images in the data's order: all 10,000 CIFAR-10
test images for a CIFAR net, about 890 at 224 px), since the lesion study holds that batch while it deletes each
block. Fig. 7 draws the paper's own networks beside it, whatever is picked.
"""

from __future__ import annotations

import threading
import weakref

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageOps

from resnet_core.cache import cache_dir
from resnet_core.data.sources import ImageSource, match_labels
from resnet_core.evaluate.loader import PreprocessedImages, normalised_pixels
from resnet_core.explain.analysis import AnalysisResult
from resnet_core.measure.dataset_probe import DatasetProbe, probe_dataset
from resnet_core.measure.layer_responses import response_std
from resnet_core.measure.lesion import lesion_study
from resnet_core.render import lesion_figure, residual_figure, response_figure
from resnet_core.zoo.create import card
from resnet_core.zoo.models import ResNet

from . import feature_vis_view, uploads
from .analysis_views import Drawing, View
from .app_state import models, stored_analysis, user_error
from .data_choices import chosen_data
from .gpu import on_gpu
from .image_outputs import png_figures, png_path
from .lab_results import FIG7_CIFAR, FIG7_DIGIT_STEP, FIG7_DIGITS, fig7_curves, record_lesion, test_images
from .sessions import TabState
from .shared import NETWORK, PRIVATE, SESSION_BOUND, Shared, caption, chart, picture

__all__ = ["MAX_INPUT_MB", "build"]

MAX_INPUT_MB = 512  # the network's float input held at once (the lesion study's batch)
PER_PAGE = 20  # images per page when browsing a class
TILE = 96  # an exemplar's side in the 3x3 grids (a 32x32 image at 3x, its pixels kept)
EVERY_IMAGE = "every image"  # what the class picker offers for data without labels


def build(shared: Shared, data: gr.Radio, images: gr.File, mine: gr.State) -> None:
    """The section under the tab's runs: its components, and its events on the tab's data pickers."""
    gr.Markdown(
        "## The network analysed above, across this data\n"
        "Analyse a photo above with any network (yours too), pick the data above, then look here. One pass over "
        "the data per network and data feeds the first three views (cached on disk for the data every visitor "
        f"may pick); at most {MAX_INPUT_MB} MB of the network's input is read, the first images in the data's "
        "order: all 10,000 CIFAR-10 test images for a CIFAR net, about 890 at 224 px."
    )
    with gr.Row():
        residual_stats = gr.Button("Residual ratios: the data vs your photo")
        lesion = gr.Button("Delete each block in turn")
        fig7 = gr.Button("The paper's Fig. 7: how strongly each 3x3 layer responds")
    test_md = gr.Markdown(elem_id="across-text")
    test_plot = chart("Across the data", elem_id="across-chart")
    gr.Markdown("**What a channel responds to**: the images of the data that excite it most and least.")
    with gr.Row():
        block = gr.Dropdown([], label="Block", allow_custom_value=True)
        channel = gr.Number(0, label="Channel", precision=0, minimum=0)
        show_examples = gr.Button("Show the images")
    examples_md = gr.Markdown()
    with gr.Row():
        most = chart("Excite it most (strongest first)")
        least = chart("Excite it least")
        with gr.Column():
            wanted = picture("What it wants to see (optimised, 256 steps)")
            wanted_run = gr.Button("Optimise an image for this channel")
            wanted_md = gr.Markdown()
    gr.Markdown("**Browse the data by class**")
    with gr.Row():
        browse_class = gr.Dropdown([], label="Class", allow_custom_value=True, elem_id="browse-class")
        browse_page = gr.Number(1, label="Page", precision=0, minimum=1)
        browse_button = gr.Button("Show")
    browse_md = gr.Markdown()
    caption("The data's images (click one to put it in the photo box)")
    gallery = gr.Gallery(
        show_label=False, columns=10, height=300, allow_preview=False, elem_classes="pixelated", elem_id="browse"
    )
    shared.views.register(View({"example_block": block}, analysis_view))

    session = shared.session
    picked = [data, images, mine]
    residual_stats.click(
        png_figures(on_gpu(residual_view, "checks")),
        [session, *picked],
        [test_plot, test_md],
        api_name="data_residuals",
        **SESSION_BOUND,
        **NETWORK,
    )
    lesion.click(
        png_figures(lesion_view),
        [session, *picked],
        [test_plot, test_md],
        api_name="data_lesion",
        concurrency_id="lab",
        concurrency_limit=1,
        **SESSION_BOUND,
    )
    fig7.click(
        png_figures(on_gpu(fig7_view, "checks")),
        [session, *picked],
        [test_plot, test_md],
        api_name="fig7",
        concurrency_id="lab",
        concurrency_limit=1,
        **SESSION_BOUND,
    )
    show_examples.click(
        on_gpu(examples_view, "checks"),
        [session, *picked, block, channel],
        [most, least, examples_md],
        api_name="data_examples",
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
    # The class list follows the data (a zip's own classes once it is unpacked); the first page shows at once.
    for changed in (shared.demo.load, data.change):
        changed(classes_of, picked, browse_class, **PRIVATE)
    browse_button.click(browse, [*picked, browse_class, browse_page], [gallery, browse_md], **PRIVATE)
    gallery.select(pick_image, [*picked, browse_class, browse_page], shared.image, **PRIVATE)


def analysis_view(drawing: Drawing) -> dict:
    """After an analysis: the block picker holds the analysed network's blocks, the last one picked."""
    blocks = list(drawing.result.blocks)
    return {"example_block": gr.update(choices=blocks, value=blocks[-1] if blocks else None)}


def _source(data: str, images: str | None, mine: list[str] | None, request: gr.Request | None) -> tuple:
    """The picked data set, how it is named, and the visitor's upload it is (None for data every visitor may pick)."""
    return chosen_data(data, images, list(mine or []), request)


def _batch(model: ResNet, source: ImageSource) -> tuple[torch.Tensor, list[int]]:
    """The first images of ``source`` as ``model``'s input, at most :data:`MAX_INPUT_MB` of it, and which image each
    row is (an image that cannot be read is left out). CIFAR-10's pixels for a 32x32 network are normalised in one
    batch, with the same operations as one by one."""
    preprocess = card(model).preprocess
    count = min(len(source), MAX_INPUT_MB * 2**20 // (3 * 4 * preprocess.crop_size**2))
    batch = normalised_pixels(source, preprocess, range(count))
    if batch is not None:
        return batch, list(range(count))
    # Image by image as the Data set run reads them; an unreadable one (a row with its error there) is left out.
    images = PreprocessedImages(source, preprocess, [None] * len(source), range(count))
    inputs = [images[index]["inputs"] for index in range(count)]
    kept = [index for index, tensor in enumerate(inputs) if tensor is not None]
    if not kept:
        raise user_error(f"None of the first {count} images of the data could be read.")
    return torch.stack([inputs[index] for index in kept]), kept


# A live model's probes stay in memory while the model does (keyed by the module itself: a rebuilt random-init net
# is another network), one per data set, so a channel click needs no input batch, fingerprint hash or disk read.
_recent: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, tuple[DatasetProbe, list[int]]]]
_recent = weakref.WeakKeyDictionary()
_recent_guard = threading.Lock()


def _probe(state: TabState | None, source: ImageSource, key: str, private: bool, progress: gr.Progress):
    """The analysed network's probe of the data ``key`` names (one pass, every block), which image each of its rows
    is, and the stored analysis."""
    state, stored = stored_analysis(state)

    def report(done: int, total: int) -> None:
        progress(done / total, desc=f"{state['arch']}: {done:,} of {total:,} images")

    with models().using(state["arch"], state["weights"]) as loaded:
        with _recent_guard:
            found = _recent.get(loaded.model, {}).get(key)
        if found is None:
            inputs, kept = _batch(loaded.model, source)
            where = None if private else cache_dir("probes")
            found = probe_dataset(loaded.model, inputs, progress=report, cache=where), kept
            with _recent_guard:
                _recent.setdefault(loaded.model, {})[key] = found
    return *found, stored.result


def _over(kept: list[int], source: ImageSource, described: str) -> str:
    """What a view was computed over: the data, or the first of its images that the bound let in (and could be
    read)."""
    return described if len(kept) == len(source) else f"{len(kept):,} of the {len(source):,} images of {described}"


def _probed(
    state: TabState | None,
    data: str,
    images: str | None,
    mine: list[str] | None,
    request: gr.Request | None,
    progress: gr.Progress,
) -> tuple[ImageSource, str, DatasetProbe, list[int], AnalysisResult]:
    """The picked data, how it is named, the analysed network's probe of it with the images it holds, and the
    analysis. A visitor's data or network is probed in memory only: nothing of it goes to the shared cache."""
    source, described, found = _source(data, images, mine, request)
    private = found is not None or (state is not None and uploads.is_upload(state["weights"]))
    return source, described, *_probe(state, source, found.sha256 if found else described, private, progress)


def residual_view(
    state: TabState | None,
    data: str,
    images: str | None = None,
    mine: list[str] | None = None,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
):
    """Median ``||F(x)|| / ||shortcut(x)||`` per block over the data, and on the photo just analysed."""
    source, described, probe, kept, result = _probed(state, data, images, mine, request, progress)
    medians = probe.median_ratios()
    photo = {name: result.blocks[name].residual_ratio for name in medians}
    over = _over(kept, source, described)
    figure = residual_figure({f"median over {over}": medians, "your photo": photo}, title=f"{result.card.label}")
    stages = probe.stage_medians(result.stage_of)
    below = sum(value < 1 for value in medians.values())
    text = (
        f"**{result.card.label}** over {over}: the residual branch is smaller than its shortcut in {below} "
        f"of {len(medians)} blocks (median per block). Median per stage: "
        + ", ".join(f"{stage} {value:.2f}" for stage, value in stages.items())
        + ". Compare the 20- and 56-layer CIFAR-10 nets: the paper's Fig. 7 finds responses smaller in deeper "
        "ResNets."
    )
    return figure, text


def examples_view(
    state: TabState | None,
    data: str,
    images: str | None,
    mine: list[str] | None,
    block: str,
    channel: float | None,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
):
    """The 9 images of the data that excite ``channel`` of ``block`` most, and the 9 that excite it least."""
    source, described, probe, kept, result = _probed(state, data, images, mine, request, progress)
    if block not in probe.channel_means:
        raise user_error(f"Pick a block of {result.card.arch.name}: {', '.join(probe.channel_means)}.")
    channels = probe.channel_means[block].shape[1]
    if channel is None or not 0 <= int(channel) < channels:
        raise user_error(f"{block} has channels 0 to {channels - 1}.")
    top, bottom = ([kept[row] for row in rows] for rows in probe.extremes(block, int(channel)))

    def tiles(indices: list[int]) -> str:
        grid = Image.new("RGB", (3 * (TILE + 4), 3 * (TILE + 4)), "white")
        for position, index in enumerate(indices):
            row, col = divmod(position, 3)
            image = source.image(index)
            small = min(image.size) <= TILE  # CIFAR-10's 32x32 enlarged by whole pixels, a photo shrunk smoothly
            tile = ImageOps.fit(image, (TILE, TILE), Image.Resampling.NEAREST if small else Image.Resampling.BILINEAR)
            grid.paste(tile, (col * (TILE + 4) + 2, row * (TILE + 4) + 2))
        return png_path(grid)

    def names(indices: list[int]) -> str:
        return ", ".join(str(source.labels[i]) if source.labels[i] is not None else "unlabelled" for i in indices)

    text = (
        f"Channel {int(channel)} of {block} ({channels} channels), by mean activation over "
        f"{_over(kept, source, described)}. Most: {names(top)}. Least: {names(bottom)}."
    )
    return tiles(top), tiles(bottom), text


def lesion_view(
    state: TabState | None,
    data: str,
    images: str | None = None,
    mine: list[str] | None = None,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008
):
    """Accuracy over the data with each block's residual branch deleted (its shortcut kept), one block at a time."""
    source, described, _ = _source(data, images, mine, request)
    state, stored = stored_analysis(state)
    result = stored.result
    progress(0.0, desc=f"{state['arch']}: deleting each block in turn")
    with models().using(state["arch"], state["weights"]) as loaded:
        inputs, kept = _batch(loaded.model, source)
        model_card = card(loaded.model)
        try:
            labels = match_labels(
                [source.labels[i] for i in kept],
                model_card.categories,
                model_card.label_space.wnids,
                model_card.name,
            )
        except ValueError as error:
            raise user_error(str(error)) from None
        known = [row for row, label in enumerate(labels) if label is not None]
        if not known:
            raise user_error(f"{described} has no labels: deleting a block is measured by accuracy.")
        truth = torch.tensor([labels[row] for row in known])
        study = lesion_study(loaded.model, inputs if len(known) == len(labels) else inputs[known], truth)
    record_lesion(state["arch"], state["weights"], study)  # the Network map colours blocks by it
    over = _over(kept, source, described)
    over = over if len(known) == len(kept) else f"the {len(known):,} labelled images of {over}"
    figure = lesion_figure({f"{result.card.label} (intact {study.baseline:.1%})": study}, over)
    ranked = sorted(study.accuracy.items(), key=lambda item: item[1])
    values = list(study.accuracy.values())
    text = (
        f"**{result.card.label}** on {over}: intact {study.baseline:.1%}, median {np.median(values):.1%} with "
        f"one block deleted. Hurts most: "
        + ", ".join(f"{block} ({acc:.1%})" for block, acc in ranked[:3])
        + ". Veit et al. (2016) found the blocks that change resolution (layer2.0, layer3.0) the most missed; "
        "on a few hundred images, neighbours in this ranking can swap places."
    )
    return figure, text


def fig7_view(
    state: TabState | None = None,
    data: str = "",
    images: str | None = None,
    mine: list[str] | None = None,
    request: gr.Request = None,
):
    """The paper's Fig. 7 on the trained CIFAR-10 ResNets and the lab's digit nets: the standard deviation of every
    3x3 layer's response (after its batch norm, before the ReLU or the addition), in layer order and sorted; beside
    them, once a photo is analysed, the same curve of the analysed network over the picked data."""
    curves, missing = fig7_curves()
    _, _, described = test_images()
    cifar = [curves[name] for name in FIG7_CIFAR if name in curves]
    lab = [curves[name] for name in FIG7_DIGITS if name in curves]
    groups = {"CIFAR-10 ResNets (trained)": cifar, "Digits: plain against residual": lab}
    yours = ""
    if state is not None and data:
        source, over, _ = _source(data, images, mine, request)
        state, _ = stored_analysis(state)
        with models().using(state["arch"], state["weights"]) as loaded:
            inputs, kept = _batch(loaded.model, source)
            curve = response_std(loaded.model, inputs.split(250), network=card(loaded.model).label)
        groups[f"Analysed above, on {len(kept):,} images"] = [curve]
        yours = f" {curve.network} over {_over(kept, source, over)}: mean {np.mean(curve.std):.3f}."
    figure = response_figure(groups)
    means = ", ".join(f"{curve.network} {np.mean(curve.std):.3f}" for curve in cifar + lab)
    text = (
        f"Standard deviation of each 3x3 layer's response, pooled over images, channels and positions: CIFAR-10 "
        f"nets on {described}, digit nets on every {FIG7_DIGIT_STEP}th of the 5,000 shipped digits. Mean over "
        f"layers: {means}.{yours} "
        "The paper: ResNets respond less than plain nets, and deeper ResNets less than shallower ones "
        "(BENCHMARKS.md has the figures over all 10,000 test images)."
    )
    if missing:
        text += f" Not on this machine, so not drawn: {'; '.join(missing)}."
    return figure, text


def classes_of(data: str, images: str | None, mine: list[str] | None, request: gr.Request = None):
    """The picked data's classes to browse (every image, for data without labels); nothing for a zip not uploaded."""
    try:
        source, _, _ = _source(data, images, mine, request)
    except gr.Error:
        return gr.update(choices=[], value=None)
    labels = sorted({str(label) for label in source.labels if label is not None})
    shown = labels or [EVERY_IMAGE]
    return gr.update(choices=shown, value=shown[0])


def _page(source: ImageSource, class_name: str, page: float | None) -> tuple[list[int], int, int]:
    labels = [None if label is None else str(label) for label in source.labels]
    if class_name == EVERY_IMAGE:
        indices = list(range(len(source)))
    elif class_name in labels:
        indices = [index for index, label in enumerate(labels) if label == class_name]
    else:
        raise user_error(f"Pick one of the data's classes: {', '.join(sorted({str(x) for x in labels if x}))}.")
    pages = max(1, -(-len(indices) // PER_PAGE))
    page = min(max(int(page or 1), 1), pages)
    return indices[(page - 1) * PER_PAGE : page * PER_PAGE], page, pages


def browse(
    data: str,
    images: str | None,
    mine: list[str] | None,
    class_name: str,
    page: float | None,
    request: gr.Request = None,
):
    """One page of the data's images of a class, to click into the photo input."""
    source, described, _ = _source(data, images, mine, request)
    chosen, page, pages = _page(source, class_name, page)
    items = [(png_path(source.image(index)), source.keys[index]) for index in chosen]
    return items, f"{class_name}: page {page} of {pages} of {described}. Click one to analyse it."


def pick_image(
    data: str,
    images: str | None,
    mine: list[str] | None,
    class_name: str,
    page: float | None,
    event: gr.SelectData,
    request: gr.Request = None,
) -> str:
    """The clicked image, as a file for the photo input."""
    source, _, _ = _source(data, images, mine, request)
    chosen, _, _ = _page(source, class_name, page)
    return png_path(source.image(chosen[event.index]))
