"""`catdog train` wiring: a small-cnn run end to end, and bad input as one line + exit code 1."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import catdog.cli
from catdog.cli import app
from fixtures.packed import build_pack

catdog.cli._register_commands()
runner = CliRunner()


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "packed"
    build_pack(out, {"train": 12, "val": 6})
    return out


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_small_cnn_from_scratch_end_to_end_then_resume_with_other_options_fails(packed, tmp_path):
    args = ["train", str(packed), "--backbone", "small-cnn", "--image-size", "32", "--epochs", "1",
            "--batch-size", "6", "--runs-dir", str(tmp_path / "runs"), "--name", "cli", "--no-flip", "--seed", "7"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "cli"
    assert "best val accuracy" in result.output and str(run_dir) in result.output
    config = json.loads((run_dir / "config.json").read_text())
    assert config["backbone"] == "small-cnn" and config["weights"] == "none" and config["seed"] == 7
    assert config["flip"] is False and config["image_size"] == [32, 32]
    assert json.loads((run_dir / "summary.json").read_text())["phase1_mode"] == "scratch"
    # the same name again: refuse rather than overwrite
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "run folder exists" in _error_line(again)
    # resuming with a different option: one line naming the difference
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--lr", "0.5"])
    assert result.exit_code == 1
    assert "differs" in _error_line(result) and "lr=0.5" in _error_line(result)


@pytest.mark.parametrize("extra,message", [
    (["--backbone", "resnet9000"], "unknown backbone 'resnet9000'; valid: convnext_tiny"),
    (["--backbone", "vgg16", "--weights", "none", "--image-size", "16"], "too small for backbone vgg16 (min 32)"),
    (["--unfreeze", "lots"], "--unfreeze must be a layer count"),
])
def test_bad_options_are_one_line_errors(packed, tmp_path, extra, message):
    result = runner.invoke(app, ["train", str(packed), "--runs-dir", str(tmp_path), *extra])
    assert result.exit_code == 1
    assert message in _error_line(result)


def test_packed_folder_without_val_split(tmp_path):
    build_pack(tmp_path / "noval", {"train": 6})
    result = runner.invoke(app, ["train", str(tmp_path / "noval"), "--backbone", "small-cnn",
                                 "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1
    assert "has no 'val' split" in _error_line(result)
    assert not (tmp_path / "runs").exists()  # nothing written for a run that cannot start


def test_an_unlabeled_pack_is_refused_with_what_to_pack_instead(tmp_path):
    build_pack(tmp_path / "unlabeled", {"test": 6})
    result = runner.invoke(app, ["train", str(tmp_path / "unlabeled"), "--backbone", "small-cnn",
                                 "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1
    assert "no labeled training images" in _error_line(result) and "--val-fraction" not in _error_line(result)
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    result = runner.invoke(app, ["train", "--resume", str(tmp_path)])
    assert result.exit_code == 1 and "not a catdog run folder" in _error_line(result)


def test_list_backbones():
    result = runner.invoke(app, ["train", "--list-backbones"])
    assert result.exit_code == 0
    assert "efficientnetv2b0" in result.output and "small-cnn" in result.output
