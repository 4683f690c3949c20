"""The analysis panel above the tabs: the photo, the network picked, its predictions, the examples, and Analyze.

One forward pass fills the predictions here and the views the tabs registered in ``shared.views``
(:mod:`demo.analysis_views`): the panel imports no tab. Every control that describes the analysis on screen (stage,
layer, block, channel, class) follows it, not the pickers. The ``/analyze`` API returns the same pictures whichever
tabs the page shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from resnet_core import get_arch
from resnet_core.assets import ASSETS_DIR
from resnet_core.data import cifar10
from resnet_core.explain.analysis import AnalysisResult

from . import catalog, settings, uploads
from .analysis_views import (
    RETURNS,
    SETTINGS,
    Drawing,
    cam_picture,
    grid_picture,
    residual_chart,
    residual_summary,
    shown_feature,
)
from .app_state import (
    MAX_CHECKPOINT_MB,
    MAX_PHOTO_MB,
    STAGE_OUTPUT,
    forget_uploads,
    image_path,
    model_facts,
    models,
    offered,
    prediction_label,
    run_analysis,
    settled_weights,
    start_network,
    stored_analysis,
    user_error,
    weight_choice,
)
from .catalog import FAMILIES, LoadedModel, architectures_of
from .gpu import on_gpu
from .image_outputs import png_figures, png_path, view_path
from .report import analysis_report
from .sessions import TabState, new_token
from .shared import NETWORK, PRIVATE, SESSION_BOUND, Shared, caption

PHOTOS = ASSETS_DIR / "photos"
DIGITS = ASSETS_DIR / "digits"
MAX_UPLOAD = f"{MAX_PHOTO_MB} MB"
MAX_CHECKPOINT = f"{MAX_CHECKPOINT_MB} MB"
EXAMPLES = ["chelsea.png", "coffee.png", "rocket.jpg", "grace_hopper.jpg", "astronaut.png", "camera.png"]
DIGIT_NET = "digits_resnet56"  # the network the digit examples carry
CIFAR10_NET = "cifar10_resnet56"  # ... and the CIFAR-10 test images
FEW_CLASSES = 10  # a network this narrow calls any photo one of its classes, often with near-certainty
# After an answer, the predictions scrolled into view where they are not (a phone: the examples sit below them);
# "nearest" leaves a page where they are already on screen as it is.
SHOW_ANSWER = "() => document.querySelector('#predictions')?.scrollIntoView({block: 'nearest'})"
# /analyze's parameters after top-k, in order (names of analysis_views.SETTINGS).
API_SETTINGS = ("cam_layer", "stage", "block", "channels", "sort", "opacity")


@dataclass
class Panel:
    """The panel's own components, wired once every tab has put its views in place."""

    facts: gr.Markdown
    topk: gr.Slider
    run: gr.Button
    status: gr.Markdown
    stale: gr.Markdown
    label: gr.Label
    export: gr.Button
    report: gr.File
    examples: gr.Row
    checkpoint: gr.File
    checkpoint_labels: gr.File
    feeding: tuple  # crop, resize, mean, std, normalised (how the visitor's network was fed), architecture asked for
    open_checkpoint: gr.Button
    opened: gr.State  # the session's own checkpoints (their tokens), dropped with the session


def build(demo: gr.Blocks) -> tuple[Shared, Panel]:
    """The panel's components; their events come in :func:`wire`, once the tabs exist."""
    start_arch, start_note = start_network()
    start_family = get_arch(start_arch).family
    weights_pick = on_arch(start_arch)  # what a pick of the start network fills in
    session = gr.State(None)
    # The way in on the first screen (1400x1000): the photo with Analyze under it on the left, the answer and the
    # examples on the right; the pickers and the rest below Analyze. On a phone the columns stack in that order.
    with gr.Row():
        with gr.Column(scale=1):
            caption(f"Photo (up to {MAX_UPLOAD})")
            image = gr.Image(
                label=f"Photo (up to {MAX_UPLOAD})",
                show_label=False,
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard", "webcam"],
                height=240,
                elem_id="photo",
            )
            run = gr.Button("Analyze", variant="primary", elem_id="analyze")
            family = gr.Dropdown(FAMILIES, value=start_family, label="Family")
            arch = gr.Dropdown(
                architectures_of(start_family),
                value=start_arch,
                label="Depth / variant",
                allow_custom_value=True,  # the API may name any network; handlers check
                info="ResNet-A/B/C/D, acc@1, MACs: see the Glossary in About",
            )
            weights = gr.Dropdown(
                weights_pick["choices"], value=weights_pick["value"], label="Weights", allow_custom_value=True
            )
            facts = gr.Markdown(model_facts(start_arch, weights_pick["value"]))
            with gr.Accordion("Your model", open=False):
                gr.Markdown(
                    f"A ResNet-family checkpoint of your own (fine-tuned, your classes; up to {MAX_CHECKPOINT}): "
                    "its architecture is recognised from its keys. It stays private to this session."
                )
                checkpoint = gr.File(
                    label="Checkpoint",
                    file_types=[*uploads.SUFFIXES, *uploads.NAMED_OTHERS],
                    type="filepath",
                    elem_id="checkpoint-file",
                )
                checkpoint_labels = gr.File(
                    label="Class names (optional: .txt, one per line, or .json)",
                    file_types=list(uploads.LABEL_SUFFIXES),
                    type="filepath",
                    elem_id="checkpoint-labels",
                )
                gr.Markdown(
                    "How it was fed in training, where not as its architecture's published weights (0 or empty: "
                    "as those):"
                )
                # No minimum on the boxes: Gradio would refuse the empty box's 0 before the handler could read it.
                with gr.Row():
                    crop = gr.Number(0, label="Crop (px)", precision=0, elem_id="checkpoint-crop")
                    resize = gr.Number(0, label="Resize (px)", precision=0, elem_id="checkpoint-resize")
                normalize = gr.Checkbox(True, label="Normalised (uncheck: pixels in [0, 1] as they are)")
                with gr.Row():
                    mean = gr.Textbox(label="Mean (one per channel)", placeholder="0.4914, 0.4822, 0.4465")
                    std = gr.Textbox(label="Std (one per channel)", placeholder="0.2470, 0.2435, 0.2616")
                architecture = gr.Textbox(
                    label="Architecture (optional: only where its keys fit several)",
                    placeholder="e.g. resnet50a, or NAME_inputproj where the card names it",
                    elem_id="checkpoint-arch",
                )
                open_button = gr.Button("Open my model", elem_id="open-checkpoint")
            with gr.Accordion("Options", open=False):
                topk = gr.Slider(1, 10, value=5, step=1, label="Top-k")
        with gr.Column(scale=2):
            status = gr.Markdown(
                start_note or "Pick a photo (or an example below) and press **Analyze**.", elem_id="weights-status"
            )
            stale = gr.Markdown(elem_id="stale-notice")
            label = gr.Label(num_top_classes=10, label="Predictions", elem_id="predictions")
            with gr.Row():
                export = gr.Button("Download this analysis (PNGs + JSON)", size="sm")
                report = gr.File(label="Report", interactive=False, height=80, elem_id="report-file", visible=False)
            # Photos fill the input for whatever network is picked; digits and CIFAR-10 test images belong to a
            # network of their own, so they carry it, run on click, and are cached per example (lazily, on first
            # click).
            with gr.Row() as examples:
                gr.Examples([[str(PHOTOS / name)] for name in EXAMPLES], inputs=[image], label="Example photos")
    opened = gr.State([], time_to_live=settings.uploads_ttl(), delete_callback=forget_uploads)
    shared = Shared(demo, image, family, arch, weights, session)
    feeding = (crop, resize, mean, std, normalize, architecture)
    uploads_box = (checkpoint, checkpoint_labels, feeding, open_button, opened)
    return shared, Panel(facts, topk, run, status, stale, label, export, report, examples, *uploads_box)


def wire(shared: Shared, panel: Panel) -> None:
    """Analyze, the examples that run on click, the pickers, the stale notice and the report."""
    registry, session = shared.views, shared.session
    # /analyze takes and returns the tabs' components where the app shows them; a tab left out leaves its setting
    # at its default and its picture unreturned (a State is neither an API parameter nor an API output).
    api_settings = [
        registry.settings[name] if name in registry.settings else gr.State(SETTINGS[name]) for name in API_SETTINGS
    ]
    returned = [name for name in RETURNS if name in registry.returns]
    api_outputs = [registry.returns[name] if name in registry.returns else gr.State() for name in RETURNS]
    outputs = [panel.label, panel.status, *api_outputs, session]
    picks = [shared.image, shared.family, shared.arch, shared.weights]
    owned_examples = [
        (f"Digits: run on click with {DIGIT_NET} ({catalog.LAB_FAMILY})", catalog.LAB_FAMILY, DIGIT_NET, "digit"),
        (
            f"CIFAR-10 test images (Krizhevsky 2009): run on click with {CIFAR10_NET}",
            "CIFAR-10",
            CIFAR10_NET,
            "cifar10",
        ),
    ]
    example_files = {"digit": sorted(DIGITS.glob("*.png")), "cifar10": cifar10.gallery()}

    def example_answer(image: str, family: str, arch: str, weights: str):
        label, status, *pictures = analyze_example(image, family, arch, weights)
        return label, status, *(picture for name, picture in zip(RETURNS, pictures, strict=True) if name in returned)

    def example_follow_up(image: str, family: str, arch: str, weights: str, open_tab: str):
        return example_controls(shared, panel, image, family, arch, weights, open_tab)

    after = [session, panel.facts, panel.stale]  # what after_analysis fills beside the views
    follow_up = [*after, shared.arch, shared.weights, *registry.outputs()]
    for title, owner_family, owner, kind in owned_examples:
        paths, elem_id = example_files[kind], f"{kind}-examples"
        if not paths:
            continue
        with panel.examples:
            owned = gr.Examples(
                [[str(path), owner_family, owner, "DEFAULT"] for path in paths],
                inputs=picks,
                outputs=[panel.label, panel.status, *(registry.returns[name] for name in returned)],
                fn=png_figures(on_gpu(example_answer, "analysis")),
                cache_examples=True,
                cache_mode="lazy",
                visible_columns=[0],
                examples_per_page=10,
                label=title,
                elem_id=elem_id,
                api_visibility="private",
            )
        # No spinner of its own: the example's answer shows one on the predictions, and a queued follow-up's spinner
        # on the facts panel was what a visitor saw frozen there.
        owned.cache_event.then(
            png_figures(on_gpu(example_follow_up, "analysis")),
            [*picks, shared.open_tab],
            follow_up,
            show_progress="hidden",
            **PRIVATE,
        ).then(None, js=SHOW_ANSWER, **PRIVATE)
    # Pickers answer at once, outside the queue: an Analyze click right after a pick must see the new weights (and
    # Analyze settles stale weights itself). The facts follow any change of network or weights.
    family_inputs = [shared.family, panel.opened]
    shared.family.input(on_family, family_inputs, [shared.arch, shared.weights], queue=False, **PRIVATE)
    shared.arch.input(on_arch, [shared.arch, panel.opened], shared.weights, queue=False, **PRIVATE)
    # The facts answer outside the queue too, with no spinner: a queued event that waited (or was dropped while
    # another of its kind ran) left the panel greyed under a frozen spinner for minutes.
    facts_inputs = [shared.arch, shared.weights]
    gr.on(None, picked_facts, facts_inputs, panel.facts, queue=False, show_progress="hidden", **PRIVATE)
    # Results that no longer belong to the photo or network on screen say so until the next analysis.
    stale_inputs = [session, shared.image, shared.arch]
    gr.on([shared.image.change, shared.arch.change], mark_stale, stale_inputs, panel.stale, queue=False, **PRIVATE)
    inputs = [shared.image, shared.arch, shared.weights, panel.topk, *api_settings, session]
    # Raw values in (preprocess=False): Gradio would decode the upload itself and fail with a server error on a
    # broken file; resnet_core.load_image does the decoding, with its limits and one clear message.
    # The API's /analyze returns its 7 outputs, the residual chart drawn. The page's own click is one event (no
    # follow-up request the click would wait for) whose inputs come as one dict: the panel's and the settings the
    # tabs registered; it returns every registered view's values (those of a tab that waits to be on screen only
    # where it is).
    api = gr.Button(visible=False)
    api_call = png_figures(on_gpu(analyze_image, "analysis"))
    api.click(api_call, inputs, outputs, api_name="analyze", preprocess=False, **NETWORK)

    def page_click(values: dict, progress: gr.Progress = gr.Progress()):  # noqa: B008 - Gradio's own idiom
        return analyze_page(shared, panel, values, progress)

    page_inputs = {shared.image, shared.arch, shared.weights, panel.topk, session, shared.open_tab}
    page_outputs = [panel.label, panel.status, *after, *registry.outputs()]
    panel.run.click(
        png_figures(on_gpu(page_click, "analysis")),
        page_inputs | set(registry.settings.values()),
        page_outputs,
        preprocess=False,
        show_progress_on=[panel.label],  # one spinner, not one per output: 22 outputs, most in hidden tabs
        **PRIVATE,
        **NETWORK,
    ).then(None, js=SHOW_ANSWER, **PRIVATE)
    # The endpoint keeps its inputs (a checkpoint and its labels: clients written for it still call it); the page's
    # button sends the feeding fields too. Both then fill the pickers.
    opening = [shared.family, shared.arch, shared.weights, panel.status, panel.opened]
    picked = [shared.arch, shared.weights]
    api_open = gr.Button(visible=False)
    for button, inputs, visibility in (
        (
            api_open,
            [panel.checkpoint, panel.checkpoint_labels, panel.opened],
            {"api_name": "open_checkpoint", **SESSION_BOUND},
        ),
        (panel.open_checkpoint, [panel.checkpoint, panel.checkpoint_labels, panel.opened, *panel.feeding], PRIVATE),
    ):
        button.click(open_checkpoint, inputs, opening, **visibility, **NETWORK).success(
            checkpoint_pickers, picked, picked, queue=False, **PRIVATE
        )
    shared.demo.unload(close_session)
    panel.export.click(analysis_report, session, panel.report, api_name="report", **SESSION_BOUND).success(
        lambda: gr.update(visible=True), None, panel.report, queue=False, **PRIVATE
    )  # the box appears once there is a file in it


def picked_facts(arch: str, weights: str) -> str:
    """The facts of a pick; weights still of the previous network (the box follows a moment later) mean the new
    network's recommended ones, as Analyze takes them."""
    return model_facts(arch, settled_weights(arch, weights)[0])


def open_checkpoint(
    checkpoint: str | None,
    labels: str | None,
    opened: list[str],
    crop: float | None = None,
    resize: float | None = None,
    mean: str = "",
    std: str = "",
    normalized: bool = True,
    architecture: str = "",
    request: gr.Request = None,
):
    """Open a checkpoint of your own: recognise its architecture, load it, and pick it for Analyze.

    Returns its family and architecture, its weights value (a token that only this session is given: pass it as
    ``weights`` to /analyze), a status line that says what it was recognised as, and the session's list of opened
    checkpoints (a state).

    Args:
        checkpoint: the file.
        labels: optional class names (.txt, one per line, or .json).
        opened: the session's opened checkpoints.
        crop: optional, the crop its network was trained on (px); else its architecture's.
        resize: optional, the shorter side before the crop (px).
        mean: optional, the per-channel mean it was normalised with, e.g. "0.4914, 0.4822, 0.4465".
        std: optional, the per-channel std.
        normalized: False where it was fed pixels in [0, 1] as they are.
        architecture: optional, which architecture where its keys and shapes fit several (its card names them).
    """
    if not checkpoint:
        raise user_error("Upload a checkpoint file first (.safetensors, .pth, .pt, .bin, .ckpt or .th).")
    upload = None
    try:
        feeding = {"crop": int(crop) if crop else None, "resize": int(resize) if resize else None}
        feeding.update({name: _numbers(text, name) for name, text in (("mean", mean), ("std", std))})
        feeding = {name: value for name, value in feeding.items() if value is not None}
        if not normalized:
            feeding["normalize"] = False
        session = request.session_hash if request else ""
        upload = uploads.open_upload(checkpoint, labels, session, feeding, (architecture or "").strip() or None)
        models().get(upload.arch, upload.token)  # loaded now, so NaNs or a cut-off body are said here, not later
    except (ValueError, LookupError) as error:
        if upload is not None:
            forget_uploads([upload.token])
        raise user_error(f"{error}.") from None
    status = f"Opened **{upload.name}**: {upload.info.sentence()}. Press **Analyze**."
    return catalog.picker_family(upload), upload.arch, upload.token, status, [*opened, upload.token]


def _numbers(text: str | None, name: str) -> list[float] | None:
    """A comma-separated list of numbers from a field ("" for none)."""
    if not text or not text.strip():
        return None
    try:
        return [float(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"the {name} is numbers separated by commas, e.g. 0.5, 0.5, 0.5; got {text!r}") from None


def close_session(request: gr.Request) -> None:
    """The browser tab closed: its checkpoints go now (models, analyses, files)."""
    forget_uploads(uploads.session_tokens(request.session_hash))


def checkpoint_pickers(arch: str, token: str):
    """UI plumbing after a checkpoint opened: the pick-lists of its family and its weights, the checkpoint named
    in the Weights box (the API gets the plain values from :func:`open_checkpoint`)."""
    upload = uploads.get(token)
    family = catalog.picker_family(upload)
    weights = gr.update(choices=[*catalog.weight_choices(arch), upload.choice], value=token)
    return gr.update(choices=_listed(family, [token]), value=arch), weights


def network_pickers(arch: str, weights: str):
    """The family, network and weights pickers set to a network another view hands over (a data set's image,
    clicked, with the network that answered it): that family's list with it picked, its weights picked."""
    if uploads.is_upload(weights):
        try:
            upload = uploads.get(weights)
        except LookupError as error:
            raise user_error(f"{str(error)[0].upper()}{str(error)[1:]}.") from None
        return catalog.picker_family(upload), *checkpoint_pickers(arch, weights)
    family = get_arch(offered(arch)).family
    arch_pick, weights_pick = on_example(family, arch)
    return family, arch_pick, {**weights_pick, "value": weight_choice(arch, weights)}


def _listed(family: str, opened: list[str]) -> list[str]:
    """The family's networks and, after them, the CIFAR variants this session's checkpoints were read as."""
    variants = [uploads.get(token).arch for token in opened if uploads.is_upload(token)]
    return [*architectures_of(family), *dict.fromkeys(arch for arch in variants if not catalog.offers(arch))]


def on_family(family: str, opened: list[str] | None = None):
    """The family's networks (and the CIFAR variants this session's checkpoints were read as, after the CIFAR
    networks), its first one picked, and that network's weights."""
    if family not in FAMILIES:
        raise user_error(f"Unknown family {family!r}; choose one of: {', '.join(FAMILIES)}.")
    arch = architectures_of(family)[0]
    listed = _listed(family, opened or []) if family == catalog.CIFAR_FAMILY else architectures_of(family)
    return gr.update(choices=listed, value=arch), on_arch(arch)


def on_example(family: str, arch: str):
    """The pickers for an example that carries its own network: that family's list, that network, its weights."""
    if family not in FAMILIES or arch not in architectures_of(family):
        raise user_error(f"Unknown example network {family} / {arch}.")
    return gr.update(choices=architectures_of(family), value=arch), on_arch(arch)


def on_arch(arch: str, opened: list[str] | None = None):
    """The weight choices of a newly picked network, its recommended one picked: at once, before its facts. A CIFAR
    variant's only weights are the checkpoints of this session (``opened``) it was read from, the last one picked.

    The stage pick-lists do not change here: they describe the analysis on screen, and follow it
    (:func:`refresh_controls`).
    """
    own = [uploads.get(token) for token in opened or [] if uploads.is_upload(token)]
    own = [upload for upload in own if upload.arch == arch]
    if own and not catalog.offers(arch):
        return gr.update(choices=[upload.choice for upload in own], value=own[-1].token)
    offered(arch)
    return gr.update(choices=catalog.weight_choices(arch), value=catalog.default_choice(arch))


def status_text(
    result: AnalysisResult, loaded: LoadedModel, note: str = "", photo_size: tuple[int, int] | None = None
) -> str:
    """One line on what ran and from where (plus ``note``); the operator's detail collapsed below it. A network of
    a few classes shown a photo of another size than its training images (``photo_size``, the photo's own) is
    said not to be certain, whatever its top probability."""
    card = result.card
    trained = "trained" if card.pretrained else "**UNTRAINED**"
    text = f"Results for **{card.label}** ({card.label_space.name}, {trained}). {loaded.status}"
    text += f" {note}" if note else ""
    classes, native = len(card.categories), card.preprocess.crop_size
    if photo_size is not None and classes <= FEW_CLASSES and photo_size != (native, native):
        text += (
            f" **{card.name} knows only its {classes} classes** and must call every image one of them: on a photo "
            f"unlike its {native}x{native} training images, even 100% is not certainty."
        )
    if result.overflow is not None:
        why = (
            f"an untrained network of {len(result.blocks)} blocks adds every block's unnormalised output to its input "
            "until the sum passes float32's largest value"
            if not card.pretrained
            else "these weights make them pass float32's largest value"
        )
        text += (
            f" **Its outputs are not numbers:** the activations overflowed float32 from {result.overflow} on ({why}), "
            "so every probability shown is meaningless."
        )
    if loaded.details:
        text += f"\n\n<details><summary>Details</summary>\n\n{loaded.details}\n\n</details>"
    return text


def analyze_image(
    image: str | dict | None,
    arch: str,
    weights: str = "DEFAULT",
    topk: int = 5,
    cam_layer: str | None = None,
    stage: str | None = None,
    block: str = STAGE_OUTPUT,
    channels: int = 32,
    sort: str = "mean",
    opacity: float = 0.5,
    previous: TabState | None = None,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's own idiom
    *,
    chart: bool = True,
    view_only: bool = False,
):
    """Classify a photo with one ResNet and draw every view from one forward pass.

    Returns the top-k classes with probabilities, a status line (which weights, from where), the crop the network
    saw, the feature-map grid, the Grad-CAM overlay, the residual ratio per block and its summary.

    Args:
        image: the photo (any common format; the network sees its own centred, resized square crop).
        arch: the architecture, e.g. "resnet50", "resnext50_32x4d", "cifar10_resnet56" or "digits_resnet56" (digits).
        weights: "DEFAULT" for the recommended published weights, a weight name, "random init", or the weights
            value /open_checkpoint gave for a checkpoint of your own.
        topk: how many classes to return (1 to 100).
        cam_layer: the stage Grad-CAM looks at ("layer1" ... "layer4"); empty for the last stage.
        stage: the stage whose feature maps are drawn; empty for the last stage.
        block: "stage output" or a block of that stage, e.g. "layer3.2".
        channels: how many feature-map channels to draw.
        sort: "mean" (strongest channels first) or "index".
        opacity: the heat map's opacity over the crop, 0 to 1.
        previous: the tab's last analysis (a session state, not an API parameter): where it was of another
            network, its stage and layer picks are that network's, so the new one starts at its own last stage.
        chart: whether to draw the residual chart (not an API parameter: a test that does not look at it skips it).
        view_only: the crop and the overlay as JPEGs for the page's view-only pictures (not an API parameter: the
            API's images are exact PNGs).
    """
    chosen = {"cam_layer": cam_layer, "stage": stage, "block": block, "channels": channels, "sort": sort}
    drawing, status = analysis(image, arch, weights, topk, picks_for(arch, previous, chosen, opacity=opacity), progress)
    result = drawing.result
    _, _, feature = shown_feature(result, drawing.settings["stage"], drawing.settings["block"])
    grid, _, _ = grid_picture(feature, int(channels), sort)
    # Images leave as PNG files replaced atomically: identical concurrent outputs never tear each other's download.
    drawn = (residual_chart(result),) if chart else ()
    shown = view_path if view_only else png_path
    return (
        prediction_label(result),
        status,
        shown(result.crop),
        png_path(grid),  # flat cells: as small and fast in PNG, and exact
        shown(cam_picture(drawing)),
        *drawn,
        residual_summary(result),
        drawing.state,
    )


def analysis(
    image: str | dict | None,
    arch: str,
    weights: str,
    topk: int,
    settings: dict,
    progress: gr.Progress | None = None,
    previous: TabState | None = None,
) -> tuple[Drawing, str]:
    """Run the analysis (or find it stored): what the views draw from, and the status line."""
    path = image_path(image)
    weights, note = settled_weights(arch, weights)
    if not 1 <= int(topk) <= 100:
        raise user_error(f"Top-k must lie between 1 and 100, got {topk}.")
    if progress is not None and (arch, weights) not in models():  # a message while a model loads: seconds, not ms
        progress(0.1, desc=f"loading {arch} ({weights})")
    state = _new_state(path, arch, weights, int(topk), settings["cam_layer"])
    stored, loaded = run_analysis(state)
    status = status_text(stored.result, loaded, note, photo_size(path))
    return Drawing(state, stored, settings, previous), status


def analyze_page(shared: Shared, panel: Panel, values: dict, progress: gr.Progress | None = None) -> dict:
    """The page's Analyze click: ``values`` by component (the panel's, and the settings the tabs registered); the
    predictions, the status and every registered view's values, by component."""
    previous, arch = values[shared.session], values[shared.arch]
    chosen = {name: values[component] for name, component in shared.views.settings.items()}
    settings = picks_for(arch, previous, chosen)
    image, weights, topk = values[shared.image], values[shared.weights], values[panel.topk]
    drawing, status = analysis(image, arch, weights, topk, settings, progress, previous)
    answer = {panel.label: prediction_label(drawing.result), panel.status: status}
    return {**answer, **after_analysis(shared, panel, drawing, values[shared.open_tab])}


def after_analysis(shared: Shared, panel: Panel, drawing: Drawing, open_tab: str | None) -> dict:
    """UI plumbing after an analysis, by component: the session's new state, the facts of the network that ran
    (now that it is known whether its weights loaded), no stale notice, and every registered view's values."""
    facts = analysis_facts(drawing.state, drawing.result)
    own = {shared.session: drawing.state, panel.facts: facts, panel.stale: ""}
    return {**own, **shared.views.drawn(drawing, open_tab)}


def picks_for(arch: str, previous: TabState | None, chosen: dict, **more) -> dict:
    """The analysis's settings (:data:`SETTINGS`, with those ``chosen`` and ``more``): a network's own, unless
    ``previous`` was of another network, where it starts at its own last stage and layer."""
    settings = {**SETTINGS, **chosen, **more}
    if previous and previous["arch"] != arch:
        settings.update(cam_layer=None, stage=None, block=SETTINGS["block"])
    return settings


def analyze_example(image: str, family: str, arch: str, weights: str):
    """An example that belongs to one network (a digit, a CIFAR-10 test image), analysed with that network.

    Gradio caches these outputs per example, so a cached result is always the example's own network and weights.
    The session is not among them (Gradio does not cache state): :func:`example_controls` gives the visitor one.
    """
    return analyze_image(image, arch, weights, view_only=True)[:-1]


def example_controls(
    shared: Shared, panel: Panel, image: str, family: str, arch: str, weights: str, open_tab: str | None
) -> dict:
    """After an example ran or came from the cache, by component: a session of the visitor's own, what follows
    its analysis (:func:`after_analysis`), and the pickers of its network.

    The session's analysis is run once here (these nets take milliseconds), so Grad-CAM re-targeting and the
    CIFAR-10 tab work on a cached example as on any other analysis.
    """
    state = _new_state(image_path(image), arch, weight_choice(arch, weights))
    state, stored = stored_analysis(state)  # nothing stored under the new token yet: runs the analysis
    arch_pick, weights_pick = on_example(family, arch)
    pickers = {shared.arch: arch_pick, shared.weights: weights_pick}
    return {**after_analysis(shared, panel, Drawing(state, stored), open_tab), **pickers}


def photo_size(path: str) -> tuple[int, int] | None:
    """The photo's own width and height, from its header (None where it cannot be read: the analysis says why)."""
    try:
        with Image.open(path) as photo:
            return photo.size
    except (OSError, ValueError):
        return None


def _new_state(path: str, arch: str, weights: str, topk: int = 5, cam_layer: str | None = None) -> TabState:
    return TabState(
        token=new_token(), arch=arch, weights=weights, image=path, topk=topk, cam_class=-1, cam_layer=cam_layer or ""
    )


def analysis_facts(state: TabState, result: AnalysisResult) -> str:
    """The facts of the network that ran, headed by a warning where its weights could not be loaded."""
    facts = model_facts(state["arch"], state["weights"])
    if result.card.pretrained or catalog.choice(state["arch"], state["weights"]).untrained:
        return facts
    return f"**{state['weights']} could not be loaded: this network runs untrained.** Published figures:  \n{facts}"


def mark_stale(state: TabState | None, image: str | dict | None, arch: str | None) -> str:
    """A notice while the photo or network on screen differs from the one the results below were computed for."""
    if not state:
        return ""
    photo = image.get("path") if isinstance(image, dict) else image
    changed = []
    if photo and photo != state["image"]:
        changed.append("photo")
    if arch and arch != state["arch"]:
        changed.append("network")
    if not changed:
        return ""
    return (
        f"**The {' and '.join(changed)} changed since these results**, which are for {Path(state['image']).name} "
        f"with {state['arch']}: press **Analyze** to update them."
    )
