"""catdog serve end to end: a real uvicorn server on loopback and Debian's headless Chromium driven by Playwright.

Playwright never downloads a browser here: it launches /usr/bin/chromium, and the test skips where that is
absent (a user's machine; .ci/run installs it).
"""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from fixtures.browser import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM, ColourPredictor, serving

pytestmark = NEEDS_CHROMIUM


@pytest.fixture
def server():
    """A real uvicorn server on a free loopback port; yields (url, predictor)."""
    predictor = ColourPredictor()
    with serving(predictor) as url:
        yield f"{url}/", predictor


def test_page_shows_label_for_uploaded_photo_and_rejects_non_image(server, tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

    url, predictor = server
    photo = tmp_path / "blue-dog.jpg"
    Image.new("RGB", (64, 48), (30, 60, 210)).save(photo, format="JPEG", quality=95)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("document.getElementById('limits').textContent.length > 0", timeout=15_000)
            assert "colour-test" in page.inner_text("#model")

            page.set_input_files("#file-input", [str(photo), str(notes)])
            page.wait_for_selector(".card[data-state=done]", timeout=15_000)
            page.wait_for_selector(".card[data-state=error]", timeout=15_000)

            done = page.locator(".card[data-state=done]")
            assert done.locator(".name").inner_text() == "blue-dog.jpg"
            assert done.locator(".label").inner_text() == "dog"
            dog_bar = done.locator(".row[data-class=dog] .bar")
            assert float(dog_bar.get_attribute("aria-valuenow")) == pytest.approx(210 / 240, abs=0.03)
            assert page.locator(".card[data-state=done] .row").count() == 2

            rejected = page.locator(".card[data-state=error]")
            assert rejected.locator(".name").inner_text() == "notes.txt"
            message = rejected.locator(".message").inner_text()
            assert "not an image" in message and "415" in message
            assert "1 classified, 1 rejected" in page.inner_text("#summary")
        finally:
            browser.close()
    assert predictor.seen == 1 + 1  # the start-up warm-up, then the photo


class ThreeClassPredictor(ColourPredictor):
    """Three classes and a non-square, padded model input: the page must show all three bars and the
    model input itself (upright, padded), not the browser's own thumbnail."""

    classes = ["bird", "cat", "dog"]
    image_size = (32, 48)
    resize = "pad"

    def predict_images(self, images: np.ndarray) -> np.ndarray:
        self.seen += len(images)
        return np.tile([[0.2, 0.3, 0.5]], (len(images), 1))


def test_page_shows_every_class_and_the_upright_model_input(tmp_path):
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    from fixtures.photos import blocky, jpeg

    photo = tmp_path / "turned.jpg"
    photo.write_bytes(jpeg(blocky(64, 96), 6))  # stored 96x64 portrait, upright 64x96 landscape
    with serving(ThreeClassPredictor()) as url:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{url}/")
                page.wait_for_function("document.getElementById('limits').textContent.length > 0", timeout=15_000)
                page.set_input_files("#file-input", [str(photo)])
                page.wait_for_selector(".card[data-state=done] img.model-input", timeout=15_000)
                card = page.locator(".card[data-state=done]")
                assert card.locator(".row").count() == 3
                assert [card.locator(".row").nth(k).get_attribute("data-class") for k in range(3)] == ["dog", "cat", "bird"]
                size = page.eval_on_selector("img.model-input", "i => [i.naturalWidth, i.naturalHeight]")
                assert size == [48, 32]  # the model's input, as the model gets it
                assert card.locator(".seen").inner_text() == "model input: 48×32, pad"
                # upright 96x64 (3:2) padded into 48x32 (3:2) fills it: no black bars; sideways would leave bars
                corners = page.evaluate("""() => { const i = document.querySelector('img.model-input');
                    const c = document.createElement('canvas'); c.width = 48; c.height = 32;
                    const g = c.getContext('2d'); g.drawImage(i, 0, 0);
                    return Math.max(...g.getImageData(1, 16, 1, 1).data.slice(0, 3)); }""")
                assert corners > 8  # a pixel of the photo, not a black padding bar
            finally:
                browser.close()
