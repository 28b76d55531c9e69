"""Generated photos for the real-world data tests: blocky pictures that survive JPEG almost exactly, stored
turned with an EXIF Orientation tag (as phones do), and HEIC copies."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# The transpose that, applied to the UPRIGHT picture, gives the pixels a camera stores with each tag
# (the inverse of PIL.ImageOps.exif_transpose's table).
STORED = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_270}


def blocky(height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """Uniform 16x16 blocks of random colours: JPEG at quality 100 without chroma subsampling keeps them
    within a few levels, while any wrong turn moves most blocks by ~80 levels."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    return np.kron(cells, np.ones((16, 16, 1), np.uint8))


def jpeg(pixels: np.ndarray, orientation: int | None = None, exif: bytes | None = None) -> bytes:
    """JPEG bytes of `pixels` (upright) stored turned for `orientation` and tagged with it; or raw `exif`."""
    image = Image.fromarray(pixels)
    if orientation is not None:
        image = image.transpose(STORED[orientation]) if STORED[orientation] is not None else image
        tag = Image.Exif()
        tag[0x0112] = orientation
        exif = tag.tobytes()
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=100, subsampling=0, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def heic(pixels: np.ndarray) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="HEIF", quality=100)
    return out.getvalue()


def orientation_exif(value: int) -> bytes:
    tag = Image.Exif()
    tag[0x0112] = value
    return tag.tobytes()


DAMAGED_EXIF = {  # name -> raw APP1 payload that a camera bug or a bad editor could leave
    "cut-short": orientation_exif(6)[:12],
    "garbage": b"Exif\x00\x00" + b"\xff" * 30,
    "invalid-value-9": orientation_exif(9),
}
