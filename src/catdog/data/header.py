"""The one image check done before any pixel is decoded, shared by pack, predict, evaluate and serve.

Before issue 13 each step had its own idea of a usable image: pack accepted a PNG whose chunk CRCs were
wrong (Pillow does not verify IDAT) that predict and serve (libpng) refused; a 633-byte JPEG claiming
6000x6000 was accepted by pack as a grey picture (libjpeg fills missing data with grey and only warns);
predict had no pixel limit at all (a 389 KB PNG of 20000x20000 took 7 GB). `read_header` reads only the
header and the file's structure (a CRC pass over PNG chunks), never pixels, and raises `BadImage` with a
`rejected.csv` reason code; every step calls it first and therefore accepts and refuses the same files.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: above any phone photo, far below a decompression bomb
# Pillow's format name -> the name users see; MPO = the multi-picture JPEG many cameras write.
FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "GIF": "GIF", "BMP": "BMP", "WEBP": "WebP"}
FORMATS_TEXT = "JPEG, PNG, GIF, BMP, WebP"
# A Huffman-coded JPEG spends at least one bit on every 8x8 block of luma (baseline: a DC code and an EOB;
# progressive: the DC scan alone), so a file shorter than pixels/512 bytes cannot hold its declared image.
JPEG_MIN_BITS_PER_BLOCK = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class BadImage(ValueError):
    """Not a usable image; `reason` is a rejected.csv reason code (catdog.data.imagecheck.REASONS)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, structure: bool = True) -> tuple[str, int, int]:
    """Encoded bytes -> (Pillow format, width, height); BadImage when the file cannot be a usable image.

    `structure=False` skips the pass over the whole file (JPEG length, PNG CRCs): header fields only, for
    a server deciding where to queue an upload; the full check must still run before decoding.
    """
    if not data:
        raise BadImage("empty-file", "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
            with Image.open(io.BytesIO(data)) as image:  # lazy: parses the header, decodes no pixels
                fmt, (width, height) = image.format, image.size
    except Image.DecompressionBombError:
        raise BadImage("too-many-pixels", f"image dimensions are absurd; the limit is {max_pixels:,} pixels") from None
    except UnidentifiedImageError:
        raise BadImage("not-an-image", f"not an image (allowed formats: {FORMATS_TEXT})") from None
    except (OSError, SyntaxError, ValueError, TypeError, EOFError, IndexError, struct.error) as e:
        reason = "truncated" if "truncated" in str(e).lower() or isinstance(e, EOFError) else "decode-error"
        what = "truncated image, the data ends early" if reason == "truncated" else "cannot read the image header"
        raise BadImage(reason, f"{what}: {e}") from None
    if fmt not in FORMATS:
        raise BadImage("unsupported-format", f"unsupported image format {fmt}; allowed formats: {FORMATS_TEXT}")
    if width < 1 or height < 1:
        raise BadImage("decode-error", f"image header claims {width}x{height} pixels")
    if width * height > max_pixels:
        raise BadImage("too-many-pixels",
                       f"image is {width}x{height} ({width * height:,} pixels); the limit is {max_pixels:,} pixels")
    if not structure:
        pass
    elif FORMATS[fmt] == "JPEG":
        _check_jpeg_length(data, width, height)
    elif fmt == "PNG":
        _check_png_chunks(data)
    return fmt, width, height


def _check_jpeg_length(data: bytes, width: int, height: int) -> None:
    blocks = -(-width // 8) * -(-height // 8)
    need = blocks * JPEG_MIN_BITS_PER_BLOCK // 8
    if len(data) < need:
        raise BadImage("truncated", f"JPEG of {width}x{height} needs at least {need:,} bytes of data, the file has "
                                    f"{len(data):,} (the image data ends early)")


def _check_png_chunks(data: bytes) -> None:
    """Every critical chunk (IHDR, PLTE, IDAT, IEND) must carry a correct CRC, as libpng demands."""
    offset = len(_PNG_SIGNATURE)
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 8 + length
        if end + 4 > len(data):
            raise BadImage("truncated", f"PNG chunk {kind!r} runs past the end of the file (the image data ends early)")
        critical = kind[:1].isupper()
        if critical and zlib.crc32(data[offset + 4:end]) != struct.unpack(">I", data[end:end + 4])[0]:
            raise BadImage("bad-crc", f"PNG chunk {kind.decode('latin-1')} has a wrong CRC (the file is corrupt)")
        if kind == b"IEND":
            return
        offset = end + 4
    raise BadImage("truncated", "PNG has no IEND chunk (the image data ends early)")
