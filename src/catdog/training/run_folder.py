"""The run folder's life: a new folder (or a worker's), config.json's content, train.log, the resume config."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from datetime import datetime
from pathlib import Path

from catdog._version import __version__
from catdog.errors import ConfigError
from catdog.training.config import TrainConfig, check_resume_config, resolve

log = logging.getLogger("catdog.train")  # one logger for the whole run: train.log attaches to it


def new_run_dir(cfg: TrainConfig) -> Path:
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


def worker_run_dir(cfg: TrainConfig) -> Path:
    """A non-chief worker's write folder: a fresh one, or the stable one of a named run (stale copies removed)."""
    import shutil

    from catdog.distribute import worker_write_dir

    if not cfg.name:
        return Path(worker_write_dir())
    path = Path(worker_write_dir(str(Path(cfg.runs_dir) / cfg.name)))
    shutil.rmtree(path)  # a finished earlier run of the same name: start afresh, like the chief
    path.mkdir(parents=True)
    return path


def run_config(cfg: TrainConfig, manifest: dict, feature_dim: int) -> dict:
    import platform

    import keras
    import tensorflow as tf

    return {**cfg.to_dict(), "catdog_version": __version__, "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__, "python_version": platform.python_version(),
            "manifest_fingerprint": manifest.get("fingerprint"), "classes": list(manifest["classes"]),
            "feature_dim": feature_dim, "created": datetime.now().isoformat(timespec="seconds")}


def use_mixed_precision(mode: str) -> bool:
    import tensorflow as tf

    return mode == "on" or (mode == "auto" and bool(tf.config.list_physical_devices("GPU")))


def attach_log(run_dir: Path) -> list[logging.Handler]:
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


def resume_config(run_dir: Path, config: TrainConfig | None) -> TrainConfig:
    """The run's own config.json (a given config must equal it, apart from RESUME_FREE_KEYS)."""
    if not (run_dir / "config.json").is_file() or not (run_dir / "state.json").is_file():
        raise ConfigError(f"--resume {run_dir}: not a catdog run folder (needs config.json and state.json)")
    stored = TrainConfig.from_run_config(json.loads((run_dir / "config.json").read_text()))
    cfg = resolve(config) if config is not None else stored
    check_resume_config(cfg, stored, run_dir)
    return dataclasses.replace(stored, profile=cfg.profile, cache_dir=cfg.cache_dir, runtime=cfg.runtime)

