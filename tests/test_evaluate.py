"""catdog evaluate: exactly-once scoring, metric files, TTA, class/split checks, temperature scaling."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import log_loss

from catdog.data import load
from catdog.data import manifest as manifest_lib
from catdog.run import load_run
from fixtures.packed import build_pack
from fixtures.runs import val_logits, write_run
from fixtures.cli import invoke


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    build_pack(root / "packed", {"train": 4, "val": 11, "test": 3}, shards_per_split=3)
    run = write_run(root / "run", data=root / "packed", temperature=1.3, logit_scale=4.0)
    return root, run


def test_every_record_scored_exactly_once_with_partial_batch(env):
    root, run = env
    result = invoke("evaluate", run, "--data", root / "packed", "--batch-size", 4)  # 11 = 4 + 4 + 3
    assert result.exit_code == 0, result.output
    out = run / "eval" / "val"
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_rows(out / "predictions.csv")
    ids = [r["id"] for r in rows]
    assert metrics["num_examples"] == 11 and len(ids) == 11 and len(set(ids)) == 11
    assert set(ids) == {f"{c}.{i}" for i, c in zip(range(1, 12), ["cat", "dog"] * 6)}
    assert ids == sorted(ids, key=lambda s: (s.split(".")[0], int(s.split(".")[1])))
    assert np.sum(metrics["confusion_matrix"]) == 11
    # the metrics are those of the written predictions
    labels = np.array([["cat", "dog"].index(r["label"]) for r in rows])
    probs = np.array([[float(r["cat"]), float(r["dog"])] for r in rows])
    probs /= probs.sum(axis=1, keepdims=True)  # undo the 8-digit rounding of the CSV
    assert metrics["accuracy"] == pytest.approx(float(np.mean(probs.argmax(1) == labels)))
    assert metrics["log_loss"] == pytest.approx(log_loss(labels, probs, labels=[0, 1]), rel=1e-6)
    assert set(metrics["per_class"]) == {"cat", "dog"} and metrics["per_class"]["dog"]["support"] == 5
    assert metrics["roc_auc"] is not None and 0.0 <= metrics["roc_auc"] <= 1.0
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "mistakes.html").read_text()
    mistakes = int(np.sum(probs.argmax(1) != labels))
    assert page.count("<figure>") == mistakes and (mistakes == 0 or "data:image/png;base64," in page)
    assert "accuracy" in result.output and "log loss" in result.output


def test_tta_flip_averages_plain_and_mirrored_views(env):
    root, run = env
    result = invoke("evaluate", run, "--data", root / "packed", "--tta", "flip", "--batch-size", 5)
    assert result.exit_code == 0, result.output
    rows = read_rows(run / "eval" / "val-tta-flip" / "predictions.csv")
    r = load_run(run)
    model = r.inference_model()
    expected = {}
    for batch in load(str(root / "packed"), "val", r.image_size, batch_size=16, with_ids=True):
        p = (model(batch["image"]).numpy() + model(tf.image.flip_left_right(batch["image"])).numpy()) / 2
        expected.update({i.decode(): row for i, row in zip(batch["id"].numpy(), p)})
    assert len(rows) == len(expected) == 11
    for row in rows:
        np.testing.assert_allclose([float(row["cat"]), float(row["dog"])], expected[row["id"]], atol=1e-6)
    assert json.loads((run / "eval" / "val-tta-flip" / "metrics.json").read_text())["tta"] == "flip"


def test_count_mismatch_with_manifest_fails_loudly(env, tmp_path):
    root, run = env
    bad = tmp_path / "packed"
    bad.mkdir()
    for f in (root / "packed").iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    manifest = manifest_lib.read_manifest(str(bad))
    val = manifest["splits"]["val"]  # a record gone from a shard: the manifest agrees with itself, not the shard
    val["num_examples"] += 1
    val["shards"][0]["num_examples"] += 1
    val["class_counts"][manifest["classes"][0]] += 1
    manifest_lib.write_manifest(str(bad), manifest)
    result = invoke("evaluate", run, "--data", bad)
    assert result.exit_code == 1
    assert "does not match its manifest" in result.output


def test_classes_must_match_the_model(env, tmp_path):
    _, run = env
    build_pack(tmp_path / "other", {"val": 4}, classes=("bird", "fish"))
    result = invoke("evaluate", run, "--data", tmp_path / "other")
    assert result.exit_code == 1
    assert "classes ['bird', 'fish'] differ from the model's ['cat', 'dog']" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unlabeled_test_split_is_refused_with_a_hint(env):
    root, run = env
    result = invoke("evaluate", run, "--data", root / "packed", "--split", "test")
    assert result.exit_code == 1
    assert "unlabeled" in result.output and "catdog predict" in result.output


def test_temperature_scaling_lowers_log_loss_of_an_overconfident_model(env, tmp_path):
    from catdog.calibrate import fit_temperature

    root, _ = env
    raw = write_run(tmp_path / "raw", data=root / "packed", logit_scale=60.0, seed=3)  # no calibration.json: T = 1
    logits, labels = val_logits(raw, root / "packed")
    temperature = fit_temperature(logits, labels)
    assert temperature > 1.0  # over-confident -> softened
    calibrated = write_run(tmp_path / "calibrated", data=root / "packed", temperature=temperature,
                           model=load_run(raw).model)
    losses = []
    for run in (raw, calibrated):
        assert invoke("evaluate", run, "--data", root / "packed").exit_code == 0
        losses.append(json.loads((run / "eval" / "val" / "metrics.json").read_text())["log_loss"])
    assert losses[1] < losses[0]
    # same predicted classes, only the confidence changed
    preds = [[r["predicted"] for r in read_rows(run / "eval" / "val" / "predictions.csv")] for run in (raw, calibrated)]
    assert preds[0] == preds[1]


def test_cli_split_choices_are_the_manifest_splits():
    """The CLI keeps its own Enum (it must not import TensorFlow to build --help); it must list SPLITS exactly."""
    from catdog.cli.evaluate import Split
    from catdog.data.manifest import SPLITS

    assert tuple(s.value for s in Split) == SPLITS
