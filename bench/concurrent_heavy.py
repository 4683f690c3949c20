"""The app's heavy buttons with one and two users at once, at each thread setting: what oversubscribing the cores
costs, measured side by side in one run.

    python -m bench.concurrent_heavy [--reps 2]

Two jobs, as the buttons run them, on the trained cifar10_resnet56 (32 px) and an untrained resnet50 (224 px; its
cost does not depend on its weights): *What a channel wants to see* (``visualize_channel``, 64 steps on the CIFAR
net and 8 on resnet50, last block, no disk cache) and *Explanation checks* (``sanity_check``, Grad-CAM, default
protocol and five randomization draws, on a CIFAR-10 test image or a photo). Each setting runs
in a fresh process (OpenMP fixes its thread pool per process): ``--threads T`` torch threads per computation, as
``python app.py --threads T`` sets them, and ``U`` users, each a thread running the job at the same moment, as two
visitors' clicks do. Prints seconds per job (the median of ``--reps``) and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


ARCHS = ("cifar10_resnet56", "resnet50")
JOBS = ("feature_vis", "explanation_checks")


def worker(arch: str, job: str, threads: int, users: int) -> float:
    """Seconds per job, the mean over ``users`` jobs started together."""
    import torch

    torch.set_num_threads(threads)  # before any thread: the users' threads inherit it
    from resnet_core import create_model
    from resnet_core.assets import ASSETS_DIR
    from resnet_core.data import cifar10
    from resnet_core.explain.feature_vis import visualize_channel
    from resnet_core.explain.sanity import sanity_check

    cifar = arch.startswith("cifar10")
    torch.manual_seed(0)
    model = create_model(arch, weights="DEFAULT" if cifar else None)
    image = cifar10.gallery()[0] if cifar else ASSETS_DIR / "photos" / "chelsea.png"
    layer = model.block_names()[-1]

    def run() -> None:
        if job == "feature_vis":
            visualize_channel(model, layer, 7, steps=64 if cifar else 8)
        else:
            sanity_check(model, image, "gradcam")

    run()  # warm-up: lazy initialisation is not the subject
    seconds: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(users)

    def user() -> None:
        start.wait()
        began = time.perf_counter()
        run()
        with lock:
            seconds.append(time.perf_counter() - began)

    threads_ = [threading.Thread(target=user) for _ in range(users)]
    for thread in threads_:
        thread.start()
    for thread in threads_:
        thread.join()
    return statistics.mean(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--archs", nargs="+", default=list(ARCHS))
    parser.add_argument("--worker", nargs=4, metavar=("ARCH", "JOB", "THREADS", "USERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        arch, job, threads, users = args.worker
        print(json.dumps(worker(arch, job, int(threads), int(users))))
        return
    settings = sorted({cores(), max(1, cores() // 2)}, reverse=True)
    print(f"{cores()} cores; threads per computation: {settings} (the app's old default, then its new one)")
    results: dict[tuple[str, str, int, int], float] = {}
    for arch in args.archs:
        for job in JOBS:
            for threads in settings:
                for users in (1, 2):
                    runs = []
                    for _ in range(args.reps):
                        command = [sys.executable, "-m", "bench.concurrent_heavy", "--worker", arch, job]
                        command += [str(threads), str(users)]
                        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                        runs.append(json.loads(output.strip().splitlines()[-1]))
                    results[arch, job, threads, users] = seconds = statistics.median(runs)
                    shown = ", ".join(f"{r:.2f}" for r in runs)
                    print(f"{arch} {job} threads {threads} users {users}: {seconds:.2f} s per job ({shown})")
    low = settings[-1]
    print(
        f"\n| network | job | threads | 1 user (s) | 2 users at once (s, each) | 2 users / 1 user | vs {low} thread |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for arch in args.archs:
        for job in JOBS:
            for threads in settings:
                one, two = results[arch, job, threads, 1], results[arch, job, threads, 2]
                against = f"{one / results[arch, job, low, 1]:.2f}x, {two / results[arch, job, low, 2]:.2f}x"
                print(f"| {arch} | {job} | {threads} | {one:.2f} | {two:.2f} | {two / one:.2f}x | {against} |")


if __name__ == "__main__":
    main()
