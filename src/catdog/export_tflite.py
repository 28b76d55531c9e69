"""TFLite conversion for `catdog export --format tflite`: float32, float16, dynamic-range and full-integer int8.

| --quantize | file                  | weights | activations | input                         | output          |
| ---------- | --------------------- | ------- | ----------- | ----------------------------- | --------------- |
| none       | model.tflite          | float32 | float32     | float32 RGB 0..255            | float32 probs   |
| float16    | model-float16.tflite  | float16 | float32     | float32 RGB 0..255            | float32 probs   |
| dynamic    | model-int8.tflite     | int8    | float32 (int8 matmuls at run time) | float32 RGB 0..255 | float32 probs |
| int8       | model-int8-full.tflite| int8    | int8        | uint8 RGB 0..255 (scale 1, zero point 0 is typical; read the tensor's quantization) | float32 probs |

Full-integer int8 needs representative images to fix the activation ranges: they come from the run's
packed val split (config.json names the pack), and the export fails with a one-line error when that
split is not reachable. Every variant embeds TFLite metadata (catdog.tflite_metadata) so MediaPipe's
ImageClassifier runs it as is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catdog.errors import ConfigError

FILE_STEMS = {"none": "model", "float16": "model-float16", "dynamic": "model-int8", "int8": "model-int8-full"}
REPRESENTATIVE_IMAGES = 200  # enough for stable activation ranges; the converter runs the float model on each


def tflite_path(out_dir: Path, quantize: str) -> Path:
    return out_dir / f"{FILE_STEMS[quantize]}.tflite"


def convert(run, saved_model_dir: Path, quantize: str, representative: np.ndarray | None) -> bytes:
    """The .tflite flatbuffer (without metadata) of a SavedModel whose serving_default takes float32 images."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=["serving_default"])
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative is None or len(representative) == 0:
            raise ConfigError("--quantize int8 needs representative images from the run's packed val split")

        def samples():
            for image in representative:
                yield [image[None].astype(np.float32)]

        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8  # raw RGB bytes, as cameras and decoders hand them over
        converter.inference_output_type = tf.float32  # probabilities stay probabilities
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError, RuntimeError, ValueError... with long logs
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--format tflite --quantize {quantize}: the converter cannot take this model ({first})") from e


def with_metadata(model_bytes: bytes, run) -> bytes:
    """model_bytes with TFLite metadata: labels.txt, RGB image of the model's size, (pixel - 0) / 1, probabilities."""
    from catdog._version import __version__
    from catdog.tflite_metadata import build_metadata, populate

    backbone = run.config.get("backbone") or "unknown"
    description = (f"catdog image classifier ({backbone}) over {', '.join(run.classes)}: RGB pixels 0..255 in, "
                   f"calibrated probabilities out; resize mode used in training: {run.resize}")
    metadata = build_metadata(name=f"catdog {backbone}", description=description, version=f"catdog {__version__}",
                              classes=list(run.classes), image_size=tuple(run.image_size))
    return populate(model_bytes, metadata, list(run.classes))
