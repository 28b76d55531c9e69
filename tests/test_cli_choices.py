"""The CLI's Enum choices (kept in the CLI so --help needs no TensorFlow) list exactly the library's choices."""

from __future__ import annotations

from typer.testing import CliRunner

import catdog.cli
from catdog.cli import train as cli_train


def test_train_enums_equal_the_library_choices():
    from catdog.data.decode import RESIZE_MODES
    from catdog.distribute import STRATEGIES
    from catdog.training.config import CLASS_WEIGHT_MODES, MIXED_PRECISION_MODES, MONITORS, SCHEDULES

    pairs = [(cli_train.Resize, RESIZE_MODES), (cli_train.Schedule, SCHEDULES), (cli_train.Monitor, MONITORS),
             (cli_train.ClassWeights, CLASS_WEIGHT_MODES), (cli_train.MixedPrecision, MIXED_PRECISION_MODES),
             (cli_train.Strategy, STRATEGIES)]
    for enum, values in pairs:
        assert tuple(e.value for e in enum) == tuple(values), enum.__name__


def test_a_wrong_choice_is_refused_by_the_cli_with_the_valid_ones():
    catdog.cli._register_commands()
    result = CliRunner().invoke(catdog.cli.app, ["train", "packed", "--resize", "stretch"])
    assert result.exit_code == 2
    assert "stretch" in result.output and "squash" in result.output and "crop" in result.output
    result = CliRunner().invoke(catdog.cli.app, ["train", "packed", "--monitor", "val_auc"])
    assert result.exit_code == 2 and "val_auc" in result.output and "val_log_loss" in result.output
    result = CliRunner().invoke(catdog.cli.app, ["predict", "run", "x", "-o", "o.csv", "--split", "tests"])
    assert result.exit_code == 2 and "'tests'" in result.output
