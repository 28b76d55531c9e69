"""Benchmark catdog's decode + resize against TensorFlow's bare decode_jpeg + resize, per photo, one thread.

    $ python bench/decode_bench.py                 # 800 of the shared Kaggle photos, 224x224

The input pipeline's cost per photo on a CPU is mostly this function (catdog.data.decode.decode_and_resize:
JPEG decode with the accurate DCT, EXIF orientation, bilinear resize as MediaPipe samples). The baseline in
the same run is the least any pipeline must do: tf.io.decode_jpeg + tf.image.resize. Each variant runs over
the same photos in a tf.data map on a one-thread pool, best of --rounds passes, alternating, so background
load hits both alike; the ratio is the figure.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(SHARED / "data" / "dogs-vs-cats" / "train"))
    p.add_argument("--count", type=int, default=800)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    import catdog._tf  # noqa: F401  (quiet TensorFlow import)
    import tensorflow as tf

    from catdog.data.decode import decode_and_resize

    files = sorted(Path(args.source).glob("*.jpg"))[: args.count]
    if not files:
        raise SystemExit(f"no photos in {args.source}")
    data = [f.read_bytes() for f in files]
    options = tf.data.Options()
    options.threading.private_threadpool_size = 1
    options.autotune.enabled = False
    photos = tf.data.Dataset.from_tensor_slices(data).with_options(options)
    size = (args.size, args.size)
    variants = {
        "bare decode_jpeg + resize": lambda e: tf.image.resize(tf.io.decode_jpeg(e, channels=3), size),
        "catdog decode_and_resize (orientation from the record)": lambda e: decode_and_resize(
            e, size, orientation=tf.constant(1, tf.int64)),
        "catdog decode_and_resize (orientation read from the bytes)": lambda e: decode_and_resize(e, size),
    }
    pipelines = {name: photos.map(fn).batch(32) for name, fn in variants.items()}
    for pipeline in pipelines.values():
        for _ in pipeline.take(2):  # trace and warm up
            pass
    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, pipeline in pipelines.items():
            start = time.perf_counter()
            for _ in pipeline:
                pass
            best[name] = min(best[name], (time.perf_counter() - start) / len(data) * 1e3)
    base = best["bare decode_jpeg + resize"]
    print(f"{len(data)} photos from {args.source}, {args.size}x{args.size}, one thread, best of {args.rounds}; "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, ms in best.items():
        print(f"{name:60s} {ms:6.3f} ms/photo  {ms / base:5.2f}x the bare baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
