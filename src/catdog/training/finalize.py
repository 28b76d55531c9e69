"""After training: temperature calibration on the validation split, summary.json and the plots."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from catdog import atomic, csvfile
from catdog.classes import is_binary
from catdog.model.loading import load_keras_model
from catdog.training.config import TrainConfig
from catdog.training.recorder import write_json

log = logging.getLogger("catdog.train")  # one logger for the whole run: train.log attaches to it


def val_logits(cfg: TrainConfig, best, val_cache=None) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of the validation split under `best` (cached features when the backbone is unchanged)."""
    import keras

    from catdog.data import load
    from catdog.data.pipeline import checked

    layer = best.get_layer("logits")
    if val_cache is not None:
        kernel, bias = layer.get_weights()
        features = np.asarray(val_cache.features[0], np.float64)
        return features @ kernel + bias, np.asarray(val_cache.labels)
    logits_model = keras.Model(best.inputs, layer.output)
    logits, labels = [], []
    ds = load(cfg.data, "val", cfg.image_size, batch_size=cfg.batch_size, resize=cfg.resize)
    for images, y in checked(ds, cfg.data, "val"):
        logits.append(np.asarray(logits_model(images, training=False), np.float64))
        labels.append(y.numpy())
    return np.concatenate(logits), np.concatenate(labels)


def finalize(cfg, run_dir, state, num_classes, val_cache, train_n, val_n, weights, manifest, best=None) -> dict:
    """Calibrate `best` (default: run_dir/best.keras, loaded; pass the model when it is in memory: 1.6 s less
    for Lite0) on the validation split, then write calibration.json, summary.json and the plots."""
    from catdog.calibrate import apply_temperature, fit_temperature, log_loss
    if best is None:
        best = load_keras_model(run_dir / "best.keras")
    best_info = state["best"] or {}
    use_cache = val_cache if best_info.get("phase") == 1 and state["phase1"]["mode"] == "cached" else None
    logits, labels = val_logits(cfg, best, use_cache)
    temperature = fit_temperature(logits, labels)
    before, after = log_loss(logits, labels), log_loss(logits, labels, temperature)
    write_json(run_dir / "calibration.json", {"temperature": temperature, "val_log_loss_before": before,
                                                "val_log_loss_after": after})
    probs = apply_temperature(logits, 1.0)
    predicted = (probs[:, 0] > 0.5).astype(int) if is_binary(num_classes) else probs.argmax(1)
    accuracy = float(np.mean(predicted == labels))
    p1, p2 = state["phase1"], state["phase2"]
    summary = {
        "run_dir": str(run_dir), "monitor": cfg.monitor, "best_epoch": best_info.get("epoch"),
        "best_phase": best_info.get("phase"), "best_monitor_value": best_info.get("value"),
        "val_accuracy": accuracy, "val_log_loss": before, "val_log_loss_calibrated": after,
        "temperature": temperature, "epochs_run": {"phase1": p1["epochs_done"], "phase2": p2["epochs_done"]},
        "phase1_mode": p1["mode"], "num_train": train_n, "num_val": val_n, "classes": list(manifest["classes"]),
        "class_weights": weights,
        "timings": {"cache_seconds": (state.data.get("cache") or {}).get("seconds", 0.0),
                    "phase1_seconds": round(p1["seconds"], 3), "phase2_seconds": round(p2["seconds"], 3),
                    "phase1_epoch_seconds": p1["epoch_seconds"], "phase2_epoch_seconds": p2["epoch_seconds"]},
        "cache": state.data.get("cache"),
    }
    write_json(run_dir / "summary.json", summary)
    write_plots(run_dir)
    return summary


def write_plots(run_dir: Path) -> None:
    """plots/loss.png and plots/accuracy.png from metrics.csv (train vs validation, per epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = csvfile.read_dicts(run_dir / "metrics.csv")
    (run_dir / "plots").mkdir(exist_ok=True)
    epochs = [int(r["epoch"]) for r in rows]
    boundary = [int(r["epoch"]) for r in rows if r["phase"] == "2"][:1]
    for name, keys in (("loss", ("log_loss", "val_log_loss")), ("accuracy", ("accuracy", "val_accuracy"))):
        fig, ax = plt.subplots(figsize=(6, 4))
        for key in keys:
            values = [float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]
            ax.plot(epochs, values, marker="o", label=key)
        if boundary:
            ax.axvline(boundary[0] - 0.5, color="grey", linestyle="--", label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic.writing(run_dir / "plots" / f"{name}.png") as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)

