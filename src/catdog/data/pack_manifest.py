"""Assemble manifest.json's content: the one implementation used by both `pack` and `merge`.

Both know the same things in different shapes (pack: planned entries; merge: the parts' records.csv
rows), so they pass plain counts and lists here and get the same keys, in the same order, back.
"""

from __future__ import annotations

import datetime
from collections import Counter

from catdog.data import manifest as manifest_lib


def versions() -> dict:
    """The format and library versions a new pack records (a merge keeps its parts' ones)."""
    import tensorflow as tf

    from catdog._version import __version__

    return {"format": manifest_lib.FORMAT, "catdog_version": __version__, "tensorflow_version": tf.__version__}


def split_entry(split: str, shards: list[dict], counts: Counter, classes: list[str]) -> dict:
    """One split's entry; `counts` = images per class label (the test split is unlabeled: no class counts)."""
    return {
        "num_examples": sum(s["num_examples"] for s in shards),
        "num_bytes": sum(s["num_bytes"] for s in shards),
        "class_counts": {} if split == "test" else {c: counts.get(c, 0) for c in classes},
        "shards": shards,
    }


def assemble(*, versions: dict, fingerprint: str, config: dict, sources: list[dict], classes: list[str],
             splits: dict, rejects: list[tuple[str, str]], converted: Counter, duplicates: dict, leakage: int,
             stats: dict) -> dict:
    """The manifest dict (see README "manifest.json"); `duplicates` = {"exact", "near", "label_conflicts"} counts."""
    return {
        **versions,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
        "config": config,
        "sources": sources,
        "classes": classes,
        "splits": splits,
        "rejected": {"count": len(rejects), "by_reason": dict(sorted(Counter(r for _, r in rejects).items())),
                     "file": "rejected.csv"},
        "converted": {"count": sum(converted.values()), "by_format": dict(sorted(converted.items()))},
        "duplicates": {**duplicates, "file": "duplicates.csv"},
        "leakage": {"count": leakage, "file": "leakage.csv"},
        "stats": stats,
    }
