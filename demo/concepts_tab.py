"""The Concepts tab: a stage or block of the picked network as a few concepts learned from a data set (the shipped
CIFAR-10 test images, or the zip this session uploaded to the Data set tab; NMF of its activations, CRAFT), the
photo's concepts ranked by what they add to its class, and each concept's exemplars and importance per class
(``resnet_core.explain.concepts``)."""

from __future__ import annotations

import gradio as gr
import numpy as np
from PIL import Image

from resnet_core.cache import cache_dir
from resnet_core.data import cifar10
from resnet_core.data.sources import ImageSource, open_source
from resnet_core.explain.concepts import (
    RANDOM_ORDERS,
    ConceptDictionary,
    PhotoConcepts,
    channels_at,
    concept_deletion,
    concepts_of_photo,
    learn_concepts,
)
from resnet_core.explain.feature_vis import visualize_direction
from resnet_core.render import concept_overlay, concept_strip, importance_figure, strip_row_at
from resnet_core.zoo.create import ModelCard
from resnet_core.zoo.models import ResNet

from . import uploads
from .analysis_views import Drawing, View
from .app_state import marked_name, models, settled_weights, user_error
from .feature_vis_view import DISPLAY
from .gpu import on_gpu
from .image_outputs import png_figures, png_path
from .shared import PRIVATE, SESSION_BOUND, Shared, chart, picture

TITLE = "Concepts"
DATA = "cifar10"  # the 500 CIFAR-10 test images shipped with the app: what a CIFAR-10 network's concepts are learned on
SHIPPED = "the 500 CIFAR-10 test images shipped with the app"
YOURS = "your images (the zip uploaded in the Data set tab)"  # any network's concepts, on the visitor's own data
MAX_ROWS_MB = 512  # the activations NMF factorises (float64 rows): a visitor's zip is read up to this
SHOWN = 4  # the photo's concepts drawn, largest contribution first
EXEMPLARS_SHOWN = 5  # exemplars beside each of them


def build(shared: Shared, tab: gr.Tab) -> None:
    gr.Markdown(
        "**What a stage has learned, as concepts** (CRAFT, Fel et al. 2023). A channel rarely means one thing; "
        "a few directions of the stage's activation space, learned by non-negative matrix factorisation over "
        "every position of the 500 CIFAR-10 test images, often do. Each concept is shown where it is on the "
        "photo and on the images where it is strongest, and weighed by how much it adds to the class logit "
        "(gradient x coefficient). Removing the photo's concepts in that order must lower the logit faster than "
        "random orders: the tab says whether it does. For the CIFAR-10 networks (yours too); seconds to learn, "
        "cached. Any other network (an ImageNet one, your fine-tuned one) learns over your own images: upload a "
        f"zip of images like its training images in the **Data set** tab and pick *{YOURS}* (at most "
        f"{MAX_ROWS_MB} MB of activations are factorised: the first images of the zip; never cached)."
    )
    with gr.Row():
        # The stages, then each block of the network analysed above (CIFAR nets differ in depth); typed ones too.
        layer = gr.Dropdown(
            ["layer1", "layer2", "layer3"],
            value="layer2",
            allow_custom_value=True,
            label="Stage or block (e.g. layer2.3)",
            elem_id="concepts-layer",
        )
        k = gr.Slider(2, 32, value=8, step=1, label="Concepts (k)", elem_id="concepts-k")
        concept = gr.Number(0, label="Concept shown in full (#)", precision=0, minimum=0, elem_id="concepts-pick")
    data = gr.Radio([SHIPPED, YOURS], value=SHIPPED, label="Learned over", elem_id="concepts-data")
    shared.views.register(View({"concepts_layer": layer}, layer_choices))
    run = gr.Button("Learn the stage's concepts and explain the photo", elem_id="concepts-run")
    summary = gr.Markdown(elem_id="concepts-summary")
    with gr.Row():
        strip = picture(
            "The photo's concepts, largest contribution first: on the photo, then the images where each is strongest "
            "(click one to show it in full)",
            clickable=True,
            elem_id="concepts-strip",
        )
        with gr.Column():
            chosen = picture("The concept shown in full: every exemplar", elem_id="concepts-exemplars")
            wanted = picture("What it wants to see (optimised along its direction)", elem_id="concepts-wanted")
            wanted_run = gr.Button("Optimise an image for this concept", elem_id="concepts-wanted-run")
            wanted_md = gr.Markdown(elem_id="concepts-wanted-text")
    importance = chart("Each concept's mean contribution to each class over the images", elem_id="concepts-chart")
    in_strip = gr.State([])  # the concepts the strip shows, top row first
    learned = {
        "fn": png_figures(on_gpu(concepts_views, "checks")),
        "inputs": [shared.image, shared.arch, shared.weights, layer, k, concept, data],
        "outputs": [summary, strip, chosen, importance, in_strip],
        "concurrency_id": "lab",  # seconds of the CPU, minutes at k = 32 on layer1: one at a time, beside the lab's
        "concurrency_limit": 1,
    }
    run.click(**learned, api_name="concepts", **SESSION_BOUND)
    # A click on a row shows that concept in full: the dictionary is cached, so only the photo is projected again.
    strip.select(pick_concept, in_strip, concept, **PRIVATE).success(**learned, **PRIVATE)
    wanted_run.click(
        on_gpu(concept_wanted, "visualize"),
        [shared.arch, shared.weights, layer, k, concept, data],
        [wanted, wanted_md],
        api_name="concept_wanted",
        concurrency_id="lab",
        concurrency_limit=1,
        **SESSION_BOUND,
    )


def concepts_views(
    image: str | None,
    arch: str,
    weights: str,
    layer: str = "layer2",
    k: float = 8,
    concept: float = 0,
    data: str = SHIPPED,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's own idiom
):
    """``k`` concepts of ``layer`` of a network over a data set; with a photo, its concepts ranked by their
    contribution to its top-1 class and the concept-deletion check.

    Args:
        image: a photo (optional).
        arch: a CIFAR-10 network, e.g. "cifar10_resnet56", or one opened under Your model.
        weights: "DEFAULT", a weight name, "random init", or a token /open_checkpoint gave.
        layer: a stage, e.g. "layer2", or a residual block, e.g. "layer2.3".
        k: how many concepts (2 to 32).
        concept: the concept whose every exemplar is shown.
        data: the 500 shipped CIFAR-10 test images (for a CIFAR-10 network), or the zip of images this session
            uploaded to the Data set tab (/dataset), for any network.
    """
    weights, _ = settled_weights(arch, weights)
    with models().using(arch, weights) as loaded:
        model = loaded.model
        source, dictionary, over = _learned(model, arch, layer, k, data, request, progress)
        k = dictionary.k
        shown = min(max(int(concept), 0), k - 1)
        crops = {index: model.card.preprocess.crop(source.image(int(index))) for index in dictionary.exemplars.flat}
        if image:
            photo = concepts_of_photo(model, dictionary, image)
            deletion = concept_deletion(model, dictionary, photo)
            text = photo_summary(model, dictionary, photo, deletion.beats_random, over)
            rows = [_row(dictionary, crops, j, photo) for j in photo.ranking[:SHOWN]]
        else:
            text = dictionary_summary(model, dictionary, over) + " Add a photo to see its own concepts."
            rows = [_row(dictionary, crops, j, None) for j in _overall(dictionary)[:SHOWN]]
        full = concept_strip([_row(dictionary, crops, shown, None, len(dictionary.exemplars[shown]))])
        title = f"{marked_name(model)} {layer}: {k} concepts by class ({dictionary.images} images)"
        ids = [int(j) for j in (photo.ranking if image else _overall(dictionary))[:SHOWN]]
        chart = importance_figure(dictionary, model.card.categories, title)
        return text, concept_strip(rows), full, chart, ids


def _learned(
    model: ResNet, arch: str, layer: str, k: float, data: str, request: gr.Request | None, progress: gr.Progress
) -> tuple[ImageSource, ConceptDictionary, str]:
    """The data and ``k`` concepts of ``layer`` learned over them (the shipped images' read from the cache where
    they were learned before; a visitor's never cached), with the data in words; or one sentence on why not."""
    if data not in (SHIPPED, YOURS):
        raise user_error(f"Learn over {SHIPPED!r} or {YOURS!r}.")
    if data == SHIPPED and not (of_cifar10(model.card) and model.in_chans == 3):
        raise user_error(
            f"Concepts are learned over images of the network's kind, and the app ships CIFAR-10's: pick a "
            "CIFAR-10 network, or upload a zip of images like those it was trained on in the Data set tab and "
            f"learn over them, or run `python -m resnet_core concepts --arch {arch} --layer {layer} --data FOLDER`."
        )
    if layer not in (*model.stage_names, *model.block_names()):
        raise user_error(
            f"{arch} has the stages {', '.join(model.stage_names)} and the blocks {model.block_names()[0]} to "
            f"{model.block_names()[-1]}; {layer} is neither."
        )
    k, channels = int(k), channels_at(model, layer)
    if not 2 <= k <= channels:
        raise user_error(f"k is 2 to {channels} at {layer} (its channels); got {k}.")

    def report(share: float, text: str) -> None:
        progress(share, desc=f"{layer}: {text}")

    if data == SHIPPED:  # cached, unless the network is a visitor's (nothing of it goes to the shared cache)
        source = open_source(DATA)
        mine = model.card.checkpoint is not None
        dictionary = learn_concepts(model, layer, source, k=k, use_cache=not mine, progress=report)
        return source, dictionary, f"{dictionary.images} test images"
    found = uploads.session_images(request.session_hash if request else "")
    if not found:
        raise user_error("Upload a zip of images in the Data set tab first: its images are what this learns over.")
    whole = found[-1].unpacked.source
    stage = model.stage(model.stage_of(layer) if layer in model.block_stages else layer)
    positions = (model.card.preprocess.crop_size // stage.reduction) ** 2
    source = whole.head(max(1, MAX_ROWS_MB * 2**20 // (8 * positions * channels)))
    dictionary = learn_concepts(model, layer, source, k=k, use_cache=False, progress=report)
    shown = f"the first {len(source):,} of " if len(source) < len(whole) else ""
    return source, dictionary, f"{shown}{len(whole):,} images of {found[-1].describe()}"


def concept_wanted(
    arch: str,
    weights: str,
    layer: str = "layer2",
    k: float = 8,
    concept: float = 0,
    data: str = SHIPPED,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's own idiom
):
    """What a concept wants to see: an image optimised (256 steps, cached) to raise the stage's activation along
    the concept's direction, as a channel's is in the Feature maps tab, with how strongly it does."""
    weights, _ = settled_weights(arch, weights)
    with models().using(arch, weights) as loaded:
        model = loaded.model
        _, dictionary, _ = _learned(model, arch, layer, k, data, request, progress)
        shown = min(max(int(concept), 0), dictionary.k - 1)

        def report(step: int, total: int, value: float) -> None:
            progress((step, total), desc=f"step {step} of {total}: along concept #{shown} {value:.2f}")

        direction = dictionary.components[shown].tolist()
        kept = None if model.card.checkpoint is not None else cache_dir("feature_vis")  # a visitor's: not kept
        result = visualize_direction(model, layer, direction, progress=report, cache_dir=kept)
    image = result.image.resize((DISPLAY, DISPLAY), resample=Image.Resampling.NEAREST)
    cost = "from the cache" if result.from_cache else f"{result.steps} steps of {1000 * result.seconds_per_step:.0f} ms"
    text = (
        f"Concept #{shown} of {layer} ({dictionary.k} concepts): the optimised image raises the activation along it "
        f"to **{result.activation:.2f}** (mean over positions, {cost}); compare its exemplars beside it."
    )
    return png_path(image), text


def pick_concept(in_strip: list[int], event: gr.SelectData):
    """The concept of the strip's row clicked (nothing on the white between rows)."""
    row = strip_row_at(event.index[1], len(in_strip))
    return gr.skip() if row is None else in_strip[row]


def of_cifar10(model_card: ModelCard) -> bool:
    """A network of CIFAR-10's classes: a shipped one, or a visitor's checkpoint that names them."""
    return model_card.label_space.key == DATA or tuple(model_card.categories) == tuple(cifar10.CLASSES)


def layer_choices(drawing: Drawing) -> dict:
    """After an analysis with a CIFAR-10 network: its stages, then each of its residual blocks, to learn at."""
    result = drawing.result
    if not of_cifar10(result.card):
        return {}  # left as it is: the tab says why it learns only on CIFAR-10 networks
    stages = [stage for stage in result.stages if stage != "stem"]
    return {"concepts_layer": gr.update(choices=[*stages, *result.blocks])}


def _overall(dictionary: ConceptDictionary) -> list[int]:
    """The concepts by their largest mean contribution to any class."""
    return [int(j) for j in np.argsort(-dictionary.importance.max(0))]


def _row(
    dictionary: ConceptDictionary,
    crops: dict[int, Image.Image],
    j: int,
    photo: PhotoConcepts | None,
    count: int = EXEMPLARS_SHOWN,
) -> tuple[str, np.ndarray | None, list[np.ndarray]]:
    """Concept ``j``: its label, its overlay on the photo (None without one), and its strongest exemplars, all on
    one scale so a brighter overlay is a stronger concept."""
    maps = dictionary.exemplar_maps[j][:count]
    top = float(max(maps.max(), photo.coefficients[j].max() if photo else 0.0))
    label = f"#{j}" + (f"  {photo.contributions[j]:+.2f}" if photo else "")
    on_photo = concept_overlay(photo.crop, photo.coefficients[j], top) if photo else None
    exemplars = [
        concept_overlay(crops[int(index)], coefficients, top)
        for index, coefficients in zip(dictionary.exemplars[j][:count], maps, strict=True)
    ]
    return label, on_photo, exemplars


def dictionary_summary(model: ResNet, dictionary: ConceptDictionary, over: str) -> str:
    """What was learned over ``over`` (the data in words), in a sentence: how much the concepts explain and how the
    fit went."""
    fit = "" if dictionary.converged else " (stopped at its iteration limit)"
    cached = "cached" if dictionary.from_cache else f"learned in {dictionary.seconds:.1f} s"
    return (
        f"**{dictionary.k} concepts of {marked_name(model)}'s {dictionary.layer}**, {cached} over "
        f"{over}, explain **{100 * dictionary.explained:.1f}%** of its activations "
        f"({dictionary.iterations} NMF iterations{fit})."
    )


def photo_summary(
    model: ResNet, dictionary: ConceptDictionary, photo: PhotoConcepts, beats_random: bool, over: str
) -> str:
    """The photo's answer in concepts: the top ones and their share of the contributions, and the deletion check."""
    ranking = photo.ranking
    positive = photo.contributions[photo.contributions > 0].sum()
    top = ", ".join(f"**#{j}** ({photo.contributions[j]:+.2f})" for j in ranking[:3])
    share = f"{100 * photo.contributions[ranking[0]] / positive:.0f}%" if positive > 0 else "none"
    verdict = (
        "lowers the logit faster than" if beats_random else "does **not** lower the logit faster than"
    ) + f" {RANDOM_ORDERS} random orders"
    last = dictionary.layer == model.stage_names[-1]
    caveat = " (at the last stage a linear head follows, so this holds by construction)" if last else ""
    return (
        f"{dictionary_summary(model, dictionary, over)} "
        f"On this photo they explain {100 * photo.explained:.1f}% of the activations. The network says "
        f'**"{photo.class_name}"** mostly through {top}; the first carries {share} of the positive contributions. '
        f"Removing them in this order {verdict}{caveat}."
    )
