"""Load a saved .keras model file, with one-line errors (ModelError) instead of Keras' tracebacks.

Its own module, importing nothing from catdog but errors, so that every loader (run folders, file
backbones in the registry, training checkpoints, predictors) can use it without import circles.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from catdog.errors import ModelError


def load_keras_model(path, *, compile: bool = False):
    """keras.saving.load_model; ModelError naming the file on a broken one.

    Args:
        path: a .keras file (or another format Keras loads).
        compile: restore the compiled state (loss, metrics, optimizer state); True only where training
            continues from the checkpoint. Defaults to False.
    """
    import keras

    if Path(path).suffix == ".keras" and Path(path).is_file() and not zipfile.is_zipfile(path):
        # Keras says "File not found" for an existing file that is not a zip: name the real problem
        raise ModelError(f"{path}: not a Keras model file (a .keras file is a zip archive; this one is not: "
                         "empty, truncated or corrupt)")
    try:
        return keras.saving.load_model(str(path), compile=compile)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as e:  # BadZipFile: e.g. bad CRC-32
        raise ModelError(f"{path}: cannot load the Keras model ({str(e).splitlines()[0][:200]})") from e
