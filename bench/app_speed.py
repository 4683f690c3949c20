"""End-to-end figures of the running app, measured side by side (a script, not a test: machines are noisy).

    python -m bench.app_speed [--reps 5]

1. request / bare forward: a gradio_client ``/analyze`` call on loopback (upload, preprocessing, one analysis,
   every output encoded and the three images downloaded) against ``model(x)`` under inference_mode in this
   process, interleaved; and, for scale, the round trip of a trivial event.
2. cold start: ``python app.py`` until the first HTTP 200, against ``python -c "import gradio, torch, ..."``.
3. peak resident memory of the server after resnet18, resnet50 and resnet152 have been used (3 cached).
4. throughput of 8 concurrent clients, as a fraction of 1 / serial latency.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import torch
from gradio_client import Client, handle_file

from resnet_core import create_model, load_image

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "assets" / "photos" / "chelsea.png"
RANDOM_INIT = "random init"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, root: Path = ROOT) -> tuple[subprocess.Popen, float]:
    """Launch ``python app.py`` of the checkout at ``root``; return it and the seconds until it answered HTTP 200."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)], cwd=root, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                if response.status == 200:
                    return process, time.perf_counter() - start
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("app.py exited before answering") from None
            time.sleep(0.05)


def import_time() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio, torch, torchvision, captum"], check=True)
    return time.perf_counter() - start


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timing_options() -> argparse.Namespace:
    """``--reps`` and ``--threads`` parsed, torch's thread count set: what every side-by-side timing takes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def main() -> None:
    args = timing_options()

    cold, bare_import = [], []
    for _ in range(3):
        bare_import.append(import_time())
        process, seconds = start_server(free_port())
        cold.append(seconds)
        process.terminate()
        process.wait()

    port = free_port()
    server, _ = start_server(port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        image = load_image(PHOTO)
        photo = handle_file(str(PHOTO))
        floor = []
        for _ in range(args.reps):  # the framework's own round trip: cached tables and a small chart, no model
            start = time.perf_counter()
            client.predict("resnet18", RANDOM_INIT, api_name="/costs")
            floor.append(time.perf_counter() - start)
        print(f"gradio_client round trip of a cached event (/costs): {1000 * statistics.median(floor):.0f} ms")
        latency: dict[str, float] = {}
        ratios: dict[str, float] = {}
        for arch in ("resnet18", "resnet50"):
            model = create_model(arch)
            x = model.card.preprocess(image)[None]
            client.predict(photo, arch, RANDOM_INIT, api_name="/analyze")  # load + warm up
            with torch.inference_mode():
                model(x)
            requests, forwards = [], []
            for _ in range(args.reps):
                start = time.perf_counter()
                client.predict(photo, arch, RANDOM_INIT, api_name="/analyze")
                requests.append(time.perf_counter() - start)
                start = time.perf_counter()
                with torch.inference_mode():
                    model(x)
                forwards.append(time.perf_counter() - start)
            latency[arch] = statistics.median(requests)
            ratios[arch] = latency[arch] / statistics.median(forwards)
            print(f"{arch}: request {1000 * latency[arch]:.0f} ms, bare forward "
                  f"{1000 * statistics.median(forwards):.0f} ms, ratio {ratios[arch]:.2f}x")  # fmt: skip

        client.predict(photo, "resnet152", RANDOM_INIT, api_name="/analyze")  # third cached model
        rss = peak_rss_mb(server.pid)

        per_client = max(2, args.reps)
        done: list[int] = []

        def user() -> None:
            own = Client(f"http://127.0.0.1:{port}/", verbose=False)
            for _ in range(per_client):
                own.predict(photo, "resnet50", RANDOM_INIT, api_name="/analyze")
                done.append(1)

        start = time.perf_counter()
        threads = [threading.Thread(target=user) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        throughput = len(done) / wall
        throughput_ratio = throughput * latency["resnet50"]
    finally:
        server.terminate()
        server.wait()

    cold_s, import_s = statistics.median(cold), statistics.median(bare_import)
    print(f"cold start: app.py to first HTTP 200 {cold_s:.2f} s, bare imports {import_s:.2f} s, "
          f"ratio {cold_s / import_s:.2f}x")  # fmt: skip
    print(f"peak resident memory with resnet18, resnet50, resnet152 cached: {rss:.0f} MB")
    print(f"8 concurrent clients x {per_client} resnet50 requests: {throughput:.2f} req/s, "
          f"{throughput_ratio:.2f}x of 1 / serial latency")  # fmt: skip


if __name__ == "__main__":
    main()
