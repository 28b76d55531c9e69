"""Export formats and quantization side by side: file size, val accuracy / log loss against the float
model, and images/s on this machine, for one trained run.

    $ python bench/export_bench.py --run runs/lite0 --out bench-work/exports     # --eval-images 1000 by default

It runs `catdog export` (the library call) for SavedModel, keras, ONNX and the four TFLite variants
(float32, float16, dynamic-range int8, full-integer int8), which each write their own report into
OUT/export.json. Speed in that report is one pass; here every model is timed again in 3 alternating
rounds on the same preloaded val images (batch 32 and batch 1, after a warm-up), so background load on a
shared machine hits all formats alike, and the median round is printed as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VARIANTS = [("savedmodel", "none"), ("keras", "none"), ("onnx", "none"), ("tflite", "none"),
            ("tflite", "float16"), ("tflite", "dynamic"), ("tflite", "int8")]


def timed(predictor, images, batch: int) -> float:
    predictor.predict_images(images[:batch])
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        predictor.predict_images(images[i:i + batch])
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a run folder whose pack (val split) is reachable")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--eval-images", type=int, default=1000)
    parser.add_argument("--speed-images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import catdog
    from catdog.export_report import val_images
    from catdog.predictors import load_predictor
    from catdog.run import load_run

    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for fmt, quantize in VARIANTS:
        out = args.out / "savedmodel" if fmt == "savedmodel" else args.out
        result = catdog.export(args.run, fmt, out, quantize=quantize, eval_images=args.eval_images)
        results.append((fmt, quantize, result))
        print(f"{fmt} {quantize}: {result.path} done", flush=True)

    images, _, _ = val_images(load_run(args.run), args.speed_images)
    predictors = [load_predictor(r.path) for _, _, r in results]
    speeds = {(i, b): [] for i in range(len(results)) for b in (32, 1)}
    for _ in range(args.rounds):
        for i, predictor in enumerate(predictors):
            for batch in (32, 1):
                speeds[(i, batch)].append(timed(predictor, images if batch == 32 else images[:64], batch))

    print(f"\nval images: {results[0][2].report['eval_images']} ({results[0][2].report['eval_source']}); "
          f"speed: median of {args.rounds} rounds, {os.cpu_count()} CPU threads\n")
    print("| format | quantize | size (MB) | val accuracy (float) | val log loss (float) | max abs dP vs float "
          "| images/s batch 32 | images/s batch 1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for i, (fmt, quantize, result) in enumerate(results):
        r = result.report
        print(f"| {fmt} | {quantize} | {r['file_bytes'] / 1e6:.2f} | {r['accuracy']:.4f} ({r['float_accuracy']:.4f}) "
              f"| {r['log_loss']:.4f} ({r['float_log_loss']:.4f}) | {r['max_abs_diff_vs_float']:.2g} "
              f"| {statistics.median(speeds[(i, 32)]):.1f} | {statistics.median(speeds[(i, 1)]):.1f} |")


if __name__ == "__main__":
    main()
