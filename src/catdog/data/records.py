"""The on-disk record format: one `tf.train.Example` per image, holding the ORIGINAL encoded bytes.

Storing encoded JPEG bytes (never decoded pixels) keeps shards the size of the source photos;
the original system's decoded-pixel records were ~10x larger. The spec below is the public
contract (documented in the README) so plain `tf.data` can read shards without catdog.
"""

from __future__ import annotations

from catdog._tf import tf

UNLABELED = -1  # label index of records in the unlabeled `test` split

# feature name -> (dtype, default). Scalars only; parse with tf.io.parse_single_example.
FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),  # JPEG bytes exactly as stored
    "image/format": tf.io.FixedLenFeature([], tf.string),  # always b"jpeg" after packing
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),  # index into manifest classes, -1 if unlabeled
    "image/class/text": tf.io.FixedLenFeature([], tf.string),  # class name, b"" if unlabeled
    "image/id": tf.io.FixedLenFeature([], tf.string),  # unique within the pack: "cat.123", "123", "dog/x"
    "image/source": tf.io.FixedLenFeature([], tf.string),  # path relative to its source (inside a zip too)
    "image/sha256": tf.io.FixedLenFeature([], tf.string),  # hex sha256 of the ORIGINAL source file
    "image/converted_from": tf.io.FixedLenFeature([], tf.string),  # b"" or the original format, e.g. b"png"
    # EXIF orientation 1..8 to apply after decoding (the bytes stay original); packs older than it read as 1
    "image/orientation": tf.io.FixedLenFeature([], tf.int64, default_value=1),
}


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def make_example(
    *,
    encoded: bytes,
    height: int,
    width: int,
    label: int,
    label_text: str,
    image_id: str,
    source: str,
    sha256: str,
    converted_from: str = "",
    orientation: int = 1,
) -> bytes:
    """Serialize one image record; `encoded` must be JPEG bytes."""
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "image/encoded": _bytes(encoded),
                "image/format": _bytes(b"jpeg"),
                "image/height": _int(height),
                "image/width": _int(width),
                "image/class/label": _int(label),
                "image/class/text": _bytes(label_text.encode()),
                "image/id": _bytes(image_id.encode()),
                "image/source": _bytes(source.encode()),
                "image/sha256": _bytes(sha256.encode()),
                "image/converted_from": _bytes(converted_from.encode()),
                "image/orientation": _int(orientation),
            }
        )
    )
    return example.SerializeToString(deterministic=True)  # map order is per-process otherwise: same pack, other bytes


def parse_example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parse one serialized record into a dict of scalar tensors (graph-safe)."""
    return tf.io.parse_single_example(serialized, FEATURES)
