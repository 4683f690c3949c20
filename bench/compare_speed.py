"""What a comparison costs against the single analyses it is made of, measured side by side (a script, not a test).

    python -m bench.compare_speed [--reps 5] [--threads 2]

1. library: ``resnet_core.explain.compare`` of resnet18 + resnet34 + resnet50 against the sum of their three
   ``analyze`` calls, interleaved in one process;
2. app: one ``/compare`` request of the same three networks against three ``/analyze`` requests, through
   ``gradio_client`` to a launched ``python app.py`` on loopback, interleaved.

Random init: the same work as with published weights (which cannot be downloaded here), only the answers differ.
"""

from __future__ import annotations

import statistics
import time

from gradio_client import Client, handle_file

from resnet_core import create_model, load_image
from resnet_core.explain.analysis import analyze
from resnet_core.explain.compare import compare

from .app_speed import PHOTO, RANDOM_INIT, free_port, start_server, timing_options

ARCHS = ("resnet18", "resnet34", "resnet50")


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    args = timing_options()

    photo = load_image(PHOTO)
    models = [create_model(arch, weights=None) for arch in ARCHS]
    compare(models, photo)  # warm up
    together, apart = [], []
    for _ in range(args.reps):
        together.append(timed(lambda: compare(models, photo)))
        apart.append(sum(timed(lambda m=model: analyze(m, photo)) for model in models))
    library = statistics.median(together) / statistics.median(apart)
    print(f"library: compare {1000 * statistics.median(together):.0f} ms, sum of 3 analyses "
          f"{1000 * statistics.median(apart):.0f} ms, ratio {library:.3f}x")  # fmt: skip

    port = free_port()
    server, _ = start_server(port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        upload = handle_file(str(PHOTO))
        weights = ", ".join([RANDOM_INIT] * len(ARCHS))

        def one_compare() -> None:
            client.predict(upload, list(ARCHS), weights, api_name="/compare")

        def three_analyses() -> None:
            for arch in ARCHS:
                client.predict(upload, arch, RANDOM_INIT, api_name="/analyze")

        one_compare()  # loads the three models into the app's cache (it holds three)
        three_analyses()
        requests, singles = [], []
        for _ in range(args.reps):
            requests.append(timed(one_compare))
            singles.append(timed(three_analyses))
    finally:
        server.terminate()
        server.wait()
    app = statistics.median(requests) / statistics.median(singles)
    print(f"app: /compare {1000 * statistics.median(requests):.0f} ms, 3 x /analyze "
          f"{1000 * statistics.median(singles):.0f} ms, ratio {app:.3f}x")  # fmt: skip


if __name__ == "__main__":
    main()
