"""split.py: content-hash split is stable, seed-dependent, near the requested fraction, and validated."""

from __future__ import annotations

import hashlib

import pytest

from catdog.data.split import assign_split, check_val_fraction, record_order
from catdog.errors import ConfigError

SHAS = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]


def test_same_content_same_split_and_fraction_near_target():
    first = [assign_split(s, seed=0, val_fraction=0.2) for s in SHAS]
    assert first == [assign_split(s, seed=0, val_fraction=0.2) for s in SHAS]
    assert 0.18 < first.count("val") / len(first) < 0.22
    other_seed = [assign_split(s, seed=1, val_fraction=0.2) for s in SHAS]
    assert other_seed != first


def test_growing_val_fraction_only_moves_images_into_val():
    small = [assign_split(s, val_fraction=0.1) for s in SHAS]
    large = [assign_split(s, val_fraction=0.3) for s in SHAS]
    assert all(b == "val" for a, b in zip(small, large) if a == "val")


def test_unlabeled_is_test_and_bad_fraction_is_refused():
    assert assign_split(SHAS[0], labeled=False) == "test"
    assert all(assign_split(s, val_fraction=0.0) == "train" for s in SHAS[:100])
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ConfigError, match="--val-fraction must be in"):
            check_val_fraction(bad)


def test_record_order_is_deterministic_and_mixes_classes():
    ids = [f"cat.{i}" for i in range(50)] + [f"dog.{i}" for i in range(50)]
    ordered = sorted(ids, key=record_order)
    assert ordered == sorted(reversed(ids), key=record_order)
    assert {i.split(".")[0] for i in ordered[:10]} == {"cat", "dog"}
