"""The data layer: pack folders into TFRecord shards (`pack`) and stream them back (`load`).

TensorFlow is imported by the modules that need it (through catdog._tf, which silences its banner), not
here: pack's worker processes import catdog.data.pack_workers to check images with Pillow alone, and a
TensorFlow import would cost each of them seconds of CPU (bench/pack_bench.py).
"""


def __getattr__(name):
    if name in ("load", "num_examples"):
        from catdog.data import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'catdog.data' has no attribute {name!r}")
