"""manifest + shards -> tf.data pipeline: interleave shards, parse, decode, resize, augment, batch, prefetch.

Memory is bounded by the shuffle buffer and prefetch depth, never by the dataset size (the original
system loaded every image into RAM and ran out of 60 GB).

Evaluation mode (`training=False`) reads shards in manifest order, deterministically, each record
exactly once, and asserts at the end that the number of records equals the manifest's count
(`tf.data.experimental.assert_cardinality`), so a reader can never silently repeat or skip images
(the original queue-based reader did both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
from catdog._tf import tf

from catdog.data import manifest as manifest_lib
from catdog.data.imagecheck import BadImage, read_header
from catdog.imageformats import DEFAULT_MAX_PIXELS
from catdog.data.decode import RESIZE_MODES, as_size, decode_and_resize
from catdog.data.records import parse_example
from catdog.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE


def untuned(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuner off: AUTOTUNE then means one parallel call per core, a fixed setting.

    For pipelines that feed a model running on the same CPU (feature cache, evaluate, predict, training without
    a GPU). On the 2-core machine, with the autotuner on, 25 of 64 passes of such a pipeline next to LiteRT ran
    on one core's worth of CPU (the same work per thread, never two threads at once: half speed, 92 instead of
    165-185 images/s); with it off, none of 46 did (docs/benchmarks.md). A fixed parallelism is all they need.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def record_dataset(directory: str, split: str, *, training: bool = False, seed: int | None = None,
                   manifest: dict | None = None) -> tf.data.Dataset:
    """Serialized records of one split. Sharded by FILE, so tf.distribute can split shards across workers."""
    manifest = manifest or manifest_lib.read_manifest(directory)
    paths = manifest_lib.shard_paths(directory, manifest, split)
    for path in paths:
        if not tf.io.gfile.exists(path):
            raise DataError(f"{path}: shard listed in the manifest is missing")
    files = tf.data.Dataset.from_tensor_slices(paths)
    if training:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    records = files.interleave(
        lambda path: tf.data.TFRecordDataset(path, buffer_size=1 << 20),
        cycle_length=min(len(paths), 8),
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=not training or seed is not None,
    )
    if not training:
        expected = manifest_lib.split_info(manifest, split, directory)["num_examples"]
        records = records.apply(tf.data.experimental.assert_cardinality(expected))
    return records


def load(
    directory: str,
    split: str,
    image_size=224,
    *,
    batch_size: int = 32,
    training: bool = False,
    resize: str = "squash",
    augment: Callable[[tf.Tensor], tf.Tensor] | None = None,
    shuffle_buffer: int = 2048,
    seed: int | None = None,
    repeat: bool = False,
    with_ids: bool = False,
    drop_remainder: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tf.data.Dataset:
    """A batched pipeline over one split of a packed folder.

    Args:
        directory: the packed folder (local path or any tf.io.gfile URL).
        split: "train", "val" or "test".
        image_size: int or (height, width) of the output images.
        batch_size: images per batch; the last batch may be smaller unless `drop_remainder`.
        training: shuffle shards and records (seeded by `seed`) and apply `augment`; when False the
            order is deterministic, every record is yielded exactly once (count checked) and the pipeline
            runs `untuned`.
        resize: "squash", "crop" (centre crop) or "pad"; see catdog.data.decode.resize.
        augment: plain function image -> image (float32 0..255, HxWx3), applied per image when training.
        repeat: repeat forever (training only).
        with_ids: yield dicts {"image", "label", "id"} instead of (image, label) pairs.
        max_pixels: a record whose image header claims more pixels fails the pipeline before it is decoded
            (a hand-made or damaged pack cannot allocate gigabytes); `checked` turns that into a DataError.
            Defaults to the pack limit (40 MP); None: no check.

    Returns:
        tf.data.Dataset of float32 images in 0..255 (preprocessing for the backbone happens inside the
        model) and int32 labels (-1 for the unlabeled test split).
    """
    if resize not in RESIZE_MODES:
        raise DataError(f"resize mode must be one of {', '.join(RESIZE_MODES)}; got {resize!r}")
    if repeat and not training:
        raise DataError("repeat=True only makes sense with training=True (evaluation reads each image once)")
    target = as_size(image_size)
    manifest = manifest_lib.read_manifest(directory)
    records = record_dataset(directory, split, training=training, seed=seed, manifest=manifest)
    if training:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        records = records.repeat()

    def to_example(serialized):
        features = parse_example(serialized)
        encoded = features["image/encoded"]
        if max_pixels is not None:
            encoded = within_pixel_limit(encoded, max_pixels)
        image = decode_and_resize(encoded, target, resize, features["image/orientation"])
        if training and augment is not None:
            image = augment(image)
        label = tf.cast(features["image/class/label"], tf.int32)
        if with_ids:
            return {"image": image, "label": label, "id": features["image/id"]}
        return image, label

    # Traced as written, without AutoGraph: it has no Python control flow on tensors (branches are tf.cond) and
    # AutoGraph's source rewriting of the decode functions took ~1.3 s of every command's start here.
    to_example = tf.autograph.experimental.do_not_convert(to_example)
    dataset = records.map(to_example, num_parallel_calls=AUTOTUNE, deterministic=not training or seed is not None)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE,
                            deterministic=True)
    dataset = dataset.prefetch(AUTOTUNE)
    return dataset if training else untuned(dataset)


PIXEL_LIMIT_MESSAGE = "image header claims more pixels than the limit"


def within_pixel_limit(encoded: tf.Tensor, max_pixels: int) -> tf.Tensor:
    """`encoded` once its header is within `max_pixels`, checked before decoding: JPEG (every record catdog
    packs) in-graph from its frame header; anything else by catdog.data.imagecheck.read_header."""

    def jpeg_ok():
        shape = tf.cast(tf.image.extract_jpeg_shape(encoded), tf.int64)
        return shape[0] * shape[1] <= max_pixels

    def other_ok():
        def check(data) -> np.bool_:
            try:
                read_header(bytes(data), max_pixels)
            except BadImage as e:
                return np.bool_(e.reason not in ("too-many-pixels",))
            return np.bool_(True)

        return tf.numpy_function(check, [encoded], tf.bool, stateful=True)

    ok = tf.cond(tf.io.is_jpeg(encoded), jpeg_ok, other_ok)
    with tf.control_dependencies([tf.debugging.Assert(ok, [PIXEL_LIMIT_MESSAGE, max_pixels])]):
        return tf.identity(encoded)


def pipeline_error(error: Exception, directory: str, split: str) -> DataError | None:
    """The one-line DataError for a pipeline failure caused by the data (None: not one of those, a bug)."""
    if isinstance(error, tf.errors.DataLossError):  # a truncated or corrupted record (TFRecord CRC check)
        return DataError(_damaged_shard(directory, split))
    if isinstance(error, tf.errors.InvalidArgumentError) and PIXEL_LIMIT_MESSAGE in str(error.message):
        return DataError(f"{directory}: split '{split}' holds an image whose header claims more pixels than the "
                         "limit (40 MP by default); it was not decoded; re-pack the images with `catdog pack`")
    return None


def checked(batches: Iterable, directory: str = "", split: str = "") -> Iterator:
    """Iterate an evaluation dataset, turning the end-of-data count assertion into a one-line DataError."""
    iterator = iter(batches)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except (tf.errors.FailedPreconditionError, tf.errors.InvalidArgumentError) as e:
            if "expected to contain" not in str(e.message):
                problem = pipeline_error(e, directory, split)
                if problem is None:
                    raise
                raise problem from None
            raise DataError(f"{directory}: split '{split}' does not match its manifest: {e.message.strip()}") from None
        except tf.errors.DataLossError as e:  # a truncated or corrupted record (TFRecord CRC check)
            raise pipeline_error(e, directory, split) from None


def _damaged_shard(directory: str, split: str) -> str:
    """TF's DataLossError names no file: re-hash the shards against the manifest to name the damaged one."""
    try:
        problems = manifest_lib.verify_shards(directory) if directory else []
    except DataError:  # `directory` is not a pack (e.g. a feature-cache description)
        problems = []
    where = problems[0] if problems else f"{directory}: split '{split}' has a corrupt or truncated record"
    return f"{where}; re-run `catdog pack` (`catdog inspect {directory}` lists every damaged shard)"


def num_examples(directory: str, split: str) -> int:
    return manifest_lib.split_info(manifest_lib.read_manifest(directory), split, directory)["num_examples"]
