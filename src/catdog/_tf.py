"""Import TensorFlow with its C++ start-up banner silenced.

TF 2.21 logs oneDNN/CUDA notices (and, on machines without a GPU, a cuInit "error") through absl before any log level applies (TF_CPP_MIN_LOG_LEVEL does
not reach them), burying catdog's own output, once per process. We point file descriptor 2 at
/dev/null for the duration of the import only; errors raised by the import still surface as Python
exceptions after stderr is restored. Set CATDOG_TF_VERBOSE=1 to see the banner.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_quietly():
    if "tensorflow" in sys.modules or os.environ.get("CATDOG_TF_VERBOSE"):
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow

            # Probing for GPUs once here keeps the CUDA probe's "failed call to cuInit" line on CPU-only
            # machines quiet too; it does not create devices, so GPU options can still be set later.
            tensorflow.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow


tf = _import_quietly()
