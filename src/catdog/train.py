"""Train a classifier on a packed folder: frozen backbone + feature cache (phase 1), then optional fine-tuning
(phase 2), written to a run folder that evaluate / predict / export / serve read.

    $ catdog train packed/ --backbone efficientnetv2b0 --epochs 10 --fine-tune-epochs 2

From a notebook:

    from catdog.train import TrainConfig, train
    run_dir = train(TrainConfig(data="packed/", backbone="path/to/feature_extractor.keras", epochs=5))

Run folder (CONTRACT.md): config.json, best.keras, last.keras (+ state.json and head checkpoints for
--resume), metrics.csv, tensorboard/, summary.json, plots/{loss,accuracy}.png, train.log, calibration.json.
The test split is never opened: model selection and calibration use the validation split only.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import sys
import time
import typing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from catdog import lock
from catdog.errors import ConfigError, DataError, ModelError
from catdog.outputs import check_plain_name
from catdog.resources import check_training_memory

log = logging.getLogger("catdog.train")

MONITORS = ("val_log_loss", "val_loss", "val_accuracy")
SCHEDULES = ("cosine", "constant")
CLASS_WEIGHT_MODES = ("auto", "balanced", "none")
MIXED_PRECISION_MODES = ("auto", "on", "off")
IMBALANCE_RATIO = 1.5  # "auto" class weights switch on above this max/min class-count ratio
# config.json keys written beside the TrainConfig fields (not settable, recomputed on every run)
RUN_INFO_KEYS = ("catdog_version", "tensorflow_version", "keras_version", "python_version", "manifest_fingerprint",
                 "classes", "feature_dim", "created")
# fields that may differ on --resume: where the run lives and what is logged, not what is trained
RESUME_FREE_KEYS = ("name", "runs_dir", "cache_dir", "profile")
CSV_COLUMNS = ("epoch", "phase", "loss", "accuracy", "log_loss", "val_loss", "val_accuracy", "val_log_loss",
               "learning_rate", "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run; config.json holds it fully resolved."""

    data: str  # packed folder written by `catdog pack` (needs train and val splits)
    backbone: str = "efficientnetv2b0"  # registry name (list_backbones()) or a path to a .keras feature extractor
    weights: str | None = None  # imagenet | none | PATH; None = the backbone's default (imagenet, or the file's own)
    image_size: int | tuple[int, int] | None = None  # None = the backbone's native size
    resize: str = "squash"  # squash | crop | pad, as catdog.data.decode.resize
    epochs: int = 10  # phase 1: frozen backbone, the head trains (on cached features by default)
    batch_size: int = 32
    lr: float = 1e-3  # phase-1 peak learning rate (Adam)
    schedule: str = "cosine"  # learning-rate schedule over each phase: cosine decay to 0, or constant
    fine_tune_epochs: int = 0  # phase 2: unfrozen top of the backbone, real augmented images; 0 = skip
    unfreeze: int | float = 0.2  # phase 2: top N layers (int) or that fraction of the backbone's layers (float)
    fine_tune_lr: float = 1e-5  # low, so fine-tuning adjusts rather than destroys the pretrained features
    dropout: float = 0.2  # before the dense head
    l2: float = 1e-4  # L2 penalty on the dense head's kernel
    class_weights: str = "auto"  # auto (balanced when classes are imbalanced) | balanced | none
    cache: bool = True  # phase 1 on cached backbone features: the backbone runs once per image, not per epoch
    cache_views: int = 0  # extra augmented views of each training image in the cache (0 = plain view only)
    cache_dir: str | None = None  # None = $XDG_CACHE_HOME/catdog/features
    flip: bool = True  # augmentation (training split only; cache views and phase 2)
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02
    crop_scale: float = 0.7  # random resized crop min area; 1.0 = off
    runs_dir: str = "runs"
    name: str | None = None  # run folder name; None = <backbone>-<YYYYmmdd-HHMMSS>
    seed: int = 42  # shuffling, head init, dropout and augmentation
    patience: int = 3  # early stopping: epochs without improvement of `monitor`, per phase
    monitor: str = "val_log_loss"  # best checkpoint and early stopping follow this
    mixed_precision: str = "auto"  # auto = on when a GPU is visible
    xla: bool = False  # jit_compile the train step (mostly helps on GPUs)
    profile: bool = False  # capture a profiler trace of a few steps into tensorboard/
    strategy: str = "auto"  # tf.distribute strategy name (stored; see catdog.distribute)

    def __post_init__(self):
        for name in ("data", "backbone", "weights", "cache_dir", "runs_dir"):  # accept pathlib.Path from notebooks
            if isinstance(getattr(self, name), os.PathLike):
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        _check_types(self)
        if self.name is not None:
            check_plain_name(self.name)  # `--name ../../x` must not leave --runs-dir
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1; got {self.epochs}")
        for name in ("batch_size",):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        for name in ("fine_tune_epochs", "cache_views", "patience"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0; got {getattr(self, name)}")
        for name in ("lr", "fine_tune_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0; got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1); got {self.dropout}")
        if self.l2 < 0:
            raise ConfigError(f"--l2 must be >= 0; got {self.l2}")
        if isinstance(self.unfreeze, float) and not 0 < self.unfreeze <= 1:
            raise ConfigError(f"--unfreeze fraction must be in (0, 1]; got {self.unfreeze}")
        if isinstance(self.unfreeze, int) and self.unfreeze < 0:
            raise ConfigError(f"--unfreeze layer count must be >= 0; got {self.unfreeze}")
        _check_choice("resize", self.resize, ("squash", "crop", "pad"))
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("class-weights", self.class_weights, CLASS_WEIGHT_MODES)
        _check_choice("monitor", self.monitor, MONITORS)
        _check_choice("mixed-precision", self.mixed_precision, MIXED_PRECISION_MODES)
        from catdog.distribute import STRATEGIES

        _check_choice("strategy", self.strategy, STRATEGIES)
        try:
            self.augment_config()
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.image_size is not None:
            size = (self.image_size,) if isinstance(self.image_size, int) else self.image_size
            if len(size) not in (1, 2) or min(size) < 1:
                raise ConfigError(f"--image-size must be a positive int or [height, width]; got {self.image_size!r}")

    def augment_config(self):
        from catdog.data.augment import AugmentConfig

        return AugmentConfig(flip=self.flip, brightness=self.brightness, contrast=self.contrast,
                             saturation=self.saturation, hue=self.hue, crop_scale=self.crop_scale)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if isinstance(self.image_size, tuple):
            d["image_size"] = list(self.image_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Strict: an unknown key is an error (a typo must not silently train with a default)."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(f"unknown train config key(s): {', '.join(unknown)}; valid: {', '.join(names)}")
        if "data" not in d:
            raise ConfigError("train config needs 'data' (the packed folder)")
        d = dict(d)
        if isinstance(d.get("image_size"), list):
            d["image_size"] = tuple(d["image_size"])
        return cls(**d)

    @classmethod
    def from_run_config(cls, d: dict) -> TrainConfig:
        """Read a run folder's config.json: drop the run-info keys written beside the fields."""
        return cls.from_dict({k: v for k, v in d.items() if k not in RUN_INFO_KEYS})


def _check_choice(flag: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"--{flag} must be one of {', '.join(allowed)}; got {value!r}")


def _check_types(cfg: TrainConfig) -> None:
    """nanoGPT-style strictness: the value's type must match the field's declared type."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        allowed = typing.get_args(hints[f.name]) or (hints[f.name],)
        ok = False
        for t in allowed:
            origin = typing.get_origin(t) or t
            if t is type(None) and value is None:
                ok = True
            elif origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                ok = True
            elif origin is int and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            elif origin in (bool, str, tuple) and isinstance(value, origin):
                ok = True
        if not ok:
            raise ConfigError(f"train config {f.name}: expected {hints[f.name]}, got {value!r}")
    if isinstance(cfg.image_size, tuple) and not all(isinstance(v, int) for v in cfg.image_size):
        raise ConfigError(f"train config image_size: expected ints, got {cfg.image_size!r}")


# ---------------------------------------------------------------------------------------------------------
# resolving a config against the pack and the backbone registry


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill in defaults that depend on the backbone (weights, image size); make local paths absolute."""
    from catdog.model.classifier import check_image_size, resolve_weights
    from catdog.model.registry import get_backbone

    entry = get_backbone(cfg.backbone)
    backbone = str(Path(cfg.backbone).resolve()) if entry.is_file else cfg.backbone
    weights = resolve_weights(entry, cfg.weights)
    if weights not in ("imagenet", "none", "file"):
        weights = str(Path(weights).resolve())
    size = check_image_size(entry, cfg.image_size if cfg.image_size is not None else entry.default_size)
    data = cfg.data if "://" in cfg.data else str(Path(cfg.data).resolve())
    if entry.from_scratch and cfg.fine_tune_epochs:
        raise ConfigError(f"--fine-tune-epochs: backbone {entry.name} trains end to end already; leave it at 0")
    return dataclasses.replace(cfg, backbone=backbone, weights=weights, image_size=size, data=data)


def check_resume_config(given: TrainConfig, stored: TrainConfig, run_dir) -> None:
    """A resumed run must train exactly what it started training; one line lists what differs."""
    a, b = given.to_dict(), stored.to_dict()
    diffs = [f"{k}={a[k]!r} (run has {b[k]!r})" for k in a if k not in RESUME_FREE_KEYS and a[k] != b[k]]
    if diffs:
        raise ConfigError(f"--resume {run_dir}: config differs from the run's config.json: {'; '.join(diffs)}")


# ---------------------------------------------------------------------------------------------------------
# model, data and optimiser construction (one place, so a tf.distribute strategy scope can wrap it)


def _labels_for(num_classes: int):
    """Binary models output (N, 1) sigmoid -> labels as float (N, 1); softmax models take int labels."""
    import tensorflow as tf

    def binary(y):
        return tf.reshape(tf.cast(y, tf.float32), (-1, 1))

    def sparse(y):
        return y

    return binary if num_classes == 2 else sparse


def _np_labels(y: np.ndarray, num_classes: int) -> np.ndarray:
    return y.astype(np.float32).reshape(-1, 1) if num_classes == 2 else y.astype(np.int32)


def compile_model(model, learning_rate, num_classes: int, *, jit_compile: bool = False) -> None:
    """Adam + cross-entropy; metrics `accuracy` and `log_loss` (unweighted, unregularised: the monitor)."""
    import keras

    if num_classes == 2:
        loss, metrics = keras.losses.BinaryCrossentropy(), [keras.metrics.BinaryAccuracy(name="accuracy"),
                                                            keras.metrics.BinaryCrossentropy(name="log_loss")]
    else:
        loss, metrics = keras.losses.SparseCategoricalCrossentropy(), [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseCategoricalCrossentropy(name="log_loss")]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics,
                  jit_compile=jit_compile)


def learning_rate(cfg: TrainConfig, peak: float, total_steps: int):
    import keras

    if cfg.schedule == "constant":
        return peak
    return keras.optimizers.schedules.CosineDecay(peak, decay_steps=max(1, total_steps))


def build_models(cfg: TrainConfig, num_classes: int):
    """backbone, head and the classifier that shares the head's layers (frozen backbone unless from scratch)."""
    from catdog.model.classifier import build_backbone, build_classifier, feature_dim, freeze, pin_inference_mode
    from catdog.model.head import build_head
    from catdog.model.registry import get_backbone

    entry = get_backbone(cfg.backbone)
    backbone = build_backbone(entry, cfg.weights, cfg.image_size)
    if len(backbone.output.shape) not in (2, 4):
        raise ModelError(f"backbone {cfg.backbone}: output shape {backbone.output.shape} is neither a feature map "
                         "(N, h, w, C) nor pooled features (N, C)")
    if not entry.from_scratch:  # a pretrained feature extractor: frozen, and always in inference mode
        freeze(backbone)
        pin_inference_mode(backbone)
    _synchronize_batch_norm(backbone)
    head = build_head(feature_dim(backbone), num_classes, dropout=cfg.dropout, l2=cfg.l2, seed=cfg.seed)
    return backbone, head, build_classifier(backbone, head, cfg.image_size)


def _synchronize_batch_norm(model) -> None:
    """Under several replicas, BatchNormalization that trains uses the statistics of the GLOBAL batch.

    Keras 3 keeps a replica's moving mean/variance unsynchronised (aggregation "none"), so workers would end
    with different moving statistics although their trainable weights agree; with synchronized=True every
    replica computes the same moments (one all-reduce) and updates the same moving statistics. Layers pinned
    to inference mode (frozen pretrained backbones) never update them and are unaffected.
    """
    import keras
    import tensorflow as tf

    if tf.distribute.get_strategy().num_replicas_in_sync == 1:
        return
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
        stack.extend(getattr(layer, "layers", []))


def class_weights(cfg: TrainConfig, manifest: dict) -> dict[int, float] | None:
    """Balanced weights n / (C * n_c) when asked, or (auto) when the largest class is 1.5x the smallest."""
    counts = manifest["splits"]["train"].get("class_counts") or {}
    counts = [int(counts.get(name, 0)) for name in manifest["classes"]]
    if cfg.class_weights == "none" or min(counts) == 0:
        return None
    if cfg.class_weights == "auto" and max(counts) / min(counts) <= IMBALANCE_RATIO:
        return None
    total = sum(counts)
    return {i: total / (len(counts) * c) for i, c in enumerate(counts)}


def global_batch_size(cfg: TrainConfig) -> int:
    """--batch-size is per replica; a step of the current tf.distribute strategy consumes this many images."""
    import tensorflow as tf

    return cfg.batch_size * tf.distribute.get_strategy().num_replicas_in_sync


def image_dataset(cfg: TrainConfig, split: str, num_classes: int, *, training: bool, weights=None,
                  order_seed: int | None = None):
    """The real tf.data pipeline: (images 0..255, labels[, sample weights]); augmented when training.

    Batches hold the GLOBAL batch (per-replica batch x replicas); under several workers the training
    data is sharded by file (catdog.distribute.shard_options), so each worker reads only its shards.
    """
    import tensorflow as tf

    from catdog.data import load
    from catdog.data.augment import build_augment
    from catdog.data.manifest import read_manifest, shard_paths
    from catdog.distribute import is_multiworker, shard_options

    augment = build_augment(cfg.augment_config()) if training else None
    # training repeats forever and fit counts steps_per_epoch: epochs stay aligned to the data without Keras
    # running out of a finite dataset of unknown length
    ds = load(cfg.data, split, cfg.image_size, batch_size=global_batch_size(cfg), training=training,
              resize=cfg.resize, augment=augment, seed=order_seed if order_seed is not None else cfg.seed,
              repeat=training)
    strategy = tf.distribute.get_strategy()
    if is_multiworker(strategy):
        num_files = len(shard_paths(cfg.data, read_manifest(cfg.data), split))
        ds = ds.with_options(shard_options(num_files, strategy, training=training))
    to_labels = _labels_for(num_classes)
    table = tf.constant([weights[i] for i in range(num_classes)] if weights else [1.0] * num_classes, tf.float32)

    def weighted(x, y):
        return x, to_labels(y), tf.gather(table, y)

    def unweighted(x, y):
        return x, to_labels(y)

    return ds.map(weighted if weights else unweighted)


def cached_dataset(split_cache, batch_size: int, num_classes: int, *, shuffle: bool, seed: int, weights=None,
                   epoch: int = 0, views: int | None = None):
    """Batches of cached features read from the memory-mapped .npy files (a keras PyDataset)."""
    import keras

    class CachedFeatures(keras.utils.PyDataset):
        """Each epoch: a seeded permutation, and for every image one of its cached views at random."""

        def __init__(self):
            super().__init__()
            self.views = split_cache.features if views is None else split_cache.features[:views]
            self.labels = np.asarray(split_cache.labels)
            self.epoch = epoch
            self._plan()

        def _plan(self):
            rng = np.random.default_rng([seed, self.epoch])
            n = len(self.labels)
            self.order = rng.permutation(n) if shuffle else np.arange(n)
            self.view_of = rng.integers(0, len(self.views), n) if len(self.views) > 1 else np.zeros(n, int)

        def __len__(self):
            return math.ceil(len(self.labels) / batch_size)

        def __getitem__(self, index):
            idx = np.sort(self.order[index * batch_size : (index + 1) * batch_size])
            x = np.empty((len(idx), self.views[0].shape[1]), np.float32)
            which = self.view_of[idx]
            for view in np.unique(which):
                rows = which == view
                x[rows] = self.views[view][idx[rows]]
            y = self.labels[idx]
            if weights:
                return x, _np_labels(y, num_classes), np.array([weights[int(c)] for c in y], np.float32)
            return x, _np_labels(y, num_classes)

        def on_epoch_end(self):
            self.epoch += 1
            self._plan()

    return CachedFeatures()


# ---------------------------------------------------------------------------------------------------------
# per-epoch bookkeeping: metrics.csv, checkpoints, resume state, early stopping


def _atomic_json(path: Path, data: dict) -> None:
    from catdog.data.manifest import atomic_write_text

    atomic_write_text(str(path), json.dumps(data, indent=2, default=float) + "\n")


def _atomic_save(model, path: Path, **kwargs) -> None:
    """model.save / save_weights to a temporary name with the same suffix, then rename."""
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix
    tmp = path.with_name(f".tmp-{path.name[: -len(suffix)]}{suffix}")
    if suffix == ".weights.h5":
        model.save_weights(tmp)
    else:
        model.save(tmp, **kwargs)
    os.replace(tmp, path)


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
        _atomic_json(self.path, self.data)


def _make_recorder(run_dir: Path, state: RunState, phase: int, monitor: str, patience: int, epoch_offset: int,
                   last_path: Path, best_path: Path, last_kwargs: dict, best_kwargs: dict):
    import keras

    class Recorder(keras.callbacks.Callback):
        """After each epoch: append metrics.csv, save last (+ best when improved), update state.json, stop early.

        State is written last, so a run interrupted at any point resumes from the last fully recorded epoch.
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
                _atomic_save(self.model, best_path, **best_kwargs)
                state.data["best"] = {"value": value, "epoch": row["epoch"], "phase": phase,
                                      "val_accuracy": float(logs.get("val_accuracy", float("nan"))),
                                      "val_log_loss": float(logs.get("val_log_loss", float("nan")))}
                state.data["wait"] = 0
            else:
                state.data["wait"] += 1
            _atomic_save(self.model, last_path, **last_kwargs)
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


def _trim_csv(path: Path, last_epoch: int) -> None:
    """On resume, drop rows of an epoch that was logged but not checkpointed (interrupted in between)."""
    if not path.is_file():
        return
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= last_epoch]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _tensorboard(run_dir: Path, phase: int, profile: bool, steps: int):
    """TensorBoard logs written with core TensorFlow ops only.

    keras.callbacks.TensorBoard needs the `tensorboard` pip package for `tf.summary.scalar`, which a
    training machine need not have (it is only needed to VIEW the logs). `tf.summary.write` with the
    scalars plugin's metadata writes the same event files: epoch_<metric> under train/ and validation/
    (as Keras names them), the Keras model graph, and with --profile a profiler trace of steps 2-4.
    """
    import keras
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    log_dir = run_dir / "tensorboard" / f"phase{phase}"
    scalar = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
                                         data_class=summary_pb2.DATA_CLASS_SCALAR)
    graph = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="graph_keras_model", content=b"1"))
    first, last = (min(2, steps), min(4, steps)) if profile else (0, -1)

    class ScalarLog(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.writers = {k: tf.summary.create_file_writer(str(log_dir / k)) for k in ("train", "validation")}
            self.profiling = False
            with self.writers["train"].as_default():
                tf.summary.write("keras", tf.constant(self.model.to_json()), step=0, metadata=graph)

        def on_train_batch_begin(self, batch, logs=None):
            if profile and batch + 1 == first and not self.profiling:
                tf.profiler.experimental.start(str(log_dir))
                self.profiling = True

        def on_train_batch_end(self, batch, logs=None):
            if self.profiling and batch + 1 >= last:
                self._stop_profiler()

        def _stop_profiler(self):
            tf.profiler.experimental.stop()
            self.profiling = False
            log.info("profiler trace of steps %d-%d written to %s/plugins/profile", first, last, log_dir)

        def on_epoch_end(self, epoch, logs=None):
            if self.profiling:
                self._stop_profiler()
            for key, value in (logs or {}).items():
                split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                with self.writers[split].as_default():
                    tf.summary.write(f"epoch_{name}", tf.constant(float(value)), step=epoch, metadata=scalar)
            with self.writers["train"].as_default():
                lr = float(np.asarray(self.model.optimizer.learning_rate))
                tf.summary.write("epoch_learning_rate", tf.constant(lr), step=epoch, metadata=scalar)
            for writer in self.writers.values():
                writer.flush()

        def on_train_end(self, logs=None):
            if self.profiling:
                self._stop_profiler()
            for writer in self.writers.values():
                writer.close()

    return ScalarLog()


def _verbose() -> int:
    """Keras' live progress bar in a terminal; in logs catdog's own one line per epoch is enough."""
    return 1 if sys.stdout.isatty() else 0


# ---------------------------------------------------------------------------------------------------------
# the phases


def _cache_key(cfg: TrainConfig, manifest: dict, precision: str) -> dict:
    from catdog.data.manifest import file_sha256
    from catdog.model.feature_cache import pack_identity

    backbone_id = file_sha256(cfg.backbone) if Path(cfg.backbone).is_file() else cfg.backbone
    weights_id = file_sha256(cfg.weights) if Path(cfg.weights).is_file() else cfg.weights
    key = {"backbone": backbone_id, "weights": weights_id, "image_size": list(cfg.image_size),
           "resize": cfg.resize, "precision": precision, "pack": pack_identity(manifest)}
    if cfg.weights == "none":  # random init: the features depend on the seed
        key["init_seed"] = cfg.seed
    return key


def _profile_phase(cfg, use_cache: bool) -> int:
    """--profile traces the phase that runs images through the backbone (phase 1 unless it runs on the cache)."""
    return 2 if use_cache and cfg.fine_tune_epochs else 1


def phase1_cached(cfg, run_dir, state, backbone, head, num_classes, weights, manifest, precision, callbacks):
    """Frozen backbone: compute (or reuse) cached features, train the head on them. Returns the trained head."""
    import keras

    from catdog.data.augment import build_augment
    from catdog.model.classifier import feature_extractor
    from catdog.model.feature_cache import cache_folder, default_cache_root, ensure_split

    start = time.perf_counter()
    folder = cache_folder(cfg.cache_dir or default_cache_root(), _cache_key(cfg, manifest, precision))
    extractor = feature_extractor(backbone, cfg.image_size)
    aug = cfg.augment_config()
    if cfg.cache_views and aug.is_off():
        raise ConfigError("--cache-views needs augmentation; every augmentation switch is off")
    common = dict(resize=cfg.resize, batch_size=cfg.batch_size)
    train_cache = ensure_split(folder, _cache_key(cfg, manifest, precision), extractor, cfg.data, "train",
                               cfg.image_size, views=cfg.cache_views, augment=build_augment(aug),
                               augment_id=aug.fingerprint(), **common)
    val_cache = ensure_split(folder, _cache_key(cfg, manifest, precision), extractor, cfg.data, "val",
                             cfg.image_size, **common)
    cache_seconds = time.perf_counter() - start
    computed = train_cache.computed + val_cache.computed
    state.data["cache"] = {"folder": str(folder), "computed": computed,
                           "reused": len(computed) == 0, "seconds": round(cache_seconds, 3)}
    log.info("feature cache %s: %s (%.1f s)", folder, "reused" if not computed else f"computed {len(computed)} file(s)",
             cache_seconds)

    done = state["phase1"]["epochs_done"]
    batch = global_batch_size(cfg)
    train_seq = cached_dataset(train_cache, batch, num_classes, shuffle=True, seed=cfg.seed, weights=weights,
                               epoch=done)
    val_seq = cached_dataset(val_cache, batch, num_classes, shuffle=False, seed=cfg.seed, views=1)
    last_head = run_dir / "last_head.keras"
    if done and last_head.is_file():
        head = keras.saving.load_model(last_head)  # compiled, with the optimizer state of the last epoch
    else:
        compile_model(head, learning_rate(cfg, cfg.lr, len(train_seq) * cfg.epochs), num_classes, jit_compile=cfg.xla)
    recorder = _make_recorder(run_dir, state, 1, cfg.monitor, cfg.patience, 0, last_head,
                              run_dir / "best_head.weights.h5", {}, {})
    fit_start = time.perf_counter()
    head.fit(train_seq, validation_data=val_seq, epochs=cfg.epochs, initial_epoch=done, shuffle=False,
             verbose=_verbose(),
             callbacks=[recorder, _tensorboard(run_dir, 1, cfg.profile and _profile_phase(cfg, True) == 1,
                                               len(train_seq)), *callbacks])
    state["phase1"]["seconds"] += time.perf_counter() - fit_start
    return head, val_cache


def phase_on_images(cfg, run_dir, state, phase, classifier, num_classes, weights, callbacks, *, peak_lr, epochs,
                    epoch_offset):
    """Train `classifier` on the real augmented pipeline (phase 1 without cache / from scratch, or phase 2)."""
    import keras
    import tensorflow as tf

    from catdog.data import num_examples
    from catdog.distribute import is_multiworker

    done = state[f"phase{phase}"]["epochs_done"]
    steps = math.ceil(num_examples(cfg.data, "train") / global_batch_size(cfg))
    if getattr(classifier, "optimizer", None) is None or not classifier.compiled:
        compile_model(classifier, learning_rate(cfg, peak_lr, steps * epochs), num_classes, jit_compile=cfg.xla)
    train_ds = image_dataset(cfg, "train", num_classes, training=True, weights=weights, order_seed=cfg.seed + done)
    val_ds = image_dataset(cfg, "val", num_classes, training=False)
    recorder = _make_recorder(run_dir, state, phase, cfg.monitor, cfg.patience, epoch_offset, run_dir / "last.keras",
                              run_dir / "best.keras", {}, {"include_optimizer": False})
    # several workers: a restarted cluster resumes from the last epoch's weights + optimizer (each worker
    # keeps its own backup, in its own write folder; fit removes it when it completes, so phase 2 may reuse
    # the folder); before the recorder, so the weights are never behind state.json
    multi = is_multiworker(tf.distribute.get_strategy())
    backup = [keras.callbacks.BackupAndRestore(backup_dir=str(run_dir / "backup"))] if multi else []
    fit_start = time.perf_counter()
    classifier.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=done, steps_per_epoch=steps,
                   shuffle=False, verbose=_verbose(),
                   callbacks=[*backup, recorder, _tensorboard(run_dir, phase, cfg.profile and phase == _profile_phase(
                       cfg, state["phase1"]["mode"] == "cached"), steps), *callbacks])
    state[f"phase{phase}"]["seconds"] += time.perf_counter() - fit_start
    if multi:  # workers in sync end with equal weights: compare this line across the workers' logs
        from catdog.distribute import weights_checksum

        log.info("phase %d weights checksum %s", phase, weights_checksum(classifier))


# ---------------------------------------------------------------------------------------------------------
# the run


def _new_run_dir(cfg: TrainConfig) -> Path:
    root = Path(cfg.runs_dir)
    if cfg.name:
        run_dir = root / cfg.name
        if (run_dir / "config.json").exists():
            raise ConfigError(f"{run_dir}: run folder exists; continue it with --resume {run_dir} or pick another --name")
    else:
        stem = Path(cfg.backbone).stem if Path(cfg.backbone).suffix else cfg.backbone
        base = f"{stem}-{datetime.now():%Y%m%d-%H%M%S}"
        run_dir, n = root / base, 1
        while run_dir.exists():
            n += 1
            run_dir = root / f"{base}-{n}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _run_config(cfg: TrainConfig, manifest: dict, feature_dim: int) -> dict:
    import platform

    import keras
    import tensorflow as tf

    import catdog

    return {**cfg.to_dict(), "catdog_version": catdog.__version__, "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__, "python_version": platform.python_version(),
            "manifest_fingerprint": manifest.get("fingerprint"), "classes": list(manifest["classes"]),
            "feature_dim": feature_dim, "created": datetime.now().isoformat(timespec="seconds")}


def _use_mixed_precision(mode: str) -> bool:
    import tensorflow as tf

    return mode == "on" or (mode == "auto" and bool(tf.config.list_physical_devices("GPU")))


def _attach_log(run_dir: Path) -> list[logging.Handler]:
    """Progress lines go to run_dir/train.log and to stderr (the console of the CLI or notebook)."""
    file_handler = logging.FileHandler(run_dir / "train.log")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(message)s"))
    handlers = [file_handler, console]
    for handler in handlers:
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return handlers


def train(config: TrainConfig | None = None, *, resume=None, callbacks=()) -> Path:
    """Train a classifier; returns the run folder.

    Args:
        config: the training config. With `resume`, None means "the run's own config.json"; a given config
            must equal it (apart from name/runs_dir/cache_dir/profile), else ConfigError.
        resume: a run folder of an interrupted run: continue from its last recorded epoch.
        callbacks: extra keras callbacks for every fit call (after catdog's own).

    Returns:
        Path of the run folder (see the module docstring for its contents). Under several workers
        (config.strategy multiworker) only the chief writes it; the others run the same steps in a
        temporary folder (catdog.distribute.worker_write_dir), deleted when training completes, and
        return that path. A named multi-worker run that is started again after an interruption resumes
        by itself (state.json + keras.callbacks.BackupAndRestore).
    """
    import keras

    from catdog import distribute
    from catdog.data import manifest as manifest_lib

    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file() and not distribute.is_chief():
            run_dir = Path(distribute.worker_dir_for(str(run_dir)))  # this worker's own copy of the run
        cfg = _resume_config(run_dir, config)
    else:
        if config is None:
            raise ConfigError("train needs a config (or resume=RUN_DIR)")
        cfg = resolve(config)
    check_training_memory(cfg.image_size, cfg.batch_size)  # before any folder exists (issue 13)
    strategy = distribute.make_strategy(cfg.strategy)  # before any model or dataset exists
    multi = distribute.is_multiworker(strategy)
    if multi and resume is None and cfg.name:
        mine = Path(distribute.worker_dir_for(str(Path(cfg.runs_dir) / cfg.name)))
        if (mine / "state.json").is_file() and not json.loads((mine / "state.json").read_text()).get("complete"):
            run_dir, resume = mine, mine  # a restarted worker: continue where the cluster stopped
            cfg = _resume_config(run_dir, config)
    manifest = manifest_lib.read_manifest(cfg.data)
    for split in ("train", "val"):
        if manifest.get("splits", {}).get(split, {}).get("num_examples", 0) == 0:
            raise DataError(f"{cfg.data}: packed folder has no '{split}' split; train needs train and val "
                            "(re-pack with a validation fraction, e.g. `catdog pack SRC --out DIR --val-fraction 0.2`)")
    classes = list(manifest["classes"])
    num_classes = len(classes)
    if num_classes < 2:
        raise DataError(f"{cfg.data}: need at least 2 classes, the manifest lists {classes}")
    if resume is not None and json.loads((run_dir / "config.json").read_text()).get("classes") != classes:
        raise ConfigError(f"--resume {run_dir}: the packed folder's classes changed since the run started")

    previous_policy = keras.mixed_precision.dtype_policy()
    mixed = _use_mixed_precision(cfg.mixed_precision)
    handlers: list[logging.Handler] = []
    held = contextlib.ExitStack()  # the run folder's lock, released in `finally`
    try:
        if mixed:
            keras.mixed_precision.set_global_policy("mixed_float16")
        keras.utils.set_random_seed(cfg.seed)
        with strategy.scope():  # model, optimizer and metrics (also those loaded from checkpoints) are distributed
            models = build_models(cfg, num_classes)  # before the run folder exists: a failing backbone writes nothing
        chief = distribute.is_chief()
        if resume is None:
            run_dir = _new_run_dir(cfg) if chief or not multi else _worker_run_dir(cfg)
        held.enter_context(lock.exclusive(run_dir, "training run"))  # one writer per run folder
        handlers = _attach_log(run_dir)
        state = RunState(run_dir)
        if resume is not None:
            done = state["phase1"]["epochs_done"] + state["phase2"]["epochs_done"]
            _trim_csv(run_dir / "metrics.csv", done)
            log.info("resuming %s after %d recorded epoch(s)", run_dir, done)
        if strategy.num_replicas_in_sync > 1 or multi:
            log.info("strategy %s: global batch %d (--batch-size %d per replica)%s", distribute.describe(strategy),
                     cfg.batch_size * strategy.num_replicas_in_sync, cfg.batch_size,
                     "" if chief else f"; not the chief: writing into {run_dir}, deleted when done")
        with strategy.scope():
            run_dir = _train(cfg, run_dir, state, manifest, num_classes, "mixed_float16" if mixed else "float32",
                             list(callbacks), models, multi)
        if multi and not chief:
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
        return run_dir
    except KeyboardInterrupt:
        if handlers:
            log.warning("interrupted; continue with: catdog train --resume %s", run_dir)
        raise
    except Exception as e:
        from catdog.data.pipeline import pipeline_error

        problem = pipeline_error(e, cfg.data, "train/val")  # a damaged shard, named as evaluate names it
        if problem is None:
            raise
        raise problem from None
    finally:
        held.close()
        keras.mixed_precision.set_global_policy(previous_policy)
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()


def _resume_config(run_dir: Path, config: TrainConfig | None) -> TrainConfig:
    """The run's own config.json (a given config must equal it, apart from RESUME_FREE_KEYS)."""
    if not (run_dir / "config.json").is_file() or not (run_dir / "state.json").is_file():
        raise ConfigError(f"--resume {run_dir}: not a catdog run folder (needs config.json and state.json)")
    stored = TrainConfig.from_run_config(json.loads((run_dir / "config.json").read_text()))
    cfg = resolve(config) if config is not None else stored
    check_resume_config(cfg, stored, run_dir)
    return dataclasses.replace(stored, profile=cfg.profile, cache_dir=cfg.cache_dir)


def _worker_run_dir(cfg: TrainConfig) -> Path:
    """A non-chief worker's write folder: a fresh one, or the stable one of a named run (stale copies removed)."""
    import shutil

    from catdog.distribute import worker_write_dir

    if not cfg.name:
        return Path(worker_write_dir())
    path = Path(worker_write_dir(str(Path(cfg.runs_dir) / cfg.name)))
    shutil.rmtree(path)  # a finished earlier run of the same name: start afresh, like the chief
    path.mkdir(parents=True)
    return path


def _train(cfg, run_dir, state, manifest, num_classes, precision, callbacks, models, multi=False) -> Path:
    import keras

    from catdog.model.classifier import build_classifier, feature_dim, get_backbone_layer, unfreeze
    from catdog.model.registry import get_backbone

    entry = get_backbone(cfg.backbone)
    weights = class_weights(cfg, manifest)
    train_n = manifest["splits"]["train"]["num_examples"]
    val_n = manifest["splits"]["val"]["num_examples"]
    backbone, head, classifier = models
    if not (run_dir / "config.json").is_file():
        _atomic_json(run_dir / "config.json", _run_config(cfg, manifest, feature_dim(backbone)))
    state.save()
    log.info("training %s (%s weights, %dx%d, %s) on %d train / %d val images, %d classes: %s -> %s",
             cfg.backbone, cfg.weights, *cfg.image_size, precision, train_n, val_n, num_classes,
             ", ".join(manifest["classes"]), run_dir)
    if weights:
        log.info("class weights (imbalanced classes): %s", {manifest["classes"][i]: round(w, 3) for i, w in weights.items()})

    # phase 1: frozen backbone (or the whole small-cnn from scratch)
    val_cache = None
    p1 = state["phase1"]
    use_cache = cfg.cache and not entry.from_scratch
    if use_cache and multi:
        use_cache = False
        log.info("feature cache off under several workers: phase 1 trains on images through the frozen backbone")
    p1["mode"] = "scratch" if entry.from_scratch else ("cached" if use_cache else "frozen")
    if not p1["done"]:
        if use_cache:
            head, val_cache = phase1_cached(cfg, run_dir, state, backbone, head, num_classes, weights, manifest,
                                            precision, callbacks)
            # the classifier around the trained head: last.keras = last epoch, best.keras = best epoch
            classifier = build_classifier(backbone, head, cfg.image_size)
            _atomic_save(classifier, run_dir / "last.keras")
            if (run_dir / "best_head.weights.h5").is_file():
                head.load_weights(run_dir / "best_head.weights.h5")
                _atomic_save(classifier, run_dir / "best.keras")
        else:
            if p1["epochs_done"] and (run_dir / "last.keras").is_file():
                classifier = keras.saving.load_model(run_dir / "last.keras")
            phase_on_images(cfg, run_dir, state, 1, classifier, num_classes, weights, callbacks, peak_lr=cfg.lr,
                            epochs=cfg.epochs, epoch_offset=0)
        if not (run_dir / "best.keras").is_file():
            raise ModelError(f"{run_dir}: {cfg.monitor} was never finite in phase 1 (training diverged?); "
                             "try a lower --lr")
        p1["done"] = True
        state.save()
    elif use_cache and state["best"] and state["best"]["phase"] == 1:
        _, val_cache = _reuse_val_cache(cfg, backbone, manifest, precision)

    # phase 2: fine-tune the top of the backbone on real augmented images, BN in inference mode
    p2 = state["phase2"]
    if cfg.fine_tune_epochs and not p2["done"]:
        if p2["epochs_done"] and (run_dir / "last.keras").is_file():
            classifier = keras.saving.load_model(run_dir / "last.keras")
        else:
            classifier = keras.saving.load_model(run_dir / "best.keras", compile=False)
            count = unfreeze(get_backbone_layer(classifier), cfg.unfreeze)
            state.data["wait"] = 0  # patience counts per phase; the best score carries over
            log.info("fine-tuning: %d backbone layers with weights unfrozen (--unfreeze %s), lr %g", count,
                     cfg.unfreeze, cfg.fine_tune_lr)
        phase_on_images(cfg, run_dir, state, 2, classifier, num_classes, weights, callbacks,
                        peak_lr=cfg.fine_tune_lr, epochs=cfg.fine_tune_epochs, epoch_offset=p1["epochs_done"])
        p2["done"] = True
        state.save()

    summary = finalize(cfg, run_dir, state, num_classes, val_cache, train_n, val_n, weights, manifest)
    state.data["complete"] = True
    state.save()
    log.info("done: best val_accuracy %.4f, val_log_loss %.4f (epoch %d, phase %d; calibrated %.4f at T=%.3f) -> %s",
             summary["val_accuracy"], summary["val_log_loss"], summary["best_epoch"], summary["best_phase"],
             summary["val_log_loss_calibrated"], summary["temperature"], run_dir)
    return run_dir


def _reuse_val_cache(cfg, backbone, manifest, precision):
    from catdog.model.classifier import feature_extractor
    from catdog.model.feature_cache import cache_folder, default_cache_root, ensure_split

    key = _cache_key(cfg, manifest, precision)
    folder = cache_folder(cfg.cache_dir or default_cache_root(), key)
    return None, ensure_split(folder, key, feature_extractor(backbone, cfg.image_size), cfg.data, "val",
                              cfg.image_size, resize=cfg.resize, batch_size=cfg.batch_size)


# ---------------------------------------------------------------------------------------------------------
# after training: calibration, summary, plots


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


def finalize(cfg, run_dir, state, num_classes, val_cache, train_n, val_n, weights, manifest) -> dict:
    from catdog.calibrate import apply_temperature, fit_temperature, log_loss
    from catdog.run import load_keras_model

    best = load_keras_model(run_dir / "best.keras")
    best_info = state["best"] or {}
    use_cache = val_cache if best_info.get("phase") == 1 and state["phase1"]["mode"] == "cached" else None
    logits, labels = val_logits(cfg, best, use_cache)
    temperature = fit_temperature(logits, labels)
    before, after = log_loss(logits, labels), log_loss(logits, labels, temperature)
    _atomic_json(run_dir / "calibration.json", {"temperature": temperature, "val_log_loss_before": before,
                                                "val_log_loss_after": after})
    probs = apply_temperature(logits, 1.0)
    predicted = (probs[:, 0] > 0.5).astype(int) if num_classes == 2 else probs.argmax(1)
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
    _atomic_json(run_dir / "summary.json", summary)
    write_plots(run_dir)
    return summary


def write_plots(run_dir: Path) -> None:
    """plots/loss.png and plots/accuracy.png from metrics.csv (train vs validation, per epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with (run_dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
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
        tmp = run_dir / "plots" / f".tmp-{name}.png"
        fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        os.replace(tmp, run_dir / "plots" / f"{name}.png")
