"""The Data set tab: networks over a whole data set instead of one photo, through ``resnet_core.evaluate_dataset``,
and below them the network analysed above across the same data (:mod:`demo.across_data`).

The data are those of :mod:`demo.data_choices` (the shipped CIFAR-10 test images, all 10,000 where the server has
them, a folder or CSV the operator names, or a zip the visitor uploads). The networks are the shipped CIFAR-10 ones
and the checkpoints the visitor opened under Your model (``ARCH@TOKEN``). A run is a job of the lab's kind (one at a
time, with progress, cancellable), off on a Space unless enabled; its rows, summaries and plots stay on disk, keyed
by what was asked, so asking again reads them back: under the app's cache for what every visitor may ask, in the
session's own folder for a run over a visitor's zip or with their checkpoint (deleted with the session).
"""

from __future__ import annotations

import gc
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
from resnet_core.data.sources import ImageSource
from resnet_core.evaluate.metrics import METRICS
from resnet_core.evaluate.store import PLOTS, ROWS, file_name
from resnet_core.evaluate.summary import ACCURACY_PLOT, CONFUSION_PLOT, METRICS_PLOT, RATIOS_PLOT, Summary
from resnet_core.zoo.models import ResNet

from . import across_data, catalog, settings, uploads
from .analysis_panel import network_pickers
from .app_state import forget_uploads, user_error, weight_choice
from .data_choices import YOUR_ZIP, ZIP_LAYOUTS, chosen_data, data_choices, take_images
from .image_outputs import download_path, png_path
from .sessions import release_memory
from .shared import PRIVATE, SESSION_BOUND, Shared, caption, picture

TITLE = "Data set"
RESIDUALS = "residual ratios"
NETWORKS = [name for name, spec in ARCHITECTURES.items() if spec.label_space.key == "cifar10"]
DEFAULT_NETWORKS = ["cifar10_resnet20", "cifar10_resnet32", "cifar10_resnet44", "cifar10_resnet56"]
MAX_NETWORKS = 6
WORST = 12  # the most confidently wrong images shown
LEADERBOARD = ["network", "depth", "weights", "images", "unreadable", "acc@1 %", "acc@5 %", "images/s"]

RUNS_INTRO = (
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


def build(shared: Shared, tab: gr.Tab) -> None:
    runs = settings.dataset_runs()
    if runs:
        gr.Markdown(RUNS_INTRO)
    with gr.Row():
        with gr.Column():
            offered = list(data_choices())
            data = gr.Radio(
                [*offered, *([YOUR_ZIP] if runs else [])], value=offered[0], label="Data", elem_id="dataset-data"
            )
            mine = gr.State([], time_to_live=settings.uploads_ttl(), delete_callback=forget_uploads)
            if runs:
                zipped_images = gr.File(
                    label=f"Your images: a zip ({settings.upload_limits().describe()})",
                    file_types=[".zip"],
                    elem_id="dataset-zip",
                )
                gr.Markdown(
                    f"{ZIP_LAYOUTS}. Private to you: unpacked into your session's folder, with the run's rows, and "
                    "deleted when you close the page."
                )
                zip_status = gr.Markdown(elem_id="dataset-zip-status")
                zipped_images.upload(take_images, [zipped_images, mine], [zip_status, data, mine], **PRIVATE)
        with gr.Column():
            if runs:
                networks, measured = _run_pickers(shared)
            else:
                gr.Markdown(
                    "Runs of networks over a whole data set take minutes of CPU that every other visitor would wait "
                    "for, so they, and uploads of your own images, are off on this Space. Run the app yourself "
                    f"(`python app.py`), or set `{settings.ENV_DATASET_RUNS}=1`. The views of the network analysed "
                    "above across the data are below."
                )
    if runs:
        _runs(shared, networks, data, measured, zipped_images, mine)
    across_data.build(shared, data, zipped_images if runs else gr.State(None), mine)


def _run_pickers(shared: Shared) -> tuple[gr.Dropdown, gr.CheckboxGroup]:
    """The networks to run over the data, the checkpoints opened under Your model among them, and the measures."""
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
    measured = gr.CheckboxGroup([RESIDUALS, *METRICS], value=[RESIDUALS], label="Measure besides predictions")
    shared.weights.change(offer_checkpoint, [shared.weights, networks], networks, queue=False, **PRIVATE)
    return networks, measured


def _runs(
    shared: Shared,
    networks: gr.Dropdown,
    data: gr.Radio,
    measured: gr.CheckboxGroup,
    zipped_images: gr.File,
    mine: gr.State,
) -> None:
    """The runs over the data: the button, what a run shows, and their events."""
    with gr.Row():
        run = gr.Button("Run over the data set", variant="primary")
        stop = gr.Button("Stop")
    status = gr.Markdown(elem_id="dataset-status")
    # What a run shows, hidden until there is a run to show: the views below it come up the page meanwhile.
    with gr.Column(visible=False) as results:
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
        metrics_plot = gr.Image(
            show_label=False, interactive=False, format="png", visible=False, elem_id="dataset-metrics"
        )
        caption("Most confidently wrong (click one to put it in the photo box)")
        worst = gallery("dataset-worst")
        worst_files = gr.State([])
        explained_caption = caption(visible=False, elem_id="dataset-explained-caption")
        explained = gallery("dataset-explained", visible=False)
        explained_files = gr.State([])
        download = gr.File(label="Rows (Parquet), summaries (JSON) and plots, zipped", elem_id="dataset-download")
    outputs = [
        *(status, board, accuracy, confusion, ratios, metrics_caption, metrics_plot, worst, worst_files),
        *(explained_caption, explained, explained_files, download, results),
    ]
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
    source, description, found = chosen_data(data, images, mine, request)
    picked = _picked(networks)
    # resolve_metrics' terms: None for the ratios alone, ["none"] for predictions only; metrics bring the ratios.
    metrics = [name for name in measured if name in METRICS]
    asked = metrics or (None if RESIDUALS in measured else ["none"])
    own = [found.token] if found else []
    own += [weights for _, weights in picked if uploads.is_upload(weights)]
    key = json.dumps([description, sorted(networks), asked])
    with uploads.in_use(own):  # a session closed during its run keeps its folder until the run ends
        private = found.folder if found else (uploads.get(own[0]).folder if own else None)
        out = (private / "runs" if private else cache_dir("datasets")) / hashlib.sha256(key.encode()).hexdigest()[:16]
        return (*_ran(source, description, picked, out, asked, metrics), mine)


def _ran(
    source: ImageSource,
    description: str,
    picked: list[tuple[str, str]],
    out: Path,
    asked: list[str] | None,
    metrics: list[str],
) -> tuple:
    """The run into ``out`` and the tab's outputs drawn from it."""
    try:
        # No loader workers: forking the server process, threads and all, is not safe.
        built = [_network(arch, weights) for arch, weights in picked]
        summaries = evaluate_dataset(source, built, out, metrics=asked, workers=0, progress=True)
    except (ValueError, FileNotFoundError) as error:
        raise user_error(str(error)) from None
    finally:
        # The networks built for the run, the batches they saw and the plots' figures (matplotlib's hold reference
        # cycles, which only the cyclic collector frees; measured: without it the server grew ~20 MB per visitor's
        # run in bench.upload_memory) go back to the system now, once per run of seconds to minutes.
        built = []
        gc.collect()
        release_memory()
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
        gr.Column(visible=True),
    )


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
    own = [upload.as_network for upload in uploads.session_checkpoints(uploads.get(weights).session)]
    values = {*NETWORKS, *(value for _, value in own)}
    return gr.update(choices=[*NETWORKS, *own], value=[network for network in networks or [] if network in values])


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
    return (status, None, *plots, [], [], hidden_caption, hidden_gallery, [], None, gr.Column(visible=False))


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
