"""dedupe.py: exact duplicates kept once, label conflicts, near duplicates via LSH == brute force, leakage."""

from __future__ import annotations

import random

from catdog.data.dedupe import Candidate, analyse, hamming, near_duplicates


def test_exact_duplicates_kept_once_and_label_conflicts_reported():
    cands = [Candidate("a", 1, "cat"), Candidate("a", 1, "cat"), Candidate("a", 1, "dog"), Candidate("b", 2**64 - 1, "dog")]
    report = analyse(cands)
    assert report.keep == [True, False, False, True]
    assert report.exact == [(0, 1)] and report.conflicts == [(0, 2)]
    assert report.near == [] and report.leakage == []


def test_leakage_exact_and_near_between_labeled_and_test():
    far = int("f0" * 8, 16)
    cands = [Candidate("a", 0b1111, "cat"), Candidate("a", 0b1111, ""),  # same bytes in train and test
             Candidate("c", far, "dog"), Candidate("d", far ^ 0b11, ""),  # 2 bits apart
             Candidate("e", far ^ (2**64 - 1), "")]  # unrelated
    report = analyse(cands)
    assert report.keep == [True] * 5  # the test copy is not dropped: it is reported
    assert sorted(report.leakage) == [("exact", 0, 1, 0), ("near", 2, 3, 2)]
    assert report.near == [(2, 3, 2)]


def test_lsh_finds_every_close_pair_brute_force_finds():
    rng = random.Random(0)
    base = [rng.getrandbits(64) for _ in range(400)]
    hashes = list(base)
    for h in base[:100]:  # 100 planted near copies, 0-4 bits flipped
        flips = rng.sample(range(64), rng.randint(0, 4))
        hashes.append(h ^ sum(1 << b for b in flips))
    pairs = near_duplicates(hashes, max_distance=4)
    found = {m for _, m, _ in pairs}
    brute = {j for j in range(len(hashes)) for i in range(j) if hamming(hashes[i], hashes[j]) <= 4}
    assert found == brute and len(found) >= 100
    assert all(hamming(hashes[r], hashes[m]) == d <= 4 for r, m, d in pairs)
