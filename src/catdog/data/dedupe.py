"""Exact duplicates (same sha256), near-duplicates (perceptual hash) and train/test leakage.

Labeled exact duplicates are kept once: the first in the given order wins. Unlabeled (test) files are
never dropped, even when byte-identical: each is an id that needs its row in a submission (Kaggle's
test1 holds 63 such copies); the copies are only reported. Near-duplicates (a resized or
re-encoded copy of the same photo) are only listed, because deciding that two photos are "the same" is
the user's call. Near-duplicate search uses locality-sensitive band bucketing instead of comparing all
pairs: the 64-bit pHash is cut into `max_distance + 1` bands, and two hashes within `max_distance` bits
must agree exactly on at least one band (pigeonhole), so looking only inside shared band buckets misses
nothing. Each image is compared with cluster representatives only, so even a pile of identical-looking
images (blank frames) stays linear. 50,000 images take about a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_NEAR_DISTANCE = 4  # pHash bits; resized/re-encoded copies are 0-4 apart, unrelated photos ~32


@dataclass(frozen=True, slots=True)
class Candidate:
    """What dedupe needs to know about one image (index = its position in the list)."""

    sha256: str
    phash: int
    label: str  # "" = unlabeled (test)


@dataclass
class Report:
    keep: list[bool]
    exact: list[tuple[int, int]] = field(default_factory=list)  # (kept, dropped), same label
    conflicts: list[tuple[int, int]] = field(default_factory=list)  # (kept, dropped), same bytes, other label
    copies: list[tuple[int, int]] = field(default_factory=list)  # (first, copy): unlabeled, same bytes, both kept
    near: list[tuple[int, int, int]] = field(default_factory=list)  # (representative, member, distance)
    leakage: list[tuple[str, int, int, int]] = field(default_factory=list)  # (exact|near, labeled, test, distance)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def _bands(max_distance: int, bits: int = 64) -> list[tuple[int, int]]:
    """(shift, mask) of max_distance + 1 bands covering all bits."""
    n = max_distance + 1
    edges = [round(i * bits / n) for i in range(n + 1)]
    return [(lo, (1 << (hi - lo)) - 1) for lo, hi in zip(edges, edges[1:])]


def near_duplicates(hashes: Sequence[int], max_distance: int = DEFAULT_NEAR_DISTANCE,
                    indices: Sequence[int] | None = None) -> list[tuple[int, int, int]]:
    """Greedy clustering: each image joins the closest earlier representative within max_distance,
    else becomes a representative. Returns (representative, member, distance)."""
    bands = _bands(max_distance)
    buckets: list[dict[int, list[int]]] = [{} for _ in bands]
    pairs = []
    for i in range(len(hashes)) if indices is None else indices:
        h = hashes[i]
        keys = [(h >> shift) & mask for shift, mask in bands]
        best = None
        for bucket, key in zip(buckets, keys):
            for rep in bucket.get(key, ()):
                d = hamming(h, hashes[rep])
                if d <= max_distance and (best is None or (d, rep) < (best[1], best[0])):
                    best = (rep, d)
        if best is not None:
            pairs.append((best[0], i, best[1]))
        else:
            for bucket, key in zip(buckets, keys):
                bucket.setdefault(key, []).append(i)
    return pairs


def analyse(candidates: Sequence[Candidate], max_distance: int = DEFAULT_NEAR_DISTANCE) -> Report:
    """Decide what to keep and what to report. Labeled and unlabeled images are deduplicated separately:
    the same photo in both is not dropped but reported as leakage (it would inflate test scores)."""
    report = Report(keep=[True] * len(candidates))
    first: dict[tuple[str, bool], int] = {}
    for i, c in enumerate(candidates):
        key = (c.sha256, bool(c.label))
        if key in first and not c.label:
            report.copies.append((first[key], i))  # an unlabeled copy keeps its record: its id needs a row
        elif key in first:
            kept = first[key]
            report.keep[i] = False
            (report.conflicts if candidates[kept].label != c.label else report.exact).append((kept, i))
        else:
            first[key] = i
    for i, c in enumerate(candidates):
        if report.keep[i] and not c.label and (c.sha256, True) in first:
            report.leakage.append(("exact", first[(c.sha256, True)], i, 0))
    copies = {i for _, i in report.copies}  # reported already: leave them out of the near-duplicate search
    copies_of: dict[int, list[int]] = {}
    for kept_copy, copy in report.copies:
        copies_of.setdefault(kept_copy, []).append(copy)
    kept = [i for i, k in enumerate(report.keep) if k and i not in copies]
    hashes = [c.phash for c in candidates]
    exact_leaks = {t for _, _, t, _ in report.leakage}
    for rep, member, d in near_duplicates(hashes, max_distance, kept):
        if candidates[rep].sha256 == candidates[member].sha256:
            continue  # exact leakage, already reported
        report.near.append((rep, member, d))
        if bool(candidates[rep].label) != bool(candidates[member].label):
            labeled, test = (rep, member) if candidates[rep].label else (member, rep)
            if test not in exact_leaks:  # and its byte copies in the test split, which the search left out
                report.leakage += [("near", labeled, t, d) for t in [test, *copies_of.get(test, [])]]
    return report
