"""TensorBoard event files for each phase (scalars, the model graph, an optional profiler trace)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("catdog.train")  # one logger for the whole run: train.log attaches to it


def tensorboard_callback(run_dir: Path, phase: int, profile: bool, steps: int):
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

