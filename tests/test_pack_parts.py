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
