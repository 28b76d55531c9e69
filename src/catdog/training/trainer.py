"""train(): one run from config to finished run folder (strategy, models, phase 1, phase 2, finalize).

The steps live in the sibling modules; this one orders them and owns what spans them: the tf.distribute
strategy and mixed-precision policy, the chief/worker split, logging handlers and resume bookkeeping.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from catdog import lock
from catdog.errors import ConfigError, DataError, ModelError
from catdog.model.loading import load_keras_model
from catdog.resources import check_training_memory
from catdog.training.config import TrainConfig, phase1_mode, resolve
from catdog.training.finalize import finalize
from catdog.training.inputs import class_weights
from catdog.training.models import build_models
from catdog.training.phases import phase1_cached, phase_on_images, reuse_val_cache
from catdog.training.recorder import RunState, save_model, trim_csv, write_json
from catdog.training.run_folder import (attach_log, new_run_dir, resume_config, run_config,
                                        use_mixed_precision, worker_run_dir)

log = logging.getLogger("catdog.train")  # one logger for the whole run: train.log attaches to it


def train(config: TrainConfig | None = None, *, resume=None, callbacks=()) -> Path:
    """Train a classifier; returns the run folder.

    Args:
        config: the training config. With `resume`, None means "the run's own config.json"; a given config
            must equal it (apart from name/runs_dir/cache_dir/profile), else ConfigError.
        resume: a run folder of an interrupted run: continue from its last recorded epoch.
        callbacks: extra keras callbacks for every fit call (after catdog's own).

    Returns:
        Path of the run folder (catdog.training's docstring lists its files). Under several workers
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
        cfg = resume_config(run_dir, config)
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
            cfg = resume_config(run_dir, config)
    manifest = manifest_lib.read_manifest(cfg.data)
    if manifest.get("splits", {}).get("train", {}).get("num_examples", 0) == 0:
        raise DataError(f"{cfg.data}: packed folder has no labeled training images (no 'train' split); pack labeled "
                        "photos: class folders (SRC/cat/, SRC/dog/) or Kaggle names (cat.1.jpg)")
    if manifest.get("splits", {}).get("val", {}).get("num_examples", 0) == 0:
        raise DataError(f"{cfg.data}: packed folder has no 'val' split; train needs train and val "
                        "(re-pack with a validation fraction, e.g. `catdog pack SRC --out DIR --val-fraction 0.2`)")
    classes = list(manifest["classes"])
    num_classes = len(classes)
    if num_classes < 2:
        raise DataError(f"{cfg.data}: need at least 2 classes, the manifest lists {classes}")
    empty = [c for c in classes if manifest["splits"]["train"].get("class_counts", {}).get(c, 1) == 0]
    if empty:  # a softmax over a class it never sees; a stray folder or file read as a class looks like this
        raise DataError(f"{cfg.data}: class {empty[0]!r} has no training images ({len(empty)} of {num_classes} classes "
                        "empty; see the pack's rejected.csv); remove that folder or fix its files and pack again")
    if resume is not None and json.loads((run_dir / "config.json").read_text()).get("classes") != classes:
        raise ConfigError(f"--resume {run_dir}: the packed folder's classes changed since the run started")

    previous_policy = keras.mixed_precision.dtype_policy()
    mixed = use_mixed_precision(cfg.mixed_precision)
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
            run_dir = new_run_dir(cfg) if chief or not multi else worker_run_dir(cfg)
        held.enter_context(lock.exclusive(run_dir, "training run"))  # one writer per run folder
        handlers = attach_log(run_dir)
        state = RunState(run_dir)
        if resume is not None:
            done = state["phase1"]["epochs_done"] + state["phase2"]["epochs_done"]
            trim_csv(run_dir / "metrics.csv", done)
            log.info("resuming %s after %d recorded epoch(s)", run_dir, done)
        if strategy.num_replicas_in_sync > 1 or multi:
            log.info("strategy %s: global batch %d (--batch-size %d per replica)%s", distribute.describe(strategy),
                     cfg.batch_size * strategy.num_replicas_in_sync, cfg.batch_size,
                     "" if chief else f"; not the chief: writing into {run_dir}, deleted when done")
        with strategy.scope():
            run_dir = _train(cfg, run_dir, state, manifest, num_classes, "mixed_float16" if mixed else "float32",
                             list(callbacks), models)
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


def _train(cfg, run_dir, state, manifest, num_classes, precision, callbacks, models) -> Path:
    from catdog.model.classifier import build_classifier, feature_dim, get_backbone_layer, unfreeze
    from catdog.model.registry import get_backbone

    entry = get_backbone(cfg.backbone)
    weights = class_weights(cfg, manifest)
    train_n = manifest["splits"]["train"]["num_examples"]
    val_n = manifest["splits"]["val"]["num_examples"]
    backbone, head, classifier = models
    if not (run_dir / "config.json").is_file():
        write_json(run_dir / "config.json", run_config(cfg, manifest, feature_dim(backbone)))
    state.save()
    log.info("training %s (%s weights, %dx%d, %s) on %d train / %d val images, %d classes: %s -> %s",
             cfg.backbone, cfg.weights, *cfg.image_size, precision, train_n, val_n, num_classes,
             ", ".join(manifest["classes"]), run_dir)
    if weights:
        log.info("class weights (imbalanced classes): %s", {manifest["classes"][i]: round(w, 3) for i, w in weights.items()})

    # phase 1: frozen backbone (or the whole small-cnn from scratch)
    val_cache = None
    best = None  # the best classifier when it is still in memory (saves finalize reloading best.keras)
    p1 = state["phase1"]
    use_cache = phase1_mode(cfg, entry.from_scratch) == "cached"  # the decision that chose the phase-1 defaults
    if cfg.cache and not entry.from_scratch and not use_cache:
        log.info("feature cache off under several workers: phase 1 trains on images through the frozen backbone")
    p1["mode"] = "scratch" if entry.from_scratch else ("cached" if use_cache else "frozen")
    if not p1["done"]:
        if use_cache:
            head, val_cache = phase1_cached(cfg, run_dir, state, backbone, head, num_classes, weights, manifest,
                                            precision, callbacks)
            # the classifier around the trained head: last.keras = last epoch, best.keras = best epoch
            classifier = build_classifier(backbone, head, cfg.image_size)
            save_model(classifier, run_dir / "last.keras")
            if (run_dir / "best_head.weights.h5").is_file():
                head.load_weights(run_dir / "best_head.weights.h5")
                save_model(classifier, run_dir / "best.keras")
                best = classifier
        else:
            if p1["epochs_done"] and (run_dir / "last.keras").is_file():
                classifier = load_keras_model(run_dir / "last.keras", compile=True)
            phase_on_images(cfg, run_dir, state, 1, classifier, num_classes, weights, callbacks, peak_lr=cfg.lr,
                            epochs=cfg.epochs, epoch_offset=0)
        if not (run_dir / "best.keras").is_file():
            raise ModelError(f"{run_dir}: {cfg.monitor} was never finite in phase 1 (training diverged?); "
                             "try a lower --lr")
        p1["done"] = True
        state.save()
    elif use_cache and state["best"] and state["best"]["phase"] == 1:
        _, val_cache = reuse_val_cache(cfg, backbone, manifest, precision)

    # phase 2: fine-tune the top of the backbone on real augmented images, BN in inference mode
    p2 = state["phase2"]
    if cfg.fine_tune_epochs and not p2["done"]:
        if p2["epochs_done"] and (run_dir / "last.keras").is_file():
            classifier = load_keras_model(run_dir / "last.keras", compile=True)
        else:
            classifier = load_keras_model(run_dir / "best.keras")
            count = unfreeze(get_backbone_layer(classifier), cfg.unfreeze)
            state.data["wait"] = 0  # patience counts per phase; the best score carries over
            log.info("fine-tuning: %d backbone layers with weights unfrozen (--unfreeze %s), lr %g", count,
                     cfg.unfreeze, cfg.fine_tune_lr)
        phase_on_images(cfg, run_dir, state, 2, classifier, num_classes, weights, callbacks,
                        peak_lr=cfg.fine_tune_lr, epochs=cfg.fine_tune_epochs, epoch_offset=p1["epochs_done"])
        best = None  # phase 2 may have written a better best.keras
        p2["done"] = True
        state.save()

    summary = finalize(cfg, run_dir, state, num_classes, val_cache, train_n, val_n, weights, manifest, best)
    state.data["complete"] = True
    state.save()
    log.info("done: best val_accuracy %.4f, val_log_loss %.4f (epoch %d, phase %d; calibrated %.4f at T=%.3f) -> %s",
             summary["val_accuracy"], summary["val_log_loss"], summary["best_epoch"], summary["best_phase"],
             summary["val_log_loss_calibrated"], summary["temperature"], run_dir)
    return run_dir

