"""The Data set tab: networks over a whole data set instead of one photo, through ``resnet_core.evaluate_dataset``.

The data are the CIFAR-10 test images shipped with the app, all 10,000 where ``$RESNET_EXPLORER_CIFAR10`` names them,
a folder or CSV on the server named by ``$RESNET_EXPLORER_DATASET`` (never a path a visitor types), or a zip the
visitor uploads (:mod:`demo.uploads`: unpacked into a folder of their session's, within the limits of
:func:`demo.settings.upload_limits`). The networks are the shipped CIFAR-10 ones and the checkpoints the visitor
opened under Your model (``ARCH@TOKEN``). A run is a job of the lab's kind (one at a time, with progress,
cancellable), off on a Space unless enabled; its rows, summaries and plots stay on disk, keyed by what was asked, so
asking again reads them back: under the app's cache for what every visitor may ask, in the session's own folder for
a run over a visitor's zip or with their checkpoint (deleted with the session).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd
import pyarrow.dataset as ds
import torch

from resnet_core import ARCHITECTURES, evaluate_dataset
from resnet_core.cache import cache_dir
from resnet_core.data.sources import ImageSource, open_source
from resnet_core.evaluate.metrics import METRICS
from resnet_core.evaluate.store import PLOTS, ROWS, file_name
from resnet_core.evaluate.summary import ACCURACY_PLOT, CONFUSION_PLOT, METRICS_PLOT, RATIOS_PLOT, Summary
from resnet_core.settings import cifar10_test_set
from resnet_core.zoo.models import ResNet

from . import catalog, settings, uploads
from .analysis_panel import network_pickers
from .app_state import forget_uploads, user_error, weight_choice
from .image_outputs import download_path, png_path
from .shared import PRIVATE, SESSION_BOUND, Shared, caption, picture

TITLE = "Data set"
RESIDUALS = "residual ratios"
NETWORKS = [name for name, spec in ARCHITECTURES.items() if spec.label_space.key == "cifar10"]
DEFAULT_NETWORKS = ["cifar10_resnet20", "cifar10_resnet32", "cifar10_resnet44", "cifar10_resnet56"]
MAX_NETWORKS = 6
WORST = 12  # the most confidently wrong images shown
LEADERBOARD = ["network", "depth", "weights", "images", "unreadable", "acc@1 %", "acc@5 %", "images/s"]
YOUR_ZIP = "your images (the zip uploaded below)"
ZIP_LAYOUTS = (
    "Class folders (each folder's name is its images' label: the network's class names, ImageNet WordNet IDs or "
    "the names of its labels file), or images with a `path,label` CSV beside them, or images alone (then "
    "predictions without accuracy)"
)


def data_choices() -> dict[str, str]:
    """What the tab offers to run on: label -> what ``evaluate_dataset`` is given."""
    choices = {"the 500 CIFAR-10 test images shipped with the app": "cifar10"}
    if cifar10_test_set() is not None:
        choices["all 10,000 CIFAR-10 test images (this server's copy)"] = "cifar10:full"
    folder = settings.dataset_folder()
    if folder:
        choices[f"this server's data set ({Path(folder).name})"] = folder
    return choices


def build(shared: Shared, tab: gr.Tab) -> None:
    if not settings.dataset_runs():
        gr.Markdown(
            "Runs over a data set take minutes of CPU that every other visitor would wait for, so they are off on "
            f"this Space. Run the app yourself (`python app.py`), or set `{settings.ENV_DATASET_RUNS}=1`."
        )
        return
    gr.Markdown(
        "Every image of a data set through each network: accuracy, speed and each block's median residual ratio "
        "per network, the images they get most confidently wrong, and every row to download (Parquet). Ask for an "
        "explanation metric to score Grad-CAM on every image: each metric against depth, and the images whose map "
        "explains the network worst. Grad-CAM here explains the class logit (Selvaraju et al.), and Average Drop "
        "and Increase in Confidence read the softmax probability, as TorchCAM's metric does; TorchCAM's own example "
        "also takes its maps from the softmax probability, which gives other maps (Average Drop 0.466 instead of "
        "0.105 on cifar10_resnet56 over the 500 shipped images: `python -m bench.torchcam_target`). "
        "The same run from the command line: "
        "`python -m resnet_core evaluate cifar10 --archs cifar10_resnet20 ... --out DIR`."
    )
    with gr.Row():
        # A pick-list that takes values it does not list: an API caller's ARCH@TOKEN (its /open_checkpoint does not
        # run the page's events that list the checkpoint here); dataset_run refuses anything else in one sentence.
        networks = gr.Dropdown(
            NETWORKS,
            value=DEFAULT_NETWORKS,
            multiselect=True,
            max_choices=MAX_NETWORKS,
            allow_custom_value=True,
            label="Networks (trained where weights exist; checkpoints you open under Your model join the list)",
            elem_id="dataset-networks",
        )
        with gr.Column():
            offered = list(data_choices())
            data = gr.Radio([*offered, YOUR_ZIP], value=offered[0], label="Data", elem_id="dataset-data")
            limits = settings.upload_limits()
            zipped_images = gr.File(
                label=f"Your images: a zip ({limits.describe()})", file_types=[".zip"], elem_id="dataset-zip"
            )
            gr.Markdown(
                f"{ZIP_LAYOUTS}. Private to you: unpacked into your session's folder, with the run's rows, and "
                "deleted when you close the page. Checkpoints you open under **Your model** join the networks."
            )
            zip_status = gr.Markdown(elem_id="dataset-zip-status")
            measured = gr.CheckboxGroup([RESIDUALS, *METRICS], value=[RESIDUALS], label="Measure besides predictions")
    mine = gr.State([], time_to_live=settings.uploads_ttl(), delete_callback=forget_uploads)
    with gr.Row():
        run = gr.Button("Run over the data set", variant="primary")
        stop = gr.Button("Stop")
    status = gr.Markdown(elem_id="dataset-status")
    board = gr.Dataframe(headers=LEADERBOARD, label="Leaderboard", interactive=False, elem_id="dataset-board")
    accuracy = picture("Accuracy against depth", elem_id="dataset-accuracy")
    confusion = picture(
        "Where each network fails: its confusion matrix, each class's accuracy beside its name",
        height=720,
        elem_id="dataset-confusion",
    )
    # The whole width: one point per block of every network, unreadable at half of it.
    ratios = picture("Median residual ratio of every block", height=460, elem_id="dataset-ratios")
    metrics_caption = caption("Each explanation metric against depth", visible=False)
    metrics_plot = gr.Image(show_label=False, interactive=False, format="png", visible=False, elem_id="dataset-metrics")
    caption("Most confidently wrong (click one to put it in the photo box)")
    worst = gallery("dataset-worst")
    worst_files = gr.State([])
    explained_caption = caption(visible=False, elem_id="dataset-explained-caption")
    explained = gallery("dataset-explained", visible=False)
    explained_files = gr.State([])
    download = gr.File(label="Rows (Parquet), summaries (JSON) and plots, zipped", elem_id="dataset-download")
    outputs = [
        *(status, board, accuracy, confusion, ratios, metrics_caption, metrics_plot, worst, worst_files),
        *(explained_caption, explained, explained_files, download),
    ]
    zipped_images.upload(take_images, [zipped_images, mine], [zip_status, data, mine], **PRIVATE)
    shared.weights.change(offer_checkpoint, [shared.weights, networks], networks, queue=False, **PRIVATE)
    job = run.click(
        dataset_run,
        [networks, data, measured, zipped_images, mine],
        [*outputs, mine],
        api_name="dataset",
        concurrency_id="lab",
        concurrency_limit=1,
        **SESSION_BOUND,
    )
    # Stop says so, and a new choice clears what the last run showed: it belongs to the choices it was run with.
    stop.click(stopped, None, outputs, cancels=[job], **PRIVATE)
    for changed in (networks.change, data.change, measured.change, zipped_images.change):
        changed(choices_changed, None, outputs, queue=False, **PRIVATE)
    picks = [shared.image, shared.family, shared.arch, shared.weights]
    worst.select(pick_worst, worst_files, picks, **PRIVATE)
    explained.select(pick_worst, explained_files, picks, **PRIVATE)


def gallery(elem_id: str, visible: bool = True) -> gr.Gallery:
    """A row of small images to click (CIFAR-10's 32x32 shown with sharp pixels)."""
    return gr.Gallery(
        show_label=False,
        columns=6,
        fit_columns=False,  # a run with two wrong images shows two small tiles, not two half-page ones
        height=260,
        allow_preview=False,
        elem_classes="pixelated-tiles",
        elem_id=elem_id,
        visible=visible,
    )


def dataset_run(
    networks: list[str],
    data: str,
    measured: list[str],
    images: str | None = None,
    mine: list[str] | None = None,
    request: gr.Request = None,
    progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
):
    """Run networks over a whole data set and summarise each: a leaderboard, accuracy against depth, each network's
    confusion matrix with every class's accuracy, each block's
    median residual ratio, each explanation metric against depth (where asked), the most confidently wrong images,
    the worst-explained images (where an explanation metric ran), and a zip of every row.

    Args:
        networks: 1 to 6 networks: CIFAR-10 network names, e.g. ["cifar10_resnet20", "cifar10_resnet56"], or
            "ARCH@TOKEN" for a checkpoint this session opened (/open_checkpoint gives the architecture and token).
        data: one of the data sets the tab offers (the shipped CIFAR-10 test images by default), or "your images
            (the zip uploaded below)" to run on ``images``.
        measured: "residual ratios" and any registered metric names.
        images: a zip of images (class folders, images with a path,label CSV, or images alone), for that choice.
        mine: the session's uploads (a state).
    """
    mine = list(mine or [])
    source, description, private = _data(data, images, mine, request)
    picked = _picked(networks)
    # resolve_metrics' terms: None for the ratios alone, ["none"] for predictions only; metrics bring the ratios.
    metrics = [name for name in measured if name in METRICS]
    asked = metrics or (None if RESIDUALS in measured else ["none"])
    private = private or next((uploads.get(w).folder for _, w in picked if uploads.is_upload(w)), None)
    key = json.dumps([description, sorted(networks), asked])
    out = (private / "runs" if private else cache_dir("datasets")) / hashlib.sha256(key.encode()).hexdigest()[:16]
    try:
        built = [_network(arch, weights) for arch, weights in picked]
        # No loader workers: forking the server process, threads and all, is not safe.
        summaries = evaluate_dataset(source, built, out, metrics=asked, workers=0, progress=True)
    except (ValueError, FileNotFoundError) as error:
        raise user_error(str(error)) from None
    answered = dict(zip(summaries, picked, strict=True))  # each row's network name -> the pickers' (arch, weights)
    rows = leaderboard(list(summaries.values()))
    worst = most_confidently_wrong(out, source, list(summaries))
    measure, badly = worst_explained(out, source, list(summaries), metrics)
    plots = [out / PLOTS / name for name in (ACCURACY_PLOT, CONFUSION_PLOT, RATIOS_PLOT)]
    metrics_plot = out / PLOTS / METRICS_PLOT
    untrained = [s.network for s in summaries.values() if not s.pretrained]
    text = f"**{len(summaries)} network(s) over {description}** ({len(source):,} images)" + (
        f". Untrained (no published weights): {', '.join(untrained)}." if untrained else "."
    )
    read_back = [s.network for s in summaries.values() if s.images_per_second is None]
    if read_back:
        text += (
            f" No images/s for {', '.join(read_back)}: their rows were read back from an earlier run of the same "
            "choices, not computed now."
        )
    if all(label is None for label in source.labels):
        text += " The images have no labels: predictions only, no accuracy and no wrong answers."
    shown = metrics_plot.is_file()
    explained = f"Worst explained: {measure} (click one to put it in the photo box)" if measure else ""
    return (
        text,
        rows,
        *(served(path) for path in plots),
        gr.Markdown(visible=shown),
        gr.Image(served(metrics_plot), visible=shown),
        *_clickable(worst, answered),
        caption(explained, visible=bool(measure)),
        *_clickable(badly, answered, visible=bool(measure)),
        download_path(zipped(out), "resnet-explorer-dataset.zip"),
        mine,
    )


def _data(
    data: str, images: str | None, mine: list[str], request: gr.Request | None
) -> tuple[ImageSource, str, Path | None]:
    """The data set a choice means, how the status line names it, and the private folder its runs go to (None:
    data every visitor may ask for, whose runs go to the shared cache). A zip is unpacked into this session's
    folder and its token added to ``mine``."""
    if data == YOUR_ZIP:
        if not images:
            raise user_error("Upload a zip of images first (below the data choices), or pick another data set.")
        found = _unpacked(images, request)
        if found.token not in mine:
            mine.append(found.token)
        return found.unpacked.source, f"your images ({found.describe()})", found.folder
    choices = data_choices()
    if data not in choices:
        raise user_error(f"Pick one of the data sets offered: {', '.join([*choices, YOUR_ZIP])}.")
    try:
        return open_source(choices[data]), data, None
    except (ValueError, FileNotFoundError) as error:
        raise user_error(str(error)) from None


def _unpacked(images: str, request: gr.Request | None) -> uploads.Images:
    session = request.session_hash if request else ""
    try:
        return uploads.open_images(images, session, settings.upload_limits())
    except ValueError as error:
        raise user_error(f"{error}.") from None


def take_images(images: str | None, mine: list[str], request: gr.Request = None):
    """A zip just uploaded: unpacked now (a refused one is said at once, not when Run is pressed), its contents
    said, and the data choice set to it."""
    if not images:
        return "", gr.update(), mine
    found = _unpacked(images, request)
    said = f"**Unpacked {found.describe()}.** Press **Run** to send them through the networks."
    return said, YOUR_ZIP, [*mine, found.token] if found.token not in mine else mine


def _picked(networks: list[str]) -> list[tuple[str, str]]:
    """Each picked network as (architecture, weight choice): a shipped network's default weights, or the
    checkpoint an ``ARCH@TOKEN`` names (one sentence once its session ended)."""
    if not 1 <= len(networks or []) <= MAX_NETWORKS:
        raise user_error(f"Pick 1 to {MAX_NETWORKS} of the CIFAR-10 networks or your checkpoints.")
    picked = []
    for value in networks:
        arch, _, token = value.partition("@")
        if not token and arch not in NETWORKS:
            raise user_error(f"{value!r} is not offered: pick CIFAR-10 networks or your checkpoints.")
        picked.append((arch, weight_choice(arch, token or None)))
    return picked


def _network(arch: str, weights: str) -> str | ResNet:
    """What ``evaluate_dataset`` is given: a shipped network by name, a visitor's checkpoint as a model of its own
    (built afresh, not the model cache's, which analyses may be running at the same time)."""
    if not uploads.is_upload(weights):
        return arch
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return catalog.load(arch, weights, device).model


def offer_checkpoint(weights: str, networks: list[str]):
    """A checkpoint opened under Your model joins the networks to run (its value: ARCH@TOKEN), unticked."""
    if not uploads.is_upload(weights):
        return gr.update()
    session = uploads.get(weights).session
    own = [uploads.get(token) for token in uploads.session_tokens(session) if uploads.is_upload(token)]
    choices = [*NETWORKS, *((f"{upload.name} (your {upload.arch})", f"{upload.arch}@{upload.token}") for upload in own)]
    values = {choice if isinstance(choice, str) else choice[1] for choice in choices}
    return gr.update(choices=choices, value=[network for network in networks or [] if network in values])


def _clickable(pictures: list[tuple[object, str, str]], answered: dict[str, tuple[str, str]], visible: bool = True):
    """A gallery of ``(image, caption, network)`` and what a click on one puts in the pickers: its file, and the
    network that answered it (architecture and weights)."""
    files = [png_path(picture) for picture, _, _ in pictures]
    shown = [(file, label) for file, (_, label, _) in zip(files, pictures, strict=True)]
    clicked = [[file, *answered[network]] for file, (_, _, network) in zip(files, pictures, strict=True)]
    return gr.Gallery(shown, visible=visible), clicked


def cleared(status: str) -> tuple:
    """The tab's outputs with nothing of a previous run: ``status`` alone."""
    hidden_caption, hidden_gallery = caption("", visible=False), gr.Gallery([], visible=False)
    plots = (None, None, None, gr.Markdown(visible=False), gr.Image(None, visible=False))
    return (status, None, *plots, [], [], hidden_caption, hidden_gallery, [], None)


def stopped() -> tuple:
    return cleared("**Stopped.** The rows computed so far are kept: **Run** with the same choices resumes from them.")


def choices_changed() -> tuple:
    return cleared("Press **Run** for the networks, data and measures now picked.")


def served(path: Path) -> str | None:
    """A plot of the run as a file Gradio will serve: a copy in the app's output store, since the run's folder lies
    in the cache (``~/.cache`` by default), outside the temporary and working folders Gradio serves from."""
    return download_path(path.read_bytes(), path.name) if path.is_file() else None


def _percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def leaderboard(summaries: list[Summary]) -> pd.DataFrame:
    """One line per network: what ran, on how many images, how often right, how fast (None: read back, not run),
    then each metric's mean with its 95% interval and, per curve, the share of valid images where the map beats
    random."""
    lines = []
    for summary in summaries:
        rate = None if summary.images_per_second is None else round(summary.images_per_second)
        weights = summary.weights if summary.pretrained else "untrained"
        accuracies = [_percent(summary.accuracy), _percent(summary.topk_accuracy)]
        values = [summary.network, summary.depth, weights, summary.images, summary.errors, *accuracies, rate]
        line = dict(zip(LEADERBOARD, values, strict=True))
        for column, numbers in (summary.metrics or {}).items():
            if numbers.get("mean") is not None and not column.startswith("random_"):
                low, high = numbers["ci95"]
                line[column] = f"{numbers['mean']:.3f} [{low:.3f}, {high:.3f}]"
        for curve, versus in (summary.against_random or {}).items():
            if versus.get("beats_random") is not None:
                line[f"{curve}: beats random"] = f"{100 * versus['beats_random']:.0f}% of {versus['valid_images']}"
        lines.append(line)
    return pd.DataFrame(lines)


def most_confidently_wrong(out: Path, source: ImageSource, networks: list[str]) -> list[tuple[object, str, str]]:
    """The images the networks got wrong with the highest top-1 probability, with what they said and the truth,
    and which network said it."""
    wrong = []
    for network in networks:
        table = ds.dataset(out / ROWS / file_name(network), format="parquet").to_table(
            columns=["path", "label", "topk", "correct"],
            filter=ds.field("correct") == False,  # noqa: E712
        )
        for row in table.to_pylist():
            best = row["topk"][0]
            wrong.append((best["probability"], network, row["path"], best["label"], row["label"]))
    wrong.sort(key=lambda item: -item[0])
    # The truth first: a tile's caption is what a person reads, and a long network name must not push it out.
    return pictures(
        source,
        [
            (path, f"is {truth}, said {said} ({100 * p:.0f}%): {network}", network)
            for p, network, path, said, truth in wrong
        ],
    )


@dataclass(frozen=True)
class Shortfall:
    """One way to rank images by how badly their map explains the network: the ``metric`` whose columns it reads,
    how far the map falls short on a row (None where the row does not count), the ranking in words, a row's figures
    in words."""

    metric: str
    short: Callable[[dict], float | None]
    measure: str
    figures: Callable[[dict], str]


# The first of these a run has ranks its worst-explained images. Insertion first: on the shipped networks it is the
# curve that separates Grad-CAM from a random ranking (BENCHMARKS.md), so its shortfall means most.
SHORTFALLS = (
    Shortfall(
        "insertion",
        lambda row: row["random_insertion_auc"] - row["insertion_auc"] if row["insertion_valid"] else None,
        "insertion area furthest below a random ranking's",
        lambda row: f"insertion {row['insertion_auc']:.2f}, random {row['random_insertion_auc']:.2f}",
    ),
    Shortfall(
        "deletion",
        lambda row: row["deletion_auc"] - row["random_deletion_auc"] if row["deletion_valid"] else None,
        "deletion area furthest above a random ranking's",
        lambda row: f"deletion {row['deletion_auc']:.2f}, random {row['random_deletion_auc']:.2f}",
    ),
    Shortfall(
        "average_drop",
        lambda row: row["average_drop"],
        "highest Average Drop (the map's region alone loses the class)",
        lambda row: f"Average Drop {row['average_drop']:.2f}",
    ),
)


def worst_explained(
    out: Path, source: ImageSource, networks: list[str], metrics: list[str]
) -> tuple[str, list[tuple[object, str, str]]]:
    """The images whose Grad-CAM explains its network worst, across the networks, by the first measure of
    :data:`SHORTFALLS` among the run's ``metrics`` (only images where that protocol is valid), with the measure in
    words; ``""`` and none where the run has no such metric."""
    chosen = next((shortfall for shortfall in SHORTFALLS if shortfall.metric in metrics), None)
    if chosen is None:
        return "", []
    ranked = []
    for network in networks:
        rows = ds.dataset(out / ROWS / file_name(network), format="parquet").to_table(
            columns=["path", "topk", *METRICS[chosen.metric].columns], filter=ds.field("error").is_null()
        )
        for row in rows.to_pylist():
            short = chosen.short(row)
            if short is not None:
                ranked.append((short, network, row))
    ranked.sort(key=lambda item: -item[0])
    captioned = [
        (row["path"], f"{network}: {row['topk'][0]['label']}; {chosen.figures(row)}", network)
        for _, network, row in ranked
    ]
    return chosen.measure, pictures(source, captioned)


def pictures(source: ImageSource, captioned: list[tuple[str, str, str]]) -> list[tuple[object, str, str]]:
    """The first :data:`WORST` of ranked ``(key, caption, network)`` as the source's images with their captions
    and networks."""
    index = {key: position for position, key in enumerate(source.keys)}
    return [(source.image(index[key]), text, network) for key, text, network in captioned[:WORST]]


def zipped(out: Path) -> bytes:
    """The run's folder (rows, summaries, plots, run.json) as a zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(out.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                archive.write(path, path.relative_to(out))
    return buffer.getvalue()


def pick_worst(files: list[list[str]], event: gr.SelectData):
    """The clicked image, as a file for the photo input, and the network that answered it picked for Analyze."""
    file, arch, weights = files[event.index]
    return file, *network_pickers(arch, weights)
