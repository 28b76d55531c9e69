"""Build a tiny packed folder directly from records.make_example, independent of `catdog pack`,
so reader/model tests do not depend on the packer's behaviour."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from catdog.data import manifest as manifest_lib
from catdog.data.records import UNLABELED, make_example

COLORS = [(200, 60, 40), (40, 60, 200), (60, 200, 60)]


def jpeg_bytes(color, size=(40, 32), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.clip(np.array(color, np.float32) + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def build_pack(out: Path, counts: dict[str, int], classes=("cat", "dog"), shards_per_split: int = 2,
               size=(40, 32)) -> dict:
    """counts: split -> number of images; labeled splits alternate classes; 'test' is unlabeled."""
    out.mkdir(parents=True, exist_ok=True)
    splits = {}
    seed = 0
    for split in manifest_lib.SPLITS:
        n = counts.get(split, 0)
        items = []
        for i in range(n):
            seed += 1
            label = UNLABELED if split == "test" else i % len(classes)
            text = "" if label == UNLABELED else classes[label]
            data = jpeg_bytes(COLORS[max(label, 0) % len(COLORS)], size, seed)
            image_id = str(i + 1) if split == "test" else f"{text}.{i + 1}"
            items.append((image_id, label, text, data))
        shards = []
        count = min(shards_per_split, n) if n else 0
        for s in range(count):
            name = f"{split}-{s:05d}-of-{count:05d}.tfrecord"
            part = items[s::count]
            with tf.io.TFRecordWriter(str(out / name)) as w:
                for image_id, label, text, data in part:
                    w.write(make_example(encoded=data, height=size[1], width=size[0], label=label, label_text=text,
                                         image_id=image_id, source=f"{image_id}.jpg",
                                         sha256=hashlib.sha256(data).hexdigest()))
            shards.append({"file": name, "num_examples": len(part), "num_bytes": (out / name).stat().st_size,
                           "sha256": manifest_lib.file_sha256(str(out / name))})
        class_counts = {} if split == "test" else {c: sum(1 for it in items if it[2] == c) for c in classes}
        splits[split] = {"num_examples": n, "num_bytes": sum(s["num_bytes"] for s in shards),
                         "class_counts": class_counts, "shards": shards}
    manifest = {"format": manifest_lib.FORMAT, "classes": list(classes), "splits": splits, "fingerprint": "fixture"}
    manifest_lib.write_manifest(str(out), manifest)
    return manifest
