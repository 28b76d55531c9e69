"""Export a run's calibrated classifier as a SavedModel, a TFLite model or a .keras file, then check parity.

    $ catdog export runs/lite0-20250101-120000 --format savedmodel --out exported/catdog

- SavedModel (TensorFlow Serving layout OUT/<version>/saved_model.pb, version = highest existing + 1):
  `serving_default` takes a batch of raw encoded image bytes (tf.string, shape [None]) and decodes,
  turns upright (a JPEG's EXIF Orientation tag, read in-graph by catdog.data.exif), resizes and
  preprocesses inside the graph with catdog.data.decode.decode_and_resize, the same function
  training and predict use; `images_uint8` takes (N, H, W, 3) uint8 pixels and `images_float32` float32
  pixels 0..255 at the model's input size. Every signature returns {"probabilities": (N, C) float32,
  "classes": (N, C) string}. Only TensorFlow ops: it loads with plain `tf.saved_model.load`, no catdog.
- TFLite (OUT/model.tflite; --quantize float16 / dynamic / int8 write model-float16 / model-int8 /
  model-int8-full.tflite, see catdog.export_tflite): input RGB 0..255 (N, H, W, 3) at the model's input
  size (float32; uint8 for int8), output (N, C) probabilities. TFLite has no JPEG decoder, so decoding
  and resizing stay outside the model. TFLite metadata inside the file (labels, normalisation, image
  size; catdog.tflite_metadata) lets MediaPipe's ImageClassifier run it as is.
- ONNX (OUT/model.onnx, opset 17, via tf2onnx; catdog.export_onnx): like TFLite float, NHWC.
- keras (OUT/model.keras): the calibrated inference model, built-in layers only.

Beside every export: a metadata JSON (classes, image size, resize mode, temperature, parity, report)
that `catdog predict` reads. Every export ends with a parity check on sample images (the run's
validation split when reachable, else generated images): exported vs in-memory probabilities must agree
within 1e-5 for float exports (1e-4 for ONNX), else the export fails and nothing is left under the final
name. Then it is measured (catdog.export_report): file size, val accuracy / log loss beside the float
model, images/s here, into OUT/export.json.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog import atomic, lock
from catdog.errors import ConfigError, ModelError
from catdog.outputs import check_output_file, check_output_folder, disk_full, within
# metadata helpers live apart so that predictors can read exports without importing the exporter
from catdog.export_metadata import (METADATA_FORMAT, SAVED_MODEL_METADATA, find_saved_model,  # noqa: F401
                                    metadata_path, read_metadata)

FORMATS = ("savedmodel", "tflite", "onnx", "keras")
# TFLite only: float16 weights; dynamic = int8 weights, float activations; int8 = int8 weights and activations
QUANTIZE = ("none", "float16", "dynamic", "int8")
FLOAT_TOLERANCE = 1e-5
PARITY_SAMPLES = 16


@dataclass
class ExportResult:
    path: Path  # the SavedModel version folder, .tflite or .keras file
    metadata_path: Path
    format: str
    quantize: str
    max_abs_diff: float  # exported vs in-memory probabilities on the parity sample
    parity_images: int
    parity_source: str  # "val split of <dir>" or "generated"
    report: dict | None = None  # catdog.export_report.measure: size, accuracy / log loss, images/s

    @property
    def tolerance(self) -> float | None:
        return _tolerance(self.format, self.quantize)


def _tolerance(fmt: str, quantize: str) -> float | None:
    """Largest |exported - in-memory| a float export may show; None: quantized, reported only."""
    if quantize != "none":
        return None
    from catdog.export_onnx import ONNX_TOLERANCE

    return ONNX_TOLERANCE if fmt == "onnx" else FLOAT_TOLERANCE


# ----------------------------------------------------------------------------------------------- metadata


def _metadata(run, fmt: str, quantize: str) -> dict:
    h, w = run.image_size
    inputs = {
        "savedmodel": {"serving_default": "image_bytes: tf.string [N] (encoded JPEG/PNG/GIF/BMP/WebP; a JPEG's "
                                          "EXIF orientation is applied)",
                       "images_uint8": f"images: uint8 [N, {h}, {w}, 3] RGB",
                       "images_float32": f"images: float32 [N, {h}, {w}, 3] RGB 0..255"},
        "tflite": f"{'uint8' if quantize == 'int8' else 'float32'} [N, {h}, {w}, 3] RGB 0..255, decoded, turned "
                  f"upright (EXIF) and resized outside ({run.resize})",
        "onnx": f"images: float32 [N, {h}, {w}, 3] RGB 0..255 (NHWC), decoded, turned upright (EXIF) and "
                f"resized outside ({run.resize})",
        "keras": f"float32 [N, {h}, {w}, 3] RGB 0..255",
    }[fmt]
    return {"format": METADATA_FORMAT, "model_format": fmt, "quantize": quantize, "classes": list(run.classes),
            "image_size": [h, w], "resize": run.resize, "temperature": run.temperature, "calibrated": run.calibrated,
            "input": inputs, "output": "probabilities float32 [N, C] (calibrated), column order = classes",
            "run": str(run.run_dir), "backbone": run.config.get("backbone")}


# ----------------------------------------------------------------------------------------------- export


def export(run_dir, fmt: str, out_dir, *, quantize: str = "none", parity_samples: int = PARITY_SAMPLES,
           version: int | None = None, eval_images: int | None = None) -> ExportResult:
    """Export the run's calibrated model; returns where it went, the parity difference and the measured report."""
    from catdog import export_report, export_tflite
    from catdog.export_tflite import REPRESENTATIVE_IMAGES
    from catdog.run import load_run

    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if quantize not in QUANTIZE:
        raise ConfigError(f"--quantize must be one of {', '.join(QUANTIZE)}; got {quantize!r}")
    if version is not None and (fmt != "savedmodel" or version < 1):
        raise ConfigError(f"--version must be a positive integer and applies to --format savedmodel only; got {version}")
    if quantize != "none" and fmt != "tflite":
        raise ConfigError(f"--format {fmt} cannot take --quantize {quantize}: quantization applies to --format "
                          "tflite only")
    if fmt == "onnx":
        from catdog.export_onnx import require

        require()  # before anything is written
    eval_images = export_report.EVAL_IMAGES if eval_images is None else eval_images
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        raise ConfigError(f"{out_dir}: parent folder {out_dir.parent} does not exist")
    check_output_folder(out_dir, what="--out")  # not a symlink, not a file
    _check_not_a_catdog_folder(out_dir, run_dir)
    run = load_run(run_dir)
    wanted = max(eval_images, REPRESENTATIVE_IMAGES if quantize == "int8" else 0)
    val, labels, val_source = export_report.val_images(run, wanted)
    if quantize == "int8" and val is None:
        raise ConfigError(f"--format tflite --quantize int8 needs representative images from the run's packed val "
                          f"split, which is not reachable ({val_source})")
    final = {"savedmodel": None, "keras": out_dir / "model.keras", "onnx": out_dir / "model.onnx",
             "tflite": export_tflite.tflite_path(out_dir, quantize)}[fmt]
    for target in ([] if final is None else [final, metadata_path(final)]):  # replace only our own exports
        check_output_file(target, protected=[run_dir], what="--out", replaceable=_is_own_export)
    check_output_file(out_dir / export_report.EXPORT_JSON, protected=[run_dir], what="--out",
                      replaceable=export_report.is_own_report)  # never a user's export.json, a symlink, a device
    out_dir.mkdir(exist_ok=True)
    with lock.exclusive(out_dir, "export"), disk_full(out_dir, "exporting"):  # one writer per export folder
        atomic.remove_stale(out_dir)  # what an export killed here left behind
        return _export_into(run, fmt, out_dir, quantize, version, parity_samples, val, labels, val_source,
                            eval_images)


def _export_into(run, fmt, out_dir, quantize, version, parity_samples, val, labels, val_source, eval_images):
    from catdog import export_report
    from catdog.export_tflite import REPRESENTATIVE_IMAGES

    encoded, parity_source = parity_images(run, parity_samples)
    writer = {"savedmodel": _export_saved_model, "tflite": _export_tflite, "onnx": _export_onnx,
              "keras": _export_keras}[fmt]
    representative = val[:REPRESENTATIVE_IMAGES] if quantize == "int8" else None
    result = writer(run, out_dir, encoded, parity_source, quantize=quantize, version=version,
                    representative=representative)
    if eval_images > 0 and val is not None:
        val, labels = val[:eval_images], labels[:eval_images]
    else:
        val, labels, val_source = None, None, (val_source if eval_images > 0 else "--eval-images 0")
    result.report = export_report.measure(run, result.path, val, labels, val_source,
                                          speed_images=_reference(run, encoded)[0])
    metadata = json.loads(result.metadata_path.read_text())
    metadata["report"] = result.report
    atomic.write_json(result.metadata_path, metadata)
    export_report.record(out_dir, result.path, {"format": fmt, "quantize": quantize, "parity": metadata["parity"],
                                                **result.report})
    return result


def _check_not_a_catdog_folder(out_dir: Path, run_dir) -> None:
    """--out is never the run folder (or inside it) nor a packed folder: an export there mixes with what
    train and pack wrote, and `catdog train --resume` or `catdog pack` would meet files they do not know."""
    if within(out_dir, run_dir):
        run = Path(run_dir).resolve()
        raise ConfigError(f"--out {out_dir}: inside the run folder {run_dir}; export into a folder of its own, "
                          f"e.g. {run.parent / (run.name + '-export')}")
    if (out_dir / "manifest.json").is_file():
        raise ConfigError(f"--out {out_dir}: a packed folder (it holds manifest.json); export into a folder of its own")


def _is_own_export(path: Path) -> bool:
    """A model file or its .json written by an earlier `catdog export` (format marker in the .json)."""
    meta = path if path.name.endswith(".json") else metadata_path(path)
    try:
        return json.loads(meta.read_text()).get("format") == METADATA_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _check_parity(diff: float, quantize: str, path: Path, fmt: str = "") -> None:
    tolerance = _tolerance(fmt, quantize)
    if tolerance is not None and not diff <= tolerance:
        raise ModelError(f"{path}: parity check failed: exported probabilities differ from the in-memory model by "
                         f"{diff:.3g} > {tolerance:g}; export not written")


def _reference(run, encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Decoded float32 images and the in-memory calibrated probabilities for them."""
    import tensorflow as tf

    from catdog.data.decode import decode_and_resize

    images = tf.stack([decode_and_resize(tf.constant(b), run.image_size, run.resize) for b in encoded])
    return images.numpy(), run.inference_model()(images, training=False).numpy()


def _export_saved_model(run, out_dir: Path, encoded, source, *, quantize, version, representative) -> ExportResult:
    import tensorflow as tf

    if version is None:
        existing = [int(d.name) for d in out_dir.iterdir() if d.is_dir() and d.name.isdigit()]
        version = max(existing, default=0) + 1
    final = out_dir / str(version)
    if final.exists():
        raise ConfigError(f"{final}: version folder already exists; choose another --version or --out")
    with atomic.writing(final) as tmp:  # a hidden, non-numeric temp name: TF Serving only loads all-digit folders
        build_serving_archive(run).write_out(str(tmp), verbose=False)
        metadata = _metadata(run, "savedmodel", quantize)
        images, expected = _reference(run, encoded)
        loaded = tf.saved_model.load(str(tmp))
        diffs = {
            "serving_default": loaded.signatures["serving_default"](image_bytes=tf.constant(encoded))["probabilities"],
            "images_float32": loaded.signatures["images_float32"](images=tf.constant(images))["probabilities"],
        }
        diff = max(float(np.max(np.abs(v.numpy() - expected))) for v in diffs.values())
        # uint8 input rounds pixels, so compare against the in-memory model on the same rounded pixels
        rounded = np.round(images).astype(np.uint8)
        expected_u8 = run.inference_model()(rounded.astype(np.float32), training=False).numpy()
        got_u8 = loaded.signatures["images_uint8"](images=tf.constant(rounded))["probabilities"].numpy()
        diff = max(diff, float(np.max(np.abs(got_u8 - expected_u8))))
        _check_parity(diff, quantize, final, "savedmodel")
        metadata["parity"] = {"max_abs_diff": diff, "images": len(encoded), "source": source}
        atomic.write_json(Path(tmp) / SAVED_MODEL_METADATA, metadata)
    return ExportResult(final, final / SAVED_MODEL_METADATA, "savedmodel", quantize, diff, len(encoded), source)


def build_serving_archive(run):
    """keras.export.ExportArchive with the three signatures described in the module docstring."""
    import keras
    import tensorflow as tf

    from catdog.data.decode import decode_and_resize

    model = run.inference_model()
    h, w = run.image_size
    classes, resize = list(run.classes), run.resize

    def named(probs):
        names = tf.constant(classes)
        return {"probabilities": probs, "classes": tf.tile(names[None, :], [tf.shape(probs)[0], 1])}

    def from_bytes(image_bytes):
        decode = lambda b: decode_and_resize(b, (h, w), resize)
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([h, w, 3], tf.float32))
        return named(model(images, training=False))

    def from_uint8(images):
        return named(model(tf.cast(images, tf.float32), training=False))

    def from_float32(images):
        return named(model(images, training=False))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", from_bytes,
                         input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint("images_uint8", from_uint8,
                         input_signature=[tf.TensorSpec([None, h, w, 3], tf.uint8, name="images")])
    archive.add_endpoint("images_float32", from_float32,
                         input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="images")])
    return archive


def _export_tflite(run, out_dir: Path, encoded, source, *, quantize, version, representative) -> ExportResult:
    import keras
    import tensorflow as tf

    from catdog import export_tflite
    from catdog.predictors import TFLitePredictor

    final = export_tflite.tflite_path(out_dir, quantize)
    tmp_dir = Path(atomic.temp_path(out_dir / "tflite"))  # scratch: SavedModel + converted file
    try:
        h, w = run.image_size
        model = run.inference_model()
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serving_default", lambda images: {"probabilities": model(images, training=False)},
                             input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="images")])
        archive.write_out(str(tmp_dir / "saved_model"), verbose=False)
        flatbuffer = export_tflite.convert(run, tmp_dir / "saved_model", quantize, representative)
        tmp_model = tmp_dir / final.name
        tmp_model.write_bytes(export_tflite.with_metadata(flatbuffer, run))
        metadata = _metadata(run, "tflite", quantize)
        atomic.write_json(metadata_path(tmp_model), metadata)
        images, expected = _reference(run, encoded)
        got = TFLitePredictor(tmp_model, metadata).predict_images(images)
        diff = float(np.max(np.abs(got - expected)))
        _check_parity(diff, quantize, final, "tflite")
        metadata["parity"] = {"max_abs_diff": diff, "images": len(encoded), "source": source}
        atomic.write_json(metadata_path(final), metadata)
        with atomic.writing(final) as tmp:
            os.replace(tmp_model, tmp)  # same folder as final: the checked file moves into place unchanged
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return ExportResult(final, metadata_path(final), "tflite", quantize, diff, len(encoded), source)


def _export_onnx(run, out_dir: Path, encoded, source, *, quantize, version, representative) -> ExportResult:
    from catdog.export_onnx import OPSET, convert
    from catdog.predictors import OnnxPredictor

    final = out_dir / "model.onnx"
    with atomic.writing(final) as tmp:  # the temp name ends in .onnx
        Path(tmp).write_bytes(convert(run))
        metadata = _metadata(run, "onnx", quantize)
        images, expected = _reference(run, encoded)
        got = OnnxPredictor(Path(tmp), metadata).predict_images(images)
        diff = float(np.max(np.abs(got - expected)))
        _check_parity(diff, quantize, final, "onnx")
        metadata["opset"] = OPSET
        metadata["parity"] = {"max_abs_diff": diff, "images": len(encoded), "source": source}
        atomic.write_json(metadata_path(final), metadata)
    return ExportResult(final, metadata_path(final), "onnx", quantize, diff, len(encoded), source)


def _export_keras(run, out_dir: Path, encoded, source, *, quantize, version, representative) -> ExportResult:
    from catdog.model.loading import load_keras_model

    final = out_dir / "model.keras"
    with atomic.writing(final) as tmp:  # the temp name ends in .keras, as model.save requires
        run.inference_model().save(tmp)
        images, expected = _reference(run, encoded)
        got = load_keras_model(tmp)(images, training=False).numpy()
        diff = float(np.max(np.abs(got - expected)))
        _check_parity(diff, quantize, final, "keras")
        metadata = _metadata(run, "keras", quantize)
        metadata["parity"] = {"max_abs_diff": diff, "images": len(encoded), "source": source}
        atomic.write_json(metadata_path(final), metadata)
    return ExportResult(final, metadata_path(final), "keras", quantize, diff, len(encoded), source)


# ----------------------------------------------------------------------------------------------- parity data


def parity_images(run, count: int = PARITY_SAMPLES) -> tuple[list[bytes], str]:
    """Encoded sample images: the first `count` of the run's val split if its pack is reachable, else generated."""
    from catdog.data import manifest as manifest_lib
    from catdog.errors import DataError

    from catdog.synthetic import sample_jpegs

    data = run.data_dir
    why = "the run names no packed folder"
    if data:
        try:
            manifest = manifest_lib.read_manifest(data)
            manifest_lib.split_info(manifest, "val", data)
        except DataError as e:  # the pack moved or has no val split: generated images still check the conversion
            why = str(e)
        else:
            from catdog.data.pipeline import record_dataset
            from catdog.data.records import parse_example

            records = record_dataset(data, "val", manifest=manifest).take(count)
            encoded = [parse_example(r)["image/encoded"].numpy() for r in records]
            return encoded, f"val split of {data}"
    size = (max(run.image_size[1], 64), max(run.image_size[0], 64))
    return sample_jpegs(count, size=size), f"generated ({why})"
