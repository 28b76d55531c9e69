"""TensorBoard logs of each phase through keras.callbacks.TensorBoard, when the `tensorboard` package is there.

Keras' own callback writes what TensorBoard's dashboards expect: epoch_<metric> scalars under train/ and
validation/, epoch_learning_rate, the Keras model graph (and the train step's graph), and with --profile a
profiler trace of steps 2-4. Its `tf.summary` ops come from the `tensorboard` pip package, which plain
`pip install catdog` does not pull in (training does not need it; `pip install 'catdog[tensorboard]'` adds
it and the profiler plugin): without it the run has no TensorBoard logs and train.log says so once.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

log = logging.getLogger("catdog.train")  # one logger for the whole run: train.log attaches to it
INSTALL_HINT = "pip install 'catdog[tensorboard]'"


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def tensorboard_callback(run_dir: Path, phase: int, profile: bool, steps: int):
    """keras.callbacks.TensorBoard writing RUN/tensorboard/phase<N>/{train,validation}; a no-op callback without
    the tensorboard package."""
    import keras

    if not available():
        if phase == 1 or profile:
            log.info("no TensorBoard logs%s: the tensorboard package is not installed (%s)",
                     " and no --profile trace" if profile else "", INSTALL_HINT)
        return keras.callbacks.Callback()
    profile_batch = (min(2, steps), min(4, steps)) if profile and steps > 0 else 0
    if profile_batch:
        log.info("profiler trace of steps %d-%d into %s/plugins/profile", *profile_batch,
                 run_dir / "tensorboard" / f"phase{phase}" / "train")
    return keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard" / f"phase{phase}"), write_graph=True,
                                       update_freq="epoch", profile_batch=profile_batch)
