"""The two training phases: the head on cached backbone features, and fit on real (augmented) images.

Phase 1 trains the head on features the frozen backbone computed once (or, without the cache / from
scratch, on images); phase 2 fine-tunes the unfrozen top of the backbone on images.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

from catdog.errors import ConfigError
from catdog.model.loading import load_keras_model
from catdog.training.inputs import cache_key, cached_dataset, global_batch_size, image_dataset
from catdog.training.models import compile_model, learning_rate, smoothed_sparse_loss
from catdog.training.recorder import make_recorder
from catdog.training.tensorboard import tensorboard_callback

VAL_BATCH = 512  # cached validation features per step (a 1280-wide feature row is 5 KB)
HEAD_STEPS_PER_CALL = 32  # head steps on cached features per call into TensorFlow (a step takes < 1 ms)
log = logging.getLogger("catdog.train")  # one logger for the whole run: train.log attaches to it


def keras_verbose() -> int:
    """Keras' live progress bar in a terminal; in logs catdog's EpochProgress lines and one line per epoch."""
    return 1 if sys.stdout.isatty() else 0


def _epoch_progress(phase: int, images: int, batch_size: int, epochs: int) -> list:
    """[EpochProgress] where Keras' own bar is off, else []: never two bars. `images` an epoch: the split's
    count on cached features (the last batch is partial), steps x batch on images (the stream repeats)."""
    from catdog.training.epoch_progress import EpochProgress

    return [] if keras_verbose() else [EpochProgress(phase, images, batch_size, epochs)]


def _profile_phase(cfg, use_cache: bool) -> int:
    """--profile traces the phase that runs images through the backbone (phase 1 unless it runs on the cache)."""
    return 2 if use_cache and cfg.fine_tune_epochs else 1


def phase1_cached(cfg, run_dir, state, backbone, head, num_classes, weights, manifest, precision, callbacks):
    """Frozen backbone: compute (or reuse) cached features, train the head on them. Returns the trained head."""
    from catdog.data.augment import build_augment
    from catdog.model.classifier import feature_extractor
    from catdog.model.feature_cache import cache_folder, default_cache_root, ensure_split

    start = time.perf_counter()
    folder = cache_folder(cfg.cache_dir or default_cache_root(), cache_key(cfg, manifest, precision))
    extractor = feature_extractor(backbone, cfg.image_size)
    aug = cfg.augment_config()
    if cfg.cache_views and aug.is_off():
        raise ConfigError("--cache-views needs augmentation; every augmentation switch is off")
    common = dict(resize=cfg.resize, batch_size=cfg.batch_size, runtime=cfg.runtime, label=backbone_label(cfg))
    train_cache = ensure_split(folder, cache_key(cfg, manifest, precision), extractor, cfg.data, "train",
                               cfg.image_size, views=cfg.cache_views, augment=build_augment(aug),
                               augment_id=aug.fingerprint(), **common)
    val_cache = ensure_split(folder, cache_key(cfg, manifest, precision), extractor, cfg.data, "val",
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
    # validation only scores: one large batch per step instead of --batch-size (same metrics, fewer Keras steps)
    val_seq = cached_dataset(val_cache, max(batch, VAL_BATCH), num_classes, shuffle=False, seed=cfg.seed, views=1)
    last_head = run_dir / "last_head.keras"
    if done and last_head.is_file():
        smoothed_sparse_loss(num_classes, cfg.label_smoothing)  # registers the loss class the head was saved with
        head = load_keras_model(last_head, compile=True)  # compiled, with the optimizer state of the last epoch
    else:
        compile_model(head, learning_rate(cfg, cfg.lr, len(train_seq) * cfg.epochs), num_classes, jit_compile=cfg.xla,
                      label_smoothing=cfg.label_smoothing, steps_per_execution=HEAD_STEPS_PER_CALL)
    recorder = make_recorder(run_dir, state, 1, cfg.monitor, cfg.patience, 0, last_head,
                             run_dir / "best_head.weights.h5", {}, {})
    fit_start = time.perf_counter()
    head.fit(train_seq, validation_data=val_seq, epochs=cfg.epochs, initial_epoch=done, shuffle=False,
             verbose=keras_verbose(),
             callbacks=[recorder, tensorboard_callback(run_dir, 1, cfg.profile and _profile_phase(cfg, True) == 1,
                                                       len(train_seq)),
                        *_epoch_progress(1, train_cache.num_examples, batch, cfg.epochs), *callbacks])
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
        compile_model(classifier, learning_rate(cfg, peak_lr, steps * epochs), num_classes, jit_compile=cfg.xla,
                      label_smoothing=cfg.label_smoothing)
    train_ds = image_dataset(cfg, "train", num_classes, training=True, weights=weights, order_seed=cfg.seed + done)
    val_ds = image_dataset(cfg, "val", num_classes, training=False)
    recorder = make_recorder(run_dir, state, phase, cfg.monitor, cfg.patience, epoch_offset, run_dir / "last.keras",
                             run_dir / "best.keras", {}, {"include_optimizer": False})
    # several workers: a restarted cluster resumes from the last epoch's weights + optimizer (each worker
    # keeps its own backup, in its own write folder; fit removes it when it completes, so phase 2 may reuse
    # the folder); before the recorder, so the weights are never behind state.json
    multi = is_multiworker(tf.distribute.get_strategy())
    backup = [keras.callbacks.BackupAndRestore(backup_dir=str(run_dir / "backup"))] if multi else []
    fit_start = time.perf_counter()
    classifier.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=done, steps_per_epoch=steps,
                   shuffle=False, verbose=keras_verbose(),
                   callbacks=[*backup, recorder, tensorboard_callback(run_dir, phase, cfg.profile and phase == _profile_phase(
                       cfg, state["phase1"]["mode"] == "cached"), steps),
                       *_epoch_progress(phase, steps * global_batch_size(cfg), global_batch_size(cfg), epochs),
                       *callbacks])
    state[f"phase{phase}"]["seconds"] += time.perf_counter() - fit_start
    if multi:  # workers in sync end with equal weights: compare this line across the workers' logs
        from catdog.distribute import weights_checksum

        log.info("phase %d weights checksum %s", phase, weights_checksum(classifier))


def reuse_val_cache(cfg, backbone, manifest, precision):
    from catdog.model.classifier import feature_extractor
    from catdog.model.feature_cache import cache_folder, default_cache_root, ensure_split

    key = cache_key(cfg, manifest, precision)
    folder = cache_folder(cfg.cache_dir or default_cache_root(), key)
    return None, ensure_split(folder, key, feature_extractor(backbone, cfg.image_size), cfg.data, "val",
                              cfg.image_size, resize=cfg.resize, batch_size=cfg.batch_size, runtime=cfg.runtime,
                              label=backbone_label(cfg))


def backbone_label(cfg) -> str:
    """The backbone's short name for the runtime's messages and file names."""
    return Path(cfg.backbone).stem if Path(cfg.backbone).suffix else cfg.backbone

