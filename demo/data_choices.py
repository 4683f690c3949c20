"""What the Data set tab offers to run on, and how a choice becomes images: the CIFAR-10 test images shipped with
the app, all 10,000 where ``$RESNET_EXPLORER_CIFAR10`` names them, a folder or CSV on the server named by
``$RESNET_EXPLORER_DATASET`` (never a path a visitor types), or a zip the visitor uploads (:mod:`demo.uploads`:
unpacked into a folder of their session's, within :func:`demo.settings.upload_limits`). Both the runs over a data set
and the analysed network's views across it read their images here.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from resnet_core.data.sources import ImageSource, open_source
from resnet_core.settings import cifar10_test_set

from . import settings, uploads
from .app_state import user_error

__all__ = ["YOUR_ZIP", "ZIP_LAYOUTS", "chosen_data", "data_choices", "take_images"]

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


def chosen_data(
    data: str, images: str | None, mine: list[str], request: gr.Request | None
) -> tuple[ImageSource, str, uploads.Images | None]:
    """The data set a choice means, how the status line names it, and the visitor's upload it is (None: data every
    visitor may ask for). A zip is unpacked into this session's folder and its token added to ``mine``."""
    if data == YOUR_ZIP:
        if not images:
            raise user_error("Upload a zip of images first (below the data choices), or pick another data set.")
        found = _unpacked(images, request)
        if found.token not in mine:
            mine.append(found.token)
        return found.unpacked.source, f"your images ({found.describe()})", found
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
