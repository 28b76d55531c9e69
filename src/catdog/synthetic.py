"""A small synthetic image set that a person can sort by eye: circles vs squares, in the Kaggle layout.

Colours, sizes, positions, tilts and backgrounds vary at random, so only the SHAPE tells the classes
apart (a model cannot cheat on colour or size). Used by `catdog demo` (the whole chain offline, nothing
downloaded) and as fallback parity images for `catdog export`. Seeded: the same call writes the same bytes.

    out/train/circle.1.jpg ... circle.N.jpg, square.1.jpg ... square.N.jpg   (labeled, from the name)
    out/test1/1.jpg ... M.jpg                                                 (unlabeled, mixed)
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from catdog import atomic

CLASSES = ("circle", "square")


def _colour(rng: np.random.Generator, low: int, high: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))


def draw(shape: str, size=(64, 64), seed: int = 0) -> Image.Image:
    """One RGB image: a dark filled circle or square (tilted up to 20 degrees) on a light, noisy background.

    Hues are random for both classes, so only the shape tells them apart; dark-on-light keeps the edges
    of one polarity, which lets a small CNN trained from scratch learn the shapes in a few epochs.
    """
    if shape not in CLASSES:
        raise ValueError(f"shape must be one of {CLASSES}; got {shape!r}")
    rng = np.random.default_rng(seed)
    w, h = size
    background = _colour(rng, 150, 256)
    pixels = np.clip(np.array(background, np.float32) + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    canvas = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 3))):  # thin clutter lines: neither class owns them
        points = [tuple(int(v) for v in rng.integers(0, [w, h])) for _ in range(2)]
        canvas.line(points, fill=_colour(rng, 60, 200), width=1)
    radius = float(rng.uniform(0.22, 0.36)) * min(w, h)
    cx = float(rng.uniform(radius + 1, w - radius - 1))
    cy = float(rng.uniform(radius + 1, h - radius - 1))
    fill = _colour(rng, 0, 110)
    if shape == "circle":
        canvas.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
    else:
        half = radius * 0.89  # about the circle's area: size is no giveaway
        angle = math.pi / 4 + float(rng.uniform(-1, 1)) * math.radians(20)
        corners = [(cx + half * math.sqrt(2) * math.cos(angle + k * math.pi / 2),
                    cy + half * math.sqrt(2) * math.sin(angle + k * math.pi / 2)) for k in range(4)]
        canvas.polygon(corners, fill=fill)
    return image.filter(ImageFilter.GaussianBlur(0.6))


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_kaggle_folder(out, per_class: int = 100, test: int = 40, size=(64, 64), seed: int = 0) -> Path:
    """Write out/train/{circle,square}.<i>.jpg and out/test1/<i>.jpg; returns `out`."""
    out = Path(out)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "test1").mkdir(parents=True, exist_ok=True)
    for c, shape in enumerate(CLASSES):
        for i in range(1, per_class + 1):
            image = draw(shape, size, seed=seed * 1_000_003 + c * 100_000 + i)
            atomic.write_bytes(out / "train" / f"{shape}.{i}.jpg", _jpeg(image))
    rng = np.random.default_rng(seed + 7)
    for i in range(1, test + 1):
        shape = CLASSES[int(rng.integers(0, 2))]
        atomic.write_bytes(out / "test1" / f"{i}.jpg", _jpeg(draw(shape, size, seed=seed * 1_000_003 + 500_000 + i)))
    return out


def sample_jpegs(count: int, size=(64, 64), seed: int = 0) -> list[bytes]:
    """`count` encoded JPEGs alternating circle/square (parity checks when no real images are around)."""
    return [_jpeg(draw(CLASSES[i % 2], size, seed=seed + i)) for i in range(count)]
