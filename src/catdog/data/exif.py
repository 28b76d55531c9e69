"""EXIF Orientation (tag 0x0112) of a JPEG, read twice with ONE algorithm: in Python (pack, which stores
the value as the record feature `image/orientation`) and in TensorFlow ops (the decoder of raw bytes used
by predict, serve and the exported SavedModel's bytes signature, which must work without catdog).

Phones and cameras store pixels as the sensor saw them and a tag saying how to turn them upright. The
read: the first `Exif\0\0` in the JPEG's first 128 KB, which must open an APP1 segment (FF E1; the EXIF
spec puts it first, or right after JFIF's APP0), then the TIFF header (byte order, 42), IFD0 and its
Orientation entry. No segment or no tag: 1 (upright, not a problem). A segment that is cut short, has a
bad header, or holds a value outside 1..8 is a PROBLEM: the image is read as 1 and the caller warns,
naming the file (never a crash). The in-graph reader is straight-line ops (one string search, clipped
reads, no loop and no branch: inside tf.data an untaken branch still costs per node).

Values (the TIFF spec; `PIL.ImageOps.exif_transpose` is the reference the tests compare with):
1 upright, 2 mirrored, 3 rotated 180, 4 flipped, 5 transposed, 6 turned 90 clockwise to be upright,
7 transversed, 8 turned 90 counter-clockwise.
"""

from __future__ import annotations

import struct

ORIENTATION_TAG = 0x0112
SCAN_BYTES = 1 << 17  # where the Exif segment is looked for (it comes before the image data, within 64 KB)
PROBLEM = 0  # status of a damaged Exif block or an invalid value
_EXIF = b"Exif\x00\x00"


def jpeg_orientation(data: bytes) -> tuple[int, str]:
    """(orientation 1..8, problem). problem is "" when the value is valid or absent (then 1)."""
    head = data[:SCAN_BYTES]
    at = head.find(_EXIF)
    if head[:2] != b"\xff\xd8" or at < 4 or head[at - 4] != 0xFF or head[at - 3] != 0xE1:
        return 1, ""
    length = struct.unpack(">H", head[at - 2:at])[0]
    return _tiff_orientation(head, at + 6, min(at - 2 + length, len(head)))


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

    head = tf.strings.substr(encoded, 0, SCAN_BYTES)
    n = tf.cast(tf.strings.length(head), tf.int64)

    def read(pos, size):
        """Bytes [pos, pos + size) of head as int64, zeros past its end (the bounds checks decide)."""
        pos = tf.clip_by_value(tf.cast(pos, tf.int64), 0, n)
        size = tf.maximum(tf.cast(size, tf.int64), 0)
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(head, pos, size), tf.uint8), tf.int64)
        return tf.pad(raw, [[0, size - tf.shape(raw, out_type=tf.int64)[0]]])

    def u16(b, little):
        return tf.where(little, b[..., 0] + 256 * b[..., 1], 256 * b[..., 0] + b[..., 1])

    # Straight-line ops only (no tf.cond): inside tf.data a branch costs per node even when not taken, and
    # every read is clipped to the header, so the parse can run on every image (about as cheap as a lookup).
    parts = tf.strings.split(head, sep=_EXIF, maxsplit=1)
    at = tf.cast(tf.strings.length(parts[0]), tf.int64)
    start, marker = read(0, 2), read(at - 4, 4)
    found = tf.logical_and(tf.logical_and(start[0] == 0xFF, start[1] == 0xD8),
                           tf.logical_and(tf.size(parts) > 1, at >= 4))
    found = tf.logical_and(found, tf.logical_and(marker[0] == 0xFF, marker[1] == 0xE1))
    t, limit = at + 6, tf.minimum(at - 2 + 256 * marker[2] + marker[3], n)
    tiff = read(t, 8)
    little = tf.logical_and(tiff[0] == 0x49, tiff[1] == 0x49)
    big = tf.logical_and(tiff[0] == 0x4D, tiff[1] == 0x4D)
    ok = tf.logical_and(tf.logical_or(little, big), t + 8 <= limit)
    ok = tf.logical_and(ok, u16(tiff[2:4], little) == 42)
    ifd = t + tf.where(little, u16(tiff[4:6], little) + 65536 * u16(tiff[6:8], little),
                       65536 * u16(tiff[4:6], little) + u16(tiff[6:8], little))
    count = u16(read(ifd, 2), little)
    ok = tf.logical_and(ok, tf.logical_and(ifd + 2 <= limit, ifd + 2 + 12 * count <= limit))
    entries = tf.reshape(read(ifd + 2, 12 * tf.where(tf.logical_and(found, ok), count, 0)), [-1, 12])
    tags = tf.concat([u16(entries[:, 0:2], little), [ORIENTATION_TAG]], 0)  # a sentinel: value 1 when absent
    values = tf.concat([u16(entries[:, 8:10], little), [1]], 0)
    first = tf.reduce_min(tf.where(tags == ORIENTATION_TAG, tf.range(tf.size(tags, out_type=tf.int64)),
                                   tf.size(tags, out_type=tf.int64)))
    value = values[first]
    valid = tf.logical_and(ok, tf.logical_and(value >= 1, value <= 8))
    return tf.cast(tf.where(found, tf.where(valid, value, PROBLEM), 1), tf.int32)


def upright(status):
    """A status from orientation_status (or a stored orientation) -> the orientation to apply, 1..8."""
    import tensorflow as tf

    status = tf.cast(status, tf.int32)
    return tf.where(tf.logical_and(status >= 1, status <= 8), status, 1)


def apply_orientation(image, orientation):
    """Turn decoded pixels (h, w, c) upright for an EXIF orientation 1..8 (anything else: unchanged); float32 out.

    Every orientation is a mirror of rows and/or columns followed, for 5-8, by a transpose. The mirror is one
    tf.reverse whose axes are a tensor (no branch op, which costs the input pipeline more per image than the
    transform itself); the transpose runs in a tf.cond, on float32 pixels: TF's transpose of uint8 goes through
    oneDNN, which logs an "E0000 ... oneDNN supports DT_UINT8" line on CPUs without AVX-512. The maximum with
    0 (a no-op on cast uint8) keeps Grappler from moving that cast after the transpose.
    """
    import tensorflow as tf

    o = upright(orientation)
    flip_rows = tf.reduce_any(tf.equal(o, [3, 4, 6, 7]))  # upside down (before the transpose)
    flip_columns = tf.reduce_any(tf.equal(o, [2, 3, 7, 8]))  # mirrored left-right (before the transpose)
    axes = tf.boolean_mask(tf.constant([0, 1]), tf.stack([flip_rows, flip_columns]))
    image = tf.cast(tf.reverse(image, axes), tf.float32)
    image = tf.cond(o >= 5, lambda: tf.transpose(tf.maximum(image, 0.0), [1, 0, 2]), lambda: image)
    return tf.ensure_shape(image, [None, None, image.shape[-1]])
