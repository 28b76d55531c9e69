"""Training logs through keras.callbacks.TensorBoard, read back with TensorBoard's own event reader:
per-epoch loss curves for both phases, the learning rate, the model graph and the --profile trace."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest

from catdog.training import TrainConfig, train
from fixtures.packed import build_pack

needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard not installed (pip install 'catdog[tensorboard]')")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("tensorboard")
    build_pack(work / "packed", {"train": 16, "val": 8, "test": 2})
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, name="conv")(x)
    keras.Model(inputs, keras.layers.ReLU()(x), name="tiny").save(work / "tiny.keras")
    config = TrainConfig(data=str(work / "packed"), backbone=str(work / "tiny.keras"), image_size=32, epochs=2,
                         fine_tune_epochs=1, unfreeze=1, batch_size=8, lr=0.01, runs_dir=str(work / "runs"),
                         cache_dir=str(work / "cache"), patience=0, name="tb", profile=True)
    return train(config)


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} of every scalar in an event folder, as TensorBoard's reader sees them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    out = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    for tag in acc.Tags()["tensors"]:  # TF2 summaries are tensors; scalars are the 0-d numeric ones
        values = [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
        if values and all(v.ndim == 0 and v.dtype.kind == "f" for _, v in values):
            out[tag] = [(step, float(v)) for step, v in values]
    return out


@needs_tensorboard
def test_tensorboard_reader_sees_both_phases_loss_curves_and_learning_rate(run_dir):
    import csv

    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    for phase, epochs in ((1, 2), (2, 1)):
        train_tags = _scalars(run_dir / "tensorboard" / f"phase{phase}" / "train")
        val_tags = _scalars(run_dir / "tensorboard" / f"phase{phase}" / "validation")
        assert len(train_tags["epoch_loss"]) == epochs and len(val_tags["epoch_loss"]) == epochs
        assert len(train_tags["epoch_learning_rate"]) == epochs
        # the curves are the numbers in metrics.csv (which numbers epochs across both phases)
        expected = [float(r["val_loss"]) for r in rows if r["phase"] == str(phase)]
        got = [v for _, v in sorted(val_tags["epoch_loss"])]
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        lrs = [float(r["learning_rate"]) for r in rows if r["phase"] == str(phase)]
        np.testing.assert_allclose([v for _, v in sorted(train_tags["epoch_learning_rate"])], lrs, rtol=1e-5)


@needs_tensorboard
def test_model_graph_and_profile_trace_are_logged(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard" / "phase1" / "train"), size_guidance={"tensors": 0})
    acc.Reload()
    assert "keras" in acc.Tags()["tensors"]  # the Keras model (TensorBoard's graph dashboard, "keras" tag)
    assert list((run_dir / "tensorboard").rglob("*.xplane.pb"))  # --profile: the profiler plugin's trace


def test_without_tensorboard_training_has_a_noop_callback(monkeypatch, tmp_path):
    from catdog.training import tensorboard

    monkeypatch.setattr(tensorboard, "available", lambda: False)
    callback = tensorboard.tensorboard_callback(tmp_path, 1, profile=False, steps=4)
    assert type(callback) is keras.callbacks.Callback
    monkeypatch.setattr(tensorboard, "available", lambda: True)
    assert isinstance(tensorboard.tensorboard_callback(tmp_path, 1, profile=False, steps=4),
                      keras.callbacks.TensorBoard)
