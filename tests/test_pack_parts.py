"""Packing on several machines (issue 6): N parts + merge == one pack, including a duplicate split across parts."""

from __future__ import annotations

import shutil

import pytest
import tensorflow as tf
from typer.testing import CliRunner

import catdog.cli
from catdog.data.merge import merge
from catdog.data.pack import inspect, pack
from catdog.data.pack_plan import part_of
from catdog.errors import DataError
from fixtures.images import flat_tree
from fixtures.packed import read_plain

catdog.cli._register_commands()


def _records(out):
    return sorted((split, r["id"], r["label"], r["sha256"], r["converted_from"])
                  for split in ("train", "val", "test") for r in read_plain(out, split))


def _tree(tmp_path):
    src = flat_tree(tmp_path / "train", n=12)
    # an exact duplicate whose two copies land in different parts: merge must keep it once
    copy = next(f"cat.{i}" for i in range(200, 400) if part_of(f"cat.{i}", 2) != part_of("cat.1", 2))
    shutil.copy(src / "cat.1.jpg", src / f"{copy}.jpg")
    (src / "dog.99.jpg").write_bytes(b"")  # a reject, reported by exactly one part
    return src


def test_two_parts_and_merge_equal_one_pack(tmp_path):
    src = _tree(tmp_path)
    one = pack([src], tmp_path / "one", workers=1, progress=False, shard_size=6000)
    out = tmp_path / "parts"
    parts = [pack([src], out, workers=1, progress=False, shard_size=6000, num_workers=2, worker_index=i)
             for i in (0, 1)]
    assert all(p["part"]["count"] == 2 for p in parts) and (out / "part-00001-of-00002" / "manifest.json").exists()
    merged = merge(out)
    assert _records(out) == _records(tmp_path / "one")
    for key in ("classes", "rejected", "converted", "leakage", "fingerprint"):
        assert merged[key] == one[key], key
    assert merged["duplicates"]["exact"] == one["duplicates"]["exact"] == 1
    for split in ("train", "val", "test"):
        assert merged["splits"][split]["num_examples"] == one["splits"][split]["num_examples"]
        assert merged["splits"][split]["class_counts"] == one["splits"][split]["class_counts"]
    assert inspect(out)[1] == [] and not list(out.glob("part-*"))
    assert (out / "rejected.csv").read_text() == (tmp_path / "one" / "rejected.csv").read_text()  # id, split too
    assert merge(out) == merged  # re-running a finished merge is a no-op


def test_merge_refuses_a_missing_part_and_the_cli_wires_it(tmp_path):
    src = _tree(tmp_path)
    out = tmp_path / "parts"
    runner = CliRunner()
    args = ["pack", str(src), "--out", str(out), "--workers", "1", "--num-workers", "2"]
    result = runner.invoke(catdog.cli.app, args + ["--worker-index", "0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(catdog.cli.app, ["pack", "--merge", "--out", str(out)])
    assert result.exit_code == 1 and "part-00001-of-00002: part 1 of 2 is missing" in result.output
    with pytest.raises(DataError, match="part 1 of 2 is missing"):
        merge(out)
    assert runner.invoke(catdog.cli.app, args + ["--worker-index", "1"]).exit_code == 0
    result = runner.invoke(catdog.cli.app, ["pack", "--merge", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sum(1 for _ in tf.data.TFRecordDataset([str(p) for p in out.glob("*.tfrecord")])) == 24


def test_split_folders_with_copies_two_parts_and_merge_equal_one_pack(tmp_path):
    """Issue 9's rules survive a merge: a val copy of a train photo is dropped (the train one kept) even when
    the copies land in different parts, and byte-identical unlabeled test files all keep their record."""
    from fixtures.images import make_image

    src = tmp_path / "data"
    seed = 0
    for split, n in (("train", 5), ("val", 2)):
        for cls, colour in (("cat", (200, 60, 40)), ("dog", (40, 60, 200))):
            for i in range(n):
                seed += 1
                make_image(src / split / cls / f"{split}{i}.jpg", colour, seed=seed)
    copy = next(f"v{i}" for i in range(100, 300) if part_of(f"cat/v{i}", 2) != part_of("cat/train0", 2))
    shutil.copy(src / "train" / "cat" / "train0.jpg", src / "val" / "cat" / f"{copy}.jpg")
    for i in range(1, 4):
        make_image(src / "test" / f"{i}.jpg", (90, 90, 90), seed=500 + i)
    for i in range(4, 8):  # byte copies of test/1.jpg, spread over both parts
        shutil.copy(src / "test" / "1.jpg", src / "test" / f"{i}.jpg")
    one = pack([src], tmp_path / "one", workers=1, progress=False)
    out = tmp_path / "parts"
    for i in (0, 1):
        pack([src], out, workers=1, progress=False, num_workers=2, worker_index=i)
    merged = merge(out)
    assert _records(out) == _records(tmp_path / "one")
    assert one["duplicates"]["exact"] == merged["duplicates"]["exact"] == 1
    assert one["duplicates"]["unlabeled_copies"] == merged["duplicates"]["unlabeled_copies"] == 4
    assert one["splits"]["test"]["num_examples"] == merged["splits"]["test"]["num_examples"] == 7
    assert {s: one["splits"][s]["num_examples"] for s in ("train", "val")} == {"train": 10, "val": 4}
    ids = {r[1] for r in _records(out)}
    assert "cat/train0" in ids and f"cat/{copy}" not in ids  # the val copy is the one dropped
