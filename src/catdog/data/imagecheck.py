"""Decide whether a file is a usable image, by decoding it: pass it through, convert it, or reject it.

Order matters: the dimensions come from the header BEFORE any pixel is decoded, so a 100000x100000
PNG (a decompression bomb) is refused without allocating 30 GB. A baseline RGB JPEG is stored as its
original bytes (decoded at reduced DCT scale only to prove it decodes and to hash it perceptually);
any other decodable input (PNG, GIF, BMP, WebP, CMYK or grayscale JPEG, 16-bit PNG) is converted to an
RGB JPEG at quality 95 so every stored record decodes with `tf.io.decode_jpeg`. Rejections carry a short
reason code (`REASONS`) that the manifest counts.

EXIF orientation: a stored original keeps its bytes and reports the orientation to apply at decode time
(catdog.data.exif; a damaged block or invalid value is reported as a problem and read as 1); a converted
image is turned upright before it is re-encoded, so its orientation is 1.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from catdog.data import heif
from catdog.data.exif import jpeg_orientation

from catdog.imageformats import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, IMAGE_FORMATS  # noqa: F401  (one definition)

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
    "not-in-split-folder": "a loose file beside split folders (train/, val/, test/)",
    "in-sub-folder": "a file in a sub-folder of a Kaggle-style flat or numbered folder",
    "outside-data-folder": "a file beside the one folder that holds the data (a licence, a readme)",
    "system-file": "folder metadata such as Thumbs.db or desktop.ini",
    "unsafe-path": "a zip member with an absolute path or `..`",
    "needs-pillow-heif": "a HEIC/HEIF photo, and pillow-heif is not installed",
}
# PIL transpose that turns a stored image upright, per EXIF orientation (as PIL.ImageOps.exif_transpose)
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_JPEG_FORMATS = ("JPEG", "MPO")  # MPO = camera JPEG with an extra preview image; the first frame is a JPEG


@dataclass(frozen=True, slots=True)
class Checked:
    """The verdict on one file. `encoded` is set only for converted images (None: store the original)."""

    reason: str = ""  # "" = usable, else a key of REASONS
    height: int = 0  # of the STORED image
    width: int = 0
    converted_from: str = ""  # "" or e.g. "png", "jpeg-cmyk"
    encoded: bytes | None = None
    phash: int = 0  # 64-bit perceptual hash (near-duplicate search), of the upright image
    orientation: int = 1  # EXIF orientation to apply to the STORED bytes when decoding
    exif_problem: str = ""  # a damaged EXIF block or invalid orientation (read as 1), for a warning

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


@dataclass(frozen=True, slots=True)
class Header:
    """What an image's header says, read before any pixel is decoded. `problem` is "" or a key of REASONS."""

    problem: str = ""
    format: str = ""  # Pillow's name ("JPEG", "PNG", ...); "" when the header could not be read
    width: int = 0
    height: int = 0
    detail: str = ""  # Pillow's message when the header itself is unreadable


_MALFORMED = (SyntaxError, ValueError, TypeError, EOFError, IndexError, ZeroDivisionError, struct.error)
# ^ what Pillow's plugins raise for malformed headers/chunks: the file is unusable, not our bug


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS):
    """The ONE header check (pack and serve): -> (lazy PIL image or None, Header).

    Pillow parses only the header here, so a 100000x100000 PNG is refused before anything is allocated.
    The image is returned only when the header is acceptable; decoding it is the caller's next step.
    """
    if not data:
        return None, Header("empty-file")
    if heif.is_heif(data) and not heif.available():  # registers the HEIF opener when it is installed
        return None, Header("needs-pillow-heif", "HEIF")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own, lower limit
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:  # Pillow's own guard, for truly absurd headers
        return None, Header("too-many-pixels", detail=str(e))
    except UnidentifiedImageError:
        return None, Header("not-an-image")
    except OSError as e:
        return None, Header("truncated" if "truncated" in str(e).lower() else "decode-error", detail=str(e))
    except _MALFORMED as e:
        return None, Header("decode-error", detail=str(e))
    width, height = image.size
    if width * height > max_pixels:
        return None, Header("too-many-pixels", image.format, width, height)
    if width < 1 or height < 1:
        return None, Header("decode-error", image.format, width, height)
    return image, Header("", image.format, width, height)


def check_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Checked:
    """Bytes -> Checked. Never raises for bad image data: the reason says what was wrong."""
    image, header = open_image(data, max_pixels)
    if image is None:
        return Checked(header.problem, header.height, header.width)
    width, height = header.width, header.height
    orientation, problem = jpeg_orientation(data) if image.format in _JPEG_FORMATS else (1, "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own, lower limit
            if image.format in _JPEG_FORMATS and image.mode == "RGB":
                image.draft("RGB", (64, 64))  # DCT-scaled decode: reads every byte, ~10x less work
                image.load()
                small = image.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else image
                return Checked("", height, width, phash=_phash(small), orientation=orientation, exif_problem=problem)
            converted_from = image.format.lower() if image.format not in _JPEG_FORMATS else f"jpeg-{image.mode.lower()}"
            image.seek(0)  # GIF/WebP animations: the first frame
            image.load()
            if image.format in _JPEG_FORMATS:  # the same reading of the tag as for stored originals
                image = image.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else image
            else:
                image = ImageOps.exif_transpose(image)  # PNG/WebP/HEIF may carry an orientation too
            rgb = _to_rgb(image)
    except Image.DecompressionBombError:
        return Checked("too-many-pixels")
    except UnidentifiedImageError:
        return Checked("not-an-image")
    except OSError as e:
        return Checked("truncated" if "truncated" in str(e).lower() else "decode-error")
    except _MALFORMED:
        return Checked("decode-error")
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=JPEG_QUALITY)
    return Checked("", rgb.height, rgb.width, converted_from, out.getvalue(), _phash(rgb), exif_problem=problem)

