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
from catdog.data.imagecheck import open_image
from catdog.errors import DataError
from catdog.imageformats import DEFAULT_MAX_PIXELS, IMAGE_FORMATS, IMAGE_FORMATS_TEXT

ALLOWED_FORMATS = IMAGE_FORMATS  # one list of formats for pack, predict and serve
_ALLOWED_TEXT = IMAGE_FORMATS_TEXT


class RejectedImage(DataError):
    """One upload cannot be classified; `status` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def check_header(data: bytes, max_pixels: int) -> tuple[str, int, int]:
    """Encoded bytes -> (format, width, height) from the header alone (catdog.data.imagecheck.open_image, the
    same check pack uses); raise RejectedImage with the HTTP status for each problem when unusable."""
    image, header = open_image(data, max_pixels)
    if image is not None:
        image.close()
    if header.problem == "empty-file":
        raise RejectedImage(400, "the upload is empty")
    if header.problem == "too-many-pixels" and not header.format:  # Pillow's own guard fired first
        raise RejectedImage(
            422, f"image dimensions are absurd (over {2 * Image.MAX_IMAGE_PIXELS:,} pixels); "
            f"the limit is {max_pixels:,} pixels"
        )
    if header.problem == "not-an-image":
        raise RejectedImage(415, f"not an image (allowed formats: {_ALLOWED_TEXT})")
    if not header.format:  # the header itself could not be read
        raise RejectedImage(400, f"cannot read the image header: {header.detail}")
    fmt, width, height = header.format, header.width, header.height
    if fmt not in ALLOWED_FORMATS:
        raise RejectedImage(415, f"unsupported image format {fmt}; allowed formats: {_ALLOWED_TEXT}")
    if header.problem:  # too many pixels, or a zero dimension
        raise RejectedImage(
            422, f"image is {width}x{height} ({width * height:,} pixels); the limit is {max_pixels:,} pixels"
        )
    return fmt, width, height


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
