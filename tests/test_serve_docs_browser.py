"""catdog serve's /docs in Debian's headless Chromium with every non-loopback request blocked: Swagger UI
renders from catdog's own files, and its upload form classifies a photo (the form is open: pick a file -> Execute)."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest
from PIL import Image

from fixtures.browser import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM, ColourPredictor, serving

pytestmark = NEEDS_CHROMIUM


@pytest.fixture
def url():
    with serving(ColourPredictor()) as base:
        yield base


def test_docs_upload_form_works_offline(url, tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    photo = tmp_path / "blue.png"
    Image.new("RGB", (64, 48), (30, 60, 210)).save(photo)
    blocked = []

    def offline(route):  # the machine is "offline": only the catdog server answers
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", offline)
            page.goto(f"{url}/docs")
            block = page.locator(".opblock-post", has_text="/predict").first
            block.wait_for(timeout=20_000)  # Swagger UI rendered the spec
            block.locator(".opblock-summary").first.click()
            block.locator("input[type=file]").first.set_input_files(str(photo))
            block.locator(".execute").click()
            body = block.locator(".live-responses-table .response-col_description pre").first
            body.wait_for(timeout=20_000)
            result = json.loads(body.inner_text())
        finally:
            browser.close()
    assert blocked == []  # nothing asked for outside the server
    assert result["label"] == "dog"
    assert result["probabilities"]["dog"] == pytest.approx(210 / 240, abs=0.02)
