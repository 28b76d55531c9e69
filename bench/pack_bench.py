"""Benchmark `catdog pack`: throughput, shard size vs source size (and vs decoded pixels), and peak memory
at 5,000 and at 50,000 images.

    $ python bench/pack_bench.py                      # ../shared/data/dogs-vs-cats/train
    $ python bench/pack_bench.py --replicas 2         # quicker: 5k and 10k

The 50k set is the 5k photos replicated under new ids (`cat.<i + k*100000>.jpg`). A plain copy would be an
exact duplicate (and dropped), so each replica gets `k` extra bytes after the JPEG's end-of-image marker:
unique sha256, identical pixels (so every replica is reported as a near-duplicate, which also exercises
the near-duplicate search at 50k). Peak RSS is the largest SUM of VmRSS over the pack process and all its
worker processes, polled every 50 ms from /proc (shared library pages are counted once per process, so
this overstates absolute memory but compares 5k vs 50k fairly).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO.parent / "shared" / "data" / "dogs-vs-cats" / "train"


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid: int) -> float:
    todo, total = [pid], 0
    while todo:
        p = todo.pop()
        total += _rss_kb(p)
        todo.extend(_children(p))
    return total / 1024


def run_pack(src: Path, out: Path, workers: int | None) -> dict:
    """Pack in a fresh process (so its memory is its own) and poll the process tree's RSS."""
    code = ("import json, sys, catdog; m = catdog.pack([sys.argv[1]], sys.argv[2], workers=json.loads(sys.argv[3]), "
            "progress=False); print(json.dumps(m['stats']))")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, str(src), str(out), json.dumps(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(proc.pid))
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"pack failed:\n{stderr[-3000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    shard_bytes = sum(s["num_bytes"] for s in manifest["splits"].values())
    images = sum(s["num_examples"] for s in manifest["splits"].values())
    return {"images": images, "wall_s": time.perf_counter() - start, "stats": json.loads(stdout.strip().splitlines()[-1]),
            "shard_bytes": shard_bytes, "peak_rss_mb": peak, "manifest": manifest}


def decoded_pixel_bytes(src: Path, sample: int) -> tuple[int, float]:
    """Size of the same photos stored as raw uint8 pixels in a tf.train.Example (the original mistake):
    exact pixel counts for every file from the JPEG headers, per-record overhead measured on a sample."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    files = sorted(src.iterdir())
    total_pixels_bytes = 0
    for f in files:
        with Image.open(f) as im:
            total_pixels_bytes += im.width * im.height * 3
    overhead = []
    for f in files[:: max(1, len(files) // sample)][:sample]:
        pixels = np.asarray(Image.open(f).convert("RGB"))
        example = tf.train.Example(features=tf.train.Features(feature={
            "image/raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[pixels.tobytes()])),
            "image/shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(pixels.shape))),
            "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
        })).SerializeToString()
        overhead.append(len(example) + 16 - pixels.nbytes)  # + TFRecord framing (length + 2 CRCs)
    return total_pixels_bytes + int(np.mean(overhead)) * len(files), float(np.mean(overhead))


def replicate(src: Path, dst: Path, replicas: int) -> int:
    """src's photos `replicas` times under new ids, each replica's bytes made unique after the EOI marker."""
    dst.mkdir(parents=True)
    n = 0
    for f in sorted(src.iterdir()):
        data = f.read_bytes()
        cls, num, ext = f.name.split(".")
        for k in range(replicas):
            (dst / f"{cls}.{int(num) + k * 100000}.{ext}").write_bytes(data + b"\0" * k)
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC)
    parser.add_argument("--replicas", type=int, default=10, help="x the photos for the large run (10 -> 50k)")
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    parser.add_argument("--sample", type=int, default=200, help="photos decoded to measure raw-record overhead")
    args = parser.parse_args()
    if not args.src.is_dir():
        raise SystemExit(f"{args.src}: not found")
    source_bytes = sum(f.stat().st_size for f in args.src.iterdir())
    tmp = Path(tempfile.mkdtemp(prefix="pack_bench_"))
    try:
        small = run_pack(args.src, tmp / "out_small", args.workers)
        raw_bytes, overhead = decoded_pixel_bytes(args.src, args.sample)
        big_src = tmp / "replicated"
        n_big = replicate(args.src, big_src, args.replicas)
        big = run_pack(big_src, tmp / "out_big", args.workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n_small = small["images"]
    print(f"source: {args.src} ({n_small} photos, {source_bytes / 2**20:.1f} MiB); workers={args.workers or os.cpu_count()}")
    print(f"pack {n_small:>6} images: {small['wall_s']:6.1f} s wall incl. interpreter+TF start, "
          f"{small['stats']['images_per_second']:.0f} images/s (pack() itself), peak RSS {small['peak_rss_mb']:.0f} MiB")
    print(f"pack {big['images']:>6} images: {big['wall_s']:6.1f} s wall, "
          f"{big['stats']['images_per_second']:.0f} images/s, peak RSS {big['peak_rss_mb']:.0f} MiB "
          f"({n_big} files, near-duplicates listed: {big['manifest']['duplicates']['near']})")
    print(f"peak RSS {big['images']} / {n_small}: {big['peak_rss_mb'] / small['peak_rss_mb']:.3f} (target <= 1.10)")
    print(f"shard bytes / source bytes: {small['shard_bytes'] / source_bytes:.4f} (target <= 1.02)")
    print(f"decoded-pixel records: {raw_bytes / 2**20:.1f} MiB = {raw_bytes / source_bytes:.1f}x the source, "
          f"{raw_bytes / small['shard_bytes']:.1f}x catdog's shards (per-record overhead {overhead:.0f} B, "
          f"measured on {args.sample} photos; pixel bytes exact for all)")


if __name__ == "__main__":
    main()
