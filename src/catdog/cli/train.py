"""`catdog train`: parse options -> catdog.train(PACKED, **options) -> print the summary line.

Every option defaults to None ("not given"), so a fresh run takes TrainConfig's defaults and `--resume`
can tell which options were given and must match the run's config.json.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from catdog.cli import app, handle_errors
from catdog.cli.evaluate import Runtime


class Resize(str, Enum):  # catdog.data.decode.RESIZE_MODES
    squash = "squash"
    crop = "crop"
    pad = "pad"


class Schedule(str, Enum):  # catdog.training.config.SCHEDULES
    cosine = "cosine"
    constant = "constant"


class ClassWeights(str, Enum):  # catdog.training.config.CLASS_WEIGHT_MODES
    auto = "auto"
    balanced = "balanced"
    none = "none"


class Monitor(str, Enum):  # catdog.training.config.MONITORS
    val_log_loss = "val_log_loss"
    val_loss = "val_loss"
    val_accuracy = "val_accuracy"


class MixedPrecision(str, Enum):  # catdog.training.config.MIXED_PRECISION_MODES
    auto = "auto"
    on = "on"
    off = "off"


class Strategy(str, Enum):  # catdog.distribute.STRATEGIES
    auto = "auto"
    mirrored = "mirrored"
    multiworker = "multiworker"
    none = "none"


def _value(choice: Enum | None) -> str | None:
    return None if choice is None else choice.value


def _unfreeze(value: str | None):
    """"20" -> top 20 layers; "0.2" -> that fraction of the backbone's layers."""
    if value is None:
        return None
    from catdog.errors import ConfigError

    try:
        return float(value) if any(c in value for c in ".eE") else int(value)
    except ValueError:
        raise ConfigError(f"--unfreeze must be a layer count (e.g. 20) or a fraction (e.g. 0.2); got {value!r}") from None


@app.command()
@handle_errors
def train(
    packed: Annotated[Optional[str], typer.Argument(help="Packed folder from `catdog pack` (train + val splits); "
                                                        "any tf.io.gfile path, e.g. gs://bucket/packed.")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="Registry name (see --list-backbones) or a .keras model file. (default: efficientnetv2b0)")] = None,
    weights: Annotated[Optional[str], typer.Option(help="imagenet | none | PATH to a weights file. (default: imagenet; a model file's own)")] = None,
    image_size: Annotated[Optional[int], typer.Option(help="Input size in pixels. (default: the backbone's native size)")] = None,
    resize: Annotated[Optional[Resize], typer.Option(help="How images meet the input size. (default: squash)")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Phase-1 epochs (frozen backbone). (default: 60 on cached features, 10 otherwise; early stopping)")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="(default: 32)")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Phase-1 peak learning rate. (default: 6e-3)")] = None,
    schedule: Annotated[Optional[Schedule], typer.Option(help="Learning-rate schedule. (default: cosine)")] = None,
    fine_tune_epochs: Annotated[Optional[int], typer.Option(help="Phase-2 epochs (unfrozen top of the backbone). (default: 0)")] = None,
    unfreeze: Annotated[Optional[str], typer.Option(help="Phase 2: top N layers, or a fraction like 0.2. (default: 0.2)")] = None,
    fine_tune_lr: Annotated[Optional[float], typer.Option(help="Phase-2 learning rate. (default: 1e-5)")] = None,
    dropout: Annotated[Optional[float], typer.Option(help="Dropout before the dense head. (default: 0.2)")] = None,
    l2: Annotated[Optional[float], typer.Option(help="L2 penalty on the head kernel. (default: 1e-3 on cached features, 1e-4 when phase 1 runs on images)")] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help="Label smoothing of the training targets, in [0, 1). (default: 0)")] = None,
    class_weights: Annotated[Optional[ClassWeights], typer.Option(help="auto: balanced when classes are imbalanced. (default: auto)")] = None,
    cache: Annotated[Optional[bool], typer.Option("--cache/--no-cache", help="Phase 1 on cached backbone features. (default: cache)")] = None,
    cache_views: Annotated[Optional[int], typer.Option(help="Augmented views per training image in the cache. (default: 0)")] = None,
    runtime: Annotated[Optional[Runtime], typer.Option(help="Runs the frozen backbone for the feature cache: auto = LiteRT on a CPU, TensorFlow on a GPU. (default: auto)")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Feature cache folder. (default: ~/.cache/catdog/features)")] = None,
    flip: Annotated[Optional[bool], typer.Option("--flip/--no-flip", help="Random left-right flip. (default: flip)")] = None,
    brightness: Annotated[Optional[float], typer.Option(help="Brightness jitter (fraction of 255), 0 = off. (default: 0.1)")] = None,
    contrast: Annotated[Optional[float], typer.Option(help="Contrast jitter, 0 = off. (default: 0.1)")] = None,
    saturation: Annotated[Optional[float], typer.Option(help="Saturation jitter, 0 = off. (default: 0.1)")] = None,
    hue: Annotated[Optional[float], typer.Option(help="Hue jitter (fraction of the wheel), 0 = off. (default: 0.02)")] = None,
    crop_scale: Annotated[Optional[float], typer.Option(help="Random resized crop min area, 1 = off. (default: 0.7)")] = None,
    runs_dir: Annotated[Optional[Path], typer.Option(help="Where run folders go. (default: runs)")] = None,
    name: Annotated[Optional[str], typer.Option(help="Run folder name. (default: <backbone>-<timestamp>)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for shuffling, head init, augmentation. (default: 42)")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early-stopping patience in epochs (0 = off). (default: 10 on cached features, 3 when phase 1 runs on images)")] = None,
    monitor: Annotated[Optional[Monitor], typer.Option(help="Best checkpoint and early stopping watch this. (default: val_log_loss)")] = None,
    mixed_precision: Annotated[Optional[MixedPrecision], typer.Option(help="auto: on with a GPU. (default: auto)")] = None,
    xla: Annotated[Optional[bool], typer.Option("--xla/--no-xla", help="XLA-compile the train step. (default: no-xla)")] = None,
    profile: Annotated[Optional[bool], typer.Option("--profile/--no-profile", help="Profiler trace of a few steps into tensorboard/. (default: off)")] = None,
    strategy: Annotated[Optional[Strategy], typer.Option(help="tf.distribute strategy. (default: auto)")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue an interrupted run folder from its last epoch.")] = None,
    list_backbones: Annotated[bool, typer.Option("--list-backbones", help="Print the registered backbones and exit.")] = False,
) -> None:
    """Train a classifier: frozen backbone on cached features, then optional fine-tuning; writes runs/<name>/."""
    if list_backbones:
        from catdog.model.registry import get_backbone, list_backbones as names

        for n in names():
            entry = get_backbone(n)
            typer.echo(f"{n:18s} size {entry.default_size:4d}  min {entry.min_size:3d}  features {entry.feature_dim:5d}"
                       f"  weights {entry.default_weights}")
        return
    import json

    import catdog

    given = {
        "backbone": backbone, "weights": weights, "image_size": image_size, "resize": _value(resize), "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "schedule": _value(schedule), "fine_tune_epochs": fine_tune_epochs,
        "unfreeze": _unfreeze(unfreeze), "fine_tune_lr": fine_tune_lr, "dropout": dropout, "l2": l2,
        "label_smoothing": label_smoothing, "class_weights": _value(class_weights), "cache": cache, "cache_views": cache_views,
        "runtime": _value(runtime), "cache_dir": str(cache_dir) if cache_dir else None, "flip": flip, "brightness": brightness,
        "contrast": contrast, "saturation": saturation, "hue": hue, "crop_scale": crop_scale,
        "runs_dir": str(runs_dir) if runs_dir else None, "name": name, "seed": seed, "patience": patience,
        "monitor": _value(monitor), "mixed_precision": _value(mixed_precision), "xla": xla, "profile": profile, "strategy": _value(strategy),
    }
    run_dir = catdog.train(packed, resume=resume, **given)
    if not (run_dir / "summary.json").is_file():  # a non-chief worker of a multi-worker run
        typer.echo("worker done (not the chief: the chief wrote the run folder)")
        return
    summary = json.loads((run_dir / "summary.json").read_text())
    typer.echo(f"best val accuracy {summary['val_accuracy']:.4f}, val log loss {summary['val_log_loss']:.4f} "
               f"(calibrated {summary['val_log_loss_calibrated']:.4f}), epoch {summary['best_epoch']} "
               f"-> {run_dir}")
