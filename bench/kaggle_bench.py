"""Benchmark the whole Kaggle Dogs-vs-Cats tour at Kaggle size: 25,000 labeled + 12,500 unlabeled photos ->
pack -> train (the shared EfficientNet-Lite0 backbone, cached frozen phase) -> predict -> submission.

    $ nice -n 5 python bench/kaggle_bench.py                     # full size: 25,000 + 12,500 photos
    $ nice -n 5 python bench/kaggle_bench.py --scale 0.2         # 5,000 + 2,500 photos, same shape

The photos are generated from ../shared/data/dogs-vs-cats (5,000 train + 1,000 test1 photos) into a temp
folder: variant v of a photo is resized to (1 - 0.06 v) of its size and re-encoded at JPEG quality 92 - v,
so no generated file is a byte copy of another (the variants are near-duplicates, which pack lists). Like
Kaggle's test1 (63 byte-identical files), the last `--copies` test files (300 at full scale) are byte
copies of earlier test files: the submission must still have one row per file. Layout as Kaggle ships it:
`train/cat.<n>.jpg`, `train/dog.<n>.jpg`, `test1/<n>.jpg` with n = 1 .. 12,500.

Records: pack images/s and peak RSS (parent + workers, from /proc, as bench/pack_bench.py), train wall
time and peak RSS, predict images/s, and whether the submission has exactly one row per test file.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "bench"))
from pack_bench import tree_rss_mb  # noqa: E402


def _variant(job: tuple[str, str, int]) -> None:
    """Write one resized + re-encoded copy of a photo (never byte-identical to another)."""
    from PIL import Image

    src, dst, v = job
    with Image.open(src) as image:
        image = image.convert("RGB")
        scale = 1.0 - 0.06 * v
        image = image.resize((max(32, round(image.width * scale)), max(32, round(image.height * scale))))
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=92 - v)
    Path(dst).write_bytes(out.getvalue())


def generate(root: Path, labeled: int, unlabeled: int, copies: int, workers: int) -> None:
    """root/train (labeled, Kaggle names) and root/test1 (numbered, with `copies` byte copies at the end)."""
    shared = sorted((SHARED / "data" / "dogs-vs-cats" / "train").iterdir())
    cats, dogs = [p for p in shared if p.name.startswith("cat.")], [p for p in shared if p.name.startswith("dog.")]
    train_src = [p for pair in zip(cats, dogs) for p in pair]  # alternate, so any --scale has both classes
    test_src = sorted((SHARED / "data" / "dogs-vs-cats" / "test1").iterdir())
    (root / "train").mkdir(parents=True)
    (root / "test1").mkdir()
    jobs = []
    counters = {"cat": 0, "dog": 0}
    for k in range(labeled):
        photo = train_src[k % len(train_src)]
        cls = photo.name.split(".")[0]
        counters[cls] += 1
        jobs.append((str(photo), str(root / "train" / f"{cls}.{counters[cls]}.jpg"), k // len(train_src)))
    originals = unlabeled - copies
    for k in range(originals):
        jobs.append((str(test_src[k % len(test_src)]), str(root / "test1" / f"{k + 1}.jpg"), k // len(test_src)))
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for _ in pool.imap_unordered(_variant, jobs, chunksize=64):
            pass
    for k in range(copies):  # byte-identical copies inside the unlabeled folder, as in Kaggle's test1
        shutil.copyfile(root / "test1" / f"{k * 7 % originals + 1}.jpg", root / "test1" / f"{originals + k + 1}.jpg")


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Run a command; (wall seconds, peak RSS MiB of its process tree, stdout + stderr)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    peak, chunks = 0.0, []
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(proc.pid))
        time.sleep(0.2)
    out = proc.stdout.read()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out[-4000:]}")
    return time.perf_counter() - start, peak, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of Kaggle's size (1.0 = 25,000 + 12,500)")
    parser.add_argument("--copies", type=int, default=None, help="byte copies among the test files (default 300 x scale)")
    parser.add_argument("--backbone", default=str(SHARED / "weights" / "efficientnet_lite0_imagenet_notop.keras"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--work", type=Path, default=None,
                        help="keep everything here and reuse its generated photos (default: a temp folder, removed)")
    args = parser.parse_args()
    labeled, unlabeled = round(25_000 * args.scale), round(12_500 * args.scale)
    copies = round(300 * args.scale) if args.copies is None else args.copies
    work = args.work or Path(tempfile.mkdtemp(prefix="kaggle_bench_"))
    catdog = [sys.executable, "-m", "catdog"]
    results: dict = {"scale": args.scale, "labeled": labeled, "unlabeled": unlabeled, "byte_copies_in_test": copies}
    try:
        start = time.perf_counter()
        if (work / "data" / "done").is_file():  # --work of an earlier run: same photos, regenerate nothing
            print(f"reusing the photos in {work / 'data'}", flush=True)
        else:
            shutil.rmtree(work / "data", ignore_errors=True)
            generate(work / "data", labeled, unlabeled, copies, args.workers)
            (work / "data" / "done").write_text(json.dumps({"labeled": labeled, "unlabeled": unlabeled, "copies": copies}))
            results["generate_s"] = round(time.perf_counter() - start, 1)
            print(f"generated {labeled} + {unlabeled} photos in {results['generate_s']} s", flush=True)
        for stale in ("packed", "runs", "cache", "submission.csv"):  # cache: train computes its features cold
            shutil.rmtree(work / stale, ignore_errors=True) if (work / stale).is_dir() else (work / stale).unlink(missing_ok=True)

        wall, peak, _ = timed([*catdog, "pack", str(work / "data" / "train"), str(work / "data" / "test1"),
                               "--out", str(work / "packed"), "--workers", str(args.workers)])
        manifest = json.loads((work / "packed" / "manifest.json").read_text())
        results["pack"] = {"wall_s": round(wall, 1), "images_per_second": manifest["stats"]["images_per_second"],
                           "peak_rss_mb": round(peak), "test_records": manifest["splits"]["test"]["num_examples"],
                           "unlabeled_copies": manifest["duplicates"]["unlabeled_copies"],
                           "train": manifest["splits"]["train"]["num_examples"],
                           "val": manifest["splits"]["val"]["num_examples"]}
        print("pack", results["pack"], flush=True)

        wall, peak, out = timed([*catdog, "train", str(work / "packed"), "--backbone", args.backbone, "--epochs",
                                 str(args.epochs), "--runs-dir", str(work / "runs"), "--name", "bench",
                                 "--cache-dir", str(work / "cache")])
        summary = json.loads((work / "runs" / "bench" / "summary.json").read_text())
        results["train"] = {"wall_s": round(wall, 1), "peak_rss_mb": round(peak), "epochs": args.epochs,
                            "summary": {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}}
        print("train", results["train"], flush=True)

        submission = work / "submission.csv"
        wall, peak, out = timed([*catdog, "predict", str(work / "runs" / "bench"), str(work / "packed"),
                                 "-o", str(submission)])
        rate = re.search(r"\(([\d,.]+) images/s\)", out)
        with open(submission, newline="") as f:
            rows = list(csv.reader(f))[1:]
        files = sorted(p.stem for p in (work / "data" / "test1").iterdir())
        results["predict"] = {"wall_s": round(wall, 1), "peak_rss_mb": round(peak),
                              "images_per_second": float(rate.group(1).replace(",", "")) if rate else None,
                              "rows": len(rows), "test_files": len(files),
                              "one_row_per_file": sorted(r[0] for r in rows) == files}
        print("predict", results["predict"], flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if not results["predict"]["one_row_per_file"]:
        raise SystemExit("the submission does not have exactly one row per test file")


if __name__ == "__main__":
    main()
