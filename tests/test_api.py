"""The notebook API: catdog.pack / train / evaluate / predict / export end to end on generated images.

Small: 2 x 16 generated 64x64 images, small-cnn from scratch, 2 epochs.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest

import catdog
from catdog.errors import ConfigError
from catdog.synthetic import CLASSES, make_kaggle_folder


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("api")
    images = make_kaggle_folder(work / "images", per_class=16, test=5, size=(64, 64), seed=3)
    manifest = catdog.pack([images / "train", images / "test1"], work / "packed", workers=1, progress=False)
    run = catdog.train(work / "packed", backbone="small-cnn", weights="none", image_size=64, epochs=2,
                       batch_size=8, runs_dir=work / "runs", cache_dir=work / "cache", name="api")
    return {"work": work, "images": images, "manifest": manifest, "run": run}


def test_pack_returns_the_manifest(flow):
    manifest = flow["manifest"]
    assert manifest["classes"] == sorted(CLASSES)
    assert manifest["splits"]["train"]["num_examples"] + manifest["splits"]["val"]["num_examples"] == 32
    assert manifest["splits"]["test"]["num_examples"] == 5
    assert json.loads((flow["work"] / "packed" / "manifest.json").read_text())["classes"] == manifest["classes"]


def test_train_returns_the_run_folder_with_the_options_given(flow):
    run = flow["run"]
    assert run == flow["work"] / "runs" / "api" and (run / "best.keras").is_file()
    config = json.loads((run / "config.json").read_text())
    assert (config["backbone"], config["weights"], config["image_size"], config["epochs"], config["batch_size"]) == (
        "small-cnn", "none", [64, 64], 2, 8)
    assert config["data"] == str((flow["work"] / "packed").resolve())
    assert json.loads((run / "state.json").read_text())["phase1"]["epochs_done"] == 2


def test_evaluate_defaults_to_the_runs_pack(flow):
    metrics = catdog.evaluate(flow["run"], progress=False)
    assert metrics["num_examples"] == flow["manifest"]["splits"]["val"]["num_examples"]
    assert metrics["split"] == "val" and metrics["data"] == str((flow["work"] / "packed").resolve())
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["log_loss"] > 0
    stored = json.loads((flow["run"] / "eval" / "val" / "metrics.json").read_text())
    assert stored["accuracy"] == metrics["accuracy"]


def test_predict_in_memory_is_one_row_per_image(flow):
    train_dir = flow["images"] / "train"
    files = [train_dir / "square.2.jpg", train_dir / "circle.1.jpg"]
    preds = catdog.predict(flow["run"], files)
    assert list(preds.columns) == ["id", "circle", "square", "predicted"]
    assert list(preds["id"]) == ["circle.1", "square.2"]  # sorted by id, like the submission CSV
    probs = preds[["circle", "square"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert list(preds["predicted"]) == [["circle", "square"][i] for i in probs.argmax(axis=1)]
    # a packed folder's test split: every id once, the same probabilities as `catdog predict`'s CSV
    from catdog.prediction import predict as predict_to_csv

    test = catdog.predict(flow["run"], flow["work"] / "packed")
    assert list(test["id"]) == ["1", "2", "3", "4", "5"]
    csv_path = flow["work"] / "submission.csv"
    predict_to_csv(flow["run"], [flow["work"] / "packed"], csv_path, progress=False)
    rows = [line.split(",") for line in csv_path.read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == list(test["id"])
    np.testing.assert_allclose([float(r[1]) for r in rows], test["square"], atol=1e-6)


def test_predict_names_an_unreadable_image_or_skips_it(flow):
    from catdog.errors import DataError

    broken = flow["work"] / "broken.jpg"
    broken.write_bytes(b"not an image")
    good = flow["images"] / "train" / "circle.3.jpg"
    with pytest.raises(DataError, match=r"1 of 2 images could not be read: \S*broken\.jpg \(not an image"):
        catdog.predict(flow["run"], [good, broken])
    assert list(catdog.predict(flow["run"], [good, broken], skip_bad=True)["id"]) == ["circle.3"]


def test_export_writes_a_parity_checked_savedmodel(flow):
    result = catdog.export(flow["run"], "savedmodel", flow["work"] / "exported")
    assert result.path == flow["work"] / "exported" / "1" and (result.path / "saved_model.pb").is_file()
    assert result.max_abs_diff <= 1e-5


def test_functions_survive_submodule_imports():
    """`import catdog.x` sets catdog.x: no submodule may carry the name of an API function."""
    for name in ("catdog.training", "catdog.evaluation", "catdog.exporting", "catdog.prediction",
                 "catdog.predictors", "catdog.data.pack"):
        importlib.import_module(name)
    for name in ("pack", "train", "evaluate", "predict", "export"):
        assert callable(getattr(catdog, name)) and getattr(catdog, name).__module__ == "catdog", name
        assert not (Path(catdog.__file__).parent / f"{name}.py").exists(), name
        assert not (Path(catdog.__file__).parent / name).is_dir(), name


def test_train_refuses_an_unknown_option(tmp_path):
    with pytest.raises(ConfigError, match="unknown train config key.*epoch"):
        catdog.train(tmp_path, epoch=2)
