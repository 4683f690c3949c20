"""demo.image_outputs: a file being streamed is never modified, and Gradio serves our paths as the same pixels.

The race is reproduced deterministically, not by timing: the reader streams the way Starlette's FileResponse does
(fixed-size chunks, a short chunk ends the body), and the writers are paused right after they open their file for
writing, before they write a byte, while the reader finishes. Gradio's ``save_pil_to_cache`` is ``Path.write_bytes``
to a content-hashed path, so that pause is where its truncation shows.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from demo import image_outputs
from demo.image_outputs import png_path

CHUNK = 4096  # Starlette reads 64 KiB; smaller chunks keep the test image small
WAIT_S = 10.0


def _photo(seed: int = 0, size: int = 96) -> np.ndarray:
    """Noise, so the PNG is many chunks long and a torn copy cannot decode."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image)


class _PausedWriters:
    """Runs writers in threads and holds each one just after it opens a file for writing, until ``release``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: list[threading.Thread] = []
        self.paused = threading.Semaphore(0)
        self.go = threading.Event()
        self.errors: list[BaseException] = []
        real_open = Path.open

        def gated_open(path: Path, mode: str = "r", *args: object, **kwargs: object):
            handle = real_open(path, mode, *args, **kwargs)
            if "w" in mode and threading.current_thread() in self.threads:
                self.paused.release()
                self.go.wait(WAIT_S)
            return handle

        monkeypatch.setattr(Path, "open", gated_open)  # Path.write_bytes opens through Path.open

    def start(self, write: Callable[[Path, bytes], object], path: Path, data: bytes, count: int) -> None:
        def run() -> None:
            try:
                write(path, data)
            except BaseException as error:
                self.errors.append(error)

        new = [threading.Thread(target=run, daemon=True) for _ in range(count)]
        self.threads.extend(new)
        for thread in new:
            thread.start()
        for _ in new:  # every writer must really reach the pause, or the test would prove nothing
            assert self.paused.acquire(timeout=WAIT_S), "a writer never opened a file for writing"

    def release(self) -> None:
        self.go.set()
        for thread in self.threads:
            thread.join(WAIT_S)
        assert not self.errors, self.errors


def _stream_while_rewritten(
    path: Path, write: Callable[[Path, bytes], object], data: bytes, monkeypatch: pytest.MonkeyPatch, writers: int = 2
) -> bytes:
    """Stream ``path`` like an HTTP file response while ``writers`` threads write ``data`` to it again.

    Order: the reader reads half; the writers open their files and pause; the reader reads on to three quarters; the
    writers finish; the reader reads the rest. A short chunk ends the body at any point, as in Starlette.
    """
    paused = _PausedWriters(monkeypatch)
    received = bytearray()
    ended = False

    def read_until(size: int) -> None:
        nonlocal ended
        while not ended and len(received) < size:
            chunk = body.read(CHUNK)
            received.extend(chunk)
            ended = len(chunk) < CHUNK

    with open(path, "rb") as body:
        read_until(len(data) // 2)
        paused.start(write, path, data, writers)
        read_until(3 * len(data) // 4)
        paused.release()
        read_until(len(data) + CHUNK)
    return bytes(received)


def _first_output(tmp_path: Path, pixels: np.ndarray) -> tuple[Path, bytes]:
    path = image_outputs._Store(tmp_path).put(image_outputs.encode_png(pixels))
    data = path.read_bytes()
    assert len(data) > 4 * CHUNK
    return path, data


def test_atomic_rewrite_never_tears_a_stream(tmp_path, monkeypatch):
    pixels = _photo()
    path, data = _first_output(tmp_path, pixels)
    received = _stream_while_rewritten(path, image_outputs._write_atomically, data, monkeypatch)
    assert received == data
    np.testing.assert_array_equal(_pixels(received), pixels)
    assert path.read_bytes() == data  # and the file the writers left is complete too
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporaries left behind


def test_plain_write_bytes_tears_the_same_stream(tmp_path, monkeypatch):
    """What gradio's save_pil_to_cache does: the same interleaving cuts the body short, so the mechanism matters."""
    pixels = _photo()
    path, data = _first_output(tmp_path, pixels)
    received = _stream_while_rewritten(path, Path.write_bytes, data, monkeypatch)
    assert len(received) < len(data)
    with pytest.raises(OSError):  # PIL: "image file is truncated" or similar
        _pixels(received)
    assert path.read_bytes() == data  # afterwards the file looks fine: only the reader in between was hurt


def test_png_path_hands_out_the_same_file_again_without_touching_its_bytes(tmp_path, monkeypatch):
    store = image_outputs._Store(tmp_path)
    monkeypatch.setattr(image_outputs, "_default_store", lambda: store)
    pixels = _photo()
    first = Path(png_path(pixels))
    before = first.stat()
    with open(first, "rb") as body:
        head = body.read(CHUNK)
        again = [Path(png_path(pixels)), Path(png_path(Image.fromarray(pixels)))]
        received = head + body.read()
    assert again == [first, first]
    assert first.stat().st_ino == before.st_ino  # reused, not rewritten
    np.testing.assert_array_equal(_pixels(received), pixels)
    assert Path(png_path(_photo(seed=1))) != first


def test_many_threads_same_and_different_images(tmp_path):
    store = image_outputs._Store(tmp_path)
    images = [_photo(seed) for seed in range(3)]
    encoded = [image_outputs.encode_png(image) for image in images]
    results: dict[tuple[int, int], Path] = {}
    start = threading.Barrier(12)

    def worker(index: int) -> None:
        start.wait()
        for turn in range(10):
            results[index, turn] = store.put(encoded[(index + turn) % 3])

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 120
    for (index, turn), path in results.items():
        np.testing.assert_array_equal(_pixels(path.read_bytes()), images[(index + turn) % 3])
    assert len(list(tmp_path.iterdir())) == 3  # one file per distinct output, no temporaries


def test_prune_deletes_only_old_files(tmp_path):
    store = image_outputs._Store(tmp_path, max_age_s=60.0)
    old = store.put(image_outputs.encode_png(_photo(0)))
    recent = store.put(image_outputs.encode_png(_photo(1)))
    orphan = tmp_path / ".orphan.png.tmp"  # a temporary left by a crashed writer
    orphan.write_bytes(b"partial")
    for path in (old, orphan):
        os.utime(path, (1.0, 1.0))
    store.prune()
    assert sorted(tmp_path.iterdir()) == [recent]
    assert store.put(image_outputs.encode_png(_photo(0))) == old and old.exists()  # written again on demand


def test_reuse_restarts_the_age(tmp_path):
    store = image_outputs._Store(tmp_path, max_age_s=60.0)
    data = image_outputs.encode_png(_photo())
    path = store.put(data)
    os.utime(path, (1.0, 1.0))
    assert store.put(data) == path  # handed out again: must not be pruned now
    store.prune()
    assert path.exists()


def test_rejects_what_it_would_have_to_guess():
    with pytest.raises(ValueError):
        png_path(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        png_path(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(TypeError):
        png_path("photo.png")  # type: ignore[arg-type]


def test_default_directory_is_per_process_and_outside_gradios_cache():
    from gradio.utils import get_upload_folder, is_in_or_equal

    path = Path(png_path(_photo()))
    assert path.parent.name.startswith(f"resnet-explorer-{os.getpid()}-")
    assert is_in_or_equal(path, tempfile.gettempdir())  # gradio accepts outputs from here
    assert not is_in_or_equal(path, get_upload_folder())  # so gradio copies it instead of serving ours


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_gradio_serves_a_copy_with_the_same_pixels(tmp_path, monkeypatch, mode):
    """gr.Image(format="png") keeps a str output as is (save_image); move_files_to_cache then copies it with
    save_file_to_cache (temporary name + os.replace) to <cache>/<hash of the bytes>/<our name>."""
    import gradio as gr
    from gradio import processing_utils

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setattr(image_outputs, "_default_store", lambda: image_outputs._Store(tmp_path / "ours"))
    pixels = np.asarray(Image.fromarray(_photo()).convert(mode))
    component = gr.Image(format="png", type="numpy", interactive=False)

    ours = png_path(pixels)
    payload = component.postprocess(ours)
    assert payload is not None and payload.path == ours  # postprocess neither re-encodes nor copies a path
    served = processing_utils.move_files_to_cache(payload, component, postprocess=True)

    cached = Path(served["path"])
    assert cached.parent.parent == tmp_path / "gradio"
    assert cached.parent.name == processing_utils.hash_file(ours)  # content-hashed directory
    assert cached.name == Path(ours).name
    assert served["url"].startswith("/gradio_api/file=")
    assert Path(ours).exists()  # copied, not moved
    np.testing.assert_array_equal(np.asarray(Image.open(cached)), pixels)
    assert cached.read_bytes() == Path(ours).read_bytes()


def test_figures_leave_handlers_as_png_files_with_the_handlers_name_and_signature():
    import inspect

    from matplotlib.figure import Figure

    def chart(label: str, progress: gr.Progress = gr.Progress()):  # noqa: B008
        """A chart and its caption."""
        figure = Figure()
        figure.subplots().plot([0, 1], [1, 0])
        return figure, label

    def stream(steps: int):
        for step in range(steps):
            yield Figure(), f"step {step}"

    wrapped = image_outputs.png_figures(chart)
    assert wrapped.__name__ == "chart" and wrapped.__doc__ == chart.__doc__
    assert list(inspect.signature(wrapped).parameters) == ["label", "progress"]
    path, caption = wrapped("hello")
    assert Image.open(path).format == "PNG" and caption == "hello"
    streamed = image_outputs.png_figures(stream)
    assert inspect.isgeneratorfunction(streamed)
    outputs = list(streamed(2))
    assert [caption for _, caption in outputs] == ["step 0", "step 1"]
    assert all(Image.open(path).format == "PNG" for path, _ in outputs)
