"""catdog demo end to end (generate -> pack -> train small-cnn -> evaluate -> predict -> export), small settings."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

import catdog.cli
from catdog.synthetic import CLASSES, draw, make_kaggle_folder

catdog.cli._register_commands()


def test_synthetic_set_is_kaggle_layout_and_deterministic(tmp_path):
    a = make_kaggle_folder(tmp_path / "a", per_class=3, test=4, size=(32, 32), seed=1)
    b = make_kaggle_folder(tmp_path / "b", per_class=3, test=4, size=(32, 32), seed=1)
    names = sorted(p.name for p in (a / "train").iterdir())
    assert names == sorted(f"{c}.{i}.jpg" for c in CLASSES for i in (1, 2, 3))
    assert sorted(p.name for p in (a / "test1").iterdir()) == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]
    assert all((a / "train" / n).read_bytes() == (b / "train" / n).read_bytes() for n in names)
    with pytest.raises(ValueError, match="shape must be one of"):
        draw("triangle")


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(catdog.cli.app, ["demo", "--out", str(out), "--per-class", "24", "--test", "7",
                                                 "--epochs", "2", "--image-size", "32"])
    assert result.exit_code == 0, result.output
    runs = list((out / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "best.keras").is_file()
    metrics = json.loads((runs[0] / "eval" / "val" / "metrics.json").read_text())
    manifest = json.loads((out / "packed" / "manifest.json").read_text())
    assert metrics["num_examples"] == manifest["splits"]["val"]["num_examples"] > 0
    rows = list(csv.reader(open(out / "submission.csv")))
    assert rows[0] == ["id", "label"] and [r[0] for r in rows[1:]] == [str(i) for i in range(1, 8)]
    assert (out / "export" / "savedmodel" / "1" / "saved_model.pb").is_file()
    assert (out / "export" / "tflite" / "model.tflite").is_file()
    for line in ("submission", "SavedModel", "TFLite", "validation accuracy"):
        assert line in result.output


def test_demo_with_its_defaults_learns_the_shapes(tmp_path):
    """The README's first command, as a new user runs it: the demo's model must tell circles from squares
    (a change of the training defaults once left small-cnn near chance, 0.58, while every file was written)."""
    out = tmp_path / "demo"
    result = CliRunner().invoke(catdog.cli.app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (run,) = list((out / "runs").iterdir())
    metrics = json.loads((run / "eval" / "val" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9, metrics
