"""The models predict, evaluate, export and serve run: one `Predictor` interface, one backend per model format.

MODEL is a run folder, an exported SavedModel folder, a `.tflite`, a `.onnx` or an exported `.keras` file; each
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
import os
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
    """A .tflite model run with the LiteRT interpreter; input float32 (N, H, W, 3) 0..255 (quantized to the
    model's input type for full-integer models). Float Keras models converted by catdog.runtime use its
    LiteRTRuntime instead; this class also handles exported int8 models."""

    def __init__(self, path: Path, metadata: dict, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        from catdog.runtime import cpu_threads

        self.source, self.name, self.info = str(path), path.name, _info(metadata)
        self.classes, self.image_size, self.resize = _from_metadata(metadata)
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads or cpu_threads())
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{path}: cannot load the TFLite model ({e})") from e
        self._in, self._out = self._interpreter.get_input_details()[0], self._interpreter.get_output_details()[0]
        self._input, self._output = self._in["index"], self._out["index"]
        self._batch = None
        self.info["runtime"] = "litert"

    def predict_images(self, images) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        dtype = self._in["dtype"]
        if dtype != np.float32:  # full-integer model (--quantize int8): quantize the 0..255 pixels as it expects
            scale, zero_point = self._in["quantization"]
            limits = np.iinfo(dtype)
            images = np.clip(np.round(images / scale + zero_point), limits.min, limits.max).astype(dtype)
        images = np.ascontiguousarray(images)
        if images.shape[0] != self._batch:  # the interpreter has static shapes: resize per batch size
            self._interpreter.resize_tensor_input(self._input, list(images.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._batch = images.shape[0]
        self._interpreter.set_tensor(self._input, images)
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output).copy()
        if out.dtype != np.float32:
            scale, zero_point = self._out["quantization"]
            out = (out.astype(np.float32) - zero_point) * scale
        return out


class OnnxPredictor:
    """A .onnx model run with ONNX Runtime on the CPU; input float32 (N, H, W, 3) 0..255."""

    def __init__(self, path: Path, metadata: dict):
        from catdog.extras import require

        require("onnx", "a .onnx model")
        import onnxruntime as ort

        self.source, self.name, self.info = str(path), path.name, _info(metadata)
        self.classes, self.image_size, self.resize = _from_metadata(metadata)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.log_severity_level = 3  # errors only
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelError(f"{path}: cannot load the ONNX model ({str(e).splitlines()[0]})") from e
        self._input = self._session.get_inputs()[0].name

    def predict_images(self, images) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        return self._session.run(None, {self._input: images})[0]


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
    """A run folder, SavedModel folder (or its TF Serving base folder), .tflite, .onnx or exported .keras -> Predictor.

    `runtime` (auto | tensorflow | litert) applies to Keras models (run folders, .keras); a .tflite always
    runs on LiteRT, a .onnx on ONNX Runtime and a SavedModel on TensorFlow (forcing litert on a SavedModel
    is an error: use its .tflite export).
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
    if path.suffix == ".onnx":
        return OnnxPredictor(path, export.read_metadata(path))
    if path.suffix == ".keras":
        from catdog.model.loading import load_keras_model

        metadata = export.read_metadata(path)
        classes, image_size, resize = _from_metadata(metadata)
        return KerasPredictor(load_keras_model(path), classes, image_size, resize, source=str(path), info=_info(metadata),
                              runtime=runtime)
    raise ModelError(f"{path}: unknown model; pass a run folder, a SavedModel folder, a .tflite, .onnx or .keras file")


def predict_batch(predictor: Predictor, images, tta: str = "none") -> np.ndarray:
    """Probabilities of one batch, averaged with the mirrored view when tta == "flip"."""
    probs = predictor.predict_images(images)
    if tta == "flip":
        import tensorflow as tf

        probs = (probs + predictor.predict_images(tf.image.flip_left_right(images))) / 2.0
    return probs

