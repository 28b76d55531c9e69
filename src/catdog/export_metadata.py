"""Read the metadata JSON written beside every export, and find a SavedModel version folder.

Its own module so that the predictors (which load exports) and the exporter (which writes them and
checks parity with a predictor) both depend on it, and not on each other.
"""

from __future__ import annotations

import json
from pathlib import Path

from catdog.errors import ModelError

METADATA_FORMAT = "catdog-export/1"
SAVED_MODEL_METADATA = "catdog.json"


def metadata_path(model_path) -> Path:
    """SavedModel folder -> folder/catdog.json; model.tflite -> model.tflite.json; model.keras -> model.keras.json."""
    model_path = Path(model_path)
    if model_path.is_dir() or model_path.suffix == "":
        return model_path / SAVED_MODEL_METADATA
    return model_path.with_name(model_path.name + ".json")


def read_metadata(model_path) -> dict:
    path = metadata_path(model_path)
    if not path.is_file():
        raise ModelError(f"{model_path}: no export metadata ({path} missing); pass the run folder itself, "
                         "or a model written by `catdog export`")
    try:
        metadata = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: cannot read export metadata ({e})") from e
    if metadata.get("format") != METADATA_FORMAT or not {"classes", "image_size", "resize"} <= metadata.keys():
        raise ModelError(f"{path}: not catdog export metadata (expected format {METADATA_FORMAT!r})")
    return metadata


def find_saved_model(path) -> Path | None:
    """A SavedModel folder, or the newest numeric version inside a TF Serving base folder; None if neither."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = [d for d in path.iterdir() if d.is_dir() and d.name.isdigit() and (d / "saved_model.pb").is_file()]
    return max(versions, key=lambda d: int(d.name)) if versions else None
