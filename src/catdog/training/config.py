"""TrainConfig: the one place for training defaults, their validation, and resolving them for a run.

Everything that determines a training run is a field here (the CLI options map 1:1 onto the fields and
the notebook API `catdog.train(packed, **fields)` too); config.json holds it fully resolved. `resolve`
fills in what depends on the backbone; `check_resume_config` refuses a --resume that would train
something else than the run started training.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass
from pathlib import Path

from catdog.errors import ConfigError
from catdog.outputs import check_plain_name

MONITORS = ("val_log_loss", "val_loss", "val_accuracy")
SCHEDULES = ("cosine", "constant")
CLASS_WEIGHT_MODES = ("auto", "balanced", "none")
MIXED_PRECISION_MODES = ("auto", "on", "off")
# Defaults that depend on what phase 1 trains on (filled in by `resolve`). The head on cached features: an epoch
# costs well under a second on 2 cores, so up to 60 epochs, a strong L2 and a long patience, tuned by
# bench/tune_defaults.py. A network on images (--no-cache, several workers, small-cnn from scratch): an epoch
# costs minutes on a CPU, and L2 1e-3 held a from-scratch net near chance (the demo), so the earlier settings.
PHASE1_DEFAULTS = {"cached": {"epochs": 60, "l2": 1e-3, "patience": 10},
                   "images": {"epochs": 10, "l2": 1e-4, "patience": 3}}
# config.json keys written beside the TrainConfig fields (not settable, recomputed on every run)
RUN_INFO_KEYS = ("catdog_version", "tensorflow_version", "keras_version", "python_version", "manifest_fingerprint",
                 "classes", "feature_dim", "created")

# fields that may differ on --resume: where the run lives and what is logged, not what is trained
RESUME_FREE_KEYS = ("name", "runs_dir", "cache_dir", "profile", "runtime")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run; config.json holds it fully resolved."""

    data: str  # packed folder written by `catdog pack` (needs train and val splits)
    backbone: str = "efficientnetv2b0"  # registry name (list_backbones()) or a path to a .keras feature extractor
    weights: str | None = None  # imagenet | none | PATH; None = the backbone's default (imagenet, or the file's own)
    image_size: int | tuple[int, int] | None = None  # None = the backbone's native size
    resize: str = "squash"  # squash | crop | pad, as catdog.data.decode.resize
    epochs: int | None = None  # phase 1 (frozen backbone, head trains); None = 60 on cached features, else 10 (PHASE1_DEFAULTS)
    batch_size: int = 32
    lr: float = 6e-3  # phase-1 peak learning rate (Adam)
    schedule: str = "cosine"  # learning-rate schedule over each phase: cosine decay to 0, or constant
    fine_tune_epochs: int = 0  # phase 2: unfrozen top of the backbone, real augmented images; 0 = skip
    unfreeze: int | float = 0.2  # phase 2: top N layers (int) or that fraction of the backbone's layers (float)
    fine_tune_lr: float = 1e-5  # low, so fine-tuning adjusts rather than destroys the pretrained features
    dropout: float = 0.2  # before the dense head
    l2: float | None = None  # L2 penalty on the dense head's kernel; None = 1e-3 on cached features, else 1e-4
    label_smoothing: float = 0.0  # training targets y * (1 - s) + s / C; scores and calibration use the true labels
    class_weights: str = "auto"  # auto (balanced when classes are imbalanced) | balanced | none
    cache: bool = True  # phase 1 on cached backbone features: the backbone runs once per image, not per epoch
    cache_views: int = 0  # extra augmented views of each training image in the cache (0 = plain view only)
    cache_dir: str | None = None  # None = $XDG_CACHE_HOME/catdog/features
    runtime: str = "auto"  # runs the frozen backbone for the cache: auto (LiteRT on a CPU, TF on a GPU) | tensorflow | litert
    flip: bool = True  # augmentation (training split only; cache views and phase 2)
    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.02
    crop_scale: float = 0.7  # random resized crop min area; 1.0 = off
    runs_dir: str = "runs"
    name: str | None = None  # run folder name; None = <backbone>-<YYYYmmdd-HHMMSS>
    seed: int = 42  # shuffling, head init, dropout and augmentation
    patience: int | None = None  # early stopping: epochs without improvement of `monitor`, per phase; None = 10 on cached features, else 3
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
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1; got {self.epochs}")
        for name in ("batch_size",):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        for name in ("fine_tune_epochs", "cache_views", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0; got {getattr(self, name)}")
        for name in ("lr", "fine_tune_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0; got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"--dropout must be in [0, 1); got {self.dropout}")
        if self.l2 is not None and self.l2 < 0:
            raise ConfigError(f"--l2 must be >= 0; got {self.l2}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"--label-smoothing must be in [0, 1); got {self.label_smoothing}")
        if isinstance(self.unfreeze, float) and not 0 < self.unfreeze <= 1:
            raise ConfigError(f"--unfreeze fraction must be in (0, 1]; got {self.unfreeze}")
        if isinstance(self.unfreeze, int) and self.unfreeze < 0:
            raise ConfigError(f"--unfreeze layer count must be >= 0; got {self.unfreeze}")
        _check_choice("resize", self.resize, ("squash", "crop", "pad"))
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("class-weights", self.class_weights, CLASS_WEIGHT_MODES)
        _check_choice("monitor", self.monitor, MONITORS)
        from catdog.runtime import RUNTIMES

        _check_choice("runtime", self.runtime, RUNTIMES)
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


def phase1_mode(cfg: TrainConfig, from_scratch: bool) -> str:
    """"cached" when phase 1 will train the head on cached features, else "images"; the trainer follows it."""
    from catdog.distribute import names_multiworker

    return "cached" if cfg.cache and not from_scratch and not names_multiworker(cfg.strategy) else "images"


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill in defaults that depend on the backbone (weights, image size) and on what phase 1 trains on
    (epochs, L2, patience: PHASE1_DEFAULTS); make local paths absolute."""
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
    defaults = PHASE1_DEFAULTS[phase1_mode(cfg, entry.from_scratch)]
    given = {"epochs": cfg.epochs, "l2": cfg.l2, "patience": cfg.patience}
    phase1 = {k: defaults[k] if v is None else v for k, v in given.items()}
    return dataclasses.replace(cfg, backbone=backbone, weights=weights, image_size=size, data=data, **phase1)


def check_resume_config(given: TrainConfig, stored: TrainConfig, run_dir) -> None:
    """A resumed run must train exactly what it started training; one line lists what differs."""
    a, b = given.to_dict(), stored.to_dict()
    diffs = [f"{k}={a[k]!r} (run has {b[k]!r})" for k in a if k not in RESUME_FREE_KEYS and a[k] != b[k]]
    if diffs:
        raise ConfigError(f"--resume {run_dir}: config differs from the run's config.json: {'; '.join(diffs)}")


def config_from_options(data=None, options: dict | None = None, *, resume=None) -> TrainConfig | None:
    """The TrainConfig for `catdog train` / `catdog.train(...)`: option names are the TrainConfig fields.

    A new run needs `data`. With `resume` (a run folder), the options given (and `data`) are laid over the
    run's own config.json, so train can refuse any that differ; with none given the result is None, which
    train reads as "the run's config.json as it is". An option set to None counts as not given.
    """
    given = {k: v for k, v in (options or {}).items() if v is not None}
    if resume is not None:
        config_path = Path(resume) / "config.json"
        if not config_path.is_file():
            raise ConfigError(f"--resume {resume}: not a catdog run folder (no config.json)")
        if data is not None:
            given["data"] = os.fspath(data)
        return TrainConfig.from_run_config({**json.loads(config_path.read_text()), **given}) if given else None
    if data is None:
        raise ConfigError("missing PACKED folder (or --resume RUN_DIR)")
    return TrainConfig.from_dict({**given, "data": os.fspath(data)})
