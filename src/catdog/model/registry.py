"""Backbone registry: one name -> one small declarative entry (timm's `register_model`, with catdog's data
settings attached, so the image size and preprocessing come from the backbone, never from a second flag).

A backbone builder returns a Keras model that takes raw RGB float32 0..255 (preprocessing INSIDE the
model) and returns a feature map (N, h, w, C) or pooled features (N, C). Any saved Keras model file
(`*.keras`) can stand in for a registry name and is used as a frozen feature extractor.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from catdog.errors import ConfigError
from catdog.model.entry import _REGISTRY, WEIGHT_CHOICES, BackboneEntry, register_backbone  # noqa: F401


def _ensure_loaded() -> None:
    # Registration happens on import of the entries module; import lazily so that `registry` stays light.
    import catdog.model.backbones  # noqa: F401


def list_backbones() -> list[str]:
    """Registered names, sorted (stable --help output and test ids)."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def is_model_file(name: str) -> bool:
    return str(name).endswith((".keras", ".h5")) or os.sep in str(name) or Path(str(name)).is_file()


def get_backbone(name: str) -> BackboneEntry:
    """Registry entry for a name, or an entry wrapping a saved Keras model file."""
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if is_model_file(name):
        if Path(name).is_dir():
            hint = f"; a run's model is {Path(name) / 'best.keras'}" if (Path(name) / "best.keras").is_file() else ""
            raise ConfigError(f"--backbone {name}: a folder, not a model file{hint}")
        if not Path(name).is_file():
            raise ConfigError(f"--backbone {name}: model file does not exist")
        fixed = _fixed_input_size(str(name))
        return BackboneEntry(str(name), _file_builder(str(name)), default_size=fixed or 224, min_size=32,
                             feature_dim=None, is_file=True, fixed_size=fixed)
    raise ConfigError(f"unknown backbone {name!r}; valid: {', '.join(list_backbones())}, or a path to a .keras model")


def _fixed_input_size(path: str) -> tuple[int, int] | None:
    """(height, width) of a .keras file whose one input has a fixed size, from its config.json (no loading:
    seconds for a big model); None for a flexible input (None, None, 3), an .h5 file, or anything unreadable
    (the model's own loading reports that)."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        inputs = [layer["config"].get("batch_shape") for layer in config["config"]["layers"]
                  if layer.get("class_name") == "InputLayer"]
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None
    if len(inputs) != 1 or not isinstance(inputs[0], list) or len(inputs[0]) != 4:
        return None
    height, width = inputs[0][1:3]
    return (height, width) if isinstance(height, int) and isinstance(width, int) else None


def _file_builder(path: str) -> Callable:
    def build(input_shape, weights):
        from catdog.model.loading import load_keras_model

        return load_keras_model(path)

    return build
