"""The data layer: pack folders into TFRecord shards (`pack`) and stream them back (`load`)."""

from catdog.data.pipeline import load, num_examples  # noqa: F401
