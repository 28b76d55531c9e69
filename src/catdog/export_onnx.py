"""ONNX for `catdog export --format onnx`, converted with tf2onnx, run with ONNX Runtime.

The model (OUT/model.onnx, ONNX opset 17) takes `images`: float32 (N, H, W, 3) RGB 0..255 (NHWC, as in
Keras; decoding and resizing stay outside, as for TFLite) and returns `probabilities`: float32 (N, C),
calibrated. Classes, image size and resize mode are in the model's metadata_props and in the JSON beside it.

tf2onnx converts a traced tf.function of the in-memory calibrated Keras model
(`tf2onnx.convert.from_function`), the same graph the SavedModel and TFLite exports start from, so the
ONNX model never goes through another format's rounding. tf2onnx 1.17 installs beside TensorFlow 2.21
and protobuf 7 without changing either; it and onnxruntime are the optional extra `catdog[onnx]`.
"""

from __future__ import annotations

import json

from catdog.errors import ConfigError

OPSET = 17
ONNX_TOLERANCE = 1e-4  # tf2onnx rewrites ops (fused conv + BN, other reduction order): float32 rounding only


def require(what: str = "--format onnx") -> None:
    """Import check with a one-line error naming the extra to install."""
    from catdog.extras import require as require_extra

    require_extra("onnx", what)


def convert(run) -> bytes:
    """The serialized ONNX model of the run's calibrated inference model."""
    require()
    import logging

    import tensorflow as tf
    import tf2onnx

    tf2onnx.logging.set_level(logging.ERROR)  # tf2onnx logs every rewrite at INFO
    h, w = run.image_size
    model = run.inference_model()
    spec = [tf.TensorSpec([None, h, w, 3], tf.float32, name="images")]

    @tf.function(input_signature=spec)
    def forward(images):
        return {"probabilities": model(images, training=False)}

    try:
        proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=OPSET)
    except Exception as e:  # tf2onnx raises plain Exceptions for unsupported ops
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--format onnx: tf2onnx cannot convert this model ({first})") from e
    metadata = {"classes": json.dumps(list(run.classes)), "image_size": json.dumps(list(run.image_size)),
                "resize": run.resize, "input": "images float32 [N, H, W, 3] RGB 0..255",
                "output": "probabilities float32 [N, C] calibrated, column order = classes"}
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "catdog"
    return proto.SerializeToString()
