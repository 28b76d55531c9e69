"""imagecheck.py: each kind of bad file gets its reason; each convertible format becomes a decodable RGB JPEG."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from catdog.data.imagecheck import REASONS, check_image, open_image
from fixtures.images import CONVERSIONS, noisy_pixels, encode, png_header_only


JPEG = encode(Image.fromarray(noisy_pixels()), "JPEG", quality=90)


def test_rgb_jpeg_passes_through_unchanged():
    checked = check_image(JPEG)
    assert checked.ok and checked.encoded is None and checked.converted_from == ""
    assert (checked.height, checked.width) == (40, 48) and checked.phash != 0


@pytest.mark.parametrize("data,reason", [
    (b"", "empty-file"),
    (JPEG[: len(JPEG) // 2], "truncated"),
    (JPEG[:-2], "truncated"),
    (b"hello, I am a text file renamed to .jpg\n" * 3, "not-an-image"),
    (b"<html><body>404</body></html>", "not-an-image"),
    (png_header_only(100_000, 100_000), "too-many-pixels"),
    (JPEG[:200], "truncated"),
])
def test_bad_files_are_rejected_with_a_reason(data, reason):
    checked = check_image(data)
    assert checked.reason == reason and reason in REASONS


def test_real_image_above_max_pixels_is_rejected_before_decoding():
    assert check_image(JPEG, max_pixels=40 * 48 - 1).reason == "too-many-pixels"
    assert check_image(JPEG, max_pixels=40 * 48).ok


EXPECTED_FROM = {"png": "png", "png-rgba": "png", "gif": "gif", "bmp": "bmp", "webp": "webp",
                 "jpeg-cmyk": "jpeg-cmyk", "jpeg-l": "jpeg-l", "png16": "png"}


@pytest.mark.parametrize("kind", sorted(CONVERSIONS))
def test_decodable_non_rgb_jpeg_is_converted_to_rgb_jpeg(kind):
    checked = check_image(CONVERSIONS[kind]())
    assert checked.ok and checked.converted_from == EXPECTED_FROM[kind]
    pixels = tf.io.decode_jpeg(checked.encoded).numpy()  # the reader's decoder accepts it as-is
    assert pixels.shape == (40, 48, 3) == (checked.height, checked.width, 3)
    if kind == "png16":  # scaled from 16 to 8 bits, not clipped: the gradient survives
        assert pixels.max() > 200 and pixels.min() < 10
    if kind == "png":  # quality 95: the colour survives (noise pixels lose some chroma detail)
        assert np.abs(pixels.mean(axis=(0, 1)) - noisy_pixels().mean(axis=(0, 1))).max() < 3


def test_header_check_reads_dimensions_without_decoding():
    """open_image is the one header check (pack and serve): dimensions and format, pixels untouched."""
    image, header = open_image(png_header_only(100_000, 100_000))  # 10 gigapixels: over Pillow's own guard too
    assert image is None and header.problem == "too-many-pixels" and header.format == ""
    image, header = open_image(png_header_only(5000, 9000), max_pixels=40_000_000)  # 45 MP > 40 MP
    assert image is None and (header.problem, header.format, header.width, header.height) == ("too-many-pixels", "PNG", 5000, 9000)
    image, header = open_image(JPEG)
    assert image is not None and (header.problem, header.format, header.width, header.height) == ("", "JPEG", 48, 40)
    assert open_image(b"")[1].problem == "empty-file" and open_image(b"<html>")[1].problem == "not-an-image"
