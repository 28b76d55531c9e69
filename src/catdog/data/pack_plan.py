"""Pack's planning pass: from the small per-image metadata of the check pass to the list of shards to write.

Dedupe (dedupe.py), split as a split folder gives it or by content hash (split.py), order by a salted hash of the id, and cut each
split into contiguous shards of ~shard_size bytes. Pure bookkeeping: no I/O, no pixels, so it is cheap
and the same inputs always give the same plan (which is what lets a killed pack resume shard by shard).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass

from catdog.data import manifest as manifest_lib
from catdog.data.dedupe import Candidate, analyse
from catdog.data.scan import Item, display_path
from catdog.data.split import assign_split, record_order
from catdog.errors import DataError
from catdog.inputs import natural_key

RECORD_OVERHEAD = 256  # bytes of features + framing per record, for shard planning only


@dataclass(frozen=True, slots=True)
class Entry:
    """One usable image after the check pass: all the parent keeps per image (no pixels, no bytes)."""

    item: Item
    sha256: str
    phash: int
    height: int
    width: int
    converted_from: str
    stored_bytes: int
    orientation: int = 1  # EXIF orientation of the stored bytes (record feature image/orientation)


@dataclass
class Plan:
    classes: list[str]
    splits: dict[str, list[list[Entry]]]  # split -> shards -> entries

    def shard_files(self) -> dict[str, tuple[str, list[Entry]]]:
        """{shard file name: (split, entries)} in manifest order."""
        return {shard_file(split, i, len(shards)): (split, members)
                for split, shards in self.splits.items() for i, members in enumerate(shards)}


def shard_file(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def plan_shards(entries: list[Entry], shard_size: int) -> list[list[Entry]]:
    """Contiguous runs of ~shard_size bytes (estimated from the stored sizes); at least one shard."""
    sizes = [e.stored_bytes + RECORD_OVERHEAD + len(e.item.image_id) + len(e.item.member) for e in entries]
    total = sum(sizes)
    count = max(1, math.ceil(total / shard_size))
    count = min(count, len(entries))
    shards: list[list[Entry]] = [[] for _ in range(count)]
    offset = 0
    for entry, size in zip(entries, sizes):
        shards[min(count - 1, int(offset * count / total))].append(entry)
        offset += size
    return [s for s in shards if s] or [entries]


def plan(entries, rejects, val_fraction, seed, shard_size, found, classes, allow_empty=False) -> tuple[Plan, dict]:
    """Dedupe, split, order, shard. Returns the plan and the rows of duplicates.csv / leakage.csv."""
    # labeled before unlabeled, given train before val before test, then by source and id (cat.9 before
    # cat.10): decides which copy of a labeled duplicate is kept (a val copy of a train photo is the one dropped)
    entries.sort(key=lambda e: (not e.item.label, SPLIT_RANK[e.item.split], e.item.source, natural_key(e.item.image_id)))
    report = analyse([Candidate(e.sha256, e.phash, e.item.label) for e in entries])
    kept = [e for e, k in zip(entries, report.keep) if k]
    by_split: dict[str, list[Entry]] = {s: [] for s in manifest_lib.SPLITS}
    for e in kept:
        by_split[split_of(e, seed, val_fraction)].append(e)
    labeled_test = [e for e in by_split["test"] if e.item.label]
    if labeled_test and len(labeled_test) < len(by_split["test"]):
        unlabeled = next(e for e in by_split["test"] if not e.item.label)
        raise DataError(f"{display_path(found[labeled_test[0].item.source], labeled_test[0].item)} is a labeled test "
                        f"image but {display_path(found[unlabeled.item.source], unlabeled.item)} is an unlabeled one: "
                        "one pack's test split is either labeled or unlabeled; pack them into separate folders")
    if not kept and not allow_empty:
        raise DataError(f"{', '.join(s.path for s in found)}: no usable images "
                        f"({len(rejects)} rejected: {reasons_text(Counter(r for _, r in rejects))})")
    splits = {}
    for split, members in by_split.items():
        members.sort(key=lambda e: record_order(e.item.image_id, seed))
        splits[split] = plan_shards(members, shard_size) if members else []

    def ident(i):  # the source path: what a user acts on (a dropped duplicate has no id in the pack)
        return display_path(found[entries[i].item.source], entries[i].item)

    rows = {
        "duplicates": [("exact", ident(a), ident(b), 0) for a, b in report.exact]
        + [("label-conflict", ident(a), ident(b), 0) for a, b in report.conflicts]
        + [("near", ident(a), ident(b), d) for a, b, d in report.near]
        + [("exact-unlabeled-kept", ident(a), ident(b), 0) for a, b in report.copies],
        "leakage": [(kind, ident(a), split_of(entries[a], seed, val_fraction), ident(b), d)
                    for kind, a, b, d in report.leakage],
        "counts": {"exact": len(report.exact), "near": len(report.near), "label_conflicts": len(report.conflicts),
                   "unlabeled_copies": len(report.copies)},
        "notices": _near_across_splits(entries, report.near, seed, val_fraction),
    }
    return Plan(classes, splits), rows


SPLIT_RANK = {"": 0, "train": 0, "val": 1, "test": 2}


def split_of(entry: Entry, seed: int, val_fraction: float) -> str:
    """A split folder's split as given; otherwise test for unlabeled images, else by content hash."""
    if entry.item.split:
        return entry.item.split
    return assign_split(entry.sha256, seed=seed, val_fraction=val_fraction, labeled=bool(entry.item.label))


def reasons_text(counts: Counter) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) or "none"


def shard_digest(fingerprint: str, file: str, entries: list[Entry]) -> str:
    """What a shard holds, for its done-marker: a resumed pack reuses a shard only if this matches."""
    blob = "\n".join(f"{e.item.image_id}\t{e.sha256}\t{e.item.label}" for e in entries)
    return hashlib.sha256(f"{fingerprint}\n{file}\n{blob}".encode()).hexdigest()


def part_of(key: str, count: int) -> int:
    """Which machine packs an image: a stable hash of its id (every machine scans the same names)."""
    return int(hashlib.sha256(f"part:{key}".encode()).hexdigest()[:12], 16) % count


def record_rows(plan_: Plan, found) -> list[tuple]:
    """records.csv of a part: one row per stored image (RECORD_COLUMNS), so merge can dedupe across parts."""
    rows = []
    for file, (split, members) in plan_.shard_files().items():
        rows.extend((e.item.image_id, split, file, e.sha256, f"{e.phash:016x}", e.item.label, e.item.source,
                     display_path(found[e.item.source], e.item), e.converted_from) for e in members)
    return rows


def _near_across_splits(entries, near, seed, val_fraction) -> list[str]:
    """A warning when near-duplicates (a resized or re-encoded copy of one photo) sit on both sides of train/val.
    The split stays by content hash, so that adding files never moves an image; the pairs are in duplicates.csv."""
    across = sum(1 for a, b, _ in near if entries[a].item.label and entries[b].item.label
                 and {split_of(entries[a], seed, val_fraction), split_of(entries[b], seed, val_fraction)} == {"train", "val"})
    if not across:
        return []
    return [f"{across} near-duplicate pair(s) have one photo in train and the other in val (listed in duplicates.csv "
            "as near): the val scores count those photos as unseen; remove one of each pair for an honest val score"]
