"""The network map: the boxes and colours it draws against the network and the numbers, the tab, the browser."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client, handle_file

from bench.browser import chromium_page
from demo import analysis_panel as panel
from demo import app_state, lab_results, network_map, network_map_tab
from demo.model_cache import ModelCache
from resnet_core.data import cifar10
from resnet_core.diagram import MISSING, draw_network_map
from resnet_core.explain.analysis import analyze
from resnet_core.explain.effective_field import unit_field
from resnet_core.measure.complexity import cost_table
from resnet_core.render import cam_overlay, colorize, feature_grid, field_overlay
from resnet_core.zoo.architectures import build, twin_of

from .conftest import ROOT, enlarged_from, read_png

SCREENSHOTS = ROOT / "screenshots"
CAT = next(path for path in sorted(cifar10.GALLERY_DIR.glob("cat_*.png")))


def inside(box) -> tuple[int, int]:
    """A pixel inside a box, clear of its outline and its label."""
    return box.left + 2, box.top + 3


@pytest.mark.parametrize("arch", ["resnet50", "cifar10_resnet56", "plain18"])
def test_one_box_per_row_coloured_by_its_value(arch):
    model, table = build(arch), cost_table(arch)
    values = {row.name: row.macs for row in table.rows}
    values["layer1.1"] = None  # a block without a value is grey
    drawn = draw_network_map(model, values, "MACs", arch, log_scale=True)
    assert [box.name for box in drawn.boxes] == ["stem", *model.block_names(), "head"]
    logs = np.log10([v for v in values.values() if v is not None])
    for box in drawn.boxes:
        x, y = inside(box)
        if values[box.name] is None:
            assert tuple(drawn.image[y, x]) == MISSING
        else:
            share = (np.log10(values[box.name]) - logs.min()) / (logs.max() - logs.min())
            assert tuple(drawn.image[y, x]) == tuple(colorize(np.array([share]), "viridis")[0]), box.name
        assert drawn.at(*inside(box)) == box.name
    assert drawn.at(5, drawn.image.shape[0] - 5) is None  # the margin is no block
    kinds = {box.name: box.shortcut for box in drawn.boxes}
    expected = {"resnet50": "projection", "cifar10_resnet56": "zeropad", "plain18": "none"}[arch]
    assert kinds["layer2.0"] == expected
    assert kinds["layer2.1"] == ("none" if arch == "plain18" else "identity")


@pytest.fixture()
def cache():
    models = ModelCache(capacity=3, device="cpu")
    app_state.configure(models)
    return models


class Click:
    """What Gradio hands a ``select`` handler: the pixel clicked."""

    def __init__(self, x: int, y: int) -> None:
        self.index = [x, y]


def test_the_tab_draws_the_librarys_map_and_a_click_shows_the_block(cache):
    *_, state = panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT", chart=False)
    overlay = "residual ratio ||F(x)|| / ||shortcut(x)|| (photo)"
    path, note = network_map_tab.network_map("cifar10_resnet20", "DEFAULT", overlay, state)
    result = analyze(cache.get("cifar10_resnet20", "DEFAULT").model, CAT)
    ratios = {name: stats.residual_ratio for name, stats in result.blocks.items()}
    expected = draw_network_map(build("cifar10_resnet20"), ratios, overlay, f"cifar10_resnet20: {overlay}", True)
    assert np.array_equal(read_png(path), expected.image) and "On the photo analysed" in note
    # Before an analysis of this network, the photo's overlays say so and leave the boxes grey.
    _, note = network_map_tab.network_map("cifar10_resnet56", "DEFAULT", overlay, state)
    assert "Analyze a photo with cifar10_resnet56" in note

    box = next(box for box in expected.boxes if box.name == "layer2.0")
    details, features = network_map_tab.on_map_click("cifar10_resnet20", "DEFAULT", overlay, state, Click(*inside(box)))
    row = next(row for row in cost_table("cifar10_resnet20").rows if row.name == "layer2.0")
    assert f"{row.params:,} parameters" in details and f"receptive field {row.receptive_field} px" in details
    assert f"{result.blocks['layer2.0'].residual_ratio:.3f}" in details
    assert np.array_equal(read_png(features), feature_grid(result.blocks["layer2.0"].output, 32)[0])
    assert network_map_tab.on_map_click("cifar10_resnet20", "DEFAULT", overlay, state, Click(3, 3)) == (
        network_map_tab.gr.skip(), network_map_tab.gr.skip()
    )  # fmt: skip


def test_a_units_fields_beside_its_plain_twins_are_the_librarys(cache):
    digit = ROOT / "assets" / "digits" / "digit_7.png"
    *_, state = panel.analyze_image(str(digit), "digits_resnet20", "DEFAULT", chart=False)
    stage, units = network_map_tab.unit_views(state, None)
    assert stage["value"] == "layer1" and stage["choices"] == ["stem", "layer1", "layer2", "layer3"]
    # The map shows each unit of layer1 (28x28 on a 28 px crop: one pixel each) by its mean activation.
    stored = app_state.results().get(state["token"])
    mean = stored.result.stages["layer1"].float().mean(0).numpy()
    scaled = (mean - mean.min()) / (mean.max() - mean.min())
    k = enlarged_from(read_png(units), cam_overlay(stored.result.crop, scaled, 0.6, cmap="viridis"))
    assert k == 12  # 28 px enlarged to 336, by whole pixels: a click lands on the unit under it
    text, own, twin = network_map_tab.field_views(state, "layer2", 3, 4)
    for arch, picture in (("digits_resnet20", own), ("digits_plain20", twin)):
        field = unit_field(cache.get(arch, "DEFAULT").model, digit, "layer2", 3, 4)
        assert np.array_equal(read_png(picture), field_overlay(field.crop, field.gradient, field.box)), arch
        assert f"{field.half_mass_side()} px" in text
    assert "theoretical field **37 px**" in text and "digits_plain20, trained like digits_resnet20" in text
    # A click on the map picks the unit under it: the map is the 28 px crop (x12), layer2 a 14x14 grid.
    row, col, marked, *_ = network_map_tab.on_unit_click(state, "layer2", Click(9 * k + 5, 20 * k + 11))
    assert (row, col) == (10, 4)
    # The unit clicked is outlined where it is: layer2's unit (10, 4) covers crop pixels 8-9 by 20-21.
    _, unmarked = network_map_tab.unit_views(state, "layer2")
    changed = np.argwhere((read_png(marked) != read_png(unmarked)).any(axis=2))
    assert changed.min(axis=0).tolist() == [20 * k, 8 * k] and changed.max(axis=0).tolist() == [22 * k - 1, 10 * k - 1]
    # No twin to compare with: said, and no picture.
    *_, state = panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT", chart=False)
    text, own, twin = network_map_tab.field_views(state, "layer1", 0, 0)
    assert twin is None and "cifar10_plain20 has no trained weights" in text and own is not None
    assert twin_of("resnet50") == "plain50" and twin_of("digits_plain56") == "digits_resnet56"
    assert twin_of("cifar10_resnet20") == "cifar10_plain20" and twin_of("cifar10_resnet110") is None


@pytest.mark.browser
def test_through_gradio_client_and_a_click_in_chromium(served_app):
    expect = pytest.importorskip("playwright.sync_api").expect
    url = served_app
    client = Client(url, verbose=False)
    client.predict(handle_file(str(CAT)), "cifar10_resnet20", "DEFAULT", api_name="/analyze")
    shares = "evidence through the shortcut (photo)"
    path, note = client.predict("cifar10_resnet20", "DEFAULT", shares, api_name="/network_map")
    from resnet_core import create_model
    from resnet_core.explain.evidence import evidence_split

    split = evidence_split(create_model("cifar10_resnet20", weights="DEFAULT"), CAT)
    values = {entry.block: entry.shortcut_share for entry in split.blocks}
    expected = draw_network_map(build("cifar10_resnet20"), values, shares, f"cifar10_resnet20: {shares}")
    assert np.array_equal(read_png(path), expected.image) and "On the photo" in note
    text, own, twin = client.predict("layer2", 5, 7, api_name="/receptive_field")
    field = unit_field(create_model("cifar10_resnet20", weights="DEFAULT"), CAT, "layer2", 5, 7)
    assert np.array_equal(read_png(own), field_overlay(field.crop, field.gradient, field.box))
    assert twin is None and f"theoretical field **{field.size} px**" in text

    with chromium_page(url) as page:
        page.set_input_files("#photo input[type=file]", str(CAT))
        page.get_by_role("button", name="Analyze").click()
        expect(page.locator("#predictions")).to_contain_text("cat (3)", timeout=120_000)
        page.get_by_role("tab", name="Network map").click()
        image = page.locator("#network-map img")
        expect(image).to_have_count(1, timeout=60_000)
        page.wait_for_function("document.querySelector('#network-map img').naturalWidth > 0")
        natural = page.evaluate("(() => { const i = document.querySelector('#network-map img');"
                                " return [i.naturalWidth, i.naturalHeight]; })()")  # fmt: skip
        shown = image.bounding_box()
        drawn = draw_network_map(build("cifar10_resnet56"), {}, "")  # the app starts on cifar10_resnet56
        box = next(box for box in drawn.boxes if box.name == "layer3.4")
        # Where that box is on screen: the picture may be scaled to fit (object-fit: contain).
        scale = min(shown["width"] / natural[0], shown["height"] / natural[1])
        offset_x = (shown["width"] - natural[0] * scale) / 2
        offset_y = (shown["height"] - natural[1] * scale) / 2
        x, y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
        image.click(position={"x": offset_x + x * scale, "y": offset_y + y * scale})
        expect(page.locator("#network-map-block")).to_contain_text("layer3.4", timeout=60_000)
        expect(page.locator("#network-map-features img")).to_have_count(1, timeout=60_000)
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "network_map_clicked.png"), full_page=True)
        # How far a unit sees: a click on the stage's map fills the field pictures and their sentence.
        expect(page.locator("#field-units img")).to_have_count(1, timeout=60_000)
        page.locator("#field-units img").click()
        expect(page.locator("#field-text")).to_contain_text("theoretical field", timeout=60_000)
        expect(page.locator("#field-network img")).to_have_count(1, timeout=60_000)
        page.locator("#field-text").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "receptive_field_clicked.png"), full_page=True)
        assert "Error" not in page.locator("body").inner_text()


@pytest.mark.slow
def test_the_cifar10_tabs_studies_colour_the_map(cache):
    """Fig. 7 as the CIFAR-10 tab draws it, and the map coloured by it and by the lesion study, against the library."""
    from demo import across_data
    from resnet_core import create_model
    from resnet_core.measure.layer_responses import response_std

    *_, state = panel.analyze_image(str(CAT), "cifar10_resnet20", "DEFAULT", chart=False)
    lab_results.fig7_curves.cache_clear()  # as in a fresh server, whatever ran before in this process
    _, note = network_map_tab.network_map("cifar10_resnet20", "DEFAULT", network_map.FIG7, state)
    assert "Press **The paper's Fig. 7**" in note  # nothing computed yet: said, not computed behind the user's back
    figure, text = across_data.fig7_view()
    curves, _ = lab_results.fig7_curves()
    model = create_model("cifar10_resnet20", weights="DEFAULT")
    images, _, _ = cifar10.load_subset()
    direct = response_std(model, [cifar10.to_batch(images, model.card.preprocess.mean, model.card.preprocess.std)])
    assert curves["cifar10_resnet20"].std == pytest.approx(direct.std, rel=1e-9)
    top = figure.axes[0]
    drawn = {line.get_label().split(" (")[0]: list(line.get_ydata()) for line in top.get_lines()}
    assert drawn["cifar10_resnet20"] == pytest.approx(list(direct.std)) and "cifar10_resnet20 0.732" in text
    path, note = network_map_tab.network_map("cifar10_resnet20", "DEFAULT", network_map.FIG7, state)
    last = {"stem": direct.std[0], **{f"layer{s}.{b}": direct.std[2 + 6 * (s - 1) + 2 * b] for s in (1, 2, 3)
                                      for b in range(3)}}  # fmt: skip
    expected = draw_network_map(build("cifar10_resnet20"), last, network_map.FIG7,
                                f"cifar10_resnet20: {network_map.FIG7}")  # fmt: skip
    assert np.array_equal(read_png(path), expected.image) and "last run" in note

    figure, _ = across_data.lesion_view(state, "the 500 CIFAR-10 test images shipped with the app")
    study = lab_results.recent_lesion("cifar10_resnet20", state["weights"])
    path, _ = network_map_tab.network_map("cifar10_resnet20", "DEFAULT", network_map.LESION, state)
    lost = {block: study.baseline - kept for block, kept in study.accuracy.items()}
    expected = draw_network_map(build("cifar10_resnet20"), lost, network_map.LESION,
                                f"cifar10_resnet20: {network_map.LESION}")  # fmt: skip
    assert np.array_equal(read_png(path), expected.image) and lost["layer2.0"] > 0
