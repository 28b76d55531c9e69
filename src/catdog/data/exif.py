"""EXIF Orientation (tag 0x0112) of a JPEG, read twice with ONE algorithm: in Python (pack, which stores
the value as the record feature `image/orientation`) and in TensorFlow ops (the decoder of raw bytes used
by predict, serve and the exported SavedModel's bytes signature, which must work without catdog).

Phones and cameras store pixels as the sensor saw them and a tag saying how to turn them upright. The
read: the first `Exif\0\0` in the JPEG's first 128 KB, which must open an APP1 segment (FF E1; the EXIF
spec puts it first, or right after JFIF's APP0), then the TIFF header (byte order, 42), IFD0 and its
Orientation entry. No segment or no tag: 1 (upright, not a problem). A segment that is cut short, has a
bad header, or holds a value outside 1..8 is a PROBLEM: the image is read as 1 and the caller warns,
naming the file (never a crash). The in-graph reader is one string search and, only where it finds an
Exif segment, straight-line clipped reads (no loop, no nested branch: inside tf.data an untaken branch still
costs per node).

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

    # One branch: a JPEG without an Exif segment (most photos) skips the parse. Inside it, straight-line ops
    # only: every read is clipped to the header, and inside tf.data each node of a branch costs even when the
    # branch is not taken, so nested conds would cost more than the reads they guard.
    parts = tf.strings.split(head, sep=_EXIF, maxsplit=1)

    def parse():
        at = tf.cast(tf.strings.length(parts[0]), tf.int64)
        start, marker = read(0, 2), read(at - 4, 4)
        found = tf.logical_and(tf.logical_and(start[0] == 0xFF, start[1] == 0xD8), at >= 4)
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

    return tf.cond(tf.size(parts) > 1, parse, lambda: tf.constant(1, tf.int32))


def upright(status):
    """A status from orientation_status (or a stored orientation) -> the orientation to apply, 1..8."""
    import tensorflow as tf

    status = tf.cast(status, tf.int32)
    return tf.where(tf.logical_and(status >= 1, status <= 8), status, 1)


def mirror(image, orientation):
    """The mirror part of an EXIF orientation 1..8 (anything else: none), on the decoded pixels as stored.

    Every orientation is a mirror of rows and/or columns followed, for 5-8, by a transpose (`turned`), which
    catdog.data.decode.resize applies to its small float32 output: transposing and resizing commute, the
    full-size uint8 pixels are never cast or transposed (TF's uint8 transpose goes through oneDNN, which logs
    an "E0000 ... oneDNN supports DT_UINT8" line on CPUs without AVX-512), and an upright photo (most) is not
    copied at all: tf.reverse with no axis still copies, so it runs only in the branch that mirrors.
    """
    import tensorflow as tf

    o = tf.cast(orientation, tf.int32)  # any value outside 1..8 matches neither list: no mirror
    flip_rows = tf.reduce_any(tf.equal(o, [3, 4, 6, 7]))  # upside down (before the transpose)
    flip_columns = tf.reduce_any(tf.equal(o, [2, 3, 7, 8]))  # mirrored left-right (before the transpose)

    def flipped():
        return tf.reverse(image, tf.boolean_mask(tf.constant([0, 1]), tf.stack([flip_rows, flip_columns])))

    return tf.cond(tf.logical_or(flip_rows, flip_columns), flipped, lambda: image)
