"""A trained run folder, read back: config, classes, input size, model and calibration temperature.

Predict, evaluate, export and serve all start from `load_run(run_dir)` and use `Run.inference_model()`,
so they agree on preprocessing (inside the model) and on calibration (temperature scaling fitted on the
validation split at train time; log loss punishes over-confidence).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catdog.classes import is_binary
from catdog.data.decode import RESIZE_MODES, as_size
from catdog.errors import ModelError
from catdog.model.loading import load_keras_model  # noqa: F401  (also imported from here by callers)

CONFIG_NAME = "config.json"
MODEL_NAME = "best.keras"
CALIBRATION_NAME = "calibration.json"


@dataclass
class Run:
    """Everything a trained run folder holds that inference needs."""

    run_dir: Path
    config: dict
    classes: list[str]
    image_size: tuple[int, int]  # (height, width) the model was trained at
    resize: str  # "squash" | "crop" | "pad", as in training
    model: object  # keras.Model: raw RGB 0..255 -> uncalibrated probabilities
    temperature: float = 1.0
    calibrated: bool = False  # False when the run has no calibration.json (temperature 1)
    _inference: object = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def data_dir(self) -> str | None:
        """The packed folder the run was trained on (None if unknown)."""
        return self.config.get("data")

    def inference_model(self):
        """keras.Model: float32 (N, H, W, 3) RGB 0..255 -> calibrated probabilities (N, C), also for C = 2.

        Built from the trained model's "logits" layer: probabilities = softmax(logits @ K) with a fixed
        kernel K = I / T (C > 2) or [[-1/2T, 1/2T]] (C = 2, since softmax([-z, z] / 2T) = [1 - s, s] with
        s = sigmoid(z / T)). Only built-in layers, so the model saves and exports without catdog.
        """
        if self._inference is None:
            self._inference = calibrated_model(self.model, self.num_classes, self.temperature)
        return self._inference


def calibrated_model(model, num_classes: int, temperature: float = 1.0):
    """Wrap a trained classifier (with a Dense layer named "logits") into calibrated (N, C) probabilities."""
    import keras

    if temperature <= 0 or not np.isfinite(temperature):
        raise ModelError(f"calibration temperature must be a positive number; got {temperature}")
    try:
        logits_layer = model.get_layer("logits")
    except ValueError:
        raise ModelError(f"model {model.name!r} has no layer named 'logits' (the run-folder contract requires the "
                         "Dense layer producing pre-activation logits to be named 'logits')") from None
    logits = _logits_tensor(model, logits_layer)
    units = int(logits.shape[-1])
    expected = 1 if is_binary(num_classes) else num_classes
    if units != expected:
        raise ModelError(f"layer 'logits' has {units} units but {num_classes} classes need {expected}")
    activation = getattr(logits_layer, "activation", None)
    if activation is not None and getattr(activation, "__name__", "linear") != "linear":
        raise ModelError(f"layer 'logits' applies {activation.__name__}; it must output raw logits (no activation)")
    if is_binary(num_classes):
        kernel = np.array([[-0.5, 0.5]], np.float32) / np.float32(temperature)
    else:
        kernel = np.eye(num_classes, dtype=np.float32) / np.float32(temperature)
    scale = keras.layers.Dense(num_classes, use_bias=False, trainable=False, name="calibration")
    scale.build((None, units))
    scale.set_weights([kernel])
    probs = keras.layers.Activation("softmax", name="probabilities", dtype="float32")(scale(logits))
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # keep a single-tensor call signature
    return keras.Model(inputs, probs, name=f"{model.name}_calibrated")


def _logits_tensor(model, logits_layer):
    """The "logits" output inside THIS model's graph.

    `layer.output` is the layer's first call, which for a head shared with another model (train builds
    the head alone, then reuses its layers in the classifier) belongs to the other graph; so walk back
    from the model's output through the final "probs" activation instead.
    """
    output = model.outputs[0]
    history = getattr(output, "_keras_history", None)
    if history is not None and history[0].name == "probs":
        node = history[0]._inbound_nodes[history[1]]
        candidate = node.input_tensors[0]
        producer = getattr(candidate, "_keras_history", None)
        if producer is not None and producer[0] is logits_layer:
            return candidate
    if len(logits_layer._inbound_nodes) != 1:
        raise ModelError(f"model {model.name!r}: cannot find the 'logits' layer's output in its graph "
                         "(expected the final layer 'probs' to be applied to it)")
    return logits_layer.output


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: cannot read ({e})") from e


def run_data_dir(run_dir) -> str:
    """The packed folder a run was trained on (config.json's "data"); ModelError if the run does not say."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise ModelError(f"{run_dir}: not a run folder (no {CONFIG_NAME}); pass a folder written by `catdog train`")
    data = _read_json(path).get("data")
    if not isinstance(data, str) or not data:
        raise ModelError(f"{path}: no 'data' (packed folder) recorded; pass the packed folder explicitly")
    return data


def load_run(run_dir) -> Run:
    """Read a run folder written by `catdog train`; ModelError names the folder and what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ModelError(f"{run_dir}: run folder does not exist")
    if not (run_dir / CONFIG_NAME).is_file():
        raise ModelError(f"{run_dir}: not a run folder (no {CONFIG_NAME}); pass a folder written by `catdog train`")
    model_path = run_dir / MODEL_NAME
    if not model_path.is_file():
        raise ModelError(f"{run_dir}: run folder has no model ({MODEL_NAME} missing; did training finish?)")
    config = _read_json(run_dir / CONFIG_NAME)
    classes = config.get("classes")
    if not isinstance(classes, list) or len(classes) < 2:
        raise ModelError(f"{run_dir / CONFIG_NAME}: 'classes' must list at least 2 class names; got {classes!r}")
    try:
        image_size = as_size(config["image_size"])
    except (KeyError, TypeError, ValueError):
        raise ModelError(f"{run_dir / CONFIG_NAME}: 'image_size' must be [height, width]; "
                         f"got {config.get('image_size')!r}") from None
    resize = config.get("resize", "squash")
    if resize not in RESIZE_MODES:
        raise ModelError(f"{run_dir / CONFIG_NAME}: 'resize' must be one of {', '.join(RESIZE_MODES)}; got {resize!r}")
    temperature, calibrated = 1.0, False
    if (run_dir / CALIBRATION_NAME).is_file():
        calibration = _read_json(run_dir / CALIBRATION_NAME)
        try:
            temperature, calibrated = float(calibration["temperature"]), True
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{run_dir / CALIBRATION_NAME}: needs a numeric 'temperature'") from None
        if not temperature > 0:
            raise ModelError(f"{run_dir / CALIBRATION_NAME}: temperature must be > 0; got {temperature}")
    model = load_keras_model(model_path)
    return Run(run_dir=run_dir, config=config, classes=[str(c) for c in classes], image_size=image_size,
               resize=resize, model=model, temperature=temperature, calibrated=calibrated)
