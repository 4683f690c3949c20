"""The floor of a click: a plain Gradio app that shows what Analyze shows, computed with one bare forward.

    python -m bench.plain_app --port 7870

One photo and a network in; out, as the Analyze tab sends them: a label (top-5), a status line, three PNG images at
the sizes ours sends (the crop the network saw, a 32-channel grid of the last stage, an overlay on the crop), a bar
chart and a sentence. The network is resnet_core's own module (random init), run once under inference mode: no
hooks, no Grad-CAM, no store, no follow-up events. What is left is Gradio's round trip, the encodings and the
browser, which is what ``bench.floor_latency`` measures ours against.
"""

from __future__ import annotations

import argparse
from functools import cache

import gradio as gr
import numpy as np
import pandas as pd
import torch

from resnet_core import ResNet, create_model, load_image
from resnet_core.render import cam_overlay, feature_grid

ARCHS = ["resnet18", "resnet50", "cifar10_resnet56"]


@cache
def network(arch: str) -> ResNet:
    return create_model(arch)


def run(photo: str, arch: str):
    model = network(arch)
    crop = model.card.preprocess.crop(load_image(photo))
    with torch.inference_mode():
        features = model.forward_features(model.card.preprocess.normalize(crop).unsqueeze(0))
        probabilities = model.forward_head(features).softmax(-1)[0]
    top = probabilities.topk(5)
    names = [model.card.categories[int(i)] for i in top.indices]
    label = {name: float(p) for name, p in zip(names, top.values, strict=True)}
    grid, _ = feature_grid(features[0], 32)
    flat = np.full(crop.size[::-1], 0.5, dtype=np.float32)  # the overlay's cost without a Grad-CAM to compute
    chart = pd.DataFrame({"class": names, "probability": top.values.tolist()})
    sentence = f"The top class takes {100 * float(top.values[0]):.1f}% of the probability."
    return label, f"{arch}, random init.", crop, grid, cam_overlay(crop, flat, 0.5), chart, sentence


def build() -> gr.Blocks:
    with gr.Blocks(title="plain") as demo:
        photo = gr.Image(type="filepath", elem_id="photo")
        arch = gr.Dropdown(ARCHS, value=ARCHS[0], label="Network", elem_id="arch")
        button = gr.Button("Analyze")
        label = gr.Label(num_top_classes=5, elem_id="predictions")
        status = gr.Markdown()
        images = [gr.Image(format="png", elem_id=name) for name in ("crop", "feature-grid", "cam")]
        chart = gr.BarPlot(x="class", y="probability")
        sentence = gr.Markdown()
        button.click(run, [photo, arch], [label, status, *images, chart, sentence])
    return demo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=7870)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    build().launch(server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
