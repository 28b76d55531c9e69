"""HEIC/HEIF photos (issue 9): packed as a converted JPEG (recorded), predicted and served; without
pillow-heif, a one-line error says what to install."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from typer.testing import CliRunner

import catdog.cli
from catdog.data import heif, load
from catdog.data.pack import pack
from catdog.inputs import collect_inputs
from catdog.prediction import run_predictions
from fixtures.photos import blocky, heic, jpeg
from fixtures.runs import write_run

pytest.importorskip("pillow_heif")
catdog.cli._register_commands()
runner = CliRunner()
SIZE = (64, 96)


def reference(data: bytes) -> np.ndarray:
    heif.available()
    return np.asarray(Image.open(__import__("io").BytesIO(data)).convert("RGB"), np.float32)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "cat.1.heic").write_bytes(heic(blocky(*SIZE, seed=1)))
    (folder / "dog.2.HEIF").write_bytes(heic(blocky(*SIZE, seed=2)))
    for i in range(3, 7):
        (folder / f"{'cat' if i % 2 else 'dog'}.{i}.jpg").write_bytes(jpeg(blocky(*SIZE, seed=i)))
    return folder


def test_heic_is_packed_as_a_converted_jpeg_and_reads_like_the_original(photos, tmp_path):
    m = pack([str(photos)], str(tmp_path / "packed"), workers=1, progress=False)
    assert m["converted"] == {"count": 2, "by_format": {"heif": 2}}
    assert m["rejected"]["count"] == 0
    seen = {}
    for split in ("train", "val"):
        if m["splits"][split]["num_examples"]:
            for batch in load(str(tmp_path / "packed"), split, SIZE, batch_size=8, with_ids=True):
                seen.update(zip((i.decode() for i in batch["id"].numpy()), batch["image"].numpy()))
    for image_id, name in (("cat.1", "cat.1.heic"), ("dog.2", "dog.2.HEIF")):
        want = reference((photos / name).read_bytes())
        assert np.mean(np.abs(seen[image_id] - want)) < 8.0  # re-encoded once at quality 95; another picture is ~80 off


def test_heic_is_predicted_from_a_folder(photos, tmp_path):
    class Recorder:
        classes, image_size, resize, name, source, info = ["cat", "dog"], SIZE, "squash", "r", "r", {}
        images = []

        def predict_images(self, images):
            self.images.extend(np.asarray(images))
            return np.tile([[0.5, 0.5]], (len(images), 1)).astype(np.float32)

    recorder = Recorder()
    result = run_predictions(recorder, collect_inputs([str(photos / "cat.1.heic"), str(photos / "dog.2.HEIF")]),
                             progress=False)
    assert sorted(result.ids) == ["cat.1", "dog.2"] and not result.bad
    for image_id, image in zip(result.ids, recorder.images[1:]):
        name = "cat.1.heic" if image_id == "cat.1" else "dog.2.HEIF"
        assert np.mean(np.abs(image - reference((photos / name).read_bytes()))) < 8.0  # re-encoded once at quality 95; another picture is ~80 off


def test_serve_accepts_heic(photos):
    from fastapi.testclient import TestClient

    from catdog.serve import create_app

    class Half:
        classes, image_size, resize, name = ["cat", "dog"], (32, 32), "squash", "half"

        def predict_images(self, images):
            return np.tile([[0.5, 0.5]], (len(images), 1))

    with TestClient(create_app(Half())) as client:
        response = client.post("/predict", files={"file": ("cat.heic", (photos / "cat.1.heic").read_bytes())})
    assert response.status_code == 200, response.text


def test_without_pillow_heif_pack_predict_and_serve_say_what_to_install(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(heif, "available", lambda: False)
    result = runner.invoke(catdog.cli.app, ["pack", str(photos), "--out", str(tmp_path / "packed"), "--workers", "1"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"error: {photos}/cat.1.heic: HEIC/HEIF photos need the pillow-heif package: pip install pillow-heif")
    run = write_run(tmp_path / "run", image_size=(32, 32))
    result = runner.invoke(catdog.cli.app, ["predict", str(run), str(photos), "-o", str(tmp_path / "s.csv")])
    assert result.exit_code == 1 and "pip install pillow-heif" in result.output and not (tmp_path / "s.csv").exists()
    from catdog.serve.images import RejectedImage, check_header

    with pytest.raises(RejectedImage, match="pip install pillow-heif") as e:
        check_header((photos / "cat.1.heic").read_bytes(), 10**7)
    assert e.value.status == 415
