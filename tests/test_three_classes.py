"""N classes end to end (issue 9): a 3-class tree through pack -> train (small-cnn) -> evaluate (per-class
metrics, 3x3 confusion matrix) -> predict (id, predicted, one column per class, sorted by id) -> export
(SavedModel, TFLite) -> serve (every class's probability). Small generated images, a few epochs.
The commands run with stderr captured (not a terminal), so they also show the periodic progress lines."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tensorflow as tf

from fixtures.images import make_image
from fixtures.cli import invoke as run_cli, read_csv

CLASSES = {"bird": (60, 200, 60), "cat": (200, 60, 40), "dog": (40, 60, 200)}


def invoke(*args):
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    for k, (name, colour) in enumerate(CLASSES.items()):
        for i in range(10):
            make_image(root / "src" / "train" / name / f"{i}.jpg", colour, size=(32, 32), seed=100 * k + i)
        for i in range(4):
            make_image(root / "src" / "val" / name / f"v{i}.jpg", colour, size=(32, 32), seed=100 * k + 50 + i)
    for i, colour in enumerate([*CLASSES.values(), *CLASSES.values()], start=1):
        make_image(root / "src" / "test" / f"{i}.jpg", colour, size=(32, 32), seed=900 + i)
    logs = {"pack": invoke("pack", root / "src", "--out", root / "packed", "--workers", "1").output,
            "train": invoke("train", root / "packed", "--backbone", "small-cnn", "--image-size", "32", "--epochs", "8",
                            "--patience", "0", "--batch-size", "8", "--lr", "0.01", "--runs-dir", root / "runs",
                            "--name", "three").output}  # 4 epochs from scratch ended at chance in ~1 run of 6
    return root, root / "runs" / "three", logs


LINE = r"{what}: (\d[\d,]*)/(\d[\d,]*) images \((\d+)%\), [\d,]+ images/s, (done in|\d+:\d\d:\d\d left|time left unknown)"


def progress_lines(output: str, what: str) -> list[tuple[int, int]]:
    """(done, total) of every progress line of `what` (e.g. 'check', 'phase 1 epoch 2/4') in a captured log."""
    return [(int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")))
            for m in re.finditer(LINE.format(what=re.escape(what)), output)]


def test_long_jobs_print_progress_lines_with_rate_and_time_left_when_stderr_is_not_a_terminal(trained):
    root, run, logs = trained
    assert progress_lines(logs["pack"], "check") == [(48, 48)] and progress_lines(logs["pack"], "write") == [(48, 48)]
    for epoch in range(1, 9):  # 30 training images, batch 8: 4 steps = 32 images an epoch
        assert progress_lines(logs["train"], f"phase 1 epoch {epoch}/8") == [(32, 32)], logs["train"]
    evaluated = invoke("evaluate", run, "--data", root / "packed", "--split", "val").output
    assert progress_lines(evaluated, "evaluate val") == [(12, 12)]
    predicted = invoke("predict", run, root / "packed", "-o", root / "p.csv").output
    assert progress_lines(predicted, "predict") == [(6, 6)]


def test_evaluate_reports_every_class(trained):
    root, run, _ = trained
    invoke("evaluate", run, "--data", root / "packed", "--split", "val")
    metrics = json.loads((run / "eval" / "val" / "metrics.json").read_text())
    assert metrics["classes"] == ["bird", "cat", "dog"]
    assert {c: m["support"] for c, m in metrics["per_class"].items()} == {"bird": 4, "cat": 4, "dog": 4}
    assert np.array(metrics["confusion_matrix"]).shape == (3, 3) and np.sum(metrics["confusion_matrix"]) == 12
    assert metrics["accuracy"] > 0.5  # colours are easy: chance is 1/3
    assert read_csv(run / "eval" / "val" / "predictions.csv")[0] == ["id", "label", "predicted", "bird", "cat", "dog"]


def test_predict_export_tflite_and_serve_agree_on_three_columns(trained):
    root, run, _ = trained
    out = root / "submission.csv"
    invoke("predict", run, root / "packed", "-o", out)
    rows = read_csv(out)
    assert rows[0] == ["id", "predicted", "bird", "cat", "dog"]
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(1, 7)]
    probs = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert [r[1] for r in rows[1:]] == [["bird", "cat", "dog"][k] for k in probs.argmax(axis=1)]

    invoke("export", run, "--format", "savedmodel", "--out", root / "sm")
    invoke("export", run, "--format", "tflite", "--out", root / "tfl")
    files = [(root / "src" / "test" / f"{i}.jpg").read_bytes() for i in range(1, 7)]
    saved = tf.saved_model.load(str(root / "sm" / "1")).signatures["serving_default"](image_bytes=tf.constant(files))
    np.testing.assert_allclose(saved["probabilities"].numpy(), probs, atol=1e-5)
    assert [c.decode() for c in saved["classes"].numpy()[0]] == ["bird", "cat", "dog"]
    invoke("predict", root / "tfl" / "model.tflite", root / "packed", "-o", root / "tflite.csv")
    tflite = np.array([[float(v) for v in r[2:]] for r in read_csv(root / "tflite.csv")[1:]])
    np.testing.assert_allclose(tflite, probs, atol=1e-4)

    from fastapi.testclient import TestClient

    from catdog.predictors import load_predictor
    from catdog.serve import create_app

    with TestClient(create_app(load_predictor(run))) as client:
        assert client.get("/model").json()["classes"] == ["bird", "cat", "dog"]
        body = client.post("/predict", files={"file": ("1.jpg", files[0])}).json()
    assert list(body["probabilities"]) == ["bird", "cat", "dog"]
    np.testing.assert_allclose(list(body["probabilities"].values()), probs[0], atol=1e-5)
