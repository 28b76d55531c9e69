"""Feature cache: run the frozen backbone ONCE per image and view, store pooled features on disk.

On a CPU the frozen phase is slow only because every epoch pushes every image through the backbone
again. Here each split's pooled features are computed once (the plain view, plus K augmented views of
the training split) and stored as .npy files written chunk by chunk through `np.lib.format.open_memmap`
(never all in RAM), then read back memory-mapped. The folder name is a hash of everything the features
depend on: backbone, weights, image size, resize mode, precision and the pack's content (manifest
fingerprint plus shard checksums); augmented views add the augmentation config to their file name. So
a second run with the same settings reuses the files, and any change computes new ones.

Each file is written under a temporary name and renamed when complete: a file that exists is whole.

The backbone runs on `catdog.runtime` (`runtime="auto"`: LiteRT/XNNPACK on a CPU, TensorFlow on a GPU);
its converted model is kept in `<cache root>/models/`, keyed by a hash of the backbone's weights, so a new
pack with the same backbone reuses it. Features from either runtime agree within the parity tolerance
checked when the converted model is built, so the cache key does not name the runtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catdog import atomic, progress
from catdog.errors import DataError

CACHE_VERSION = 2  # 2: decode.py matches MediaPipe (accurate DCT, corner-aligned bilinear, reduced decode from 3x)
log = logging.getLogger("catdog.train")


def default_cache_root() -> Path:
    """$XDG_CACHE_HOME/catdog/features (default ~/.cache/catdog/features): never beside the data."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "catdog" / "features"


def pack_identity(manifest: dict) -> str:
    """Content identity of a pack: its fingerprint, classes and every shard checksum."""
    parts = {"fingerprint": manifest.get("fingerprint"), "classes": manifest.get("classes"),
             "shards": {s: [sh.get("sha256") for sh in info.get("shards", [])]
                        for s, info in sorted(manifest.get("splits", {}).items())}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cache_folder(root, key_fields: dict) -> Path:
    """root / <hash of the key fields>; the fields are also written to meta.json for humans."""
    key = hashlib.sha256(json.dumps({"version": CACHE_VERSION, **key_fields}, sort_keys=True).encode()).hexdigest()
    return Path(root) / key[:24]


def models_dir(folder: Path) -> Path:
    """Converted backbones live beside the feature folders: <cache root>/models."""
    return Path(folder).parent / "models"


def view_names(views: int, augment_id: str) -> list[str]:
    """View 0 is the plain (un-augmented) image; views 1..K are augmented with the config `augment_id`."""
    return ["plain"] + [f"aug-{augment_id}-{i}" for i in range(1, views + 1)]


@dataclass
class CachedSplit:
    """Memory-mapped features of one split: features[v] is (N, D) for view v; labels is (N,) int32."""

    features: list[np.ndarray]
    labels: np.ndarray
    computed: list[str] = field(default_factory=list)  # file names computed by this call (empty = all reused)

    @property
    def num_examples(self) -> int:
        return int(self.labels.shape[0])


def _valid(path: Path, rows: int) -> bool:
    if not path.is_file():
        return False
    try:
        return np.load(path, mmap_mode="r").shape[0] == rows
    except (ValueError, OSError):
        return False


def extract_to_file(extract, dataset, rows: int, dim: int, path: Path, labels_path: Path | None,
                    description: str, show_progress: bool = True, runtime: str = "") -> None:
    """Run `extract` (images -> (B, D) features) over a batched (images, labels) dataset into `path`.

    Rows are written in chunks into a memory-mapped .npy under a temporary name, then renamed.
    """
    from catdog.data.pipeline import checked

    labels = np.empty((rows,), np.int32)
    pos = 0
    start = time.perf_counter()
    with atomic.writing(path) as tmp:  # the temp name keeps the .npy ending that open_memmap expects
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
        with progress.bar(rows, description, enabled=show_progress, transient=True) as advance:
            for images, batch_labels in checked(dataset, str(path), description):
                features = np.asarray(extract(images), np.float32)
                n = features.shape[0]
                if pos + n > rows:
                    raise DataError(f"{description}: more records than the manifest's {rows}")
                out[pos : pos + n] = features
                labels[pos : pos + n] = np.asarray(batch_labels)
                pos += n
                advance(n)
        if pos != rows:
            raise DataError(f"{description}: read {pos} records, the manifest lists {rows}")
        out.flush()
        del out
    if labels_path is not None:
        with atomic.writing(labels_path) as tmp_labels:
            np.save(tmp_labels, labels)
    seconds = time.perf_counter() - start
    log.info("cached %d %s features in %.1f s (%.0f images/s%s) -> %s", rows, description, seconds,
             rows / max(seconds, 1e-9), f", {runtime}" if runtime else "", path)


def ensure_split(folder: Path, key_fields: dict, extractor, directory: str, split: str, image_size, *,
                 resize: str = "squash", batch_size: int = 32, views: int = 0, augment=None,
                 augment_id: str = "", show_progress: bool = True, runtime: str = "tensorflow",
                 label: str = "backbone") -> CachedSplit:
    """Features of `split` for the plain view and `views` augmented views: reuse files that exist, compute the rest.

    Args:
        folder: the cache folder for these key fields (see `cache_folder`).
        extractor: keras.Model raw images (B, H, W, 3) 0..255 -> pooled features (B, D).
        directory: the packed folder; records are read in the reader's deterministic evaluation order.
        views: number of augmented views (each an independent random augmentation of every image).
        augment: image -> image function for the augmented views (required when views > 0).
        runtime: "auto" | "tensorflow" | "litert" (catdog.runtime.accelerate), used only when a file is computed.
        label: names the backbone in the runtime's file names and messages.
    """
    import tensorflow as tf

    from catdog import runtime as runtimes
    from catdog.data import load, num_examples

    if views and augment is None:
        raise ValueError("augmented views need an augment function")
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta.json"
    if not meta.is_file():
        atomic.write_json(meta, {"version": CACHE_VERSION, **key_fields}, sort_keys=True)
    rows = num_examples(directory, split)
    dim = int(extractor.output.shape[-1])
    extract = None  # built on the first file to compute: nothing converts when every file is reused
    labels_path = folder / f"{split}-labels.npy"
    computed = []
    for index, view in enumerate(view_names(views, augment_id)):
        path = folder / f"{split}-{view}.npy"
        need_labels = index == 0 and not _valid(labels_path, rows)
        if _valid(path, rows) and not need_labels:
            continue
        if extract is None:
            extract = runtimes.accelerate(extractor, models_dir(folder), runtime=runtime, label=label)
        dataset = load(directory, split, image_size, batch_size=batch_size, resize=resize)
        if index > 0:
            dataset = (dataset.unbatch()
                       .map(lambda x, y: (augment(x), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                       .batch(batch_size)
                       .prefetch(tf.data.AUTOTUNE))
        extract_to_file(extract, dataset, rows, dim, path, labels_path if index == 0 else None,
                        f"{split} {view}", show_progress, extract.name)
        computed.append(path.name)
    features = [np.load(folder / f"{split}-{view}.npy", mmap_mode="r") for view in view_names(views, augment_id)]
    labels = np.load(labels_path, mmap_mode="r")
    return CachedSplit(features=features, labels=labels, computed=computed)
