"""catdog serve: the HTTP API through FastAPI's TestClient, with a fake predictor (no model needed)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from catdog.errors import ConfigError
from catdog.serve import DynamicBatcher, create_app
from catdog.sizes import parse_size


class FakePredictor:
    """P(dog) = blue / (red + blue) of the mean colour; records every batch size it is given."""

    classes = ["cat", "dog"]
    image_size = (32, 32)
    resize = "squash"
    name = "fake-lite0"
    info = {"backbone": "fake-net", "version": "20250101-120000", "metrics": {"val_accuracy": 0.93},
            "format": "keras", "source": np.str_("runs/fake")}

    def __init__(self, delay: float = 0.0, fail_first: bool = False):
        self.delay = delay
        self.fail_next = fail_first  # raise once, on the next call
        self.batch_sizes: list[int] = []
        self.shapes: list[tuple[int, ...]] = []

    def predict_images(self, images: np.ndarray) -> np.ndarray:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("out of memory (simulated)")
        self.batch_sizes.append(len(images))
        self.shapes.append(images.shape)
        time.sleep(self.delay)
        red = images[..., 0].mean(axis=(1, 2))
        blue = images[..., 2].mean(axis=(1, 2))
        p = blue / (red + blue + 1e-9)
        return np.stack([1 - p, p], axis=1)


def encode(color=(40, 60, 200), size=(48, 40), fmt="PNG") -> bytes:
    """A solid-colour image: lossless PNG keeps the colour exact through decode + resize."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a token IDAT: nothing to decode, only a header to read."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def p_dog(color) -> float:
    r, _, b = color
    return b / (r + b)


@pytest.fixture
def fake():
    return FakePredictor()


@contextmanager
def started(app, fake):
    """Run the app's lifespan (which warms the model up once), then forget the warm-up batch."""
    with TestClient(app) as client:
        assert fake.batch_sizes == [1]  # the start-up warm-up call
        fake.batch_sizes.clear()
        fake.shapes.clear()
        yield client


@pytest.fixture
def client(fake):
    with started(create_app(fake, max_bytes=64 * 1024, max_pixels=4_000_000), fake) as c:
        yield c


def test_predict_multipart_good_image(client, fake):
    r = client.post("/predict", files={"file": ("blue.png", encode((40, 60, 200)), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] == "dog"
    assert set(body["probabilities"]) == {"cat", "dog"}
    assert body["probabilities"]["dog"] == pytest.approx(p_dog((40, 60, 200)), abs=1e-3)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["model"] == {"name": "fake-lite0", "version": "20250101-120000"}
    assert body["latency_ms"] > 0
    assert body["filename"] == "blue.png"
    assert fake.shapes == [(1, 32, 32, 3)]  # decoded + resized to the model's input by the shared decoder


def test_predict_raw_body_jpeg(client):
    r = client.post("/predict", content=encode((220, 60, 30), fmt="JPEG"), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "cat"
    assert "filename" not in r.json()


def test_batch_with_one_bad_file(client, fake):
    files = [
        ("files", ("a.png", encode((40, 60, 200)), "image/png")),
        ("files", ("notes.txt", b"hello, not an image", "text/plain")),
        ("files", ("c.jpg", encode((220, 60, 30), fmt="JPEG"), "image/jpeg")),
    ]
    r = client.post("/predict/batch", files=files)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["filename"] for x in results] == ["a.png", "notes.txt", "c.jpg"]
    assert results[0]["label"] == "dog" and results[2]["label"] == "cat"
    assert results[1]["status"] == 415 and "not an image" in results[1]["error"]
    assert "label" not in results[1]
    assert sum(fake.batch_sizes) == 2  # the bad file never reached the model


def test_oversized_upload_413_then_keeps_serving(client):
    big = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG")
    data = buffer.getvalue()
    assert len(data) > 64 * 1024

    r = client.post("/predict", files={"file": ("big.png", data, "image/png")})  # Content-Length says too much
    assert r.status_code == 413 and "limit" in r.json()["error"]
    r = client.post("/predict", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 413

    def chunks():  # no Content-Length: the server must count the bytes itself
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    r = client.post("/predict", content=chunks(), headers={"content-type": "image/png"})
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]
    r = client.post("/predict/batch", files=[("files", ("ok.png", encode(), "image/png")),
                                            ("files", ("big.png", data, "image/png"))])
    assert r.status_code == 200
    assert [x.get("status") for x in r.json()["results"]] == [None, 413]

    assert client.post("/predict", files={"file": ("ok.png", encode(), "image/png")}).status_code == 200


def test_non_image_and_undecodable(client):
    r = client.post("/predict", files={"file": ("x.txt", b"just text", "text/plain")})
    assert r.status_code == 415 and "not an image" in r.json()["error"]
    r = client.post("/predict", content=b"", headers={"content-type": "image/png"})
    assert r.status_code == 400 and "empty" in r.json()["error"]
    tiff = encode(fmt="TIFF")
    r = client.post("/predict", content=tiff, headers={"content-type": "image/tiff"})
    assert r.status_code == 415 and "TIFF" in r.json()["error"]
    noise = np.random.default_rng(0).integers(0, 255, (160, 200, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="JPEG")
    jpeg = buffer.getvalue()  # header intact, scan data cut in half
    r = client.post("/predict", files={"file": ("cut.jpg", jpeg[: len(jpeg) // 2], "image/jpeg")})
    assert r.status_code == 400 and "cannot decode" in r.json()["error"]
    assert client.post("/predict", content=encode(), headers={"content-type": "image/png"}).status_code == 200


def test_absurd_dimensions_refused_before_decoding(client, fake):
    r = client.post("/predict", files={"file": ("huge.png", png_header(30000, 30000), "image/png")})
    assert r.status_code == 422 and "4,000,000 pixels" in r.json()["error"]
    r = client.post("/predict", content=png_header(3000, 2000), headers={"content-type": "image/png"})  # 6 MP > 4 MP
    assert r.status_code == 422 and "3000x2000" in r.json()["error"]
    assert fake.batch_sizes == []
    assert client.post("/predict", content=encode(), headers={"content-type": "image/png"}).status_code == 200


def test_multipart_without_file_field(client):
    r = client.post("/predict", files={"image": ("a.png", encode(), "image/png")})
    assert r.status_code == 400 and "'file'" in r.json()["error"]
    r = client.post("/predict/batch", content=encode(), headers={"content-type": "image/png"})
    assert r.status_code == 415


def test_concurrent_requests_are_batched_and_answered_in_order():
    """12 concurrent requests, max_batch 12 and a wait far longer than any test: the batch runs exactly when
    the 12th request arrives, however slowly the threads start, so the result does not depend on timing."""
    fake = FakePredictor(delay=0.05)
    colors = [(250 - 15 * i, 60, 10 + 15 * i) for i in range(12)]
    with started(create_app(fake, max_batch=len(colors), batch_wait_ms=600_000), fake) as client:

        def post(color):
            return client.post("/predict", files={"file": (f"{color}.png", encode(color), "image/png")})

        with ThreadPoolExecutor(len(colors)) as pool:
            responses = list(pool.map(post, colors))
        health = client.get("/health").json()
    assert all(r.status_code == 200 for r in responses)
    for color, r in zip(colors, responses):
        assert r.json()["probabilities"]["dog"] == pytest.approx(p_dog(color), abs=1e-3), color
    assert fake.batch_sizes == [len(colors)]
    assert health["batches"] == {str(len(colors)): 1}


def test_batcher_runs_requests_queued_before_it_starts_as_one_batch():
    """Every request is queued before the collector first runs (one event-loop turn): one batch, in order."""
    sizes = []

    def double(x):
        sizes.append(len(x))
        return x * 2

    async def main():
        batcher = DynamicBatcher(double, max_batch=8, wait_ms=600_000)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(np.full((2,), i, np.float32)) for i in range(8)))
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert [float(r[0]) for r in results] == [2.0 * i for i in range(8)]
    assert sizes == [8]


def test_batcher_splits_at_max_batch_and_keeps_order():
    sizes = []

    def double(x):
        sizes.append(len(x))
        return x * 2

    async def main():
        batcher = DynamicBatcher(double, max_batch=4, wait_ms=1)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(np.full((2,), i, np.float32)) for i in range(10)))
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert [float(r[0]) for r in results] == [2.0 * i for i in range(10)]
    assert sizes == [4, 4, 2]


def test_model_failure_is_500_and_server_recovers():
    fake = FakePredictor()
    with started(create_app(fake), fake) as client:
        fake.fail_next = True
        r = client.post("/predict", content=encode(), headers={"content-type": "image/png"})
        assert r.status_code == 500 and "out of memory" in r.json()["error"]
        assert client.post("/predict", content=encode(), headers={"content-type": "image/png"}).status_code == 200


def test_broken_model_stops_start_up():
    with pytest.raises(RuntimeError, match="out of memory"):
        with TestClient(create_app(FakePredictor(fail_first=True))):
            pass


def test_health_model_and_page(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model"]["name"] == "fake-lite0"
    info = client.get("/model").json()
    assert info["classes"] == ["cat", "dog"]
    assert info["backbone"] == "fake-net"
    assert info["image_size"] == [32, 32] and info["resize"] == "squash"
    assert info["metrics"] == {"val_accuracy": 0.93}
    assert info["source"] == "runs/fake"
    assert info["limits"]["max_bytes"] == 64 * 1024 and info["limits"]["max_pixels"] == 4_000_000
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="file-input"' in page.text


def test_bad_config_and_sizes():
    size = lambda text: parse_size(text, "--max-bytes")  # noqa: E731
    assert size("10MB") == 10 * 2**20
    assert size("512KB") == 512 * 1024
    assert size("1048576") == 2**20
    assert size("1.5 MiB") == 3 * 2**19
    with pytest.raises(ConfigError, match="--max-bytes"):
        size("ten megs")
    with pytest.raises(ConfigError, match="max_batch"):
        create_app(FakePredictor(), max_batch=0)


def test_cli_wiring(tmp_path, monkeypatch):
    """`catdog serve MODEL ...` binds the port, loads the predictor and hands the server an app with those limits."""
    from typer.testing import CliRunner

    import catdog.cli

    catdog.cli._register_commands()
    loaded, calls = [], []
    import catdog.predictors
    import catdog.serve

    monkeypatch.setattr(catdog.predictors, "load_predictor", lambda path, runtime: loaded.append((path, runtime)) or FakePredictor())
    monkeypatch.setattr(catdog.serve, "run_app", lambda app, sock, **kwargs: calls.append((app, sock.getsockname(), kwargs)))

    # Typer runs a lone command without its name; once the other command modules exist, `serve` is a subcommand.
    serve = ["serve"] if len(catdog.cli.app.registered_commands) > 1 else []
    result = CliRunner().invoke(catdog.cli.app, [*serve, str(tmp_path), "--port", "0", "--max-bytes", "2MB",
                                                 "--max-batch", "4", "--batch-wait-ms", "2", "--header-timeout", "3"])
    assert result.exit_code == 0, result.output
    assert [(str(p), r) for p, r in loaded] == [(str(tmp_path), "auto")]  # auto: LiteRT on a CPU, TF on a GPU
    (app, (host, port), kwargs), = calls
    assert host == "127.0.0.1" and port > 0  # bound before the model was loaded
    assert kwargs["header_timeout"] == 3 and kwargs["body_timeout"] == 30 and kwargs["max_connections"] == 256
    with TestClient(app) as client:
        limits = client.get("/model").json()["limits"]
    assert limits["max_bytes"] == 2 * 2**20 and limits["max_batch"] == 4 and limits["batch_wait_ms"] == 2

    result = CliRunner().invoke(catdog.cli.app, [*serve, str(tmp_path), "--max-bytes", "lots"])
    assert result.exit_code == 1
    assert "error: --max-bytes" in result.output


def test_model_version_falls_back_to_a_fingerprint_of_the_model_files(tmp_path):
    from catdog.serve.app import model_version

    run = tmp_path / "run"
    run.mkdir()
    (run / "best.keras").write_bytes(b"weights v1")
    (run / "metrics.csv").write_text("epoch\n1\n")
    predictor = FakePredictor()
    predictor.source = str(run)
    first = model_version(predictor, {})
    assert first == hashlib.sha256(b"best.keras" + b"weights v1").hexdigest()[:12]  # the model file's name + bytes
    (run / "metrics.csv").write_text("epoch\n1\n2\n")  # not part of the model
    assert model_version(predictor, {}) == first
    (run / "best.keras").write_bytes(b"weights v2")
    assert model_version(predictor, {}) != first
    assert model_version(predictor, {"version": "7"}) == "7"
    assert model_version(FakePredictor(), {}) is None
