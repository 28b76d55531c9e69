"""ONNX for `catdog export --format onnx`, converted with tf2onnx, run with ONNX Runtime.

The model (OUT/model.onnx, ONNX opset 17) takes `images`: float32 (N, H, W, 3) RGB 0..255 (NHWC, as in
Keras; decoding and resizing stay outside, as for TFLite) and returns `probabilities`: float32 (N, C),
calibrated. Classes, image size and resize mode are in the model's metadata_props and in the JSON beside it.

tf2onnx converts the traced tf.function of the in-memory Keras model (`tf2onnx.convert.from_function`);
converting from the TFLite flatbuffer is no option, because TF 2.21 writes Keras 3 weights as resource
variables (TFL_VAR_HANDLE) that tf2onnx's TFLite reader does not know. tf2onnx and onnxruntime are the
optional extra `catdog[onnx]`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from catdog.errors import ConfigError, ModelError

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


class OnnxPredictor:
    """A .onnx model run with ONNX Runtime on the CPU; input float32 (N, H, W, 3) 0..255."""

    def __init__(self, path: Path, metadata: dict):
        require("a .onnx model")
        import onnxruntime as ort

        from catdog.predict import _from_metadata, _info

        self.source, self.name, self.info = str(path), path.name, _info(metadata)
        self.classes, self.image_size, self.resize = _from_metadata(metadata)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.log_severity_level = 3  # errors only
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise ModelError(f"{path}: cannot load the ONNX model ({str(e).splitlines()[0]})") from e
        self._input = self._session.get_inputs()[0].name

    def predict_images(self, images) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        return self._session.run(None, {self._input: images})[0]
