"""Assemble manifest.json's content: the one implementation used by both `pack` and `merge`.

Both know the same things in different shapes (pack: planned entries; merge: the parts' records.csv
rows), so they pass plain counts and lists here and get the same keys, in the same order, back.
"""

from __future__ import annotations

import datetime
from collections import Counter

from catdog.data import manifest as manifest_lib

MAX_WARNINGS = 100  # warning lines kept in the manifest (the rest are counted)


def versions() -> dict:
    """The format and library versions a new pack records (a merge keeps its parts' ones)."""
    from catdog._tf import tf
    from catdog._version import __version__

    return {"format": manifest_lib.FORMAT, "catdog_version": __version__, "tensorflow_version": tf.__version__}


def split_entry(split: str, shards: list[dict], counts: Counter, classes: list[str]) -> dict:
    """One split's entry; `counts` = images per class label. An unlabeled test split has no class counts;
    a labeled one (split folders' SRC/test/<class>/) has them, which is what lets evaluate score it."""
    labeled = any(label and n for label, n in counts.items())
    return {
        "num_examples": sum(s["num_examples"] for s in shards),
        "num_bytes": sum(s["num_bytes"] for s in shards),
        "class_counts": {} if split == "test" and not labeled else {c: counts.get(c, 0) for c in classes},
        "shards": shards,
    }


def assemble(*, versions: dict, fingerprint: str, config: dict, sources: list[dict], classes: list[str],
             splits: dict, rejects: list[tuple[str, str]], converted: Counter, duplicates: dict, leakage: int,
             stats: dict, turned: int = 0, warnings: list[str] = ()) -> dict:
    """The manifest dict (see README "manifest.json"); `duplicates` = {"exact", "near", "label_conflicts",
    "unlabeled_copies"} counts; `turned` = images with an EXIF orientation other than 1; `warnings` = lines
    for the user (damaged EXIF tags, ignored sub-folders, given splits), at most MAX_WARNINGS kept."""
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
        "orientation": {"turned": turned},
        "warnings": list(warnings[:MAX_WARNINGS]) + ([f"... and {len(warnings) - MAX_WARNINGS} more warnings"]
                                                     if len(warnings) > MAX_WARNINGS else []),
        "leakage": {"count": leakage, "file": "leakage.csv"},
        "stats": stats,
    }
