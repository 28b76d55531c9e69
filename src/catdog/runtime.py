"""The CPU inference runtime: a Keras model converted once to LiteRT (XNNPACK), parity-checked and cached.

On a CPU, TensorFlow's own forward pass leaves about half the speed on the table for the small
convolutional backbones catdog uses: LiteRT's XNNPACK kernels run the same float32 model more than
twice as fast here (measured in bench/runtime_bench.py, which also measured ONNX Runtime: slower than
LiteRT on this machine). So the feature cache, evaluate, predict and serve run a Keras model through
`accelerate(model, ...)`, which returns a plain callable (float32 images -> float32 outputs):

- runtime "tensorflow": the model's compiled forward pass (tf.function over any batch size);
- runtime "litert": the model converted to a .tflite flatbuffer (TFLite built-in ops only), cached in
  `folder` under a name keyed by a hash of the model's weights and shapes (so a changed model is
  rebuilt, an unchanged one is reused), and checked at build time: outputs on generated images must
  be within PARITY_TOLERANCE of TensorFlow's, else it is not used;
- runtime "auto": TensorFlow when TensorFlow sees a GPU, else LiteRT; a model that does not convert
  (or fails parity) falls back to TensorFlow with a one-line notice, logged once per model. With
  runtime "litert" forced, the same failure is a one-line ModelError naming the model and the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from pathlib import Path

import numpy as np

from catdog.errors import ConfigError, ModelError

RUNTIMES = ("auto", "tensorflow", "litert")
PARITY_TOLERANCE = 1e-4  # max abs difference of outputs (probabilities, or features relative to their scale)
FORMAT_VERSION = 1
INVOKE_BATCH = 4  # images per interpreter invoke: 4-8 were fastest per image on this CPU, 32 slower (bench/runtime_bench.py)
log = logging.getLogger("catdog.runtime")
_noticed: set[str] = set()  # models whose fallback notice was already logged (once per process)


def gpu_present() -> bool:
    """Whether TensorFlow sees a GPU (one function, so tests can pretend either way)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def choose(runtime: str) -> str:
    """"auto" -> "tensorflow" with a GPU, else "litert"; an explicit choice is checked and kept."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    if runtime == "auto":
        return "tensorflow" if gpu_present() else "litert"
    return runtime


def default_models_dir() -> Path:
    """$XDG_CACHE_HOME/catdog/litert (default ~/.cache/catdog/litert): converted models not kept in a run folder."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "catdog" / "litert"


def cpu_threads() -> int:
    """Interpreter threads: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def model_digest(model) -> str:
    """sha256 of what determines the model's outputs as the converter sees them: shapes and weight values."""
    import tensorflow as tf

    h = hashlib.sha256(f"catdog-litert/{FORMAT_VERSION}/tf-{tf.__version__}".encode())
    h.update(json.dumps([list(model.inputs[0].shape), [list(o.shape) for o in model.outputs],
                         [layer.__class__.__name__ for layer in _leaves(model)]]).encode())
    for weight in model.weights:
        value = np.ascontiguousarray(weight.numpy())
        h.update(f"{weight.path}:{value.dtype}:{value.shape}".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def _leaves(model) -> list:
    out = []
    for layer in getattr(model, "layers", []):
        out.extend(_leaves(layer) if hasattr(layer, "layers") else [layer])
    return out


def parity_images(image_size, count: int = 4, seed: int = 0) -> np.ndarray:
    """Deterministic photo-like test images, float32 (count, H, W, 3) in 0..255: smooth blobs plus noise.

    Pure noise would drive a classifier to saturated probabilities, where any runtime agrees; smooth
    structure gives mid-range features and outputs, where differences would show.
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    images = np.empty((count, h, w, 3), np.float32)
    for i in range(count):
        img = np.zeros((h, w, 3), np.float32)
        for _ in range(6):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.5) * min(h, w)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            img += blob[..., None] * rng.uniform(-120, 160, 3)
        images[i] = np.clip(img + 100 + rng.normal(0, 12, (h, w, 3)), 0, 255)
    return images


class TensorFlowRuntime:
    """The model's own forward pass, traced once for any batch size."""

    name = "tensorflow"

    def __init__(self, model):
        import tensorflow as tf

        self.model = model
        spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32)
        self._forward = tf.function(lambda x: tf.cast(model(x, training=False), tf.float32), input_signature=[spec])

    def __call__(self, images) -> np.ndarray:
        import tensorflow as tf

        return self._forward(tf.cast(images, tf.float32)).numpy()


class LiteRTRuntime:
    """A .tflite model on the LiteRT interpreter (XNNPACK, one thread per core), any batch size.

    A batch is run in chunks of `invoke_batch` images: XNNPACK's per-image speed drops for large batches
    on a small CPU (activations no longer fit the caches), while a small fixed chunk keeps one tensor
    shape (the interpreter has static shapes; a different size means resize + allocate). Invoke releases
    the GIL, so a tf.data pipeline keeps decoding the next batch meanwhile.
    """

    name = "litert"

    def __init__(self, path, num_threads: int | None = None, invoke_batch: int = INVOKE_BATCH):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads or cpu_threads())
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{path}: cannot load the LiteRT model ({e})") from e
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape = None
        self.invoke_batch = max(1, int(invoke_batch))
        self._lock = threading.Lock()  # one interpreter, one caller at a time (serve calls from worker threads)

    def __call__(self, images) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        with self._lock:
            if len(images) <= self.invoke_batch:
                return self._invoke(images)
            return np.concatenate([self._invoke(images[i : i + self.invoke_batch])
                                   for i in range(0, len(images), self.invoke_batch)])

    def _invoke(self, images: np.ndarray) -> np.ndarray:
        if images.shape != self._shape:
            self._interpreter.resize_tensor_input(self._input, list(images.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._shape = images.shape
        self._interpreter.set_tensor(self._input, images)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def convert(model):
    """Keras model -> (.tflite flatbuffer with TFLite built-in ops only, what XNNPACK runs; the traced TF forward).

    The model's forward pass is traced once with a dynamic batch dimension and converted straight from
    its graph. `experimental_lower_to_saved_model = False` matters: by default the converter first saves
    the whole Keras model as a SavedModel and loads it back (it walks every layer's trackables), which
    took 9 of 10 s for EfficientNet-Lite0 here against 1.2 s for the same flatbuffer, byte for byte, from
    the graph. Conversion time counts in a first `catdog train`. The traced forward pass is returned too,
    so the parity check needs no second trace. Raises ModelError with the converter's meaningful line.
    """
    import tensorflow as tf

    spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], tf.float32, name="images")
    try:
        forward = tf.function(lambda images: model(images, training=False)).get_concrete_function(spec)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([forward], model)
        converter.experimental_lower_to_saved_model = False
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert(), lambda x: forward(tf.constant(x, tf.float32))
    except Exception as e:  # noqa: BLE001 - any converter failure becomes one line: this model does not convert
        raise ModelError(_first_line(e)) from e


def _first_line(error: Exception) -> str:
    """The converter's errors are pages long; say which ops are missing, else keep the first meaningful line."""
    text = str(error)
    ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    if ops:
        return f"{', '.join(ops)} {'is not a' if len(ops) == 1 else 'are not'} LiteRT built-in op{'s' * (len(ops) > 1)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]


def parity(reference, candidate, sample: np.ndarray) -> float:
    """Max abs difference of outputs on `sample`, relative to the output scale when that exceeds 1."""
    expected = np.asarray(reference(sample), np.float64)
    got = np.asarray(candidate(sample), np.float64)
    if got.shape != expected.shape:
        raise ModelError(f"output shape {got.shape} differs from TensorFlow's {expected.shape}")
    return float(np.max(np.abs(got - expected)) / max(1.0, float(np.max(np.abs(expected)))))


def build_litert(model, folder, label: str, sample: np.ndarray | None = None) -> LiteRTRuntime:
    """The LiteRT runtime of `model`: reuse `folder/<label>-<digest>.tflite`, or convert, check parity, store.

    The converted file appears (atomically) only once its parity check has passed, with a .json beside it
    recording the check. Raises ModelError("<reason>") when the model does not convert or its outputs
    differ from TensorFlow's.
    """
    from catdog import atomic

    digest = model_digest(model)
    folder = Path(folder)
    path = folder / f"{label}-{digest[:20]}.tflite"
    if path.is_file():
        try:
            return LiteRTRuntime(path)
        except ModelError:
            path.unlink(missing_ok=True)  # damaged: rebuild below
    if sample is None:
        sample = parity_images(tuple(model.inputs[0].shape[1:3]))
    flatbuffer, reference = convert(model)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic.writing(path) as tmp:
        Path(tmp).write_bytes(flatbuffer)
        built = LiteRTRuntime(tmp)  # the interpreter holds the model in memory: it survives the rename
        diff = parity(lambda x: _first_output(reference(x)), built, sample)
        if not diff <= PARITY_TOLERANCE:
            raise ModelError(f"LiteRT outputs differ from TensorFlow's by {diff:.2g} (> {PARITY_TOLERANCE:g})")
    built.path = path
    atomic.write_json(path.with_suffix(".json"), {"digest": digest, "parity_max_abs_diff": diff,
                                                  "parity_images": len(sample)})
    log.info("LiteRT model built for %s (parity %.2g on %d images) -> %s", label, diff, len(sample), path)
    return built


def _first_output(outputs):
    """A traced forward returns a tensor, or a list/dict of them for some models: the model's one output."""
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    return outputs.numpy()


def accelerate(model, folder, *, runtime: str = "auto", label: str = "model", sample=None):
    """A callable float32 images -> outputs running `model` on the chosen runtime (see the module docstring).

    Args:
        model: a Keras model with one float32 image input (N, H, W, 3).
        folder: where converted models are kept (created when needed).
        runtime: "auto" | "tensorflow" | "litert".
        label: names the model in file names, the notice and errors (e.g. "backbone", the run folder).
        sample: images for the parity check; default: generated ones (parity_images).
    """
    chosen = choose(runtime)
    if chosen == "tensorflow":
        return TensorFlowRuntime(model)
    try:
        return build_litert(model, folder, _file_label(label), sample)
    except (ModelError, OSError) as e:
        if runtime == "litert":
            raise ModelError(f"{label}: cannot run on LiteRT ({e})") from None
        if label not in _noticed:
            _noticed.add(label)
            log.warning("notice: %s does not run on LiteRT (%s); using TensorFlow", label, e)
        return TensorFlowRuntime(model)


def _file_label(label: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in Path(label).name)
    return safe.strip("-.")[:40] or "model"
