"""A real browser for the tests and benchmarks: Debian's headless Chromium driven by Playwright.

``playwright install`` cannot download its own browser everywhere (not on this project's machines), so the system
``chromium`` is used, with the flags that keep it quiet and off the network.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
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
