"""The data layer: pack folders into TFRecord shards (`pack`) and stream them back (`load`)."""

import catdog._tf  # noqa: F401  (first TensorFlow import, without its C++ banner)
from catdog.data.pipeline import load, num_examples  # noqa: F401
