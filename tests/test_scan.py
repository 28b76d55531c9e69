"""scan.py: layouts (flat, class folders, numbered, the same in zips, a zip with one top folder) and bad sources."""

from __future__ import annotations

import zipfile

import pytest

from catdog.data.scan import Reader, detect, scan, scan_source
from catdog.errors import DataError


def _touch(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
    return root


def _zip(path, names, prefix=""):
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(prefix + name, name.encode())
    return path


FLAT = ["cat.1.jpg", "cat.2.jpg", "dog.10.jpeg", "dog.7.png"]
CLASSES = ["cat/a.jpg", "cat/b.jpg", "dog/x.jpg", "dog/sub/y.jpg"]
NUMBERED = ["1.jpg", "2.jpg", "10.jpg"]


def _summary(items):
    return sorted((i.image_id, i.label, i.member) for i in items)


def test_flat_layout(tmp_path):
    # `labels.v2.json` has the shape of a Kaggle name (<class>.<id>.<ext>): it was a class `labels` of no images
    extra = ["notes.txt", "labels.v2.json", "annotations.backup.csv", "holiday.jpg"]
    source, items, rejects = scan_source(str(_touch(tmp_path / "train", FLAT + extra)))
    assert source.layout == "flat" and source.kind == "dir" and source.num_files == 8
    assert _summary(items) == [("cat.1", "cat", "cat.1.jpg"), ("cat.2", "cat", "cat.2.jpg"),
                               ("dog.10", "dog", "dog.10.jpeg"), ("dog.7", "dog", "dog.7.png")]
    assert sorted((p.rsplit("/", 1)[1], r) for p, r in rejects) == [
        ("annotations.backup.csv", "not-an-image-name"), ("holiday.jpg", "unrecognised-name"),
        ("labels.v2.json", "not-an-image-name"), ("notes.txt", "not-an-image-name")]


def test_class_folder_layout(tmp_path):
    # a folder of notes beside the class folders was a class `notes` of no images
    extra = ["README.md", ".DS_Store", "stray.jpg", "notes/readme.txt", "notes/labels.csv"]
    source, items, rejects = scan_source(str(_touch(tmp_path / "src", CLASSES + extra)))
    assert source.layout == "classes"
    assert _summary(items) == [("cat/a", "cat", "cat/a.jpg"), ("cat/b", "cat", "cat/b.jpg"),
                               ("dog/sub/y", "dog", "dog/sub/y.jpg"), ("dog/x", "dog", "dog/x.jpg")]
    assert sorted((p.split("/src/", 1)[1], r) for p, r in rejects) == [
        ("README.md", "not-an-image-name"), ("notes/labels.csv", "not-an-image-name"),
        ("notes/readme.txt", "not-an-image-name"), ("stray.jpg", "not-in-class-folder")]


def test_numbered_layout_is_unlabeled(tmp_path):
    source, items, _ = scan_source(str(_touch(tmp_path / "test1", NUMBERED)))
    assert source.layout == "numbered"
    assert _summary(items) == [("1", "", "1.jpg"), ("10", "", "10.jpg"), ("2", "", "2.jpg")]


@pytest.mark.parametrize("names,layout", [(FLAT, "flat"), (CLASSES, "classes"), (NUMBERED, "numbered")])
@pytest.mark.parametrize("prefix", ["", "train/", "outer/inner/"])
def test_zip_of_each_layout_read_in_place(tmp_path, names, layout, prefix):
    archive = _zip(tmp_path / "data.zip", names, prefix)
    source, items, rejects = scan_source(str(archive))
    assert source.kind == "zip" and source.layout == layout and not rejects
    plain, plain_items, _ = scan_source(str(_touch(tmp_path / "plain", names)))
    assert [(i.image_id, i.label) for i in items] == [(i.image_id, i.label) for i in plain_items]
    assert all(i.member.startswith(prefix) for i in items)
    reader = Reader([(source.path, source.kind)])
    assert reader.read(0, items[0].member) == items[0].member[len(prefix):].encode()
    assert not list(tmp_path.glob("data/*"))  # nothing extracted


def test_ids_stay_unique_across_extensions_and_sources(tmp_path):
    a = _touch(tmp_path / "a", ["cat.1.jpg", "cat.1.png"])
    b = _touch(tmp_path / "b", ["cat.1.jpg"])
    _, items, _ = scan([str(a), str(b)])
    ids = [i.image_id for i in items]
    assert len(set(ids)) == 3 and ids[0] == "cat.1"


def test_fingerprint_digest_changes_when_files_change(tmp_path):
    root = _touch(tmp_path / "train", FLAT)
    before = scan_source(str(root))[0].digest
    assert scan_source(str(root))[0].digest == before
    (root / "cat.3.jpg").write_bytes(b"x")
    assert scan_source(str(root))[0].digest != before


def test_missing_empty_and_unlabeled_sources(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}/nope: source folder does not exist"):
        scan_source(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no files found"):
        scan_source(str(tmp_path / "empty"))
    random = _touch(tmp_path / "random", ["IMG_0001x.jpg", "holiday.jpg", "a8f3k2.png"])
    with pytest.raises(DataError, match="random: no recognisable labels"):
        scan_source(str(random))
    (tmp_path / "file.txt").write_text("hi")
    with pytest.raises(DataError, match="not a folder or a .zip"):
        scan_source(str(tmp_path / "file.txt"))


def test_detect_majority_pattern_wins():
    found = detect(["1.jpg", "2.jpg", "cat.3.jpg"], "x")
    assert found.layout == "numbered" and len(found.images) == 2 and found.rejects == [("cat.3.jpg", "unrecognised-name")]


def test_corrupt_zip_is_named_as_a_broken_zip_not_an_unknown_file(tmp_path):
    (tmp_path / "train.zip").write_bytes(b"PK\x03\x04 truncated download")
    with pytest.raises(DataError, match="train.zip: cannot read the zip archive"):
        scan_source(str(tmp_path / "train.zip"))
