"""HEIC/HEIF photos (iPhones' default format) through the optional `pillow-heif` plugin for Pillow.

TensorFlow cannot decode HEIF, so a HEIF photo is converted once, in Python, to an upright RGB JPEG:
at pack time (recorded as `image/converted_from` = `heif`), and by `predict` and `serve` before the shared
decoder sees it. Where pillow-heif is missing, HEIF input is a one-line error that says what to install.
"""

from __future__ import annotations

import functools
import io

from catdog.errors import DataError

EXTENSIONS = (".heic", ".heif", ".hif")
INSTALL_HINT = "HEIC/HEIF photos need the pillow-heif package: pip install pillow-heif"
BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avci")
JPEG_QUALITY = 95


@functools.cache
def available() -> bool:
    """Register pillow-heif's opener with Pillow once; False when the package is not installed."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def is_heif(data: bytes) -> bool:
    """ISO-BMFF `ftyp` box with a HEIF brand (the bytes, not the name, decide)."""
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in BRANDS


def is_heif_name(name: str) -> bool:
    return str(name).lower().endswith(EXTENSIONS)


def require(name: str) -> None:
    """DataError naming `name` when pillow-heif is missing."""
    if not available():
        raise DataError(f"{name}: {INSTALL_HINT}")


def to_jpeg(data: bytes, name: str = "image") -> bytes:
    """HEIF bytes -> upright RGB JPEG bytes. DataError when pillow-heif is missing or the file is damaged."""
    from PIL import Image, ImageOps

    require(name)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=JPEG_QUALITY)
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{name}: cannot decode the HEIC/HEIF image ({e})") from e
    return out.getvalue()
