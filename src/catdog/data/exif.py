"""EXIF Orientation (tag 0x0112) of a JPEG, read twice with ONE algorithm: in Python (pack, which stores
the value as the record feature `image/orientation`) and in TensorFlow ops (the decoder of raw bytes used
by predict, serve and the exported SavedModel's bytes signature, which must work without catdog).

Phones and cameras store pixels as the sensor saw them and a tag saying how to turn them upright. The
walk: JPEG markers from byte 2 until the `Exif\\0\\0` APP1 segment (or the image data starts), then the
TIFF header (byte order, 42), IFD0, and the Orientation entry. No segment or no tag: 1 (upright, not a
problem). A segment that is cut short, has a bad header, or holds a value outside 1..8 is a PROBLEM:
the image is read as 1 and the caller warns, naming the file (it is never a crash).

Values (the TIFF spec; `PIL.ImageOps.exif_transpose` is the reference the tests compare with):
1 upright, 2 mirrored, 3 rotated 180, 4 flipped, 5 transposed, 6 turned 90 clockwise to be upright,
7 transversed, 8 turned 90 counter-clockwise.
"""

from __future__ import annotations

import struct

ORIENTATION_TAG = 0x0112
MAX_SEGMENTS = 64  # markers walked before giving up (real files have the Exif segment within the first 3)
SCAN_BYTES = 1 << 17  # header bytes the in-graph reader looks at (an APP1 segment is at most 64 KB)
PROBLEM = 0  # status of a damaged Exif block or an invalid value


def jpeg_orientation(data: bytes) -> tuple[int, str]:
    """(orientation 1..8, problem). problem is "" when the value is valid or absent (then 1)."""
    data = data[:SCAN_BYTES]
    if data[:2] != b"\xff\xd8":
        return 1, ""
    pos, n = 2, len(data)
    for _ in range(MAX_SEGMENTS):
        if pos + 4 > n:
            return 1, ""
        if data[pos] != 0xFF or data[pos + 1] in (0xDA, 0xD9):  # not a marker / start of scan / end of image
            return 1, ""
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if data[pos + 1] == 0xE1 and data[pos + 4:pos + 10] == b"Exif\x00\x00":
            return _tiff_orientation(data, pos + 10, min(pos + 2 + length, n))
        pos += 2 + length
    return 1, ""


def _tiff_orientation(data: bytes, t: int, limit: int) -> tuple[int, str]:
    order = data[t:t + 2]
    if order not in (b"II", b"MM") or t + 8 > limit:
        return 1, "damaged EXIF block (bad TIFF header)"
    e = "<" if order == b"II" else ">"
    if struct.unpack(e + "H", data[t + 2:t + 4])[0] != 42:
        return 1, "damaged EXIF block (bad TIFF header)"
    ifd = t + struct.unpack(e + "I", data[t + 4:t + 8])[0]
    if ifd + 2 > limit:
        return 1, "damaged EXIF block (IFD0 outside the block)"
    count = struct.unpack(e + "H", data[ifd:ifd + 2])[0]
    if ifd + 2 + 12 * count > limit:
        return 1, "damaged EXIF block (cut short)"
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if struct.unpack(e + "H", data[entry:entry + 2])[0] == ORIENTATION_TAG:
            value = struct.unpack(e + "H", data[entry + 8:entry + 10])[0]
            return (value, "") if 1 <= value <= 8 else (1, f"invalid EXIF orientation {value}")
    return 1, ""


def orientation_status(encoded):
    """In-graph twin of jpeg_orientation: scalar tf.string -> int32 1..8, or PROBLEM (0)."""
    import tensorflow as tf

    head = tf.io.decode_raw(tf.strings.substr(encoded, 0, SCAN_BYTES), tf.uint8)
    n = tf.cast(tf.shape(head)[0], tf.int64)
    padded = tf.cast(tf.pad(head, [[0, 16]]), tf.int64)
    last = n + 15

    def byte(i):  # out-of-range reads give 0; the bounds checks below decide what counts
        return tf.where(i < n, tf.gather(padded, tf.clip_by_value(i, 0, last)), tf.constant(0, tf.int64))

    def u16(i, little):
        return tf.where(little, byte(i) + 256 * byte(i + 1), 256 * byte(i) + byte(i + 1))

    def u32(i, little):
        return tf.where(little, u16(i, little) + 65536 * u16(i + 2, little),
                        65536 * u16(i, little) + u16(i + 2, little))

    exif = tf.constant([0x45, 0x78, 0x69, 0x66, 0, 0], tf.int64)

    def cond(pos, tiff, limit, steps):
        return tf.logical_and(tf.logical_and(tiff < 0, steps < MAX_SEGMENTS), pos + 4 <= n)

    def body(pos, tiff, limit, steps):
        marker = byte(pos + 1)
        length = u16(pos + 2, False)
        stop = tf.logical_or(byte(pos) != 0xFF, tf.logical_or(marker == 0xDA, marker == 0xD9))
        is_exif = tf.logical_and(marker == 0xE1, tf.reduce_all(byte(pos + 4 + tf.range(6, dtype=tf.int64)) == exif))
        tiff = tf.where(stop, tf.zeros_like(tiff), tf.where(is_exif, pos + 10, tiff))
        limit = tf.minimum(pos + 2 + length, n)
        return pos + 2 + length, tiff, limit, steps + 1

    is_jpeg = tf.logical_and(byte(tf.constant(0, tf.int64)) == 0xFF, byte(tf.constant(1, tf.int64)) == 0xD8)
    zero, one, problem = (tf.constant(v, tf.int64) for v in (0, 1, PROBLEM))
    start = (tf.constant(2, tf.int64), tf.where(is_jpeg, -one, zero), n, tf.constant(0))
    _, t, limit, _ = tf.while_loop(cond, body, start)
    found = t > 0
    little = tf.logical_and(byte(t) == 0x49, byte(t + 1) == 0x49)
    big = tf.logical_and(byte(t) == 0x4D, byte(t + 1) == 0x4D)
    ok = tf.logical_and(tf.logical_or(little, big), t + 8 <= limit)
    ok = tf.logical_and(ok, u16(t + 2, little) == 42)
    ifd = t + u32(t + 4, little)
    count = u16(ifd, little)
    ok = tf.logical_and(ok, tf.logical_and(ifd + 2 <= limit, ifd + 2 + 12 * count <= limit))
    entries = ifd + 2 + 12 * tf.range(tf.where(ok, count, 0))
    size = tf.shape(entries, out_type=tf.int64)[0]
    first = tf.reduce_min(tf.where(u16(entries, little) == ORIENTATION_TAG, tf.range(size), size))  # size: none
    has_tag = first < size
    value = u16(ifd + 2 + 12 * first + 8, little)
    valid = tf.logical_and(value >= 1, value <= 8)
    status = tf.where(tf.logical_not(found), one,
                      tf.where(tf.logical_not(ok), problem,
                               tf.where(tf.logical_not(has_tag), one, tf.where(valid, value, problem))))
    return tf.cast(status, tf.int32)


def upright(status):
    """A status from orientation_status (or a stored orientation) -> the orientation to apply, 1..8."""
    import tensorflow as tf

    status = tf.cast(status, tf.int32)
    return tf.where(tf.logical_and(status >= 1, status <= 8), status, 1)


def apply_orientation(image, orientation):
    """Turn decoded pixels (h, w, c) upright for an EXIF orientation 1..8 (anything else: unchanged)."""
    import tensorflow as tf

    branches = [
        lambda: image,
        lambda: tf.image.flip_left_right(image),
        lambda: tf.image.rot90(image, 2),
        lambda: tf.image.flip_up_down(image),
        lambda: tf.image.transpose(image),
        lambda: tf.image.rot90(image, 3),
        lambda: tf.image.rot90(tf.image.transpose(image), 2),
        lambda: tf.image.rot90(image, 1),
    ]
    return tf.switch_case(upright(orientation) - 1, branches)
