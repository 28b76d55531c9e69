"""What an export costs and keeps: file size, val accuracy / log loss beside the float model, images/s here.

Quantization trades accuracy for size and speed, and the trade depends on the model and the machine,
so every export measures it instead of promising it: the exported model and the in-memory float model
predict the same val images (the first `eval_images` of the run's packed val split), and the exported
model is timed on them (batches of 32, after one warm-up batch, on this machine's CPU threads). The
result goes to OUT/export.json (one entry per exported file, so a float and a quantized export into the
same folder sit side by side) and to the metadata JSON beside the model.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from catdog import atomic

EXPORT_JSON = "export.json"
EVAL_IMAGES = 500
SPEED_BATCH = 32


def val_images(run, limit: int) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(images float32 (N, H, W, 3) 0..255, labels (N,), source) of the run's val split; (None, None, why) if unreachable."""
    from catdog.data import manifest as manifest_lib
    from catdog.errors import DataError

    if not run.data_dir:
        return None, None, "the run names no packed folder"
    if limit <= 0:
        return None, None, "--eval-images 0"
    try:
        manifest = manifest_lib.read_manifest(run.data_dir)
        manifest_lib.split_info(manifest, "val", run.data_dir)
    except DataError as e:
        return None, None, str(e)
    import tensorflow as tf

    from catdog.data.decode import decode_and_resize
    from catdog.data.pipeline import record_dataset
    from catdog.data.records import parse_example

    def decode(record):
        example = parse_example(record)
        return decode_and_resize(example["image/encoded"], run.image_size, run.resize), example["image/class/label"]

    ds = record_dataset(run.data_dir, "val", manifest=manifest).take(limit)
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(64)
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    if not images:
        return None, None, f"the val split of {run.data_dir} is empty"
    return np.concatenate(images), np.concatenate(labels).astype(np.int64), f"val split of {run.data_dir}"


def file_bytes(path: Path) -> int:
    """Size of a file, or of every file under a folder (a SavedModel)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    return {"accuracy": float(np.mean(np.argmax(probs, axis=1) == labels)), "log_loss": float(-np.mean(np.log(picked)))}


def _predict(predictor, images: np.ndarray) -> np.ndarray:
    """Probabilities in batches: one call on hundreds of images would hold every layer's activations at once."""
    return np.concatenate([predictor.predict_images(images[i:i + SPEED_BATCH])
                           for i in range(0, len(images), SPEED_BATCH)])


def images_per_second(predictor, images: np.ndarray) -> float:
    predictor.predict_images(images[:SPEED_BATCH])  # warm-up: graph tracing, tensor allocation
    start = time.perf_counter()
    for i in range(0, len(images), SPEED_BATCH):
        predictor.predict_images(images[i:i + SPEED_BATCH])
    return len(images) / max(time.perf_counter() - start, 1e-9)


def measure(run, model_path: Path, images: np.ndarray | None, labels: np.ndarray | None, source: str,
            speed_images: np.ndarray) -> dict:
    """The report of one exported model (see the module docstring); `speed_images` are used when there is no val data."""
    from catdog.predictors import KerasPredictor, load_predictor

    exported = load_predictor(model_path)
    report = {"file_bytes": file_bytes(model_path), "eval_source": source, "eval_images": 0,
              "speed_batch_size": SPEED_BATCH, "cpu_threads": os.cpu_count()}
    if images is not None:
        got = _predict(exported, images)
        reference = _predict(KerasPredictor.from_run(run), images)
        float_scores = _scores(reference, labels)
        report.update(eval_images=len(images), **_scores(got, labels),
                      float_accuracy=float_scores["accuracy"], float_log_loss=float_scores["log_loss"],
                      max_abs_diff_vs_float=float(np.max(np.abs(got - reference))))
    report["images_per_second"] = images_per_second(exported, images if images is not None else speed_images)
    return report


def is_own_report(path: Path) -> bool:
    """An export.json that `record` wrote: a JSON object holding only an "exports" object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and set(data) == {"exports"} and isinstance(data["exports"], dict)


def record(out_dir: Path, model_path: Path, entry: dict) -> Path:
    """Add or replace this model's entry in OUT/export.json (written to a temp name, then renamed)."""
    path = Path(out_dir) / EXPORT_JSON
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        data = {}  # a damaged report only loses older entries; the models themselves are intact
    data.setdefault("exports", {})[Path(model_path).name] = entry
    atomic.write_json(path, data)
    return path


def summary_line(report: dict) -> str:
    """One line for the screen: size, accuracy / log loss beside the float model, speed."""
    size = f"{report['file_bytes'] / 1e6:.2f} MB"
    speed = f"{report['images_per_second']:.1f} images/s here (batch {report['speed_batch_size']})"
    if not report["eval_images"]:
        return f"size {size}; accuracy not measured ({report['eval_source']}); {speed}"
    return (f"size {size}; on {report['eval_images']} images ({report['eval_source']}): accuracy {report['accuracy']:.4f} "
            f"(float {report['float_accuracy']:.4f}), log loss {report['log_loss']:.4f} "
            f"(float {report['float_log_loss']:.4f}); {speed}")
