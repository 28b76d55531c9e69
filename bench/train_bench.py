"""Benchmark `catdog train`: (a) a frozen-phase epoch on cached features vs. the same epoch running the
backbone on the fly; (b) validation accuracy / log loss after the frozen phase and after a short fine-tune,
end to end (pack + train) on the shared Dogs-vs-Cats photos with the shared EfficientNet-Lite0.

    $ python bench/train_bench.py                      # pack 5,000 photos, train, print the numbers
    $ python bench/train_bench.py --fine-tune-epochs 0 --reuse-pack

The on-the-fly epoch is ESTIMATED from timed steps (default 30 training steps after 3 warm-up steps, and
8 validation batches), scaled to a full epoch's steps; the cached epoch is measured in full during the run.
Both "epochs" mean the same work: every training image once plus one pass over the validation split,
excluding checkpoint writes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED = Path(__file__).resolve().parents[2] / "shared"


def time_on_the_fly_epoch(cfg, train_steps: int, val_batches: int, timed_steps: int, warmup: int = 3) -> dict:
    """Seconds for one frozen-backbone epoch without the cache, extrapolated from timed steps."""
    import keras

    from catdog.training import build_models, compile_model, image_dataset

    keras.utils.set_random_seed(cfg.seed)
    _, _, classifier = build_models(cfg, 2)
    compile_model(classifier, cfg.lr, 2)
    stamps = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    train_ds = image_dataset(cfg, "train", 2, training=True)
    classifier.fit(train_ds, steps_per_epoch=warmup + timed_steps, epochs=1, verbose=0, callbacks=[Clock()])
    per_step = (stamps[-1] - stamps[warmup - 1]) / timed_steps
    val_ds = image_dataset(cfg, "val", 2, training=False)
    classifier.evaluate(val_ds.take(2), verbose=0)  # warm-up (tracing)
    start = time.perf_counter()
    classifier.evaluate(val_ds.take(8), verbose=0)
    per_val_batch = (time.perf_counter() - start) / 8
    return {"per_train_step_s": per_step, "per_val_batch_s": per_val_batch,
            "epoch_s": per_step * train_steps + per_val_batch * val_batches,
            "timed_train_steps": timed_steps, "timed_val_batches": 8}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(SHARED / "data" / "dogs-vs-cats" / "train"))
    p.add_argument("--backbone", default=str(SHARED / "weights" / "efficientnet_lite0_imagenet_notop.keras"))
    p.add_argument("--work", default="bench-work/train", help="pack, cache and runs go here (wiped); relative to the current folder")
    p.add_argument("--reuse-pack", action="store_true", help="keep an existing pack in --work (not end to end)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--l2", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--cache-views", type=int, default=0)
    p.add_argument("--fine-tune-epochs", type=int, default=1)
    p.add_argument("--unfreeze", default="0.1")
    p.add_argument("--fine-tune-lr", type=float, default=1e-5)
    p.add_argument("--timed-steps", type=int, default=30)
    p.add_argument("--skip-on-the-fly", action="store_true")
    args = p.parse_args()
    if not Path(args.source).is_dir() or not Path(args.backbone).is_file():
        print(f"missing {args.source} or {args.backbone}", file=sys.stderr)
        return 2

    from catdog.data.pack import pack
    from catdog.training import TrainConfig, resolve, train

    work = Path(args.work)
    packed = work / "packed"
    if not args.reuse_pack and work.exists():
        shutil.rmtree(work)
    shutil.rmtree(work / "cache", ignore_errors=True)
    shutil.rmtree(work / "runs", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    if not (packed / "manifest.json").is_file():
        pack(args.source, packed, val_fraction=0.2, progress=False)
    pack_s = time.perf_counter() - t0
    manifest = json.loads((packed / "manifest.json").read_text())
    n_train, n_val = (manifest["splits"][s]["num_examples"] for s in ("train", "val"))
    print(f"pack: {n_train} train / {n_val} val in {pack_s:.1f} s")

    unfreeze = float(args.unfreeze) if "." in args.unfreeze else int(args.unfreeze)
    cfg = TrainConfig(data=str(packed), backbone=args.backbone, image_size=args.image_size, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, l2=args.l2, dropout=args.dropout,
                      patience=args.patience, cache_views=args.cache_views, fine_tune_epochs=args.fine_tune_epochs,
                      unfreeze=unfreeze, fine_tune_lr=args.fine_tune_lr, cache_dir=str(work / "cache"),
                      runs_dir=str(work / "runs"), name="bench")
    t1 = time.perf_counter()
    run_dir = train(cfg)
    train_s = time.perf_counter() - t1
    end_to_end_s = pack_s + train_s
    summary = json.loads((run_dir / "summary.json").read_text())
    calibration = json.loads((run_dir / "calibration.json").read_text())
    with (run_dir / "metrics.csv").open() as f:
        import csv

        rows = list(csv.DictReader(f))
    phase1 = [r for r in rows if r["phase"] == "1"]
    best1 = min(phase1, key=lambda r: float(r["val_log_loss"]))
    cached_epochs = summary["timings"]["phase1_epoch_seconds"]
    cached_epoch_s = statistics.median(cached_epochs[1:] or cached_epochs)  # the first epoch includes tracing

    result = {
        "machine": "2-core CPU, 24 GB, no GPU", "train_images": n_train, "val_images": n_val,
        "pack_s": round(pack_s, 1), "train_s": round(train_s, 1), "end_to_end_s": round(end_to_end_s, 1),
        "cache_s": summary["timings"]["cache_seconds"], "cached_epoch_s": round(cached_epoch_s, 3),
        "phase1_best": {"epoch": int(best1["epoch"]), "val_accuracy": float(best1["val_accuracy"]),
                        "val_log_loss": float(best1["val_log_loss"])},
        "phase2_epochs": summary["epochs_run"]["phase2"], "phase2_s": summary["timings"]["phase2_seconds"],
        "final": {"best_epoch": summary["best_epoch"], "best_phase": summary["best_phase"],
                  "val_accuracy": summary["val_accuracy"], "val_log_loss": summary["val_log_loss"],
                  "val_log_loss_calibrated": calibration["val_log_loss_after"],
                  "temperature": calibration["temperature"]},
        "metrics_csv": rows,
    }
    print(f"train: {train_s:.1f} s (feature cache {result['cache_s']:.1f} s, phase 2 {result['phase2_s']:.1f} s); "
          f"end to end {end_to_end_s:.1f} s")
    print(f"after frozen phase: val accuracy {best1['val_accuracy']}, val log loss {best1['val_log_loss']} "
          f"(epoch {best1['epoch']})")
    print(f"final best.keras (epoch {summary['best_epoch']}, phase {summary['best_phase']}): val accuracy "
          f"{summary['val_accuracy']:.4f}, val log loss {summary['val_log_loss']:.4f}, calibrated "
          f"{calibration['val_log_loss_after']:.4f} (T={calibration['temperature']:.3f})")

    if not args.skip_on_the_fly:
        train_steps = math.ceil(n_train / args.batch_size)
        val_batches = math.ceil(n_val / args.batch_size)
        fly = time_on_the_fly_epoch(resolve(cfg), train_steps, val_batches, args.timed_steps)
        result["on_the_fly"] = fly
        result["speedup"] = fly["epoch_s"] / cached_epoch_s
        print(f"frozen-phase epoch: cached {cached_epoch_s:.2f} s vs on the fly {fly['epoch_s']:.1f} s "
              f"(estimated from {args.timed_steps} train steps at {fly['per_train_step_s']:.3f} s and 8 val batches "
              f"at {fly['per_val_batch_s']:.3f} s) -> {result['speedup']:.0f}x faster")
    (work / "result.json").write_text(json.dumps(result, indent=2))
    print(f"details: {work / 'result.json'}; run folder {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
