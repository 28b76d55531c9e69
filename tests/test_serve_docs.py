"""catdog serve's /docs: the upload bodies are declared in /openapi.json, and the page loads nothing from the internet."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

import io

import numpy as np
from PIL import Image

from catdog.serve import create_app


class FakePredictor:
    """P(dog) = blue / (red + blue) of the mean colour (no model needed)."""

    classes = ["cat", "dog"]
    image_size = (32, 32)
    resize = "squash"
    name = "fake"

    def predict_images(self, images):
        red, blue = images[..., 0].mean(axis=(1, 2)), images[..., 2].mean(axis=(1, 2))
        p = blue / (red + blue + 1e-9)
        return np.stack([1 - p, p], axis=1)


def encode(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), color).save(buffer, format="PNG")
    return buffer.getvalue()


def p_dog(color) -> float:
    return color[2] / (color[0] + color[2])


def test_openapi_declares_the_upload_bodies():
    with TestClient(create_app(FakePredictor())) as client:
        spec = client.get("/openapi.json").json()
    single = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert single["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    assert single["multipart/form-data"]["schema"]["required"] == ["file"]
    assert single["image/*"]["schema"]["format"] == "binary"  # the raw body stays documented
    batch = spec["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert batch["properties"]["files"]["type"] == "array"
    assert batch["properties"]["files"]["items"]["format"] == "binary"
    assert "/docs" not in spec["paths"] and "/docs/assets/{name}" not in spec["paths"]


def test_docs_page_and_its_assets_are_served_locally():
    fake = FakePredictor()
    with TestClient(create_app(fake)) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "SwaggerUIBundle" in page.text
        urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
        assert urls, page.text
        assert not [u for u in urls if re.match(r"^(https?:)?//", u)], urls  # nothing from a CDN
        for url in urls:  # every asset the page names is served here (relative to /docs)
            response = client.get("/" + url.lstrip("/"))
            assert response.status_code == 200, url
            assert len(response.content) > 0
        assert '"validatorUrl": null' in page.text  # no call to the online spec validator
        assert client.get("/docs/assets/nope.js").status_code == 404
        assert client.get("/redoc").status_code in (404, 405)  # ReDoc would load a CDN script

        # what the form sends (multipart `file`) and a raw image body both work
        color = (40, 60, 200)
        form = client.post("/predict", files={"file": ("blue.png", encode(color), "image/png")}).json()
        raw = client.post("/predict", content=encode(color), headers={"content-type": "image/png"}).json()
        assert abs(form["probabilities"]["dog"] - p_dog(color)) < 1e-3
        assert raw["probabilities"] == form["probabilities"]


def test_serve_without_the_serve_extra_names_it(tmp_path, monkeypatch):
    import importlib.util

    from typer.testing import CliRunner

    import catdog.cli

    catdog.cli._register_commands()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    result = CliRunner().invoke(catdog.cli.app, ["serve", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == "error: catdog serve needs uvicorn, which is not installed: pip install 'catdog[serve]'"
