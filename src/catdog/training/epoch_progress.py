"""Progress inside each training epoch when nobody watches a terminal (CI logs, nohup).

Keras' own bar (`fit(verbose=1)`) is for terminals: redrawn in a log it is noise, so catdog runs fit
with verbose=0 there (phases.keras_verbose), and an epoch on images can then be silent for many
minutes. This callback reports through catdog.progress, the one reporter: a line at most every ~10 s,
and one at the end of the epoch, with images/s and the time left:

    phase 2 epoch 3/10: 6,400/20,032 images (32%), 210 images/s, 0:01:05 left

Keras has no callback for it (ProgbarLogger IS the terminal bar), hence this one. It is added only
where Keras' bar is off, so a terminal never shows two bars.
"""

from __future__ import annotations

import contextlib

import keras

from catdog import progress


class EpochProgress(keras.callbacks.Callback):
    """`images` per epoch, `batch_size` per training step; `epochs` = the phase's last epoch.

    Keras calls on_train_batch_end once per call into TensorFlow, with the index of the call's last step
    (steps_per_execution > 1 runs several), so the count follows the step index, not the calls.
    """

    def __init__(self, phase: int, images: int, batch_size: int, epochs: int):
        super().__init__()
        self.phase, self.total, self.batch_size, self.epochs = phase, images, batch_size, epochs
        self._stack: contextlib.ExitStack | None = None
        self._advance = None
        self._done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._close()
        self._stack, self._done = contextlib.ExitStack(), 0
        self._advance = self._stack.enter_context(
            progress.bar(self.total, f"phase {self.phase} epoch {epoch + 1}/{self.epochs}"))

    def on_train_batch_end(self, batch, logs=None):
        n = min((batch + 1) * self.batch_size, self.total) - self._done
        if n > 0 and self._advance is not None:
            self._done += n
            self._advance(n)

    def on_epoch_end(self, epoch, logs=None):
        self._close()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self._stack is not None:
            self._stack.close()
            self._stack, self._advance = None, None
