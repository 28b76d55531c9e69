"""train/val assignment from a salted hash of each image's CONTENT: same photo, same split, every run.

An image goes to `val` when `unit_hash(sha256, seed) < val_fraction`. The decision depends on nothing
but the photo's bytes and the seed, so re-running a pack, or adding files later, never moves an image
that was already packed (a split drawn by shuffling the file list would move many). Because the hash
is independent of the label, the split is stratified per class in expectation: each class sends
`val_fraction` of its images to `val`, give or take sampling noise (about +-1.3 points for 1,000
images of a class at 0.2). Exact per-class counts would require looking at the other files, which is
precisely what makes a split unstable when files are added.
"""

from __future__ import annotations

import hashlib

from catdog.errors import ConfigError


def unit_hash(key: str, seed: int) -> float:
    """A stable number in [0, 1) from a key and a seed (first 8 bytes of sha256)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def check_val_fraction(val_fraction: float) -> float:
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    return float(val_fraction)


def assign_split(sha256: str, *, seed: int = 0, val_fraction: float = 0.2, labeled: bool = True) -> str:
    """'test' for unlabeled images, else 'val' or 'train' from the content hash."""
    if not labeled:
        return "test"
    return "val" if unit_hash(sha256, seed) < val_fraction else "train"


def record_order(image_id: str, seed: int = 0) -> str:
    """Sort key for records inside a split: deterministic but class-mixed (ids sorted by name would put
    all cats before all dogs, and a streaming shuffle buffer could not undo that)."""
    return hashlib.sha256(f"order:{seed}:{image_id}".encode()).hexdigest()
