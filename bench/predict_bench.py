"""Predict throughput: the whole `catdog predict` command against the model's forward rate on preloaded
tensors (target >= 0.9x: the input pipeline is not the bottleneck), and images/s of Keras `predict`, the
exported SavedModel and the TFLite models, all measured in the same run on the same images.

    $ python bench/predict_bench.py            # ../shared test1 photos + Lite0 backbone

Without --run it builds a run folder: the shared EfficientNet-Lite0 backbone (frozen, ImageNet) + global
average pooling + an untrained Dense "logits" head (the head's weights do not change the speed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"


def build_run(run_dir: Path, backbone_path: Path, size: int) -> Path:
    import keras

    backbone = keras.saving.load_model(str(backbone_path), compile=False)
    backbone.trainable = False
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs, training=False))
    logits = keras.layers.Dense(1, name="logits", kernel_initializer=keras.initializers.GlorotUniform(seed=0))(x)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid", name="probs")(logits))
    run_dir.mkdir(parents=True)
    model.save(run_dir / "best.keras")
    (run_dir / "config.json").write_text(json.dumps({
        "classes": ["cat", "dog"], "image_size": [size, size], "resize": "squash", "backbone": str(backbone_path),
        "weights": "imagenet", "data": None, "seed": 0}))
    (run_dir / "calibration.json").write_text(json.dumps({"temperature": 1.0}))
    return run_dir


def rate(fn, batches, repeats: int) -> float:
    """Best-of-`repeats` images/s of fn over all batches (after one warm-up batch)."""
    fn(batches[0])
    n = sum(len(b) for b in batches)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            fn(b)
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "dogs-vs-cats" / "test1")
    parser.add_argument("--backbone", type=Path, default=SHARED / "weights" / "efficientnet_lite0_imagenet_notop.keras")
    parser.add_argument("--run", type=Path, help="an existing run folder (default: build one from --backbone)")
    parser.add_argument("--size", type=int, default=224, help="input size when building the run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per measurement (best is kept)")
    args = parser.parse_args()

    import tensorflow as tf

    from catdog.data.decode import decode_and_resize
    from catdog.exporting import export
    from catdog.imageformats import IMAGE_EXTENSIONS
    from catdog.inputs import natural_key
    from catdog.predictors import KerasPredictor, SavedModelPredictor, TFLitePredictor
    from catdog.export_metadata import read_metadata
    from catdog.run import load_run

    work = Path(tempfile.mkdtemp(prefix="predict-bench-"))
    run_dir = args.run or build_run(work / "run", args.backbone, args.size)
    run = load_run(run_dir)
    files = sorted((p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda p: natural_key(p.stem))
    print(f"{len(files)} images from {args.images}; model {run.config.get('backbone')} at {run.image_size}; "
          f"batch {args.batch_size}; {os.cpu_count()} CPUs; TensorFlow {tf.__version__}")

    encoded = [p.read_bytes() for p in files]
    images = np.stack([decode_and_resize(tf.constant(b), run.image_size, run.resize).numpy() for b in encoded])
    bs = args.batch_size
    batches = [images[i : i + bs] for i in range(0, len(images), bs)]
    byte_batches = [encoded[i : i + bs] for i in range(0, len(encoded), bs)]
    results = {}

    # The forward rate and the command are measured alternately, so a change in machine load (other jobs on
    # a shared 2-core box) hits both; the ratio of each adjacent pair is printed as well as the best of each.
    keras_predictor = KerasPredictor.from_run(run)
    command = [str(Path(sys.executable).with_name("catdog")), "predict", str(run_dir), str(args.images),
               "-o", str(work / "submission.csv"), "--batch-size", str(bs)]
    forward, walls, rates = [], [], []
    for _ in range(args.repeats):
        forward.append(rate(keras_predictor.predict_images, batches, 1))
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"catdog predict failed:\n{proc.stderr[-3000:]}")
        rates.append(float(re.search(r"\(([\d,.]+) images/s\)", proc.stdout).group(1).replace(",", "")))
    results["forward (preloaded tensors, compiled call)"] = max(forward)
    results["catdog predict command (streaming, as reported)"] = max(rates)
    results["catdog predict command (wall incl. start-up)"] = len(files) / min(walls)
    pair_ratios = [r / f for r, f in zip(rates, forward)]

    decode = (tf.data.Dataset.from_tensor_slices([str(p) for p in files])
              .map(lambda p: decode_and_resize(tf.io.read_file(p), run.image_size, run.resize),
                   num_parallel_calls=tf.data.AUTOTUNE).batch(bs).prefetch(tf.data.AUTOTUNE))
    start = time.perf_counter()
    for _ in decode:
        pass
    results["read + decode_and_resize only (tf.data, no model)"] = len(files) / (time.perf_counter() - start)

    model = run.inference_model()
    model.predict(batches[0], verbose=0)
    start = time.perf_counter()
    model.predict(images, batch_size=bs, verbose=0)
    results["Keras model.predict (preloaded)"] = len(images) / (time.perf_counter() - start)

    saved = export(run_dir, "savedmodel", work / "savedmodel").path
    sm = SavedModelPredictor(saved, read_metadata(saved))
    results["SavedModel images_float32 (preloaded)"] = rate(sm.predict_images, batches, args.repeats)
    serve = tf.saved_model.load(str(saved)).signatures["serving_default"]
    results["SavedModel serving_default (JPEG bytes, decode in graph)"] = rate(
        lambda b: serve(image_bytes=tf.constant(b)), byte_batches, args.repeats)

    parity = {}
    for quantize in ("none", "dynamic"):
        result = export(run_dir, "tflite", work / "tflite", quantize=quantize)
        parity[f"tflite {quantize}"] = result.max_abs_diff
        tfl = TFLitePredictor(result.path, read_metadata(result.path))
        label = "TFLite float32" if quantize == "none" else "TFLite dynamic int8"
        results[f"{label} (preloaded, LiteRT)"] = rate(tfl.predict_images, batches, args.repeats)

    base = results["forward (preloaded tensors, compiled call)"]
    print(f"\n{'measurement':<58} {'images/s':>9} {'vs forward':>10}")
    for name, value in results.items():
        print(f"{name:<58} {value:>9.1f} {value / base:>9.2f}x")
    print(f"\ncommand: {' '.join(command)}")
    print(f"command wall times (s): {', '.join(f'{w:.1f}' for w in walls)}; command/forward ratio per adjacent "
          f"pair: {', '.join(f'{r:.2f}' for r in pair_ratios)}")
    print("export parity (max |exported - in-memory|): " + ", ".join(f"{k} {v:.2e}" for k, v in parity.items()))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, tf {tf.__version__}")


if __name__ == "__main__":
    main()
