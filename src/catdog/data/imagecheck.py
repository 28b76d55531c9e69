"""Decide whether a file is a usable image, by decoding it: pass it through, convert it, or reject it.

Order matters: the dimensions come from the header BEFORE any pixel is decoded, so a 100000x100000
PNG (a decompression bomb) is refused without allocating 30 GB. A baseline RGB JPEG is stored as its
original bytes (decoded at reduced DCT scale only to prove it decodes and to hash it perceptually);
any other decodable input (PNG, GIF, BMP, WebP, CMYK or grayscale JPEG, 16-bit PNG) is converted to an
RGB JPEG at quality 95 so every stored record decodes with `tf.io.decode_jpeg`. Rejections carry a short
reason code (`REASONS`) that the manifest counts.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, UnidentifiedImageError

from catdog.data.header import BadImage, read_header

DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: above any phone photo, far below a decompression bomb
JPEG_QUALITY = 95  # for converted images: visually lossless, ~1/3 the size of PNG photos
REASONS = {
    "empty-file": "zero bytes",
    "not-an-image": "no known image format (text, HTML, ...)",
    "truncated": "the image data ends early",
    "too-many-pixels": "header dimensions above --max-pixels (decompression-bomb guard)",
    "decode-error": "the image format is known but the data does not decode",
    "unreadable": "the file could not be read (I/O error, bad zip member)",
    "unrecognised-name": "the file name fits no layout (e.g. not <class>.<id>.<ext> in a flat folder)",
    "not-in-class-folder": "a loose file beside class sub-folders",
    "too-large": "a zip member whose uncompressed size is above any image's (refused before reading)",
    "compression-ratio": "a zip member that compresses far more than any photo (zip bomb; refused before reading)",
    "unsupported-format": "an image format predict and serve cannot read (allowed: JPEG, PNG, GIF, BMP, WebP)",
    "bad-crc": "a PNG chunk with a wrong checksum (corrupt file; libpng refuses it)",
    "dangling-link": "a symbolic link whose target does not exist",
    "link-loop": "a symbolic link that points to itself (a loop)",
}
_JPEG_FORMATS = ("JPEG", "MPO")  # MPO = camera JPEG with an extra preview image; the first frame is a JPEG


@dataclass(frozen=True, slots=True)
class Checked:
    """The verdict on one file. `encoded` is set only for converted images (None: store the original)."""

    reason: str = ""  # "" = usable, else a key of REASONS
    height: int = 0  # of the STORED image
    width: int = 0
    converted_from: str = ""  # "" or e.g. "png", "jpeg-cmyk"
    encoded: bytes | None = None
    phash: int = 0  # 64-bit perceptual hash (near-duplicate search)

    @property
    def ok(self) -> bool:
        return not self.reason


def _phash(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. 16-bit is scaled (not clipped); transparency goes onto white."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        pixels = np.asarray(image).astype(np.float64)
        if mode.startswith("I;16") or pixels.max(initial=0) > 255:
            pixels = pixels / 257.0
        return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        return Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def check_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Checked:
    """Bytes -> Checked. Never raises for bad image data: the reason says what was wrong."""
    try:
        read_header(data, max_pixels)  # the one pre-decode check shared with predict and serve (issue 13)
    except BadImage as e:
        return Checked(e.reason)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own, lower limit
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                return Checked("too-many-pixels", height, width)
            if width < 1 or height < 1:
                return Checked("decode-error", height, width)
            if image.format in _JPEG_FORMATS and image.mode == "RGB":
                image.draft("RGB", (64, 64))  # DCT-scaled decode: reads every byte, ~10x less work
                image.load()
                return Checked("", height, width, phash=_phash(image))
            converted_from = image.format.lower() if image.format not in _JPEG_FORMATS else f"jpeg-{image.mode.lower()}"
            image.seek(0)  # GIF/WebP animations: the first frame
            image.load()
            rgb = _to_rgb(image)
    except Image.DecompressionBombError:
        return Checked("too-many-pixels")
    except UnidentifiedImageError:
        return Checked("not-an-image")
    except OSError as e:
        return Checked("truncated" if "truncated" in str(e).lower() else "decode-error")
    except (SyntaxError, ValueError, TypeError, EOFError, IndexError, ZeroDivisionError, struct.error):
        # Pillow's plugins raise these for malformed headers/chunks; the file is unusable, not our bug
        return Checked("decode-error")
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=JPEG_QUALITY)
    return Checked("", rgb.height, rgb.width, converted_from, out.getvalue(), _phash(rgb))

