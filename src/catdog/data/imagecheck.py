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
import zlib
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from catdog.data import heif
from catdog.data.exif import jpeg_orientation

from catdog.imageformats import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, IMAGE_FORMATS, IMAGE_FORMATS_TEXT  # noqa: F401  (one definition)

JPEG_QUALITY = 95  # for converted images: visually lossless, ~1/3 the size of PNG photos
REASONS = {
    "empty-file": "zero bytes",
    "not-an-image": "no known image format (text, HTML, ...)",
    "truncated": "the image data ends early",
    "too-many-pixels": "header dimensions above --max-pixels (decompression-bomb guard)",
    "decode-error": "the image format is known but the data does not decode",
    "unreadable": "the file could not be read (I/O error, bad zip member)",
    "unrecognised-name": "the file name fits no layout (e.g. not <class>.<id>.<ext> in a flat folder)",
    "not-an-image-name": "a document or data file by its ending (.txt, .json, .csv, .pdf, ...): never an image",
    "not-in-class-folder": "a loose file beside class sub-folders",
    "unsupported-format": "an image format predict and serve cannot read (see catdog.imageformats)",
    "bad-crc": "a PNG chunk with a wrong checksum (corrupt file; libpng, hence predict and serve, refuse it)",
    "too-large": "a zip member whose uncompressed size is above any image's (refused before reading)",
    "compression-ratio": "a zip member that compresses far more than any photo (zip bomb; refused before reading)",
    "dangling-link": "a symbolic link whose target does not exist",
    "link-loop": "a symbolic link that points to itself (a loop)",
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


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, structure: bool = True):
    """The ONE header check (pack, predict, evaluate and serve): -> (lazy PIL image or None, Header).

    Pillow parses only the header here, so a 100000x100000 PNG is refused before anything is allocated.
    The image is returned only when the header is acceptable; decoding it is the caller's next step.
    With `structure` (the default) the whole file is also checked without decoding it, because libjpeg
    and Pillow are lenient where libpng and TF are not (so pack accepted what predict and serve refused):
    a JPEG shorter than its declared size can be (libjpeg fills the rest with grey: a 633-byte "6000x6000"
    photo) is `truncated`; a PNG whose critical chunks have a wrong CRC (Pillow never checks IDAT's) is
    `bad-crc`. A server skips it only to choose a queue, and runs it before decoding.
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
    if image.format not in IMAGE_FORMATS:
        return None, Header("unsupported-format", image.format, width, height)
    if structure:
        problem, detail = _structure_problem(data, image.format, width, height)
        if problem:
            return None, Header(problem, image.format, width, height, detail)
    return image, Header("", image.format, width, height)


# A Huffman-coded JPEG spends at least one bit on every 8x8 block of luma (baseline: a DC code and an EOB;
# progressive: the DC scan alone), so a file shorter than pixels/512 bytes cannot hold its declared image.
_JPEG_MIN_BITS_PER_BLOCK = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def jpeg_min_bytes(width, height):
    """The fewest bytes a JPEG of width x height can hold (see above): below it, the file is `truncated`.
    Plain arithmetic, so that predict's in-graph check (TensorFlow integers) uses the same rule."""
    return ((width + 7) // 8) * ((height + 7) // 8) * _JPEG_MIN_BITS_PER_BLOCK // 8


def _structure_problem(data: bytes, fmt: str, width: int, height: int) -> tuple[str, str]:
    """("", "") or (reason, detail) from the file's structure, without decoding a pixel."""
    if fmt in _JPEG_FORMATS:
        need = jpeg_min_bytes(width, height)
        if len(data) < need:
            return "truncated", (f"JPEG of {width}x{height} needs at least {need:,} bytes of data, the file has "
                                 f"{len(data):,}")
    elif fmt == "PNG":
        offset = len(_PNG_SIGNATURE)
        while offset + 12 <= len(data):
            length, kind = struct.unpack(">I4s", data[offset:offset + 8])
            end = offset + 8 + length
            if end + 4 > len(data):
                return "truncated", f"PNG chunk {kind.decode('latin-1')} runs past the end of the file"
            if kind[:1].isupper() and zlib.crc32(data[offset + 4:end]) != struct.unpack(">I", data[end:end + 4])[0]:
                return "bad-crc", f"PNG chunk {kind.decode('latin-1')} has a wrong CRC (the file is corrupt)"
            if kind == b"IEND":
                return "", ""
            offset = end + 4
        return "truncated", "PNG has no IEND chunk"
    return "", ""


class BadImage(ValueError):
    """Not a usable image (from `read_header`); `reason` is a key of REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, structure: bool = True) -> tuple[str, int, int]:
    """`open_image` for callers that decode elsewhere (predict, evaluate, serve): -> (format, width, height),
    or BadImage with a one-line message that says what is wrong."""
    image, header = open_image(data, max_pixels, structure=structure)
    if image is not None:
        image.close()
        return header.format, header.width, header.height
    fmt, width, height, problem = header.format, header.width, header.height, header.problem
    if problem == "empty-file":
        message = "empty file (0 bytes)"
    elif problem == "not-an-image":
        message = f"not an image (allowed formats: {IMAGE_FORMATS_TEXT})"
    elif problem == "unsupported-format":
        message = f"unsupported image format {fmt}; allowed formats: {IMAGE_FORMATS_TEXT}"
    elif problem == "too-many-pixels" and not fmt:  # Pillow's own guard fired first
        message = (f"image dimensions are absurd (over {2 * Image.MAX_IMAGE_PIXELS:,} pixels); "
                   f"the limit is {max_pixels:,} pixels")
    elif problem == "too-many-pixels":
        message = f"image is {width}x{height} ({width * height:,} pixels); the limit is {max_pixels:,} pixels"
    elif problem == "truncated":
        message = f"truncated image, the data ends early ({header.detail})" if header.detail else "truncated image"
    elif problem == "bad-crc":
        message = header.detail
    elif not fmt:
        message = f"cannot read the image header: {header.detail}"
    else:
        message = f"{fmt} header claims {width}x{height} pixels"
    raise BadImage(problem, message)


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

