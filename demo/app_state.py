"""The app's kernel: the model cache and the analysis store, user errors, weights and photos as the tabs get them.

``run_analysis`` runs the one forward pass, keeps its result in the bounded :class:`~demo.sessions.AnalysisStore`
and gives the tab a plain :class:`~demo.sessions.TabState`; every other handler redraws from the stored result, so
switching the feature stage, the Grad-CAM class or the opacity never runs the network from the start again. An
expired result is recomputed from the tab's state, transparently.
"""

from __future__ import annotations

import threading
from functools import cache, lru_cache
from pathlib import Path

import gradio as gr
from PIL import Image

from resnet_core import ARCHITECTURES, default_weights
from resnet_core.explain.analysis import AnalysisResult, analyze
from resnet_core.explain.evidence import EvidenceSplit, evidence_split
from resnet_core.measure.complexity import CostTable
from resnet_core.zoo.checkpoints import SOURCE
from resnet_core.zoo.create import UNTRAINED
from resnet_core.zoo.models import ResNet
from resnet_core.zoo.preprocess import load_image
from resnet_core.zoo.weights import locally_available

from . import catalog, uploads
from .catalog import LoadedModel
from .model_cache import ModelCache
from .public_text import without_paths
from .sessions import AnalysisStore, Stored, TabState

MAX_PHOTO_MB = 20  # a photo's limit, checked before decoding (Gradio's per-launch limit is the checkpoints')
MAX_CHECKPOINT_MB = 250  # resnet152 is 240 MB
STAGE_OUTPUT = "stage output"  # the Block picker's first choice: the stage itself, not one of its blocks
DEFAULT_ARCH = "resnet50"  # where the app starts when its ImageNet weights are on this machine
OFFLINE_ARCH = "cifar10_resnet56"  # ... and where it starts otherwise: trained, shipped with the app

_models: ModelCache | None = None
_results: AnalysisStore | None = None
_guard = threading.Lock()


def _shared() -> tuple[ModelCache, AnalysisStore]:
    """The process-wide model cache and analysis store, created on first use (nothing heavy at import time)."""
    global _models, _results
    with _guard:
        if _models is None:
            _models = ModelCache()
        if _results is None:  # not `or`: an empty store is falsy (it has a length)
            _results = AnalysisStore()
        return _models, _results


def models() -> ModelCache:
    return _shared()[0]


def results() -> AnalysisStore:
    return _shared()[1]


def configure(cache: ModelCache, store: AnalysisStore | None = None) -> None:
    """Use ``cache`` (its size and device) and a fresh or given result store for every later request."""
    global _models, _results
    with _guard:
        _models = cache
        _results = store or AnalysisStore()


def user_error(message: str) -> gr.Error:
    """A message for the user (no server path in it); no server-side traceback, since nothing is broken."""
    return gr.Error(without_paths(message), print_exception=False)


def start_network() -> tuple[str, str]:
    """The network the app opens on, and why, when it is not the usual one.

    resnet50 where its recommended ImageNet weights are on this machine (a Space preloads them; a laptop has them
    after the first download); else the trained CIFAR-10 ResNet-56 that ships with the app, rather than an
    untrained resnet50 calling a cat a shark. Nothing is downloaded to decide.
    """
    if locally_available(default_weights(DEFAULT_ARCH)):
        return DEFAULT_ARCH, ""
    return OFFLINE_ARCH, (
        f"Started on **{OFFLINE_ARCH}**, trained on CIFAR-10 and shipped with the app, because {DEFAULT_ARCH}'s "
        f"ImageNet weights are not on this machine yet: pick {DEFAULT_ARCH} to download them (about 100 MB)."
    )


def offered(arch: str, weights: str | None = None) -> str:
    """``arch`` (with ``weights``, for a visitor's CIFAR variant) if the app offers it, else one sentence."""
    if not catalog.offers(arch, weights):
        raise user_error(f"Unknown architecture {arch!r}: pick one from the Depth / variant list.")
    return arch


def weight_choice(arch: str, weights: str | None) -> str:
    """A weight choice of ``arch``; ``DEFAULT`` (or nothing) means the recommended one, random init if none."""
    offered(arch, weights)
    if weights in (None, "", "DEFAULT"):
        return catalog.default_choice(arch)
    if uploads.is_upload(weights):
        try:
            upload = uploads.get(weights)
        except LookupError as error:
            raise user_error(f"{str(error)[0].upper()}{str(error)[1:]}.") from None
        if upload.arch != arch:
            raise user_error(f"{upload.name} is a {upload.arch}: pick {upload.arch} to run it.")
        return weights
    choices = catalog.weight_choices(arch)
    if weights not in choices:
        raise user_error(f"{arch} has no weights named {weights!r}; choose one of: {', '.join(choices)}.")
    return weights


@cache
def _every_weight_choice() -> frozenset[str]:
    return frozenset(choice for arch in ARCHITECTURES for choice in catalog.weight_choices(arch))


def settled_weights(arch: str, weights: str | None) -> tuple[str, str]:
    """The weights an Analyze click means, and a note when they differ from what was sent.

    A click right after picking a network can still carry the previous network's weights (the Weights box follows
    the pick a moment later). Weights that belong to another network can only mean that, so ``arch``'s recommended
    ones are used and the status says so; a name no network has is still an error.
    """
    stale = weights not in (None, "", "DEFAULT") and weights not in catalog.weight_choices(offered(arch, weights))
    if stale and weights in _every_weight_choice():
        chosen = weight_choice(arch, "DEFAULT")
        return chosen, f"(The Weights box still showed {weights}, of another network: used {chosen}.)"
    return weight_choice(arch, weights), ""


def costs(arch: str, weights: str) -> CostTable:
    """Per-block cost of ``arch`` at the size the chosen weights are evaluated at (tables are cached)."""
    return catalog.costs(arch, weight_choice(arch, weights))


@lru_cache(maxsize=256)  # bounded: visitors' checkpoints add choices as they come
def model_facts(arch: str, weights: str) -> str:
    """Published accuracy, parameters and GMACs of the choice (counted where nothing is published)."""
    return catalog.facts(arch, weight_choice(arch, weights))


def image_path(image: str | dict | None) -> str:
    """A path from a handler argument; unprocessed Gradio payloads are ``{"path": ...}``."""
    if isinstance(image, dict):
        image = image.get("path")
    if not image:
        raise user_error("Upload a photo (or pick an example) first.")
    return str(image)


def load_photo(image: str | dict | None) -> Image.Image:
    """The photo of a handler argument, decoded by ``resnet_core.load_image`` (its limits), or one sentence.

    Gradio's upload limit is one per launch and must let a checkpoint through, so a photo's own limit is checked
    here, before any decoding."""
    path = image_path(image)
    if Path(path).is_file() and Path(path).stat().st_size > MAX_PHOTO_MB * 2**20:
        size = Path(path).stat().st_size / 2**20
        raise user_error(f"That photo is {size:.0f} MB; photos up to {MAX_PHOTO_MB} MB are accepted.")
    try:
        return load_image(path)
    except ValueError as error:
        raise user_error(f"Could not read the image: {error}") from None


def run_analysis(state: TabState) -> tuple[Stored, LoadedModel]:
    """Load the model, run the one forward pass, store the result under the tab's token; also the loaded model."""
    photo = load_photo(state["image"])  # decoded before taking the lock: other requests need not wait for it
    with models().using(state["arch"], state["weights"]) as loaded:
        stages = [stage.name for stage in loaded.model.feature_info]
        if state["cam_layer"] not in stages:
            state["cam_layer"] = stages[-1]
        result = analyze(loaded.model, photo, topk=state["topk"], cam_layer=state["cam_layer"])
        cam = result.cam
        if state["cam_class"] < 0:  # a new analysis explains its top-1 class
            state["cam_class"] = result.cam_class
        elif state["cam_class"] != result.cam_class:
            cam = result.cam_for(state["cam_class"], state["cam_layer"], model=loaded.model)
    return results().put(state["token"], result, cam), loaded


def stored_analysis(state: TabState | None) -> tuple[TabState, Stored]:
    """The tab's analysis: from the store, or recomputed once it has expired."""
    if not state:
        raise user_error("Run an analysis first.")
    stored = results().get(state["token"])
    return state, stored if stored is not None else run_analysis(state)[0]


def stored_evidence(state: TabState) -> EvidenceSplit:
    """The evidence split for the session's class (the one Grad-CAM explains), computed once per analysis and
    class (one forward and one backward)."""
    state, stored = stored_analysis(state)
    class_index = state["cam_class"]
    if class_index not in stored.evidence:
        photo = load_photo(state["image"])
        with models().using(state["arch"], state["weights"]) as loaded:
            stored.evidence[class_index] = evidence_split(loaded.model, photo, class_index)
    return stored.evidence[class_index]


def prediction_label(result: AnalysisResult) -> dict[str, float]:
    """The top-k as ``gr.Label`` takes it: ``"name (index)"`` -> probability."""
    return {f"{name} ({index})": probability for index, name, probability in result.topk}


def network_name(result: AnalysisResult | EvidenceSplit | ResNet) -> str:
    """How every view names the network of an analysis (:attr:`~resnet_core.zoo.create.ModelCard.name`)."""
    return result.card.name


def marked_name(result: AnalysisResult | EvidenceSplit | ResNet) -> str:
    """The network's name as a column, caption or legend shows it beside others: marked where it is untrained."""
    return network_name(result) + ("" if result.card.pretrained else " (UNTRAINED)")


def untrained_mark(result: AnalysisResult | EvidenceSplit) -> str:
    """What every output of an untrained network carries ("" for a trained one)."""
    return "" if result.card.pretrained else UNTRAINED.replace("untrained", "UNTRAINED (random weights)", 1)


def shown_stage(result: AnalysisResult, stage: str | None) -> str:
    """The requested stage; the deepest one when none is given (or the tab still shows another model's)."""
    return stage if stage in result.stages else list(result.stages)[-1]


def forget_uploads(tokens: list[str] | None) -> None:
    """Let go of a session's checkpoints and zips of images: the registry's entries and folders
    (:func:`uploads.forget`; runs over the images or with a checkpoint lie in them), the models holding the
    checkpoints and the analyses made with them. Gradio calls this when the session's state is deleted; closing
    the browser tab calls it for the session's tokens (``demo.unload``)."""
    for upload in uploads.forget(tokens):
        models().forget(upload.token)
        results().discard(f"{SOURCE}{upload.path}")
