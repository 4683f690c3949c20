"""Resident memory of the server process as sessions come and go (a script: it needs a launched app).

    python -m bench.memory [--sessions 20] [--further 16]

Launches ``python app.py``, measures the server's RSS (``/proc/<pid>/status``, not this process's) at start-up,
after ``--sessions`` gradio_client sessions over six large networks, after the sessions have moved on to two small
ones (enough of them to push every large network out of the 3-model cache and its analyses out of the store), and
after ``--further`` more sessions on the small ones. Prints each figure and, beside the settled one, start-up plus
the weights of the models then in the cache (float32 parameters and buffers), which is where it should return.
"""

from __future__ import annotations

import argparse

from gradio_client import Client, handle_file

from bench.app_speed import ROOT, free_port, start_server
from resnet_core import create_model

LARGE = ["resnet101", "wide_resnet50_2", "resnext50_32x4d", "resnet152", "resnet50", "resnet34"]
SMALL = ["resnet18", "resnet18d"]
PHOTO = ROOT / "assets" / "photos" / "chelsea.png"


def rss_mb(pid: int, key: str = "VmRSS:") -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")


def weights_mb(arch: str) -> float:
    model = create_model(arch)
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--further", type=int, default=16)
    args = parser.parse_args()
    port = free_port()
    server, _ = start_server(port)
    url = f"http://127.0.0.1:{port}/"
    photo = handle_file(str(PHOTO))

    def sessions(archs: list[str], count: int) -> None:
        for index in range(count):  # a new Client is a new browser tab: a new session
            Client(url, verbose=False).predict(photo, archs[index % len(archs)], "random init", api_name="/analyze")

    try:
        start = rss_mb(server.pid)
        print(f"start-up: {start:.0f} MB")
        sessions(LARGE, args.sessions)
        print(f"after {args.sessions} sessions over {', '.join(LARGE)}: {rss_mb(server.pid):.0f} MB "
              f"(peak {rss_mb(server.pid, 'VmHWM:'):.0f} MB)")  # fmt: skip
        sessions(SMALL, 10)  # more than the store's 8 analyses: every large one is pushed out
        settled = rss_mb(server.pid)
        # The 3-model cache now holds the last large net used and the two small ones.
        cached = [LARGE[(args.sessions - 1) % len(LARGE)], *SMALL]
        expected = start + sum(weights_mb(arch) for arch in cached)
        print(f"after 10 sessions on {', '.join(SMALL)}: {settled:.0f} MB; start-up + weights of "
              f"{', '.join(cached)} = {expected:.0f} MB")  # fmt: skip
        sessions(SMALL, args.further)
        final = rss_mb(server.pid)
        print(f"after {args.further} further sessions on them: {final:.0f} MB ({final - settled:+.0f} MB)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
