"""catdog serve's /docs in Debian's headless Chromium with every non-loopback request blocked: Swagger UI
renders from catdog's own files, and its upload form classifies a photo (the form is open: pick a file -> Execute)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium)"),
]


class ColourPredictor:
    classes = ["cat", "dog"]
    image_size = (32, 32)
    resize = "squash"
    name = "colour-test"

    def predict_images(self, images: np.ndarray) -> np.ndarray:
        red, blue = images[..., 0].mean(axis=(1, 2)), images[..., 2].mean(axis=(1, 2))
        p = blue / (red + blue + 1e-9)
        return np.stack([1 - p, p], axis=1)


@pytest.fixture
def url():
    import uvicorn

    from catdog.serve import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(ColourPredictor()), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


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
