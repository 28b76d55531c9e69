"""Build a run folder as `catdog.run.load_run` reads it (README, `catdog train`), independent of `catdog train`:
config.json, best.keras (Input -> Rescaling -> Conv -> Flatten -> Dense "logits" -> Activation "probs")
and optionally calibration.json. The conv + flatten make the model sensitive to mirroring (for TTA tests).
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np


def build_model(num_classes: int = 2, image_size=(32, 32), seed: int = 0, logit_scale: float = 1.0) -> keras.Model:
    """A tiny classifier with random (seeded) weights; `logit_scale` > 1 makes it over-confident."""
    h, w = image_size
    units = 1 if num_classes == 2 else num_classes
    inputs = keras.Input((h, w, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu",
                            kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(x)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(units, name="logits",
                                kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1))(x)
    probs = keras.layers.Activation("sigmoid" if num_classes == 2 else "softmax", name="probs")(logits)
    model = keras.Model(inputs, probs, name="tiny")
    if logit_scale != 1.0:
        layer = model.get_layer("logits")
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * logit_scale, bias])
    return model


def write_run(run_dir: Path, classes=("cat", "dog"), image_size=(32, 32), *, resize: str = "squash",
              data: str | Path | None = None, temperature: float | None = None, model: keras.Model | None = None,
              seed: int = 0, logit_scale: float = 1.0) -> Path:
    """Write a run folder; returns its path. `temperature=None` writes no calibration.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model = model or build_model(len(classes), image_size, seed=seed, logit_scale=logit_scale)
    model.save(run_dir / "best.keras")
    config = {
        "catdog_version": "test", "tensorflow_version": "test", "keras_version": keras.__version__,
        "seed": seed, "data": str(data) if data is not None else None, "manifest_fingerprint": "fixture",
        "classes": list(classes), "backbone": "tiny-test", "weights": None,
        "image_size": list(image_size), "resize": resize,
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    if temperature is not None:
        (run_dir / "calibration.json").write_text(json.dumps(
            {"temperature": float(temperature), "val_log_loss_before": float("nan"), "val_log_loss_after": float("nan")}))
    return run_dir


def val_logits(run_dir: Path, packed: Path, split: str = "val") -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of a packed split under the run's model (for fitting a temperature in tests)."""
    from catdog.data import load
    from catdog.run import load_run

    run = load_run(run_dir)
    logits_model = keras.Model(run.model.inputs, run.model.get_layer("logits").output)
    logits, labels = [], []
    for images, y in load(str(packed), split, run.image_size, batch_size=16, resize=run.resize):
        logits.append(logits_model(images, training=False).numpy())
        labels.append(y.numpy())
    return np.concatenate(logits), np.concatenate(labels)
