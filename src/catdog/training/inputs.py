"""What the model is fed: class weights, the image pipeline, batches of cached features, the global batch.

Labels are shaped here once for both paths: binary models output (N, 1) sigmoid probabilities and take
float labels (N, 1); multi-class models take int labels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from catdog.classes import is_binary
from catdog.training.config import TrainConfig

IMBALANCE_RATIO = 1.5  # "auto" class weights switch on above this max/min class-count ratio


def _labels_for(num_classes: int):
    """Binary models output (N, 1) sigmoid -> labels as float (N, 1); softmax models take int labels."""
    import tensorflow as tf

    def binary(y):
        return tf.reshape(tf.cast(y, tf.float32), (-1, 1))

    def sparse(y):
        return y

    return binary if is_binary(num_classes) else sparse


def _np_labels(y: np.ndarray, num_classes: int) -> np.ndarray:
    return y.astype(np.float32).reshape(-1, 1) if is_binary(num_classes) else y.astype(np.int32)


def class_weights(cfg: TrainConfig, manifest: dict) -> dict[int, float] | None:
    """Balanced weights n / (C * n_c) when asked, or (auto) when the largest class is 1.5x the smallest."""
    counts = manifest["splits"]["train"].get("class_counts") or {}
    counts = [int(counts.get(name, 0)) for name in manifest["classes"]]
    if cfg.class_weights == "none" or min(counts) == 0:
        return None
    if cfg.class_weights == "auto" and max(counts) / min(counts) <= IMBALANCE_RATIO:
        return None
    total = sum(counts)
    return {i: total / (len(counts) * c) for i, c in enumerate(counts)}


def global_batch_size(cfg: TrainConfig) -> int:
    """--batch-size is per replica; a step of the current tf.distribute strategy consumes this many images."""
    import tensorflow as tf

    return cfg.batch_size * tf.distribute.get_strategy().num_replicas_in_sync


def image_dataset(cfg: TrainConfig, split: str, num_classes: int, *, training: bool, weights=None,
                  order_seed: int | None = None):
    """The real tf.data pipeline: (images 0..255, labels[, sample weights]); augmented when training.

    Batches hold the GLOBAL batch (per-replica batch x replicas); under several workers the training
    data is sharded by file (catdog.distribute.shard_options), so each worker reads only its shards.
    """
    import tensorflow as tf

    from catdog.data import load
    from catdog.data.augment import build_augment
    from catdog.data.manifest import read_manifest, shard_paths
    from catdog.data.pipeline import untuned
    from catdog.distribute import is_multiworker, shard_options
    from catdog.runtime import gpu_present

    augment = build_augment(cfg.augment_config()) if training else None
    # training repeats forever and fit counts steps_per_epoch: epochs stay aligned to the data without Keras
    # running out of a finite dataset of unknown length
    ds = load(cfg.data, split, cfg.image_size, batch_size=global_batch_size(cfg), training=training,
              resize=cfg.resize, augment=augment, seed=order_seed if order_seed is not None else cfg.seed,
              repeat=training)
    if training and not gpu_present():
        # On a CPU the autotuner made some passes run on one core's worth of CPU, as in evaluation (untuned);
        # on a GPU it sizes the buffers that keep the GPU fed (not measured here), so it stays on there.
        ds = untuned(ds)
    strategy = tf.distribute.get_strategy()
    if is_multiworker(strategy):
        num_files = len(shard_paths(cfg.data, read_manifest(cfg.data), split))
        ds = ds.with_options(shard_options(num_files, strategy, training=training))
    to_labels = _labels_for(num_classes)
    table = tf.constant([weights[i] for i in range(num_classes)] if weights else [1.0] * num_classes, tf.float32)

    def weighted(x, y):
        return x, to_labels(y), tf.gather(table, y)

    def unweighted(x, y):
        return x, to_labels(y)

    return ds.map(weighted if weights else unweighted)


CHUNK_STEPS = 64  # cached batches gathered per call into Python (a few per epoch, not one per step)


def cached_dataset(split_cache, batch_size: int, num_classes: int, *, shuffle: bool, seed: int, weights=None,
                   epoch: int = 0, views: int | None = None):
    """Batches of cached features from the memory-mapped .npy files: a tf.data.Dataset, one pass = one epoch.

    Each pass draws a permutation seeded by (seed, epoch) (so --resume continues the same sequence) and, for
    every image, one of its cached views at random. Rows are gathered CHUNK_STEPS batches at a time and
    re-batched inside tf.data: a head step on cached features takes well under a millisecond, so Python
    running once per step (a keras PyDataset) had made the epoch twice as slow. Memory holds a chunk, never
    the split. `len()` is the number of steps per epoch.
    """
    import tensorflow as tf

    features = split_cache.features if views is None else split_cache.features[:views]
    labels = np.asarray(split_cache.labels)
    n, dim = len(labels), int(features[0].shape[1])
    steps = math.ceil(n / batch_size)
    state = {"epoch": epoch}

    def plan() -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, state["epoch"]])
        order = rng.permutation(n) if shuffle else np.arange(n)
        view_of = rng.integers(0, len(features), n) if len(features) > 1 else np.zeros(n, int)
        state["epoch"] += 1
        return order, view_of

    def batch_rows(order, view_of, step) -> tuple[np.ndarray, np.ndarray]:
        """(features, row indices) of one batch; sorted indices read the memmap sequentially."""
        idx = np.sort(order[step * batch_size : (step + 1) * batch_size])
        x = np.empty((len(idx), dim), np.float32)
        which = view_of[idx]
        for view in np.unique(which):
            rows = which == view
            x[rows] = features[view][idx[rows]]
        return x, idx

    def chunks():
        order, view_of = plan()
        for first in range(0, steps, CHUNK_STEPS):
            parts = [batch_rows(order, view_of, step) for step in range(first, min(first + CHUNK_STEPS, steps))]
            x = np.concatenate([p[0] for p in parts])
            y = labels[np.concatenate([p[1] for p in parts])]
            if weights:
                yield x, _np_labels(y, num_classes), np.array([weights[int(c)] for c in y], np.float32)
            else:
                yield x, _np_labels(y, num_classes)

    label_spec = (tf.TensorSpec([None, 1], tf.float32) if is_binary(num_classes)
                  else tf.TensorSpec([None], tf.int32))
    signature = (tf.TensorSpec([None, dim], tf.float32), label_spec)
    if weights:
        signature += (tf.TensorSpec([None], tf.float32),)
    ds = tf.data.Dataset.from_generator(chunks, output_signature=signature).rebatch(batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def cache_key(cfg: TrainConfig, manifest: dict, precision: str) -> dict:
    from catdog.data.manifest import file_sha256
    from catdog.model.feature_cache import pack_identity

    backbone_id = file_sha256(cfg.backbone) if Path(cfg.backbone).is_file() else cfg.backbone
    weights_id = file_sha256(cfg.weights) if Path(cfg.weights).is_file() else cfg.weights
    key = {"backbone": backbone_id, "weights": weights_id, "image_size": list(cfg.image_size),
           "resize": cfg.resize, "precision": precision, "pack": pack_identity(manifest)}
    if cfg.weights == "none":  # random init: the features depend on the seed
        key["init_seed"] = cfg.seed
    return key

