"""The Explanation checks tab: does a heat map explain the network, or would it look the same anyway?

Two checks from the literature run on the photo and network at the top of the page: cascading randomization
(Adebayo et al. 2018: the map must fall apart as the weights it depends on are scrambled) and deletion / insertion
curves (Petsiuk et al. 2018: removing the pixels the map ranks first must hurt the class more than removing random
ones). Every figure is a PNG with a download button, and every number comes back as JSON.
"""

from __future__ import annotations

import json
from functools import cache

import gradio as gr

from resnet_core.assets import ASSETS_DIR
from resnet_core.explain.saliency import FILLS, METHODS
from resnet_core.explain.sanity import (
    PATCHES,
    RANDOMIZED_ENOUGH,
    SEPARATES_SHARE,
    Protocol,
    SanityReport,
    protocol_setting,
    sanity_check,
    void_reason,
)
from resnet_core.render import perturbation_figure, randomization_figure
from resnet_core.zoo.create import UNTRAINED

from .app_state import image_path, load_photo, models, user_error, weight_choice
from .gpu import on_gpu
from .image_outputs import figure_path
from .shared import NETWORK, Shared, chart

__all__ = ["check_explanation"]

VERDICTS = ASSETS_DIR / "explanation_verdicts.json"
TITLE = "Explanation checks"


def build(shared: Shared, tab: gr.Tab) -> None:
    gr.Markdown(
        "**Does the heat map explain the network?** A map can look convincing whether or not it explains anything "
        "(Adebayo et al. 2018). Two checks on the photo and network above, for its top-1 class: scramble the "
        "weights from the classifier down and watch whether the map falls apart; delete (or reveal) pixels in the "
        "map's order and watch the class probability, against a random order."
    )
    with gr.Row():
        method = gr.Radio([(m.title, key) for key, m in METHODS.items()], value="gradcam", label="Method")
        window = gr.Slider(0, 64, value=0, step=1, label="Occlusion window (px; 0 = an eighth of the crop)")
        fill = gr.Radio(list(FILLS), value="blur", label="Deleted pixels become")
        patch = gr.Radio(list(PATCHES), value=1, label="Rank pixels or patches of side")
    check = gr.Button("Run the checks", variant="primary")
    verdict_md = gr.Markdown(elem_id="sanity-verdict")
    strip = chart("Cascading randomization", elem_id="sanity-strip")
    curves = chart("Deletion and insertion curves")
    with gr.Accordion("Every number (JSON)", open=False):
        numbers = gr.JSON()
    check.click(
        on_gpu(check_explanation, "checks"),
        [shared.image, shared.arch, shared.weights, method, window, fill, patch],
        [strip, curves, verdict_md, numbers],
        api_name="sanity",
        preprocess=False,  # the photo is decoded by resnet_core.load_image, as in /analyze
        **NETWORK,
    )


def check_explanation(
    image: str | dict | None,
    arch: str,
    weights: str = "DEFAULT",
    method: str = "gradcam",
    window: int = 0,
    fill: str = "blur",
    patch: int = 1,
    progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's own idiom
):
    """Check whether a saliency map of a ResNet's top-1 class explains the network (sanity checks).

    Returns the map after each step of a cascading randomization (with Spearman and SSIM against the trained
    map), the deletion and insertion curves against a random ranking, a verdict per check, and every number.

    Args:
        image: the photo.
        arch: the architecture, e.g. "cifar10_resnet56" or "resnet50".
        weights: "DEFAULT", a weight name, or "random init".
        method: "gradcam", "guided" (Guided Grad-CAM) or "occlusion".
        window: the occlusion window side in pixels (0: an eighth of the crop); ignored by the other methods.
        fill: what deleted pixels become: "blur" (a blurred copy, the default protocol) or "zero".
        patch: rank single pixels (1) or square patches of this side.
    """
    image_path(image)  # no photo: say so before anything else
    weights = weight_choice(arch, weights)
    if method not in METHODS:
        raise user_error(f"Unknown method {method!r}; choose one of: {', '.join(METHODS)}.")
    if fill not in FILLS or int(patch) < 1:
        raise user_error(f"Fill must be one of {', '.join(FILLS)} and the patch side at least 1.")
    takes_window = "window" in METHODS[method].option_names
    options = {"window": int(window)} if takes_window and window and int(window) > 0 else {}
    photo = load_photo(image)
    progress(0.1, desc=f"loading {arch}; then {METHODS[method].title}: maps, curves and randomization")
    protocol = Protocol(fill=fill, patch=int(patch))
    try:
        with models().using(arch, weights) as loaded:
            report = sanity_check(loaded.model, photo, method, protocol=protocol, **options)
            network, classes = loaded.model.card.name, len(loaded.model.card.categories)
    except ValueError as error:
        raise user_error(f"Could not check this map: {error}") from None
    return (
        figure_path(randomization_figure(report)),
        figure_path(perturbation_figure(report)),
        verdict(report, classes, network),
        report.as_dict(),
    )


@cache
def verdict_table() -> dict[str, list[dict]]:
    """The shipped table of which protocols separate Grad-CAM from random, per network and protocol, over the 500
    shipped CIFAR-10 test images (``python -m bench.protocol_verdicts`` writes it); empty where it is missing."""
    return json.loads(VERDICTS.read_text())["networks"] if VERDICTS.is_file() else {}


def data_set_figures(network: str, protocol: Protocol) -> dict | None:
    """The shipped figures of a curve's ``protocol`` (its mode says deletion or insertion) for ``network``, or None
    where the table has none (another network, or a protocol it does not cover)."""
    setting = protocol_setting(protocol)
    for entry in verdict_table().get(network, []):
        if entry["protocol"] == setting:
            return entry.get(protocol.mode)
    return None


def curve_verdict(report: SanityReport, mode: str, num_classes: int, network: str) -> str:
    """One curve's line: its area against random, and a pass or fail only where the image's protocol is valid and
    the protocol separates the map from random over a data set for this network (else: one image cannot decide)."""
    curve, random = getattr(report, mode), getattr(report, f"random_{mode}")
    head = f"- {mode.capitalize()}: AUC {curve.auc:.3f} against {random.auc:.3f} for a random ranking"
    end = curve.probabilities[-1] if mode == "deletion" else curve.probabilities[0]
    void = void_reason(end, num_classes, mode)
    if void is not None:
        return f"{head}: **{void}**, so this curve says nothing of the map."
    figures = data_set_figures(network, curve.protocol)
    if figures is None or report.method != "gradcam" or not report.pretrained:
        return (
            f"{head}: one image cannot decide, and there are no data-set figures for this network, method and "
            "protocol to say whether a single image could (BENCHMARKS.md has those of the shipped CIFAR-10 nets)."
        )
    low, high = figures["gap_to_random"]["ci95"]
    evidence = (
        f"on the 500 shipped test images this protocol beats random on {100 * figures['beats_random']:.0f}% of the "
        f"{figures['valid_images']} valid images, mean gap {figures['gap_to_random']['mean']:+.3f} "
        f"[{low:+.3f}, {high:+.3f}]"
    )
    if not figures["separates"]:
        short = f"short of {SEPARATES_SHARE:.0%}, or an interval not clear of 0"
        return f"{head}: **one image cannot decide** ({evidence}: {short})."
    beats = curve.auc < random.auc if mode == "deletion" else curve.auc > random.auc
    outcome = "passes" if beats else "**fails**"
    return f"{head} ({outcome}; {evidence}, so one image's result means something)."


def randomization_verdict(report: SanityReport) -> str:
    """The randomization line: the map's rank correlation with the trained one after the head and the last stage
    are re-initialised, as the median over the draws with its 95% interval, and the verdict that interval gives
    (a pass where it lies below :data:`RANDOMIZED_ENOUGH`, a fail where it lies above, else more draws would decide).
    """
    spread = report.randomization_spread[min(1, len(report.randomization_spread) - 1)]
    draws = len(spread.seeds)
    summary = spread.spearman_range()
    if summary is None:
        return (
            f"- Randomization: after re-initialising up to {spread.step} the map is constant in all {draws} "
            "draws: passes."
        )
    median, low, high = summary
    inside, outside = spread.median_interval()
    flat = draws - len(spread.ranked)
    constant = f"; {flat} of {draws} draws gave a constant map" if flat else ""
    outcome = {
        "passes": "passes",
        "fails": "**fails**: the map barely depends on those weights",
        "undecided": f"**undecided** after {draws} draws: the median lies too close to {RANDOMIZED_ENOUGH}",
    }[spread.verdict()]
    return (
        f"- Randomization: after re-initialising the head and {spread.step}, the map's rank correlation with the "
        f"original one is {median:.2f} (median of {draws} draws of the new weights, 95% interval {inside:.2f} to "
        f"{outside:.2f}, range {low:.2f} to {high:.2f}{constant}; {outcome}; a faithful map falls below "
        f"{RANDOMIZED_ENOUGH})."
    )


def verdict(report: SanityReport, num_classes: int, network: str) -> str:
    """Pass or fail for each check, in words, with the protocol that produced each figure; a curve's pass or fail
    only where the data set says one image can decide (``network``: the name the shipped figures use)."""
    name = METHODS[report.method].title if report.method in METHODS else report.method
    lines = [f"**{name}** of **{report.class_name}** (p = {report.probability:.2f}) on {report.arch}."]
    if not report.pretrained:
        lines[0] += (
            f" **{UNTRAINED.capitalize()}**: these are random weights, so no map explains anything and the checks "
            "below only show how the tests behave on noise."
        )
    lines.append(randomization_verdict(report))
    lines += [curve_verdict(report, mode, num_classes, network) for mode in ("deletion", "insertion")]
    lines.append(f"\n{report.deletion.protocol.describe()} {report.insertion.protocol.describe()}")
    lines.append(
        f"\nOne map costs {report.forward_passes} image(s) through the network; one image is an anecdote, the "
        "averages over 200 CIFAR-10 test images are in BENCHMARKS.md."
    )
    return "\n".join(lines)
