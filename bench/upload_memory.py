"""Resident memory of the server as visitors bring their own data and network, run, and leave (a script: it launches
the app and drives it in Chromium).

    python -m bench.upload_memory [--sessions 10] [--images 200]

Each session is a browser tab: it opens a checkpoint under Your model (a 10-class torchvision ResNet-18 with the
CIFAR-10 class names, 45 MB), uploads a zip of ``--images`` shipped CIFAR-10 test images in class folders, runs that
checkpoint over them in the Data set tab, and closes. Prints the server's RSS (``/proc/<pid>/status``) at start-up,
after each session has closed and its folder is gone, and the session folders left over at the end.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
import zipfile
from pathlib import Path

import torch
import torchvision
from PIL import Image

from bench.app_speed import free_port, start_server
from bench.browser import chromium_page, open_your_model, run_only, upload_images
from bench.memory import rss_mb
from resnet_core.data import cifar10

FOLDER = Path(tempfile.gettempdir()) / "resnet-explorer-uploads"  # demo.uploads' root of every session's folder
CHECKPOINT_LABEL = "visitor.pth (your resnet18)"


def visitor_files(folder: Path, images: int) -> tuple[Path, Path, Path]:
    """The checkpoint, its labels file and the zip a visitor brings."""
    torch.manual_seed(0)
    network = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(network.state_dict(), folder / "visitor.pth")
    (folder / "classes.txt").write_text("\n".join(cifar10.CLASSES))
    pictures, labels, _ = cifar10.load_subset()
    with zipfile.ZipFile(folder / "photos.zip", "w") as archive:
        for index in range(images):
            buffer = io.BytesIO()
            Image.fromarray(pictures[index]).save(buffer, format="PNG")
            archive.writestr(f"{cifar10.CLASSES[labels[index]]}/{index}.png", buffer.getvalue())
    return folder / "visitor.pth", folder / "classes.txt", folder / "photos.zip"


def session(url: str, checkpoint: Path, labels: Path, archive: Path) -> float:
    """One visitor, start to close; the seconds their run took."""
    from playwright.sync_api import expect

    with chromium_page(url) as page:
        open_your_model(page, str(checkpoint), "resnet18", labels=str(labels))
        upload_images(page, str(archive))
        run_only(page, CHECKPOINT_LABEL)
        start = time.perf_counter()
        page.get_by_role("button", name="Run over the data set").click()
        # The status line is written once the run has finished (the board shows tqdm's progress, names and all).
        expect(page.locator("#dataset-status")).to_contain_text("1 network(s) over your images", timeout=600_000)
        return time.perf_counter() - start


def wait_until_gone(before: set[str], timeout: float = 120) -> set[str]:
    """The session folders made since ``before`` that are still there after ``timeout`` seconds at most."""
    deadline = time.monotonic() + timeout
    while True:
        left = {path.name for path in FOLDER.glob("*")} - before
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint, labels, archive = visitor_files(Path(scratch), args.images)
        before = {path.name for path in FOLDER.glob("*")}
        port = free_port()
        server, _ = start_server(port)
        url = f"http://127.0.0.1:{port}/"
        try:
            start = rss_mb(server.pid)
            print(f"start-up: {start:.0f} MB")
            for number in range(1, args.sessions + 1):
                seconds = session(url, checkpoint, labels, archive)
                left = wait_until_gone(before)
                time.sleep(2)  # the unload's clean-up has returned; the last requests' buffers are freed
                print(
                    f"session {number}: run {seconds:.1f} s; closed: {rss_mb(server.pid):.0f} MB "
                    f"({rss_mb(server.pid) - start:+.0f} MB against start-up), session folders left {len(left)}"
                )
            time.sleep(5)
            final = rss_mb(server.pid)
            print(
                f"after {args.sessions} sessions: {final:.0f} MB ({final - start:+.0f} MB), peak "
                f"{rss_mb(server.pid, 'VmHWM:'):.0f} MB, session folders left {len(wait_until_gone(before, 5))}"
            )
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
