"""EXIF Orientation (tag 0x0112) of a JPEG, read twice with ONE algorithm: in Python (pack, which stores
the value as the record feature `image/orientation`) and in TensorFlow ops (the decoder of raw bytes used
by predict, serve and the exported SavedModel's bytes signature, which must work without catdog).

Phones and cameras store pixels as the sensor saw them and a tag saying how to turn them upright. The
read: the first `Exif\0\0` in the JPEG's first 128 KB, which must open an APP1 segment (FF E1; the EXIF
spec puts it first, or right after JFIF's APP0), then the TIFF header (byte order, 42), IFD0 and its
Orientation entry. No segment or no tag: 1 (upright, not a problem). A segment that is cut short, has a
bad header, or holds a value outside 1..8 is a PROBLEM: the image is read as 1 and the caller warns,
naming the file (never a crash). The in-graph reader is one string search and, only where it finds an
Exif segment, a few vectorized gathers (no loop, no nested branch: inside tf.data every node costs per photo,
in the untaken branch too).

PNG (`eXIf` chunk) and WebP (`EXIF` chunk) carry the same TIFF block; pack converts them upright with Pillow's
exif_transpose, so the in-graph reader finds their blocks too (PNG's within the first 128 KB, WebP's anywhere:
its EXIF chunk follows the image data), and the decoder turns them as it turns a JPEG: a photo gets the same
pixels from a pack and from its file.

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
    """In-graph twin of jpeg_orientation, also for the EXIF of PNG (an `eXIf` chunk) and WebP (an `EXIF` chunk),
    which pack reads through Pillow's exif_transpose: scalar tf.string -> int32 1..8, or PROBLEM (0).

    Inside tf.data every node of a function costs ~0.2-0.5 us per element, taken branch or not (tf.cond is
    lowered to switch/merge), so the reader is small: a regex search and, where it finds a tag, three gathers
    (container and header fields, entry count, entries). The first version, one clipped read per field, had
    ~470 nodes and cost ~0.15 ms per photo without a segment; this ~0.08. Reading PNG and WebP too cost
    ~0.08 ms more per JPEG (bench/decode_bench.py: the bytes 0.16-0.20 ms above the record, against 0.02-0.12).
    """
    import tensorflow as tf

    # WebP keeps its EXIF chunk after the image data (the container spec's order): a WebP is searched whole.
    # "WEBP" follows "RIFF" and the file size; padded, because substr fails past the end of a short input.
    is_webp = tf.strings.substr(tf.strings.substr(encoded, 0, 12) + "\0" * 12, 8, 4) == "WEBP"
    head = tf.strings.substr(encoded, 0, tf.where(is_webp, tf.int32.max, SCAN_BYTES))
    # A search, not a match: RE2 reads the bytes as UTF-8, where `.` never matches an invalid byte, but a
    # search for ASCII literals finds them wherever they are. Removing one is how TensorFlow reports a find.
    # (Searching PNG and WebP heads alone for their tags costs more: every extra node costs every photo.)
    without = tf.strings.regex_replace(head, "Exif\\x00\\x00|eXIf|EXIF", "", replace_global=False)
    found = tf.strings.length(without) < tf.strings.length(head)
    return tf.cond(found, lambda: _parse_exif(head, is_webp), lambda: tf.constant(1, tf.int32))


def _parse_exif(head, is_webp):
    """jpeg_orientation's checks, straight-line and vectorized (few nodes), on a head that holds a tag.
    Every read is clamped into the head; each read past the block is guarded by the bounds check that
    Python makes before it, so a clamped value never decides the result.

    Where the TIFF block starts and ends, by container: JPEG `FF E1 <u16 BE length> Exif\\0\\0 TIFF` after
    `FF D8`; PNG `<u32 BE length> eXIf TIFF`; WebP (RIFF....WEBP) `EXIF <u32 LE size> TIFF`. PNG and WebP
    writers sometimes keep the `Exif\\0\\0` prefix inside the chunk; Pillow skips it, and so does this."""
    import tensorflow as tf

    n = tf.cast(tf.strings.length(head), tf.int64)
    data = tf.io.decode_raw(head, tf.uint8)

    def read(positions):
        return tf.cast(tf.gather(data, tf.clip_by_value(positions, 0, n - 1)), tf.int64)

    is_png = tf.strings.substr(head, 0, 8) == b"\x89PNG\r\n\x1a\n"  # bytes: a str would be UTF-8
    chunk = is_png | is_webp
    tag = tf.where(is_png, "eXIf", tf.where(is_webp, "EXIF", _EXIF.decode("latin-1")))
    # the raw op: tf.strings.split wraps its result in a RaggedTensor (~60 more nodes)
    before = tf.raw_ops.StringSplitV2(input=tf.reshape(head, [1]), sep=tag, maxsplit=1).values[0]
    at = tf.cast(tf.strings.length(before), tf.int64)
    start = at + tf.where(is_png, tf.constant(4, tf.int64), tf.where(is_webp, tf.constant(8, tf.int64), 6))
    # One gather: SOI, the four bytes before the tag (JPEG: FF E1 + segment length; PNG: chunk length), the four
    # after it (WebP: chunk size), and 14 from where the TIFF block starts (8 header bytes, after an optional
    # Exif\0\0 in a PNG or WebP chunk).
    b = read(tf.concat([[0, 1], at + tf.constant([-4, -3, -2, -1, 4, 5, 6, 7], tf.int64),
                        start + tf.range(14, dtype=tf.int64)], 0))
    prefixed = chunk & tf.reduce_all(b[10:16] == tf.constant(list(_EXIF), tf.int64))
    t = start + tf.where(prefixed, tf.constant(6, tf.int64), 0)
    header = tf.where(prefixed, b[16:24], b[10:18])
    # the PNG chunk length (big-endian), the WebP chunk size (little-endian), the JPEG segment length
    sizes = tf.reduce_sum(b[2:10, None] * tf.constant(
        [[1 << 24, 0, 0], [1 << 16, 0, 0], [256, 0, 256], [1, 0, 1],
         [0, 1, 0], [0, 256, 0], [0, 1 << 16, 0], [0, 1 << 24, 0]], tf.int64), 0)
    limit = tf.minimum(tf.where(chunk, start + tf.where(is_png, sizes[0], sizes[1]), at - 2 + sizes[2]), n)
    jpeg = (at >= 4) & (at + 6 <= n) & tf.reduce_all(b[:4] == tf.constant([0xFF, 0xD8, 0xFF, 0xE1], tf.int64))
    found = tf.where(chunk, (at >= 12) & (at + 4 <= n), jpeg)

    # Four 2-byte fields: the TIFF byte order, 42, the two halves of the IFD0 offset.
    pairs = tf.reshape(header, [4, 2])
    order = tf.reduce_sum(pairs[0] * tf.constant([256, 1], tf.int64))
    little, big = order == 0x4949, order == 0x4D4D  # "II", "MM"
    weights = tf.where(little, tf.constant([1, 256], tf.int64), tf.constant([256, 1], tf.int64))

    def u16(byte_pairs):
        return tf.reduce_sum(byte_pairs * weights, -1)

    magic42, low, high = tf.unstack(u16(pairs[1:]))
    halves = tf.where(little, tf.constant([1, 65536], tf.int64), tf.constant([65536, 1], tf.int64))
    ifd = t + tf.reduce_sum(tf.stack([low, high]) * halves)
    count = u16(read(ifd + tf.range(2, dtype=tf.int64)))
    ok = (little | big) & (t + 8 <= limit) & (magic42 == 42) & (ifd + 2 <= limit) & (ifd + 2 + 12 * count <= limit)
    entries = ifd + 2 + 12 * tf.range(tf.where(found & ok, count, 0))
    fields = u16(tf.reshape(read(entries[:, None] + tf.constant([0, 1, 8, 9], tf.int64)), [-1, 2, 2]))
    hits = tf.gather(fields[:, 1], tf.where(fields[:, 0] == ORIENTATION_TAG)[:, 0])
    value = tf.concat([hits, [1]], 0)[0]  # the first Orientation entry; absent: 1
    valid = ok & (value >= 1) & (value <= 8)
    return tf.cast(tf.where(found, tf.where(valid, value, PROBLEM), 1), tf.int32)


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
