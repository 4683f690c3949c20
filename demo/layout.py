"""The Gradio Blocks: layout and wiring only; the work lives in ``demo.handlers``."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from resnet_core import cifar10, get_arch
from resnet_core.assets import ASSETS_DIR
from resnet_core.saliency import FILLS

from . import catalog, cifar10_tab, compare_tab, degradation_tab, explain_tab, feature_vis_view, live_tab, report
from . import handlers as h
from .gpu import on_gpu
from .image_outputs import png_figures

PHOTOS = ASSETS_DIR / "photos"
DIGITS = ASSETS_DIR / "digits"
MAX_UPLOAD = "20 MB"  # demo.launch passes the same cap to launch(max_file_size=...)
EXAMPLES = ["chelsea.png", "coffee.png", "rocket.jpg", "grace_hopper.jpg", "astronaut.png", "camera.png"]
DIGIT_NET = "resnet-56"  # the network the digit examples carry
CIFAR10_NET = "cifar10_resnet56"  # ... and the CIFAR-10 test images
# Every event that runs a network shares this one limit, so "two at a time" holds across the whole app; events
# that only redraw stored results are cheap and keep Gradio's default.
NETWORK = "network"
NETWORK_CONCURRENCY = 2
# A 32x32 or 28x28 input is shown enlarged with its pixels kept sharp, so the user sees what the net saw
# (Gradio 6 takes css at launch: demo.launch passes it).
PIXELATED = (
    ".pixelated img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }\n"
    ".pixelated-tiles img { image-rendering: pixelated; }"  # galleries size their own tiles
)


def _caption(text: str) -> gr.Markdown:
    """A picture's title above it: Gradio's own label floats over the picture's top-left corner and hides pixels."""
    return gr.Markdown(f"**{text}**", elem_classes="caption")


def _picture(label: str, **options) -> gr.Image:
    """An output image of the analysis: PNG, shown enlarged with sharp pixels (a 32x32 crop stays readable)."""
    with gr.Column():
        _caption(label)
        return gr.Image(label=label, show_label=False, interactive=False, format="png", height=320,
                        elem_classes="pixelated", **options)  # fmt: skip


def _chart(label: str, **options) -> gr.Image:
    """A chart: a matplotlib figure sent as a PNG file (handlers wrapped in ``png_figures``), with a download button."""
    with gr.Column():
        _caption(label)
        return gr.Image(label=label, show_label=False, interactive=False, format="png", **options)


def build_demo() -> gr.Blocks:
    start_arch, start_note = h.start_network()
    start_family = get_arch(start_arch).family
    weights_update = h.on_arch(start_arch)
    # The stage pickers follow the analysis on screen (handlers.refresh_controls); before one, and for API callers,
    # nothing picked means the last stage of whichever network runs, and handlers check any name they are sent.
    stage_choices = catalog.source_of(start_arch).stages(start_arch)
    with gr.Blocks(title="ResNet Explorer") as demo:
        gr.Markdown(
            "# ResNet Explorer\nWhat a residual network sees, where it looks, and what each block costs. "
            "Upload a photo, pick a network, press **Analyze**."
        )
        session = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                _caption(f"Photo (up to {MAX_UPLOAD})")
                image = gr.Image(
                    label=f"Photo (up to {MAX_UPLOAD})",
                    show_label=False,
                    type="filepath",
                    image_mode=None,
                    sources=["upload", "clipboard", "webcam"],
                    height=300,
                )
                family = gr.Dropdown(catalog.FAMILIES, value=start_family, label="Family")
                arch = gr.Dropdown(
                    catalog.architectures_of(start_family),
                    value=start_arch,
                    label="Depth / variant",
                    allow_custom_value=True,
                    info="ResNet-A/B/C/D, acc@1, MACs: see the Glossary in About",
                )
                weights = gr.Dropdown(
                    weights_update["choices"], value=weights_update["value"], label="Weights", allow_custom_value=True
                )  # the API may name any entry; handlers validate
                facts_md = gr.Markdown(h.model_facts(start_arch, weights_update["value"]))
                with gr.Accordion("Options", open=False):
                    topk = gr.Slider(1, 10, value=5, step=1, label="Top-k")
                run = gr.Button("Analyze", variant="primary")
            with gr.Column(scale=2):
                status = gr.Markdown(start_note or "Pick a photo (or an example below) and press **Analyze**.",
                                     elem_id="weights-status")  # fmt: skip
                stale_md = gr.Markdown(elem_id="stale-notice")
                label = gr.Label(num_top_classes=10, label="Predictions", elem_id="predictions")
                with gr.Row():
                    export = gr.Button("Download this analysis (PNGs + JSON)", size="sm")
                    export_file = gr.File(label="Report", interactive=False, height=80, elem_id="report-file",
                                          visible=False)  # fmt: skip
        # Photos fill the input for whatever network is picked; digits and CIFAR-10 test images belong to a network
        # of their own, so they carry it, run on click, and are cached per example (lazily, on first click).
        example_row = gr.Row()
        with example_row:
            gr.Examples([[str(PHOTOS / name)] for name in EXAMPLES], inputs=[image], label="Example photos")
        gallery = cifar10.gallery()  # one of every class per page of 10

        with gr.Tabs():
            with gr.Tab("Feature maps"):
                with gr.Row():
                    stage = gr.Dropdown(stage_choices, value=None, label="Stage", allow_custom_value=True)
                    block = gr.Dropdown([h.STAGE_OUTPUT], value=h.STAGE_OUTPUT, label="Block")
                    channels = gr.Slider(1, 256, value=32, step=1, label="Channels shown")
                    sort = gr.Radio(["mean", "index"], value="mean", label="Order channels by")
                with gr.Row():
                    crop = _picture("What the network saw (after resize and crop)")
                    grid = _picture("Channels, strongest mean activation first (click one)", elem_id="feature-grid")
                with gr.Row():
                    channel = gr.Number(0, label="Channel", precision=0, minimum=0)
                    channel_plot = _chart("Selected channel with its value scale", elem_id="channel-plot")
                with gr.Row():
                    with gr.Column(scale=1):
                        gr.Markdown(
                            "**What does this channel want to see?** An image optimised to excite the selected "
                            "channel as much as possible (Olah et al. 2017: Fourier-space pixels, decorrelated "
                            "colour, jitter, scale and rotation). Seconds on the CIFAR-10 nets, tens of seconds on "
                            "ImageNet ones; cached per channel."
                        )
                        vis_steps = gr.Slider(16, feature_vis_view.MAX_STEPS, value=128, step=16, label="Steps")
                        vis_run = gr.Button("Optimise an image for this channel")
                        vis_md = gr.Markdown(elem_id="feature-vis-text")
                        vis_layer = gr.Textbox(visible=False)  # the /visualize endpoint's layer parameter
                        vis_api = gr.Button(visible=False)
                    vis_image = _picture("What the channel wants to see", elem_id="feature-vis")
            with gr.Tab("Grad-CAM"):
                with gr.Row():
                    cam_class = gr.Dropdown([], label="Explain class (type to search)", filterable=True,
                                            allow_custom_value=True)  # fmt: skip
                    cam_layer = gr.Dropdown(stage_choices, value=None, label="Layer", allow_custom_value=True)
                    opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Heat-map opacity")
                cam_caption = gr.Markdown("**Grad-CAM on the crop the network saw**", elem_id="cam-caption")
                cam = gr.Image(label="Grad-CAM on the crop the network saw", show_label=False, interactive=False,
                               format="png", height=320, elem_classes="pixelated", elem_id="cam")  # fmt: skip
            with gr.Tab("Explanation checks"):
                gr.Markdown(
                    "**Does the heat map explain the network?** A map can look convincing whether or not it "
                    "explains anything (Adebayo et al. 2018). Two checks on the photo and network above, for its "
                    "top-1 class: scramble the weights from the classifier down and watch whether the map falls "
                    "apart; delete (or reveal) pixels in the map's order and watch the class probability, against "
                    "a random order."
                )
                with gr.Row():
                    method = gr.Radio([(name, key) for key, name in explain_tab.METHOD_NAMES.items()],
                                      value="gradcam", label="Method")  # fmt: skip
                    window = gr.Slider(0, 64, value=0, step=1, label="Occlusion window (px; 0 = an eighth of the crop)")
                    fill = gr.Radio(list(FILLS), value="blur", label="Deleted pixels become")
                    patch = gr.Radio([1, 4, 8], value=1, label="Rank pixels or patches of side")
                check = gr.Button("Run the checks", variant="primary")
                verdict_md = gr.Markdown(elem_id="sanity-verdict")
                strip = _chart("Cascading randomization", elem_id="sanity-strip")
                curves = _chart("Deletion and insertion curves")
                with gr.Accordion("Every number (JSON)", open=False):
                    sanity_json = gr.JSON()
            with gr.Tab("Cost"):
                cost_md = gr.Markdown()
                cost_plot = _chart("Multiply-adds and parameters per block")
                cost_table = gr.Dataframe(headers=h.COST_HEADERS, label="Per block", interactive=False)
            with gr.Tab("Residuals"):
                residual_md = gr.Markdown()
                residual_plot = _chart("Size of each block's residual branch relative to its shortcut",
                                       elem_id="residual-chart")  # fmt: skip
            with gr.Tab("Live camera"):
                gr.Markdown(
                    "**Point a webcam at things** and watch the network picked above answer frame after frame: "
                    "its top-5, where it looks (Grad-CAM) and what its last stage sees. The trained CIFAR-10 nets "
                    "work offline (CIFAR-10 knows 10 classes: plane, car, bird, cat, deer, dog, frog, horse, ship, "
                    "truck); ImageNet nets where their weights are available. A slow network answers fewer "
                    "frames rather than falling behind."
                )
                with gr.Row():
                    webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera",
                                      elem_id="live-camera", height=320)  # fmt: skip
                    live_label = gr.Label(num_top_classes=5, label="Top-5", elem_id="live-predictions")
                with gr.Row():
                    live_cam = _picture("Grad-CAM of the top-1 class", elem_id="live-cam")
                    live_grid = _picture("Strongest channels of the last stage")
                live_rate = gr.Markdown(elem_id="live-rate")
                live_meter = gr.State(None)
            with gr.Tab("Compare"):
                gr.Markdown(
                    "**Several networks on the photo above**, side by side: the paper's arguments are comparisons "
                    "(plain against residual, 18 against 152 layers, the ResNet-B/C/D tricks). Each network runs "
                    "once on the crop its own weights expect; Grad-CAM is at its last stage."
                )
                start_preset = "depth (CIFAR-10, trained)"
                with gr.Row():
                    preset = gr.Dropdown(list(compare_tab.PRESETS), value=start_preset, label="Preset")
                    compared = gr.Dropdown(compare_tab.choices(), value=compare_tab.PRESETS[start_preset][0],
                                           multiselect=True, max_choices=compare_tab.MAX_NETWORKS,
                                           label="Networks (2 to 5)", elem_id="compare-networks")  # fmt: skip
                    compare_weights = gr.Textbox(label="Weights, one per network (optional)",
                                                 placeholder="empty: each network's recommended weights")  # fmt: skip
                preset_md = gr.Markdown(compare_tab.PRESETS[start_preset][1])
                compare_run = gr.Button("Compare", variant="primary")
                compare_md = gr.Markdown(elem_id="compare-summary")
                _caption("Grad-CAM of each network's top-1 class, on the crop it saw")
                compare_cams = gr.Gallery(label="Grad-CAM of each network's top-1 class, on the crop it saw",
                                          show_label=False,
                                          columns=compare_tab.MAX_NETWORKS, fit_columns=False, height="auto",
                                          object_fit="contain",
                                          allow_preview=False,
                                          elem_classes="pixelated-tiles", elem_id="compare-cams")  # fmt: skip
                compare_table = gr.Dataframe(label="One column per network", interactive=False, wrap=True)
                compare_plot = _chart("||F(x)|| / ||shortcut(x)|| per block, from the input on",
                                      elem_id="compare-chart")  # fmt: skip
                with gr.Accordion("Every number (JSON)", open=False):
                    compare_json = gr.JSON()
                with gr.Accordion("Ours against torchvision and timm", open=False):
                    gr.Markdown(
                        "This app writes every network by hand. For each chosen network that torchvision (or timm) "
                        "also implements, the library's own network is built with the very same weights and run "
                        "on the same photo: the largest differences of the logits and of each stage's output, "
                        "and both top-5 lists."
                    )
                    verify_run = gr.Button("Check against the reference implementations")
                    verify_table = gr.Dataframe(interactive=False, wrap=True, elem_id="verify-table")
            with gr.Tab("CIFAR-10 test set"):
                gr.Markdown(
                    "The paper's own trained CIFAR-10 ResNets (section 4.2) across real test images. Pick the "
                    "**CIFAR-10** family, analyse a photo (or a CIFAR-10 example), then look here. One pass over "
                    "the test images per network feeds all three views and is cached on disk."
                )
                with gr.Row():
                    residual_stats = gr.Button("Residual ratios: test set vs your photo")
                    lesion_cifar = gr.Button("Delete each block in turn")
                test_md = gr.Markdown()
                test_plot = _chart("Across the test images")
                gr.Markdown("**What a channel responds to**: the test images that excite it most and least.")
                with gr.Row():
                    example_block = gr.Dropdown([], label="Block", allow_custom_value=True)
                    example_channel = gr.Number(0, label="Channel", precision=0, minimum=0)
                    show_examples = gr.Button("Show test images")
                examples_md = gr.Markdown()
                with gr.Row():
                    most = _chart("Excite it most (strongest first)")
                    least = _chart("Excite it least")
                    with gr.Column():
                        wanted = _picture("What it wants to see (optimised, 256 steps)")
                        wanted_run = gr.Button("Optimise an image for this channel")
                        wanted_md = gr.Markdown()
                gr.Markdown("**Browse the test set by class** (all 10,000 where the full set is configured).")
                with gr.Row():
                    browse_class = gr.Dropdown(list(cifar10_tab.cifar10.CLASSES), value="cat", label="Class")
                    browse_page = gr.Number(1, label="Page", precision=0, minimum=1)
                    browse_button = gr.Button("Show")
                browse_md = gr.Markdown()
                _caption("Test images (click one to put it in the photo box)")
                test_gallery = gr.Gallery(label="Test images (click one to put it in the photo box)", columns=10,
                                          show_label=False,
                                          height=300, allow_preview=False, elem_classes="pixelated")  # fmt: skip
            with gr.Tab("Degradation lab") as degradation_lab:
                gr.Markdown(
                    "The paper's central experiment, on a CPU: plain networks get *worse on their own training "
                    "data* as they get deeper; the same networks with identity shortcuts get better. Small "
                    "CIFAR-style networks (section 4.2: depth 6n+2, widths 8/16/32, option A shortcuts) train on "
                    "5,000 real MNIST digits. The trained reference nets also appear in the model picker under "
                    f"*{catalog.LAB_FAMILY}*, so their feature maps and Grad-CAM can be explored offline."
                )
                reference_plot = _chart("Reference run: training loss, plain (left) vs residual (right)")
                reference_md = gr.Markdown()
                with gr.Group():
                    gr.Markdown(
                        "**Run it yourself.** Trains plain and residual nets of two depths with the same seed and "
                        "batch order, streaming the curves. One run at a time: others wait in the queue, their "
                        "position shown. 200 steps of the 20- and 56-layer pairs take about three minutes on two "
                        "cores."
                    )
                    with gr.Row():
                        shallow = gr.Dropdown(list(degradation_tab.LIVE_DEPTHS), value=20, label="Shallow depth")
                        deep = gr.Dropdown(list(degradation_tab.LIVE_DEPTHS), value=56, label="Deep depth")
                        steps = gr.Slider(degradation_tab.MIN_STEPS, degradation_tab.MAX_STEPS, value=200, step=10,
                                          label="SGD steps per model")  # fmt: skip
                    with gr.Row():
                        train = gr.Button("Train four networks", variant="primary")
                        stop = gr.Button("Stop")
                    live_status = gr.Markdown()
                    live_plot = _chart("Live training loss")
                with gr.Row():
                    gradient_plot = _chart("Gradient reaching each stage at initialisation")
                    with gr.Column():
                        gr.Markdown(
                            "**Lesion study** (Veit et al., 2016): delete one block at a time from the trained "
                            "reference nets and measure accuracy. A residual net behaves like an ensemble of "
                            "shorter paths and barely notices; a plain net is a single path and collapses."
                        )
                        lesion = gr.Button("Delete blocks one at a time")
                        lesion_md = gr.Markdown()
                lesion_plot = _chart("Accuracy with one block deleted (dotted: intact)")
            with gr.Tab("About"):
                gr.Markdown((Path(__file__).with_name("about.md")).read_text())

        # Handlers that run a network ask for a GPU on ZeroGPU (demo.gpu); elsewhere they are used as they are.
        retarget = on_gpu(h.retarget_cam, "analysis")
        visualize_selected = on_gpu(feature_vis_view.visualize_selected, "visualize")
        visualize = on_gpu(feature_vis_view.visualize, "visualize")
        check_explanation = on_gpu(explain_tab.check_explanation, "checks")
        verify_networks = on_gpu(compare_tab.verify_networks, "compare")
        example_controls = on_gpu(h.example_controls, "analysis")
        private = {"api_visibility": "private"}
        owned_examples = [
            (f"Digits: run on click with {DIGIT_NET} ({catalog.LAB_FAMILY})", catalog.LAB_FAMILY, DIGIT_NET,
             sorted(DIGITS.glob("*.png")), "digit-examples"),
            (f"CIFAR-10 test images (Krizhevsky 2009): run on click with {CIFAR10_NET}", "CIFAR-10", CIFAR10_NET,
             gallery, "cifar10-examples"),
        ]  # fmt: skip
        analysis_outputs = [label, status, crop, grid, cam, residual_plot, residual_md, session]
        # Everything that follows the analysis on screen (not the pickers): see handlers.refresh_controls.
        control_outputs = [block, cam_class, example_block, stage, cam_layer, channel, facts_md, cam_caption, stale_md]
        cost_outputs = [cost_md, cost_plot, cost_table]
        costs = png_figures(h.cost_views)
        for title, owner_family, owner, paths, elem_id in owned_examples:
            if not paths:
                continue
            with example_row:
                owned = gr.Examples(
                    [[str(path), owner_family, owner, "DEFAULT"] for path in paths],
                    inputs=[image, family, arch, weights],
                    outputs=analysis_outputs[:-1],  # not the session: Gradio caches no state
                    fn=png_figures(on_gpu(h.analyze_example, "analysis")),
                    cache_examples=True,
                    cache_mode="lazy",
                    visible_columns=[0],
                    examples_per_page=10,
                    label=title,
                    elem_id=elem_id,
                    api_visibility="private",
                )
            owned.cache_event.then(
                example_controls, [image, family, arch, weights], [session, *control_outputs, arch, weights], **private
            ).then(costs, [arch, weights], cost_outputs, **private)  # the Cost tab shows the example's network
        # Redraws of the caller's own last analysis, and minutes of training: callable by gradio_client, but neither
        # in the API docs nor MCP tools (an agent's call has no session to redraw, and must not occupy the CPU).
        session_bound = {"api_visibility": "undocumented"}
        network = {"concurrency_id": NETWORK, "concurrency_limit": NETWORK_CONCURRENCY}
        # Pickers answer at once, outside the queue: an Analyze click right after a pick must see the new weights
        # (and Analyze settles stale weights itself). Facts and costs follow each pick (.then), never ahead of it.
        demo.load(costs, [arch, weights], cost_outputs, api_name="costs")
        for picked in (
            # .input, not .change: an example that carries its own network sets the family without a reset.
            family.input(h.on_family, family, [arch, weights], queue=False, **private),
            arch.input(h.on_arch, arch, weights, queue=False, **private),
        ):
            picked.then(h.model_facts, [arch, weights], facts_md, **private).then(
                costs, [arch, weights], cost_outputs, **private
            )
        weights.input(h.model_facts, [arch, weights], facts_md, queue=False, **private).then(
            costs, [arch, weights], cost_outputs, **private
        )
        # Results that no longer belong to the photo or network on screen say so until the next analysis.
        for changed in (image.change, arch.change):
            changed(h.mark_stale, [session, image, arch], stale_md, queue=False, **private)
        run.click(
            png_figures(on_gpu(h.analyze_image, "analysis")),
            [image, arch, weights, topk, cam_layer, stage, block, channels, sort, opacity, session],
            analysis_outputs,
            api_name="analyze",
            # Raw values in: Gradio would decode the upload itself and fail with a server error on a broken
            # file. resnet_core.load_image does the decoding, with its limits and one clear message.
            preprocess=False,
            **network,
        ).success(h.refresh_controls, [session, stage, channel], control_outputs, queue=False, **private)
        feature_inputs = [session, stage, block, channels, sort]
        for control in (stage, block, channels, sort):
            control.input(h.show_features, [*feature_inputs, channel], [grid, block, channel], **private)
        grid.select(png_figures(h.on_grid_select), feature_inputs, [channel, channel_plot], **private)
        channel.submit(png_figures(h.show_channel), [session, stage, block, channel], channel_plot, **private)
        for retargeted in (
            cam_class.input(retarget, [session, cam_class, cam_layer, opacity], [cam, session], api_name="cam",
                            **session_bound, **network),
            cam_layer.input(retarget, [session, cam_class, cam_layer, opacity], [cam, session], **private, **network),
        ):  # fmt: skip
            retargeted.success(h.current_cam_caption, session, cam_caption, queue=False, **private)
        opacity.input(h.set_opacity, [session, opacity], cam, **private)
        residual_stats.click(png_figures(on_gpu(cifar10_tab.residual_view, "checks")), session, [test_plot, test_md],
                             api_name="cifar10_residuals", **session_bound, **network)  # fmt: skip
        lesion_cifar.click(png_figures(cifar10_tab.lesion_view), session, [test_plot, test_md],
                           api_name="cifar10_lesion", concurrency_id="lab", concurrency_limit=1,
                           **session_bound)  # fmt: skip
        browse_button.click(cifar10_tab.browse, [browse_class, browse_page], [test_gallery, browse_md],
                            **private)  # fmt: skip
        test_gallery.select(cifar10_tab.pick_test_image, [browse_class, browse_page], image, **private)
        show_examples.click(on_gpu(cifar10_tab.examples_view, "checks"), [session, example_block, example_channel],
                            [most, least, examples_md], api_name="cifar10_examples", **session_bound,
                            **network)  # fmt: skip
        preset.input(compare_tab.on_preset, preset, [compared, preset_md], queue=False, **private)
        compare_run.click(
            png_figures(on_gpu(compare_tab.compare_networks, "compare")),
            [image, compared, compare_weights],
            [compare_cams, compare_table, compare_plot, compare_md, compare_json],
            api_name="compare",
            preprocess=False,  # the photo is decoded by resnet_core.load_image, as in /analyze
            **network,
        )
        vis_run.click(visualize_selected, [session, stage, block, channel, vis_steps],
                      [vis_image, vis_md], **private, **network)  # fmt: skip
        wanted_run.click(visualize_selected,
                         [session, gr.State(None), example_block, example_channel, gr.State(256)],
                         [wanted, wanted_md], **private, **network)  # fmt: skip
        # The same for any network, layer and channel, without a session: for gradio_client and MCP (an event with
        # components, not gr.api, so the image comes back as a file the client can download).
        vis_api.click(visualize, [arch, weights, vis_layer, channel, vis_steps], [vis_image, vis_md],
                      api_name="visualize", **network)  # fmt: skip
        # Its own limit: one stream at a time beside the two network computations, so a camera never stalls them.
        webcam.stream(on_gpu(live_tab.live_frame, "frame"), [webcam, arch, weights, live_meter],
                      [live_label, live_cam, live_grid, live_rate, live_meter], stream_every=live_tab.STREAM_EVERY,
                      time_limit=live_tab.TIME_LIMIT, concurrency_id="live", concurrency_limit=1,
                      **private)  # fmt: skip
        export.click(report.analysis_report, session, export_file, api_name="report", **session_bound).success(
            lambda: gr.update(visible=True), None, export_file, queue=False, **private
        )  # the box appears once there is a file in it
        check.click(check_explanation, [image, arch, weights, method, window, fill, patch],
                    [strip, curves, verdict_md, sanity_json], api_name="sanity", preprocess=False,
                    **network)  # fmt: skip
        verify_run.click(verify_networks, [image, compared, compare_weights], verify_table,
                         api_name="verify", preprocess=False, **network)  # fmt: skip
        degradation_lab.select(
            png_figures(degradation_tab.reference_view), None, [reference_plot, reference_md], api_name="lab_reference"
        )
        degradation_lab.select(png_figures(degradation_tab.gradient_view), None, gradient_plot, **private)
        lesion.click(png_figures(degradation_tab.lesion_view), None, [lesion_plot, lesion_md], api_name="lab_lesion",
                     concurrency_id="lab", concurrency_limit=1)  # fmt: skip
        training = train.click(png_figures(degradation_tab.run_live), [shallow, deep, steps], [live_plot, live_status],
                               api_name="lab_train", concurrency_id="lab", concurrency_limit=1,
                               **session_bound)  # fmt: skip
        stop.click(None, None, None, cancels=[training])  # front-end only: no API endpoint
    return demo
