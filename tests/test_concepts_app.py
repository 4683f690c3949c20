"""The Concepts tab against the library: the same dictionary, the same ranking, the chart's cells its importance."""

from __future__ import annotations

import re

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from demo import app_state, concepts_tab
from demo.model_cache import ModelCache
from resnet_core.data.sources import open_source
from resnet_core.explain.concepts import concept_deletion, concepts_of_photo, learn_concepts
from resnet_core.explain.feature_vis import visualize_direction


@pytest.fixture(scope="module")
def cache():
    models = ModelCache(capacity=2, device="cpu")
    app_state.configure(models)
    return models


def quietly(*args, **kwargs) -> None:
    """A progress callback that shows nothing (the handler's gr.Progress outside an event)."""


def test_the_tab_shows_the_librarys_concepts_of_the_photo(cache, photos):
    photo = str(photos / "chelsea.png")
    text, strip, full, figure, in_strip = concepts_tab.concepts_views(
        photo, "cifar10_resnet20", "DEFAULT", "layer3", 6, 2, progress=quietly
    )
    with app_state.models().using("cifar10_resnet20", "DEFAULT") as loaded:
        model = loaded.model
        dictionary = learn_concepts(model, "layer3", open_source("cifar10"), k=6)
        found = concepts_of_photo(model, dictionary, photo)
        beats = concept_deletion(model, dictionary, found).beats_random
    assert dictionary.from_cache  # the tab learned it first, under the same key
    top = ", ".join(f"**#{j}** ({found.contributions[j]:+.2f})" for j in found.ranking[:3])
    assert f'The network says **"{found.class_name}"** mostly through {top}' in text
    assert f"explain **{100 * dictionary.explained:.1f}%** of its activations" in text
    assert ("lowers the logit faster than 16 random orders" in text) == beats
    assert "(at the last stage a linear head follows, so this holds by construction)" in text
    cell, pad = 96, 4
    assert strip.shape[0] == concepts_tab.SHOWN * (cell + pad) + pad  # one row per concept shown
    assert full.shape[1] == 120 + (1 + len(dictionary.exemplars[2])) * (cell + pad)  # every exemplar of #2
    drawn = figure.axes[0].images[0].get_array()
    assert np.allclose(drawn, dictionary.importance[np.flatnonzero(dictionary.class_counts)])
    # A click on the strip's third row picks the photo's third concept; on the white between rows, none.
    assert in_strip == [int(j) for j in found.ranking[: concepts_tab.SHOWN]]
    third = concepts_tab.pick_concept(
        in_strip, gr.SelectData(None, {"index": [300, pad + 2 * (cell + pad) + 50], "value": None})
    )
    assert third == found.ranking[2]
    between = concepts_tab.pick_concept(in_strip, gr.SelectData(None, {"index": [300, pad + cell + 1], "value": None}))
    assert between == gr.skip()


def test_what_the_tab_cannot_learn_is_one_sentence(cache, photos):
    with pytest.raises(gr.Error, match="the app ships CIFAR-10's: pick a CIFAR-10 network"):
        concepts_tab.concepts_views(None, "resnet18", "random init", "layer2", 8, 0, progress=quietly)
    stages_and_blocks = "has the stages layer1, layer2, layer3 and the blocks layer1.0 to layer3.2; layer4 is neither"
    with pytest.raises(gr.Error, match=re.escape(f"cifar10_resnet20 {stages_and_blocks}")):
        concepts_tab.concepts_views(None, "cifar10_resnet20", "DEFAULT", "layer4", 8, 0, progress=quietly)
    with pytest.raises(gr.Error, match="k is 2 to 16 at layer1"):
        concepts_tab.concepts_views(None, "cifar10_resnet20", "DEFAULT", "layer1", 20, 0, progress=quietly)
    text, *_ = concepts_tab.concepts_views(None, "cifar10_resnet20", "DEFAULT", "layer3", 6, 0, progress=quietly)
    assert text.endswith("Add a photo to see its own concepts.")


@pytest.mark.slow  # 9 s: two optimisations of 256 steps; the fast lane checks the objective in test_feature_vis
def test_what_a_concept_wants_to_see_is_the_librarys_image_along_its_direction(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_EXPLORER_CACHE", str(tmp_path))
    picture, text = concepts_tab.concept_wanted("cifar10_resnet20", "DEFAULT", "layer2.2", 6, 1, progress=quietly)
    model = app_state.models().get("cifar10_resnet20", "cifar10_resnet20.akamaster").model
    dictionary = learn_concepts(model, "layer2.2", open_source("cifar10"), k=6)
    expected = visualize_direction(model, "layer2.2", dictionary.components[1].tolist())
    shown = np.asarray(Image.open(picture))
    assert np.array_equal(shown[::7, ::7], np.asarray(expected.image))  # 32 px shown at 224, by whole pixels
    assert "Concept #1 of layer2.2 (6 concepts)" in text and f"**{expected.activation:.2f}**" in text


@pytest.mark.browser
def test_a_click_on_a_concept_in_the_picture_shows_it_in_full(served_app, photos):
    expect = pytest.importorskip("playwright.sync_api").expect
    from bench.browser import chromium_page, pixel_on_screen

    with chromium_page(served_app) as page:
        page.set_input_files("#photo input[type=file]", str(photos / "chelsea.png"))
        page.get_by_role("button", name="More tabs").click()
        page.get_by_role("button", name="Concepts", exact=True).click()
        page.locator("#concepts-run").click()
        expect(page.locator("#concepts-summary")).to_contain_text("mostly through", timeout=180_000)
        second = re.findall(r"#(\d+) \(", page.locator("#concepts-summary").inner_text())[1]
        cell, pad = 96, 4
        middle_of_second_row = pixel_on_screen(page, "#concepts-strip img", 300.5, pad + (cell + pad) + cell / 2)
        page.locator("#concepts-strip img").click(position=middle_of_second_row)
        expect(page.locator("#concepts-pick input")).to_have_value(second, timeout=60_000)
        expect(page.locator("#concepts-summary")).to_contain_text("mostly through", timeout=120_000)
        assert "Error" not in page.locator("body").inner_text()
