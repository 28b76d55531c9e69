"""Upload -> model input. Pillow reads only the header, so non-images and absurd dimensions are refused
before any pixel is decoded; the pixels are then decoded and resized by
`catdog.data.decode.decode_and_resize`, the same function training used, so serve cannot drift from it.
"""

from __future__ import annotations

import functools
import io
import re

import numpy as np
import tensorflow as tf
from PIL import Image

from catdog.data.decode import as_size, decode_and_resize
from catdog.data.imagecheck import BadImage, read_header
from catdog.errors import DataError
from catdog.imageformats import DEFAULT_MAX_PIXELS, IMAGE_FORMATS

ALLOWED_FORMATS = IMAGE_FORMATS  # one list of formats for pack, predict and serve


class RejectedImage(DataError):
    """One upload cannot be classified; `status` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


_STATUS = {"empty-file": 400, "not-an-image": 415, "unsupported-format": 415, "too-many-pixels": 422}


def check_header(data: bytes, max_pixels: int, *, structure: bool = True) -> tuple[str, int, int]:
    """Encoded bytes -> (format, width, height) without decoding (catdog.data.imagecheck.read_header, the same
    check pack and predict use); raise RejectedImage with the HTTP status for each problem when unusable.
    `structure=False`: header fields only (to choose a decode queue); the decoder runs the full check."""
    try:
        return read_header(data, max_pixels, structure=structure)
    except BadImage as e:
        message = "the upload is empty" if e.reason == "empty-file" else str(e)
        raise RejectedImage(_STATUS.get(e.reason, 400), message) from None


@functools.cache
def _traced_decoder(image_size: tuple[int, int], mode: str):
    """One traced graph per (size, mode), shared by every app in the process."""
    return tf.function(lambda encoded: decode_and_resize(encoded, image_size, mode),
                       input_signature=[tf.TensorSpec([], tf.string)])


class Decoder:
    """Encoded bytes -> float32 (H, W, 3) in 0..255 through the shared decode function, traced once."""

    def __init__(self, image_size, resize: str = "squash", max_pixels: int = DEFAULT_MAX_PIXELS):
        self.image_size = as_size(image_size)
        self.resize = resize
        self.max_pixels = int(max_pixels)
        self._decode = _traced_decoder(self.image_size, resize)

    def __call__(self, data: bytes) -> np.ndarray:
        check_header(data, self.max_pixels)
        try:
            return self._decode(tf.constant(data)).numpy()
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
            raise RejectedImage(400, f"cannot decode the image: {_reason(e)}") from e

    def warm_up(self) -> None:
        """Trace the decoder on a tiny JPEG and PNG, so the first real request does not pay for it."""
        pixels = np.zeros((8, 8, 3), np.uint8)
        for fmt in ("JPEG", "PNG"):
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format=fmt)
            self(buffer.getvalue())


def _reason(error: tf.errors.OpError) -> str:
    """TF's first message line without its graph-node prefix: 'jpeg::Uncompress failed. Invalid JPEG data ...'."""
    lines = (error.message or "").strip().splitlines() or [type(error).__name__]
    return re.sub(r"\{\{[^}]*\}\}", "", lines[0]).strip() or type(error).__name__
