"""Users' own checkpoints: how fast one is recognised, and what the app keeps of them once their sessions end.

    python -m bench.checkpoints [--reps 5] [--sessions 10] [--ttl 60]

1. Recognition: ``inspect_checkpoint`` of a resnet152 checkpoint (keys and shapes only) against
   ``torch.load(path, map_location="cpu", weights_only=True)`` of the same file, interleaved, page cache warm,
   medians of ``--reps``; for a torch pickle and a safetensors file (against the pickle's load), a whole pickled
   module (read through stand-ins; against a full ``torch.load`` of it, ``weights_only=False``, our own file), an
   unregistered CIFAR layout (option B ResNet-56, 100 classes), and for the first call in a process (which builds
   the matching architectures' signatures on the meta device) apart from later ones.
2. Memory: ``python app.py`` with ``RESNET_EXPLORER_UPLOADS_TTL`` and ``RESNET_EXPLORER_RESULTS_TTL`` at ``--ttl``
   seconds; ``--sessions`` gradio_client sessions each open a different checkpoint (ResNet-18/34/50 with other
   class counts), analyse a photo and close (as a browser tab does); the server's RSS at start-up, at its peak, and
   15 s after the last session closed, when no model of theirs should be left (the folders left say so).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torchvision
from safetensors.torch import save_file

from bench.app_speed import free_port, start_server
from bench.memory import PHOTO, rss_mb

NETWORKS = ["resnet18", "resnet34", "resnet50"]


def recognition(reps: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:  # two copies of a 223 MB checkpoint: gone afterwards
        _recognition(Path(scratch), reps)


def _recognition(folder: Path, reps: int) -> None:
    model = torchvision.models.resnet152(num_classes=37)
    state = model.state_dict()
    torch.save(state, folder / "resnet152.pth")
    save_file(state, str(folder / "resnet152.safetensors"))
    torch.save(model, folder / "resnet152-whole.pth")  # a whole pickled module: read through stand-ins
    torch.save(_cifar_resnet56_b().state_dict(), folder / "cifar-resnet56-b.pth")  # an unregistered CIFAR layout
    size = (folder / "resnet152.pth").stat().st_size / 2**20
    print(f"resnet152 checkpoint: {size:.0f} MB; medians of {reps}, interleaved, page cache warm")
    first = _first_call(folder / "resnet152.pth")
    print(f"first call in a fresh process (signatures built): {1000 * first:.0f} ms")
    from resnet_core import inspect_checkpoint

    print("| file | inspect_checkpoint | torch.load of it | ratio |\n|---|---:|---:|---:|")
    cases = [  # the file, what torch.load reads of it (a state dict alone where it can), what it is recognised as
        ("resnet152.pth", "resnet152.pth", True, "resnet152"),
        ("resnet152.safetensors", "resnet152.pth", True, "resnet152"),
        ("resnet152-whole.pth", "resnet152-whole.pth", False, "resnet152"),  # our own file: its code may run
        ("cifar-resnet56-b.pth", "cifar-resnet56-b.pth", True, "cifar_resnet56_b"),
    ]
    for name, loaded, weights_only, arch in cases:
        path, baseline = folder / name, folder / loaded
        inspect_checkpoint(path)  # signatures cached; file in the page cache
        torch.load(baseline, map_location="cpu", weights_only=weights_only)
        ours, loads = [], []
        for _ in range(reps):
            start = time.perf_counter()
            found = inspect_checkpoint(path)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            torch.load(baseline, map_location="cpu", weights_only=weights_only)
            loads.append(time.perf_counter() - start)
        assert found.recognition.arch == arch, found.recognition.sentence()
        a, b = statistics.median(ours), statistics.median(loads)
        print(f"| {name} | {1000 * a:.1f} ms | {1000 * b:.1f} ms | {a / b:.3f}x |")


def _cifar_resnet56_b() -> torch.nn.Module:
    """The layout of the most used CIFAR model hub: option B ResNet-56, 100 classes (a resnet_core build of it)."""
    from resnet_core.zoo.architectures import build, cifar_variant
    from resnet_core.zoo.label_spaces import LabelSpace

    spec = cifar_variant("basic", (9, 9, 9), (16, 32, 64), "B")
    classes = LabelSpace("cifar100", "CIFAR-100", tuple(map(str, range(100))), spec.label_space.preprocess)
    return build(replace(spec, labels=classes))


def _first_call(path: Path) -> float:
    code = (
        f"import time, resnet_core; s = time.perf_counter(); resnet_core.inspect_checkpoint({str(path)!r}); "
        "print(time.perf_counter() - s)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def memory(sessions: int, ttl: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        _memory(Path(scratch), sessions, ttl)


def _memory(folder: Path, sessions: int, ttl: int) -> None:
    from gradio_client import Client, handle_file

    os.environ["RESNET_EXPLORER_UPLOADS_TTL"] = os.environ["RESNET_EXPLORER_RESULTS_TTL"] = str(ttl)
    paths = []
    for index in range(sessions):
        arch = NETWORKS[index % len(NETWORKS)]
        network = torchvision.models.get_model(arch, weights=None, num_classes=2 + index)
        paths.append(folder / f"{arch}-{2 + index}.pth")
        torch.save(network.state_dict(), paths[-1])
    port = free_port()
    server, _ = start_server(port)
    url = f"http://127.0.0.1:{port}/"
    try:
        start = rss_mb(server.pid)
        print(f"start-up: {start:.0f} MB")
        for path in paths:
            client = Client(url, verbose=False)  # a new Client is a new session
            _, arch, weights, _ = client.predict(handle_file(str(path)), None, api_name="/open_checkpoint")
            client.predict(handle_file(str(PHOTO)), arch, weights, api_name="/analyze")
            client.close()  # the session ends, as when a browser tab closes
        peak = rss_mb(server.pid, "VmHWM:")
        time.sleep(15)  # Gradio notices a closed session by its heartbeat
        ended = rss_mb(server.pid)
        print(f"{sessions} sessions, each opening its own checkpoint and closing: peak {peak:.0f} MB; "
              f"15 s after the last closed: {ended:.0f} MB ({ended - start:+.0f} MB against start-up); "
              f"private checkpoint folders left: {_upload_folders()}")  # fmt: skip
    finally:
        server.terminate()
        server.wait()


def _upload_folders() -> int:
    """The visitors' checkpoint folders on disk (each is deleted with its model when its session's state goes)."""
    from demo.uploads import _folder

    return len(list(_folder().iterdir())) if _folder().is_dir() else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--ttl", type=int, default=60)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    recognition(args.reps)
    if not args.skip_memory:
        memory(args.sessions, args.ttl)


if __name__ == "__main__":
    main()
