"""Upload -> model input. Pillow reads only the header, so non-images and absurd dimensions are refused
before any pixel is decoded; the pixels are then decoded, turned upright (EXIF orientation) and resized
by `catdog.data.decode.decode_and_resize`, the same function training used, so serve cannot drift from
it. HEIC/HEIF uploads are converted to JPEG first (pillow-heif). `preview_jpeg` encodes the exact model
input for the web page, so the page shows what the model is given (orientation and resize mode included).
"""

from __future__ import annotations

import functools
import io
import re

import numpy as np
from catdog._tf import tf
from PIL import Image

from catdog.data import exif, heif
from catdog.data.decode import as_size, decode_and_resize
from catdog.data.imagecheck import BadImage, read_header
from catdog.errors import DataError
from catdog.imageformats import DEFAULT_MAX_PIXELS, IMAGE_FORMATS, IMAGE_FORMATS_TEXT

ALLOWED_FORMATS = IMAGE_FORMATS  # one list of formats for pack, predict and serve
_ALLOWED_TEXT = IMAGE_FORMATS_TEXT


class RejectedImage(DataError):
    """One upload cannot be classified; `status` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


_STATUS = {"empty-file": 400, "not-an-image": 415, "unsupported-format": 415, "needs-pillow-heif": 415,
           "too-many-pixels": 422}


def check_header(data: bytes, max_pixels: int, *, structure: bool = True) -> tuple[str, int, int]:
    """Encoded bytes -> (format, width, height) without decoding (catdog.data.imagecheck.read_header, the same
    check pack and predict use); raise RejectedImage with the HTTP status for each problem when unusable.
    `structure=False`: header fields only (to choose a decode queue); the decoder runs the full check."""
    try:
        return read_header(data, max_pixels, structure=structure)
    except BadImage as e:
        if e.reason == "needs-pillow-heif":
            raise RejectedImage(415, heif.INSTALL_HINT) from None
        message = "the upload is empty" if e.reason == "empty-file" else str(e)
        raise RejectedImage(_STATUS.get(e.reason, 400), message) from None


@functools.cache
def _traced_decoder(image_size: tuple[int, int], mode: str):
    """One traced graph per (size, mode), shared by every app in the process."""
    def decode(encoded):
        status = exif.orientation_status(encoded)
        return decode_and_resize(encoded, image_size, mode, status), status

    return tf.function(decode, input_signature=[tf.TensorSpec([], tf.string)])


class Decoder:
    """Encoded bytes -> float32 (H, W, 3) in 0..255 through the shared decode function, traced once."""

    def __init__(self, image_size, resize: str = "squash", max_pixels: int = DEFAULT_MAX_PIXELS):
        self.image_size = as_size(image_size)
        self.resize = resize
        self.max_pixels = int(max_pixels)
        self._decode = _traced_decoder(self.image_size, resize)

    def __call__(self, data: bytes) -> np.ndarray:
        return self.decode(data)[0]

    def decode(self, data: bytes) -> tuple[np.ndarray, str]:
        """(image, warning): the warning is "" or says that a damaged EXIF orientation was read as upright."""
        fmt, _, _ = check_header(data, self.max_pixels)
        if fmt == "HEIF":
            try:
                data = heif.to_jpeg(data, "the upload")
            except DataError as e:
                raise RejectedImage(400, str(e)) from e
        try:
            image, status = self._decode(tf.constant(data))
        except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as e:
            raise RejectedImage(400, f"cannot decode the image: {_reason(e)}") from e
        warning = "damaged EXIF block or invalid orientation; read as upright" if int(status) == exif.PROBLEM else ""
        return image.numpy(), warning

    def warm_up(self) -> None:
        """Trace the decoder on a tiny JPEG and PNG, so the first real request does not pay for it."""
        pixels = np.zeros((8, 8, 3), np.uint8)
        for fmt in ("JPEG", "PNG"):
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format=fmt)
            self(buffer.getvalue())


def preview_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """The model input (float32 H x W x 3, 0..255) as JPEG bytes, pixel for pixel (no resizing, no chroma
    subsampling): a 224x224 input is ~30 KB, a quarter of a PNG."""
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality,
                                                                           subsampling=0)
    return buffer.getvalue()


def _reason(error: tf.errors.OpError) -> str:
    """TF's first message line without its graph-node prefix: 'jpeg::Uncompress failed. Invalid JPEG data ...'."""
    lines = (error.message or "").strip().splitlines() or [type(error).__name__]
    return re.sub(r"\{\{[^}]*\}\}", "", lines[0]).strip() or type(error).__name__
