"""pack + inspect end to end: layouts, bad files, conversions, duplicates, leakage, split stability,
plain-tf.data interop, idempotent and resumed packs, bad-input errors and checksum verification."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

import catdog
import catdog.cli
import catdog.data.pack_workers as workers_lib
from catdog import atomic
from catdog.data.pack_state import PARTIAL_DIR
from catdog.data.pack import inspect, pack
from catdog.sizes import parse_size
from catdog.errors import ConfigError, DataError
from fixtures.images import CONVERSIONS, flat_tree, make_image, near_copy, photo, png_header_only
from fixtures.packed import read_plain

catdog.cli._register_commands()
RUNNER = CliRunner()

def quick(sources, out, **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    return pack(sources if isinstance(sources, list) else [sources], out, **kw)


def shard_shas(manifest: dict) -> dict[str, str]:
    return {s["file"]: s["sha256"] for info in manifest["splits"].values() for s in info["shards"]}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _zip_dir(src: Path, archive: Path, top: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, top + p.relative_to(src).as_posix())
    return archive


def test_every_layout_dir_and_zip_in_one_pack(tmp_path):
    flat = flat_tree(tmp_path / "flat", n=3)
    classes = tmp_path / "classes"
    for i in range(3):
        make_image(classes / "bird" / f"b{i}.jpg", (60, 200, 60), size=(32, 32), seed=300 + i)
    numbered = tmp_path / "test1"
    for i in range(1, 4):
        make_image(numbered / f"{i}.jpg", (128, 128, 128), size=(32, 32), seed=400 + i)
    zflat = _zip_dir(flat_tree(tmp_path / "zf", n=2, start=10, seed=500), tmp_path / "train.zip", top="train/")
    zcls = tmp_path / "zc"
    make_image(zcls / "cat" / "z1.png", (200, 60, 40), size=(32, 32), seed=600, fmt="PNG")
    make_image(zcls / "dog" / "z2.jpg", (40, 60, 200), size=(32, 32), seed=601)
    zclasses = _zip_dir(zcls, tmp_path / "classes.zip")
    znum = tmp_path / "zn"
    make_image(znum / "77.jpg", (10, 10, 10), size=(32, 32), seed=700)
    znumbered = _zip_dir(znum, tmp_path / "test1.zip", top="test1/")

    out = tmp_path / "out"
    m = quick([flat, classes, numbered, zflat, zclasses, znumbered], out)
    assert m["classes"] == ["bird", "cat", "dog"]
    assert [(Path(s["path"]).name, s["layout"], s["num_files"]) for s in m["sources"]] == [
        ("flat", "flat", 6), ("classes", "classes", 3), ("test1", "numbered", 3), ("train.zip", "flat", 4),
        ("classes.zip", "classes", 2), ("test1.zip", "numbered", 1)]
    labeled = read_plain(out, "train") + read_plain(out, "val")
    test = read_plain(out, "test")
    assert sorted(r["id"] for r in test) == ["1", "2", "3", "77"]
    assert all(r["label"] == -1 and r["text"] == "" for r in test)
    by_id = {r["id"]: r for r in labeled}
    assert sorted(by_id) == sorted(["bird/b0", "bird/b1", "bird/b2", "cat/z1", "dog/z2"]
                                   + [f"{c}.{i}" for c in ("cat", "dog") for i in (1, 2, 3, 10, 11)])
    assert all(m["classes"][r["label"]] == r["text"] == r["id"].replace("/", ".").split(".")[0] for r in labeled)
    assert by_id["cat/z1"]["converted_from"] == "png" and m["converted"] == {"count": 1, "by_format": {"png": 1}}
    for split in ("train", "val", "test"):
        info = m["splits"][split]
        assert info["num_examples"] == len(read_plain(out, split)) == sum(s["num_examples"] for s in info["shards"])
    assert sum(m["splits"][s]["class_counts"]["cat"] for s in ("train", "val")) == 6
    assert json.loads((out / "manifest.json").read_text()) == m
    assert not (out / PARTIAL_DIR).exists()


def test_bad_files_are_rejected_with_reasons_and_never_abort(tmp_path):
    src = flat_tree(tmp_path / "train", n=3)
    (src / "cat.90.jpg").write_bytes(b"")
    good = (src / "cat.1.jpg").read_bytes()
    (src / "cat.91.jpg").write_bytes(good[: len(good) // 2])
    (src / "dog.92.jpg").write_text("this is a text file renamed to .jpg\n")
    (src / "dog.93.png").write_bytes(png_header_only(100_000, 100_000))
    make_image(src / "dog.94.jpg", (40, 60, 200), size=(80, 80), seed=9)  # real, but above --max-pixels below
    (src / "notes.txt").write_text("stray file")
    out = tmp_path / "out"
    m = quick(src, out, max_pixels=2000)
    assert m["rejected"] == {"count": 6, "file": "rejected.csv", "by_reason": {
        "empty-file": 1, "not-an-image": 1, "too-many-pixels": 2, "truncated": 1, "not-an-image-name": 1}}
    rows = {Path(r["path"]).name: (r["reason"], r["id"], r["split"]) for r in read_csv(out / "rejected.csv")}
    assert rows == {"cat.90.jpg": ("empty-file", "cat.90", ""), "cat.91.jpg": ("truncated", "cat.91", ""),
                    "dog.92.jpg": ("not-an-image", "dog.92", ""), "dog.93.png": ("too-many-pixels", "dog.93", ""),
                    "dog.94.jpg": ("too-many-pixels", "dog.94", ""), "notes.txt": ("not-an-image-name", "", "")}
    assert m["splits"]["train"]["num_examples"] + m["splits"]["val"]["num_examples"] == 6


def test_conversions_are_recorded_and_decode_as_rgb_jpeg(tmp_path):
    src = tmp_path / "src"
    for i, (kind, make) in enumerate(sorted(CONVERSIONS.items())):
        path = src / ("cat" if i % 2 else "dog") / f"{kind}.img"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
    out = tmp_path / "out"
    m = quick(src, out, val_fraction=0.0)
    assert m["converted"] == {"count": 8, "by_format": {"bmp": 1, "gif": 1, "jpeg-cmyk": 1, "jpeg-l": 1,
                                                         "png": 3, "webp": 1}}
    rows = read_plain(out, "train")
    assert len(rows) == 8 and all(r["shape"] == (40, 48, 3) for r in rows)
    assert {r["id"].split("/")[1]: r["converted_from"] for r in rows}["jpeg-cmyk"] == "jpeg-cmyk"
    for r in rows:  # sha256 is of the ORIGINAL file
        assert r["sha256"] == hashlib.sha256((src / f"{r['id']}.img").read_bytes()).hexdigest()


def test_duplicates_conflicts_near_duplicates_and_leakage(tmp_path):
    train, test = tmp_path / "train", tmp_path / "test1"
    for i in range(1, 7):
        photo(train / f"cat.{i}.jpg", seed=i)
        photo(train / f"dog.{i}.jpg", seed=100 + i)
    shutil.copy(train / "cat.1.jpg", train / "cat.50.jpg")  # exact duplicate
    shutil.copy(train / "cat.2.jpg", train / "dog.50.jpg")  # same bytes, other label
    near_copy(train / "dog.3.jpg", train / "dog.51.jpg")
    photo(test / "1.jpg", seed=900)
    shutil.copy(train / "cat.4.jpg", test / "2.jpg")  # the same photo in train/val and test
    near_copy(train / "dog.5.jpg", test / "3.jpg")
    shutil.copy(test / "3.jpg", test / "30.jpg")  # a byte copy of a leaked test photo leaks as well
    photo(test / "9.jpg", seed=901)
    shutil.copy(test / "9.jpg", test / "10.jpg")  # kept: both; named first: 9 (ids in natural order, not text)
    out = tmp_path / "out"
    m = quick([train, test], out)
    assert m["duplicates"] == {"exact": 1, "near": 2, "label_conflicts": 1, "unlabeled_copies": 2, "file": "duplicates.csv"}
    dups = {(r["kind"], Path(r["kept"]).name, Path(r["duplicate"]).name) for r in read_csv(out / "duplicates.csv")}
    assert dups == {("exact", "cat.1.jpg", "cat.50.jpg"), ("label-conflict", "cat.2.jpg", "dog.50.jpg"),
                    ("near", "dog.3.jpg", "dog.51.jpg"), ("near", "dog.5.jpg", "3.jpg"),
                    ("exact-unlabeled-kept", "3.jpg", "30.jpg"), ("exact-unlabeled-kept", "9.jpg", "10.jpg")}
    assert m["leakage"]["count"] == 3
    leaks = {(r["kind"], Path(r["labeled"]).name, Path(r["test"]).name) for r in read_csv(out / "leakage.csv")}
    assert leaks == {("exact", "cat.4.jpg", "2.jpg"), ("near", "dog.5.jpg", "3.jpg"), ("near", "dog.5.jpg", "30.jpg")}
    labeled_ids = {r["id"] for s in ("train", "val") for r in read_plain(out, s)}
    assert "cat.50" not in labeled_ids and "dog.50" not in labeled_ids and "dog.51" in labeled_ids
    assert m["splits"]["test"]["num_examples"] == 6  # leaked and copied test images are reported, not dropped


def test_near_duplicates_on_both_sides_of_train_and_val_are_a_warning(tmp_path):
    """A resized copy in val of a train photo makes val look better than unseen photos would."""
    train = tmp_path / "train"
    for i in range(1, 21):
        photo(train / f"cat.{i}.jpg", seed=i)
        near_copy(train / f"cat.{i}.jpg", train / f"cat.{100 + i}.jpg")
        photo(train / f"dog.{i}.jpg", seed=200 + i)
    m = quick(train, tmp_path / "out")
    split = {r["id"]: s for s in ("train", "val") for r in read_plain(tmp_path / "out", s)}
    across = sum(split[f"cat.{i}"] != split[f"cat.{100 + i}"] for i in range(1, 21))
    assert m["duplicates"]["near"] == 20 and across > 0  # 20 pairs at val 0.2: ~6 cross
    assert [w for w in m["warnings"] if "near-duplicate" in w] == [
        f"{across} near-duplicate pair(s) have one photo in train and the other in val (listed in duplicates.csv as "
        "near): the val scores count those photos as unseen; remove one of each pair for an honest val score"]


def test_split_is_stable_when_files_are_added(tmp_path):
    src = flat_tree(tmp_path / "train", n=15)
    quick(src, tmp_path / "a")
    flat_tree(src, n=10, start=100)
    m = quick(src, tmp_path / "b")
    before = {r["id"]: s for s in ("train", "val") for r in read_plain(tmp_path / "a", s)}
    after = {r["id"]: s for s in ("train", "val") for r in read_plain(tmp_path / "b", s)}
    assert len(before) == 30 and len(after) == 50
    assert {i: after[i] for i in before} == before
    assert m["splits"]["val"]["num_examples"] > 0 and m["splits"]["train"]["num_examples"] > 0


def test_rerun_is_idempotent_and_packs_are_reproducible(tmp_path):
    src = flat_tree(tmp_path / "train", n=8)
    first = quick(src, tmp_path / "a", shard_size=4000)
    assert sum(len(v["shards"]) for v in first["splits"].values()) > 2
    again = quick(src, tmp_path / "a", shard_size=4000)
    other = quick(src, tmp_path / "b", shard_size=4000)
    assert shard_shas(again) == shard_shas(first) == shard_shas(other)
    assert inspect(tmp_path / "b") == (other, [])


def test_interrupted_pack_is_finished_by_rerunning(tmp_path, monkeypatch):
    src = flat_tree(tmp_path / "train", n=8)
    reference = quick(src, tmp_path / "ref", shard_size=3000)
    total = sum(len(v["shards"]) for v in reference["splits"].values())
    assert total >= 4
    real_write, calls = workers_lib.write_shard, []

    def crash_on_third(spec):
        calls.append(spec["file"])
        if len(calls) == 3:
            leftover = Path(spec["out"]) / f"{atomic.TEMP_PREFIX}99999-{spec['file']}"
            with open(leftover, "wb") as f:  # a half-written temp file of a killed process
                f.write(b"partial")
            raise KeyboardInterrupt
        return real_write(spec)

    monkeypatch.setattr(workers_lib, "write_shard", crash_on_third)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        quick(src, out, shard_size=3000)
    assert not (out / "manifest.json").exists()  # no manifest claims anything
    assert len([p for p in out.glob("*.tfrecord") if not p.name.startswith(".")]) == 2  # only complete shards
    assert len(list(out.glob(".tmp-*"))) == 1  # the killed write's leftover, cleared by the next run
    calls.clear()
    monkeypatch.setattr(workers_lib, "write_shard", real_write)
    monkeypatch.setattr(workers_lib, "write_shard", lambda spec: calls.append(spec["file"]) or real_write(spec))
    resumed = quick(src, out, shard_size=3000)
    assert len(calls) == total - 2  # the two finished shards were skipped
    assert shard_shas(resumed) == shard_shas(reference)
    assert inspect(out)[1] == []
    assert not list(out.glob(".tmp-*")) and not (out / PARTIAL_DIR).exists()  # leftovers are cleared
    # a folder whose manifest was lost is no longer recognisably a pack: its files are left alone (issue 13)
    (out / "manifest.json").unlink()
    left = sorted(p.name for p in out.iterdir())
    with pytest.raises(DataError, match="but no manifest.json"):
        quick(src, out, shard_size=3000)
    assert sorted(p.name for p in out.iterdir()) == left


def test_output_holding_a_different_pack_is_refused_unless_overwrite(tmp_path):
    a = flat_tree(tmp_path / "a", n=3)
    b = flat_tree(tmp_path / "b", n=4, seed=50)
    out = tmp_path / "out"
    first = quick(a, out)
    with pytest.raises(DataError, match=f"^{out}: holds a different pack .*use --overwrite or another --out$"):
        quick(b, out)
    with pytest.raises(DataError, match="holds a different pack"):
        quick(a, out, seed=1)  # same files, other options: also a different pack
    assert inspect(out) == (first, [])  # untouched
    second = quick(b, out, overwrite=True)
    assert second["splits"]["train"]["num_examples"] + second["splits"]["val"]["num_examples"] == 8
    assert set(p.name for p in out.glob("*.tfrecord")) == set(shard_shas(second))


def test_options_are_validated():
    size = lambda text: parse_size(text, "--shard-size")  # noqa: E731
    assert size("128MB") == 128 * 2**20 and size("1GB") == 2**30 and size("5000") == 5000
    assert size("64mb") == size("64MiB") == 64 * 2**20
    with pytest.raises(ConfigError, match="--shard-size"):
        size("lots")
    with pytest.raises(ConfigError, match="--val-fraction"):
        pack(["x"], "y", val_fraction=1.0)


def test_library_export_is_lazy():
    """`import catdog` must stay instant: catdog.pack is a function that imports the packer (and TF) on first use."""
    import subprocess
    import sys
    import types

    assert isinstance(catdog.pack, types.FunctionType)
    code = "import sys, catdog; print(sorted(m for m in ('tensorflow', 'catdog.data.pack') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_parallel_workers_write_the_same_shards(tmp_path):
    src = flat_tree(tmp_path / "train", n=40)  # 80 images: enough chunks to use 2 spawned workers
    one = quick(src, tmp_path / "one", shard_size=20_000)
    two = quick(src, tmp_path / "two", shard_size=20_000, workers=2)
    assert shard_shas(one) == shard_shas(two)


def test_zip_member_with_a_bad_crc_is_rejected_not_a_crash(tmp_path):
    archive = _zip_dir(flat_tree(tmp_path / "train", n=3), tmp_path / "train.zip")  # stored, not deflated
    with zipfile.ZipFile(archive) as zf:
        offset = zf.getinfo("cat.1.jpg").header_offset
    data = bytearray(archive.read_bytes())
    name_len, extra_len = int.from_bytes(data[offset + 26:offset + 28], "little"), int.from_bytes(data[offset + 28:offset + 30], "little")
    data[offset + 30 + name_len + extra_len + 50] ^= 0xFF  # inside the member's bytes: its CRC-32 no longer matches
    archive.write_bytes(bytes(data))
    manifest = quick(archive, tmp_path / "out")
    assert manifest["rejected"]["by_reason"] == {"unreadable": 1}
    assert read_csv(tmp_path / "out" / "rejected.csv") == [
        {"path": f"{archive}/cat.1.jpg", "reason": "unreadable", "id": "cat.1", "split": ""}]
    assert manifest["splits"]["train"]["num_examples"] + manifest["splits"]["val"]["num_examples"] == 5


@pytest.mark.parametrize("damage", ["not-an-object", "shard-without-sha256", "class-added", "count-raised"])
def test_damaged_manifest_is_a_one_line_error_and_pack_refuses_it(tmp_path, damage):
    """A hand edit: a class added or a count raised trained a 3-class model on records repeated to fill the count."""
    src, out = flat_tree(tmp_path / "train", n=3), tmp_path / "out"
    manifest = quick(src, out)
    if damage == "not-an-object":
        text = "[]"
    else:
        if damage == "shard-without-sha256":
            del manifest["splits"]["train"]["shards"][0]["sha256"]
        elif damage == "class-added":
            manifest["classes"].append("bird")
        else:
            manifest["splits"]["train"]["num_examples"] = 999
        text = json.dumps(manifest)
    (out / "manifest.json").write_text(text)
    result = RUNNER.invoke(catdog.cli.app, ["inspect", str(out)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith(f"error: {out}/manifest.json: "), result.output
    with pytest.raises(DataError, match="holds a different pack"):  # same sources: still never a crash
        quick(src, out)
    assert (out / "manifest.json").read_text() == text  # untouched


# ------------------------------------------------------------------ CLI


def test_cli_pack_prints_summary_and_inspect_verifies(tmp_path):
    src = flat_tree(tmp_path / "train", n=4)
    (src / "cat.99.jpg").write_bytes(b"")
    out = tmp_path / "out"
    result = RUNNER.invoke(catdog.cli.app, ["pack", str(src), "--out", str(out), "--workers", "1",
                                            "--shard-size", "3KB"])
    assert result.exit_code == 0, result.output
    assert "rejected   1 (empty-file: 1)" in result.output and "images/s" in result.output
    result = RUNNER.invoke(catdog.cli.app, ["inspect", str(out)])
    assert result.exit_code == 0 and "all shards intact" in result.output
    shard = sorted(out.glob("train-*.tfrecord"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = RUNNER.invoke(catdog.cli.app, ["inspect", str(out)])
    assert result.exit_code == 1
    assert f"error: {shard}: checksum mismatch" in result.output
    assert RUNNER.invoke(catdog.cli.app, ["inspect", str(out), "--no-verify"]).exit_code == 0


@pytest.mark.parametrize("case", ["missing", "empty", "unlabeled", "different-pack", "not-a-pack", "case-variant",
                                  "out-inside-source"])
def test_cli_bad_input_is_one_line_naming_the_path(tmp_path, case):
    target = tmp_path / case
    args = ["pack", str(target), "--out", str(tmp_path / "out"), "--workers", "1"]
    if case == "empty":
        target.mkdir()
    elif case == "unlabeled":
        for name in ("IMG_001x.jpg", "holiday.jpg"):
            make_image(target / name, (1, 2, 3), size=(16, 16))
    elif case == "different-pack":
        quick(flat_tree(tmp_path / "a", n=2), tmp_path / "out")
        target = tmp_path / "out"
        args = ["pack", str(flat_tree(tmp_path / "b", n=3, seed=9)), "--out", str(target), "--workers", "1"]
    elif case == "not-a-pack":
        target.mkdir()
        args = ["inspect", str(target)]
    elif case == "out-inside-source":  # the pack would become part of its own source
        flat_tree(target, n=3)
        args = ["pack", str(target), "--out", str(target / "packed"), "--workers", "1"]
    elif case == "case-variant":  # `Cat.99.jpg` among cat.*: a third class `Cat`, if nothing said so
        flat_tree(target, n=3)
        make_image(target / "Cat.99.jpg", (200, 60, 40), size=(32, 32), seed=99)
    result = RUNNER.invoke(catdog.cli.app, args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(target) in lines[0], result.output


def test_a_class_whose_files_are_all_rejected_is_a_warning_and_train_refuses_it(tmp_path):
    """A folder `misc/` of broken JPEGs beside cat/ and dog/: a class of no images, which training would turn into a
    three-way softmax (and predict into a non-Kaggle CSV). Pack says so; train refuses with one line."""
    src = tmp_path / "src"
    for i in range(10):
        make_image(src / "cat" / f"c{i}.jpg", (200, 60, 40), size=(32, 32), seed=i)
        make_image(src / "dog" / f"d{i}.jpg", (40, 60, 200), size=(32, 32), seed=100 + i)
    (src / "misc").mkdir()
    (src / "misc" / "a.jpg").write_bytes(b"")
    (src / "misc" / "b.jpg").write_bytes(b"<html>not a photo</html>")
    m = quick(src, tmp_path / "packed")
    assert m["classes"] == ["cat", "dog", "misc"]
    assert m["splits"]["train"]["class_counts"]["cat"] > 0 and m["splits"]["train"]["class_counts"]["dog"] > 0
    assert m["splits"]["train"]["class_counts"]["misc"] == 0 and m["rejected"]["count"] == 2
    assert any("class 'misc' has no usable training images" in w for w in m["warnings"]), m["warnings"]
    result = RUNNER.invoke(catdog.cli.app, ["train", str(tmp_path / "packed"), "--backbone", "small-cnn",
                                            "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "class 'misc' has no training images" in lines[0], result.output
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ real photos


@pytest.mark.slow
def test_pack_real_kaggle_train_folder(shared_dir, tmp_path):
    src = shared_dir / "data" / "dogs-vs-cats" / "train"
    m = pack([src], tmp_path / "out", workers=2, progress=False)
    train, val = m["splits"]["train"], m["splits"]["val"]
    assert m["classes"] == ["cat", "dog"] and m["rejected"]["count"] == 0 and m["converted"]["count"] == 0
    for c in ("cat", "dog"):
        assert train["class_counts"][c] + val["class_counts"][c] == 2500
        assert 0.16 < val["class_counts"][c] / 2500 < 0.24
    assert train["num_examples"] + val["num_examples"] == 5000 and m["splits"]["test"]["num_examples"] == 0
    assert m["duplicates"]["exact"] == 0 and m["duplicates"]["near"] >= 2  # dog.980/1273 and dog.74/180
    near = {frozenset((Path(r["kept"]).name, Path(r["duplicate"]).name)) for r in read_csv(tmp_path / "out" / "duplicates.csv")}
    assert frozenset(("dog.980.jpg", "dog.1273.jpg")) in near and frozenset(("dog.74.jpg", "dog.180.jpg")) in near
    shard_bytes = train["num_bytes"] + val["num_bytes"]
    assert shard_bytes / m["stats"]["source_bytes"] <= 1.02
    assert inspect(tmp_path / "out")[1] == []


def test_pack_workers_check_images_without_importing_tensorflow(tmp_path):
    """Each spawned check worker imports pack_workers: a TensorFlow import there costs seconds of CPU per worker."""
    import subprocess
    import sys

    make_image(tmp_path / "cat.1.jpg", (200, 120, 60))
    code = ("import sys\nfrom catdog.data import pack_workers as w\n"
            f"w.init_worker([({str(tmp_path)!r}, 'dir')], 10**6)\n"
            "(row,) = w.check_chunk([(0, 0, 'cat.1.jpg')])\n"
            "assert row[1] == '' and len(row[2]) == 64, row\n"
            "assert 'tensorflow' not in sys.modules, 'a pack worker imported TensorFlow'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]



def test_pack_starts_the_checks_before_importing_tensorflow(tmp_path):
    """`catdog pack` imports TensorFlow (~5 s of one core) only once its workers are checking images, so the
    two overlap: importing catdog.data.pack does not import it, and the checks are handed out before it is."""
    import subprocess
    import sys

    for k in range(4):
        make_image(tmp_path / "src" / f"cat.{k}.jpg", (200, 120, 60 + k))
        make_image(tmp_path / "src" / f"dog.{k}.jpg", (60, 120, 200 - k))
    code = ("import sys\n"
            "import catdog.data.pack as p\n"
            "assert 'tensorflow' not in sys.modules, 'importing catdog.data.pack imported TensorFlow'\n"
            "seen = []\n"
            "start = p.Runner.start_checks\n"
            "p.Runner.start_checks = lambda self, c: seen.append('tensorflow' in sys.modules) or start(self, c)\n"
            f"m = p.pack({str(tmp_path / 'src')!r}, {str(tmp_path / 'out')!r}, workers=2, progress=False)\n"
            "assert seen == [False], seen\n"
            "assert 'tensorflow' in sys.modules\n"
            "assert m['splits']['train']['num_examples'] + m['splits']['val']['num_examples'] == 8, m['splits']\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
