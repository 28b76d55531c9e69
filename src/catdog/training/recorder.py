"""Per-epoch bookkeeping: metrics.csv, last/best checkpoints, state.json (resume) and early stopping.

Why one callback of catdog's own rather than Keras' CSVLogger + ModelCheckpoint + EarlyStopping: a run has
two phases (two fit calls, the second on another model) and can be resumed, and Keras' callbacks keep
their state in memory for one fit call only. metrics.csv numbers epochs across both phases and has fixed
columns (phase, learning rate, seconds); the best score and the patience count carry over from phase 1 to
phase 2 and across --resume (they live in state.json); checkpoints are written atomically; and state.json
is written last, so an interrupted run resumes from the last epoch that was fully recorded. Keras' own
callbacks still do what they can alone: BackupAndRestore under several workers, TensorBoard logs.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import numpy as np

from catdog import atomic, csvfile
from catdog.errors import ModelError

log = logging.getLogger("catdog.train")  # one logger for the whole run: train.log attaches to it

CSV_COLUMNS = ("epoch", "phase", "loss", "accuracy", "log_loss", "val_loss", "val_accuracy", "val_log_loss",
               "learning_rate", "seconds")


def write_json(path: Path, data: dict) -> None:
    """JSON side files of a run (config, state, calibration, summary): atomic, floats from numpy allowed."""
    atomic.write_json(path, data, default=float)


def save_model(model, path: Path, **kwargs) -> None:
    """model.save / save_weights (by the name's ending) to a temporary name, then rename."""
    with atomic.writing(path) as tmp:
        if path.name.endswith(".weights.h5"):
            model.save_weights(tmp)
        else:
            model.save(tmp, **kwargs)


def _improved(monitor: str, value: float, best: float | None) -> bool:
    if best is None or not np.isfinite(best):
        return bool(np.isfinite(value))
    return value > best if monitor.endswith("accuracy") else value < best


class RunState:
    """state.json: which phase and epoch the run has finished, the best score so far and the patience count."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "state.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {
            "phase1": {"epochs_done": 0, "done": False, "mode": None, "seconds": 0.0, "epoch_seconds": []},
            "phase2": {"epochs_done": 0, "done": False, "seconds": 0.0, "epoch_seconds": []},
            "best": None, "wait": 0, "complete": False}

    def __getitem__(self, key):
        return self.data[key]

    def save(self) -> None:
        write_json(self.path, self.data)


def make_recorder(run_dir: Path, state: RunState, phase: int, monitor: str, patience: int, epoch_offset: int,
                  last_path: Path, best_path: Path, last_kwargs: dict, best_kwargs: dict):
    import keras

    class Recorder(keras.callbacks.Callback):
        """After each epoch: append metrics.csv, save last (+ best when improved), update state.json, stop early.

        State is written last, so a run interrupted at any point resumes from the last fully recorded epoch.
        Not Keras' CSVLogger + ModelCheckpoint + EarlyStopping: see the module docstring for why.
        """

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            if monitor not in logs:
                raise ModelError(f"monitor {monitor!r} not among the epoch's metrics: {', '.join(sorted(logs))}")
            seconds = time.perf_counter() - self._start
            lr = float(np.asarray(self.model.optimizer.learning_rate))
            row = {"epoch": epoch_offset + epoch + 1, "phase": phase, "learning_rate": lr, "seconds": round(seconds, 3),
                   **{k: float(logs[k]) for k in CSV_COLUMNS if k in logs}}
            _append_csv(run_dir / "metrics.csv", row)
            phase_state = state[f"phase{phase}"]
            phase_state["epoch_seconds"].append(round(seconds, 3))
            value = float(logs[monitor])
            best = state["best"]
            if _improved(monitor, value, None if best is None else best["value"]):
                save_model(self.model, best_path, **best_kwargs)
                state.data["best"] = {"value": value, "epoch": row["epoch"], "phase": phase,
                                      "val_accuracy": float(logs.get("val_accuracy", float("nan"))),
                                      "val_log_loss": float(logs.get("val_log_loss", float("nan")))}
                state.data["wait"] = 0
            else:
                state.data["wait"] += 1
            save_model(self.model, last_path, **last_kwargs)
            phase_state["epochs_done"] = epoch + 1
            state.save()
            log.info("phase %d epoch %d: loss %.4f  val_accuracy %.4f  val_log_loss %.4f  (%.1f s)%s", phase,
                     row["epoch"], logs.get("loss", float("nan")), logs.get("val_accuracy", float("nan")),
                     logs.get("val_log_loss", float("nan")), seconds,
                     "  *best*" if state["wait"] == 0 else "")
            if state["wait"] >= patience > 0:
                log.info("early stopping: %s has not improved for %d epochs", monitor, patience)
                self.model.stop_training = True

    return Recorder()


def _append_csv(path: Path, row: dict) -> None:
    new = not path.is_file()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
        f.flush()


def trim_csv(path: Path, last_epoch: int) -> None:
    """On resume, drop rows of an epoch that was logged but not checkpointed (interrupted in between)."""
    if not path.is_file():
        return
    rows = [r for r in csvfile.read_dicts(path) if int(r["epoch"]) <= last_epoch]
    csvfile.write_csv(path, CSV_COLUMNS, ([r[k] for k in CSV_COLUMNS] for r in rows))
