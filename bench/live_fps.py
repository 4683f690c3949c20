"""Frames per second of the Live camera tab, end to end and in-process (a script, not a test: machines are noisy).

    python -m bench.live_fps [--seconds 20] [--archs cifar10_resnet20 cifar10_resnet56 resnet18 resnet50]

1. end to end: headless Chromium with a fake camera that plays a recorded clip (CIFAR-10 test images, enlarged,
   as a Y4M file) into the running app's webcam stream; frames answered per second, read from the tab's own
   counter after ``--seconds`` of streaming;
2. in-process: the stream handler on the same frames, one after another, against a bare forward of the network.

ImageNet nets run on random init here (the same work as with published weights).
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from resnet_core import create_model, get_arch
from resnet_core.data import cifar10

from .app_speed import free_port
from .browser import FAKE_CAMERA, chromium_page


def clip_frames(count: int = 20, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """Camera-sized RGB frames from the shipped CIFAR-10 test images (enlarged, centred on a grey background), one
    class after another."""
    width, height = size
    frames = []
    for path in cifar10.gallery()[:count]:
        canvas = Image.new("RGB", size, (128, 128, 128))
        picture = Image.open(path).convert("RGB").resize((height, height), Image.BICUBIC)
        canvas.paste(picture, ((width - height) // 2, 0))
        frames.append(np.asarray(canvas))
    return frames


def write_y4m(frames: list[np.ndarray], path: Path, fps: int = 10, hold: int = 5) -> Path:
    """A Y4M clip (Chromium's ``--use-file-for-fake-video-capture`` format) showing each frame ``hold`` times.

    4:2:0 chroma from BT.601 full-range YUV, which Chromium reads back to within rounding.
    """
    height, width = frames[0].shape[:2]
    with path.open("wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            rgb = frame.astype(np.float32)
            y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
            u = 128 - 0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2]
            v = 128 + 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2]

            def plane(channel: np.ndarray, sub: int) -> bytes:
                if sub > 1:
                    channel = channel.reshape(height // sub, sub, width // sub, sub).mean(axis=(1, 3))
                return np.clip(np.round(channel), 0, 255).astype(np.uint8).tobytes()

            data = plane(y, 1) + plane(u, 2) + plane(v, 2)
            for _ in range(hold):
                handle.write(b"FRAME\n" + data)
    return path


def stream_in_browser(url: str, clip: Path, seconds: float, page_setup=None) -> str:
    """Open the app with a fake camera playing ``clip``, start the Live camera stream, wait; the tab's rate line."""
    with chromium_page(url, [*FAKE_CAMERA, f"--use-file-for-fake-video-capture={clip}"]) as page:
        if page_setup is not None:
            page_setup(page)
        start_live_stream(page)
        page.wait_for_timeout(int(seconds * 1000))
        return page.locator("#live-rate").inner_text()


def start_live_stream(page) -> None:
    """Open the Live camera tab and start streaming from the (fake) camera."""
    page.get_by_role("tab", name="Live camera").click()
    camera = page.locator("#live-camera")
    camera.locator("button").filter(has_text=re.compile("webcam|access", re.I)).first.click(timeout=10_000)
    camera.locator("button").filter(has_text=re.compile("record|stream|start", re.I)).first.click(timeout=30_000)


def answered(rate_line: str) -> int:
    """Frames answered so far, read off the tab's rate line."""
    match = re.search(r"\((\d+) frames so far", rate_line)
    return int(match.group(1)) if match else 0


def main() -> None:
    from demo import launch as app_module

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--archs", nargs="+", default=["cifar10_resnet20", "cifar10_resnet56", "resnet18", "resnet50"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frames = clip_frames()
    clip = write_y4m(frames, Path("/tmp/resnet-explorer-live.y4m"))

    from demo import live_tab

    rows = []
    for arch in args.archs:
        weights = "DEFAULT" if arch.startswith("cifar10_resnet") else "random init"
        model = create_model(arch, weights="DEFAULT" if weights == "DEFAULT" else None)
        x = model.card.preprocess(Image.fromarray(frames[0]))[None]
        live_tab.live_frame(frames[0], arch, weights, None)  # load into the app's cache, warm up
        handler, bare = [], []
        for frame in frames:
            start = time.perf_counter()
            live_tab.live_frame(frame, arch, weights, None)
            handler.append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.inference_mode():
                model(x)
            bare.append(time.perf_counter() - start)
        port = free_port()
        demo = app_module.serve(["--port", str(port), "--device", "cpu"], block=False)
        try:

            def pick(page, arch=arch, weights=weights):
                page.get_by_label("Family").click()
                page.get_by_role("option", name=get_arch(arch).family, exact=True).click()
                page.get_by_label("Depth / variant").click()
                page.get_by_role("option", name=arch, exact=True).click()
                if weights == "random init":
                    page.get_by_label("Weights").click()
                    page.get_by_role("option", name="random init", exact=True).click()
                page.wait_for_timeout(500)

            line = stream_in_browser(f"http://127.0.0.1:{port}/", clip, args.seconds, pick)
        finally:
            demo.close()
        rate = re.search(r"([\d.]+) frames/s", line)
        handler_s, bare_s = statistics.median(handler), statistics.median(bare)
        rows.append((arch, float(rate.group(1)) if rate else 0.0, 1 / handler_s, handler_s / bare_s, line))
    print("| network | browser, end to end (frames/s) | stream handler in-process (frames/s) "
          "| handler / bare forward |")  # fmt: skip
    print("|---|---:|---:|---:|")
    for arch, browser_fps, handler_fps, ratio, _ in rows:
        print(f"| {arch} | {browser_fps:.1f} | {handler_fps:.1f} | {ratio:.2f}x |")
    for arch, *_, line in rows:
        print(f"{arch}: {line}")


if __name__ == "__main__":
    main()
