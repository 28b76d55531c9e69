"""The models predict, evaluate, export and serve run: one `Predictor` interface, one backend per model format.

MODEL is a run folder, an exported SavedModel folder, a `.tflite` or an exported `.keras` file; each
sits behind the same small interface (classes, image_size, resize, predict_images), so every caller
(the submission CSV, evaluate, export's parity check, the HTTP server) treats all formats alike.
`load_predictor(path)` picks the backend from what the path holds.

A Keras model (a run folder, an exported .keras) runs on `catdog.runtime`: with `runtime="auto"` (what
predict, evaluate and serve pass) that is LiteRT/XNNPACK on a CPU, about twice TensorFlow's speed here,
converted once and parity-checked (a run folder keeps its converted model in RUN/litert/), and
TensorFlow on a GPU. The constructors default to "tensorflow", the reference (export's parity check).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from catdog.errors import ModelError

TTA_MODES = ("none", "flip")  # flip: average the plain and the left-right mirrored view


class Predictor(Protocol):
    """What predict, evaluate and serve need from a model, whatever its format.

    serve also accepts stand-ins without `source` and `info` (test fakes); it reads them with getattr.
    """

    classes: list[str]
    image_size: tuple[int, int]  # (height, width)
    resize: str  # "squash" | "crop" | "pad", as in training
    source: str  # the path that was loaded, for messages
    name: str  # short display name (run folder or file name)
    info: dict  # "format", "backbone", "temperature", "metrics" (a run's summary.json) where known

    def predict_images(self, images) -> np.ndarray:
        """float32 (N, H, W, 3) RGB 0..255 -> calibrated probabilities (N, C)."""


class KerasPredictor:
    """A Keras model that already outputs calibrated (N, C) probabilities (Run.inference_model()).

    runtime: "tensorflow" (the model's compiled forward pass, any batch size), "litert" or "auto" (see
    catdog.runtime); converted models are kept in `runtime_dir` (default: the user's cache folder).
    """

    def __init__(self, model, classes, image_size, resize: str, source: str = "", info: dict | None = None, *,
                 runtime: str = "tensorflow", runtime_dir=None):
        from catdog import runtime as runtimes

        self.model, self.classes, self.resize, self.source = model, list(classes), resize, source
        self.image_size = tuple(int(v) for v in image_size)
        self.name = Path(source).name if source else model.name
        self.info = dict(info or {"format": "keras"})
        self._forward = runtimes.accelerate(model, runtime_dir or runtimes.default_models_dir(), runtime=runtime,
                                            label=source or self.name)
        self.info["runtime"] = self._forward.name

    @classmethod
    def from_run(cls, run, runtime: str = "tensorflow") -> KerasPredictor:
        info = {"format": "run", "backbone": run.config.get("backbone"), "temperature": run.temperature}
        summary = run.run_dir / "summary.json"
        if summary.is_file():
            info["metrics"] = json.loads(summary.read_text())
        return cls(run.inference_model(), run.classes, run.image_size, run.resize, source=str(run.run_dir), info=info,
                   runtime=runtime, runtime_dir=run.run_dir / "litert")

    def predict_images(self, images) -> np.ndarray:
        return self._forward(images)


class SavedModelPredictor:
    """An exported SavedModel (catdog export --format savedmodel), through its float32 image signature."""

    def __init__(self, path: Path, metadata: dict):
        import tensorflow as tf

        self.source, self.name, self.info = str(path), _display_name(path), _info(metadata)
        self.classes, self.image_size, self.resize = _from_metadata(metadata)
        try:
            self._loaded = tf.saved_model.load(str(path))
            self._fn = self._loaded.signatures["images_float32"]
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"{path}: cannot load the SavedModel's 'images_float32' signature ({e})") from e

    def predict_images(self, images) -> np.ndarray:
        import tensorflow as tf

        return self._fn(images=tf.cast(images, tf.float32))["probabilities"].numpy()


class TFLitePredictor:
    """A .tflite model (catdog export --format tflite) on catdog.runtime's LiteRT interpreter; input float32
    (N, H, W, 3) 0..255."""

    def __init__(self, path: Path, metadata: dict, num_threads: int | None = None):
        from catdog.runtime import LiteRTRuntime

        self.source, self.name, self.info = str(path), path.name, _info(metadata)
        self.classes, self.image_size, self.resize = _from_metadata(metadata)
        self._forward = LiteRTRuntime(path, num_threads)
        self.info["runtime"] = "litert"

    def predict_images(self, images) -> np.ndarray:
        return self._forward(images)


def _display_name(path: Path) -> str:
    """exported/catdog/3 -> "catdog/3" (TF Serving layout: the version alone says little)."""
    return f"{path.parent.name}/{path.name}" if path.name.isdigit() else path.name


def _info(metadata: dict) -> dict:
    info = {k: metadata.get(k) for k in ("backbone", "temperature", "quantize")}
    info["format"] = metadata.get("model_format")
    return info


def _from_metadata(metadata: dict):
    return [str(c) for c in metadata["classes"]], tuple(int(v) for v in metadata["image_size"]), metadata["resize"]


def load_predictor(path, runtime: str = "tensorflow") -> Predictor:
    """A run folder, SavedModel folder (or its TF Serving base folder), .tflite or exported .keras -> Predictor.

    `runtime` (auto | tensorflow | litert) applies to Keras models (run folders, .keras); a .tflite always
    runs on LiteRT and a SavedModel on TensorFlow (forcing litert on one is an error: use its .tflite export).
    """
    from catdog import export_metadata as export
    from catdog.runtime import choose

    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model does not exist")
    if path.is_dir() and (path / "config.json").is_file():
        from catdog.run import load_run

        return KerasPredictor.from_run(load_run(path), runtime=runtime)
    if path.is_dir():
        saved = export.find_saved_model(path)
        if saved is None:
            raise ModelError(f"{path}: not a run folder (no config.json) and no SavedModel (no saved_model.pb) inside")
        if runtime == "litert":
            raise ModelError(f"{path}: a SavedModel runs on TensorFlow; for --runtime litert pass the run folder or "
                             "its `catdog export --format tflite` file")
        choose(runtime)  # still reject an unknown runtime name
        return SavedModelPredictor(saved, export.read_metadata(saved))
    if path.suffix == ".tflite":
        return TFLitePredictor(path, export.read_metadata(path))
    if path.suffix == ".keras":
        from catdog.model.loading import load_keras_model

        metadata = export.read_metadata(path)
        classes, image_size, resize = _from_metadata(metadata)
        return KerasPredictor(load_keras_model(path), classes, image_size, resize, source=str(path), info=_info(metadata),
                              runtime=runtime)
    raise ModelError(f"{path}: unknown model; pass a run folder, a SavedModel folder, a .tflite or a .keras file")


def predict_batch(predictor: Predictor, images, tta: str = "none") -> np.ndarray:
    """Probabilities of one batch, averaged with the mirrored view when tta == "flip"."""
    probs = predictor.predict_images(images)
    if tta == "flip":
        import tensorflow as tf

        probs = (probs + predictor.predict_images(tf.image.flip_left_right(images))) / 2.0
    return probs

