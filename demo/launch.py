"""Launch ResNet Explorer: ``python app.py`` in a checkout, ``resnet-explorer`` once installed.

Options: ``[--host H] [--port P] [--share] [--mcp] [--device D] [--cache-size N] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os

import torch

from . import settings
from .app_state import MAX_CHECKPOINT_MB, configure, models, start_network, weight_choice
from .layout import PIXELATED, build_demo
from .model_cache import ModelCache
from .shared import Tab

# Uploads above this are refused by Gradio before they are stored: the checkpoints' limit, the largest; photos have a
# smaller one of their own (app_state.load_photo). Both are in the README.
MAX_FILE_SIZE = f"{MAX_CHECKPOINT_MB}mb"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", default=os.environ.get("GRADIO_SHARE") == "1")
    parser.add_argument(
        "--mcp",
        action="store_true",
        default=None,
        help="also serve the public endpoints as MCP tools (default: $GRADIO_MCP_SERVER)",
    )
    parser.add_argument("--device", default=os.environ.get(settings.ENV_DEVICE), help="cpu, cuda, cuda:1...")
    parser.add_argument("--cache-size", type=int, default=settings.cache_size())
    parser.add_argument(
        "--threads",
        type=int,
        default=settings.threads(),
        help="torch CPU threads per computation (default: every core)",
    )
    return parser.parse_args(argv)


def main() -> None:
    """The ``resnet-explorer`` command."""
    serve()


def serve(argv: list[str] | None = None, block: bool = True, tabs: list[Tab] | None = None):
    """Build and launch (the tabs of ``tabs``, default every one); with ``block=False`` return the running Blocks
    (tests drive it with gradio_client)."""
    args = parse_args(argv)
    # Deliberate: one computation alone (the common case on a demo) gets every core; two at once share them.
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    configure(ModelCache(capacity=args.cache_size, device=args.device))
    if settings.on_space():  # on a Space the first visitor should not wait for the default model to load
        arch, _ = start_network()
        models().get(arch, weight_choice(arch, "DEFAULT"))
    demo = build_demo(tabs)
    # Events that run a network share one limit of two (demo.layout.NETWORK_CONCURRENCY); the lab's training and
    # lesions run one at a time beside them; everything else only redraws stored results.
    demo.queue(default_concurrency_limit=2, max_size=64)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        mcp_server=args.mcp,  # None: Gradio reads $GRADIO_MCP_SERVER
        max_file_size=MAX_FILE_SIZE,
        css=PIXELATED,
        prevent_thread_lock=not block,
        quiet=not block,
    )
    return demo
