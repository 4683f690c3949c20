"""A real browser for the tests and benchmarks: Debian's headless Chromium driven by Playwright.

``playwright install`` cannot download its own browser everywhere (not on this project's machines), so the system
``chromium`` is used, with the flags that keep it quiet and off the network.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip
# A camera that needs no permission prompt; add --use-file-for-fake-video-capture=CLIP.y4m to choose what it shows.
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


@contextmanager
def chromium_page(url: str, flags: Sequence[str] = (), width: int = 1400, height: int = 1100) -> Iterator:
    """A Playwright page of headless Chromium at ``url``; the browser is closed on the way out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=shutil.which("chromium"), args=[*FLAGS, *flags])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            yield page
        finally:
            browser.close()


# Gradio's progress over an output: its status tracker shown (it carries .hide once the event is complete), its
# message, its timer, its bar.
_BUSY = "[data-testid='status-tracker']:not(.hide), .progress-text, .eta-bar, .progress-level"


def answer_to(page, selector: str, action: Callable[[], object], contains: str, timeout: float = 120_000) -> str:
    """The text the element at ``selector`` shows in answer to ``action`` (a click), once it contains ``contains``
    and shows no progress.

    The element must change after ``action`` before its text counts, and the text is read in the same step as the
    check: a wait that what was on screen before the click already satisfies (an example's answer, then Analyze on
    the same image) returns at once, and a read after such a wait lands on whatever the answer is then doing.
    """
    page.wait_for_selector(selector, state="attached", timeout=timeout)  # a page still loading has none yet
    page.evaluate(
        """selector => {
            window.__answerChanged = false;
            const changes = {subtree: true, childList: true, attributes: true, characterData: true};
            new MutationObserver(() => { window.__answerChanged = true; }).observe(
                document.querySelector(selector), changes);
        }""",
        selector,
    )
    action()
    settled = page.wait_for_function(
        """([selector, contains, busy]) => {
            const element = document.querySelector(selector);
            const text = element ? element.innerText : '';
            return window.__answerChanged && text.includes(contains) && !element.querySelector(busy) && text;
        }""",
        arg=[selector, contains, _BUSY],
        timeout=timeout,
    )
    return settled.json_value()


def pixel_on_screen(page, selector: str, x: float, y: float) -> dict[str, float]:
    """Where pixel (``x``, ``y``) of the image at ``selector`` is drawn, relative to the ``<img>`` element (for
    ``locator.click(position=...)``): the picture's own geometry under its computed ``object-fit``, whatever size
    and CSS the page gives it. Pass a pixel's centre (``x + 0.5``)."""
    return page.locator(selector).evaluate(
        """(img, [x, y]) => {
            const box = img.getBoundingClientRect(), fit = getComputedStyle(img).objectFit;
            let scale = Math.min(box.width / img.naturalWidth, box.height / img.naturalHeight);
            if (fit === 'scale-down') scale = Math.min(scale, 1);
            if (fit === 'none') scale = 1;
            const [sx, sy] = fit === 'fill' ? [box.width / img.naturalWidth, box.height / img.naturalHeight]
                                             : [scale, scale];
            return {x: (box.width - img.naturalWidth * sx) / 2 + x * sx,
                    y: (box.height - img.naturalHeight * sy) / 2 + y * sy};
        }""",
        [x, y],
    )


def open_your_model(page, checkpoint: str, recognised_as: str, labels: str | None = None, timeout: float = 120_000):
    """Open ``checkpoint`` (and its ``labels``) under Your model as a visitor does, and wait until the status line
    says it was recognised as ``recognised_as``."""
    from playwright.sync_api import expect

    page.get_by_text("Your model").click()
    page.set_input_files("#checkpoint-file input[type=file]", str(checkpoint))
    if labels is not None:
        page.set_input_files("#checkpoint-labels input[type=file]", str(labels))
    page.get_by_role("button", name="Open my model").click()
    expect(page.locator("#weights-status")).to_contain_text(f"recognised as {recognised_as}", timeout=timeout)


def upload_images(page, archive: str, unpacked: str = "Unpacked", timeout: float = 120_000) -> None:
    """Upload a zip of images in the Data set tab and wait until its status says ``unpacked``."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Data set").click()
    page.set_input_files("#dataset-zip input[type=file]", str(archive))
    expect(page.locator("#dataset-zip-status")).to_contain_text(unpacked, timeout=timeout)


def run_only(page, network: str) -> None:
    """The Data set tab's networks: every one picked taken out, then ``network`` (its label in the list) picked."""
    networks = page.locator("#dataset-networks")
    while networks.locator(".token-remove").count():
        networks.locator(".token-remove").first.click()
    networks.locator("input").click()
    page.get_by_role("option", name=network).click()
