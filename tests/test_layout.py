"""Layouts of real downloads (issue 9): split folders, PetImages, stray sub-folders, unsafe zip names, and
the bad trees that must be a one-line error naming the folder, never a silently wrong label."""

from __future__ import annotations

import zipfile

import pytest

from catdog.data.layout import LAYOUTS_TEXT, detect
from catdog.data.scan import scan_source
from catdog.errors import DataError


def _summary(found):
    return sorted((f.image_id, f.label, f.split) for f in found.images)


SPLITS = ["train/cat/a.jpg", "train/cat/b.jpg", "train/dog/c.jpg", "val/cat/d.jpg", "val/dog/e.jpg"]


@pytest.mark.parametrize("val", ["val", "valid", "validation", "Val"])
def test_train_and_val_folders_keep_their_split(val):
    found = detect([n.replace("val/", f"{val}/") for n in SPLITS], "SRC")
    assert found.layout == "splits" and not found.rejects
    assert _summary(found) == [("cat/a", "cat", "train"), ("cat/b", "cat", "train"), ("cat/d", "cat", "val"),
                               ("dog/c", "dog", "train"), ("dog/e", "dog", "val")]
    assert any("--val-fraction does not apply" in n for n in found.notices)


def test_labeled_and_unlabeled_test_folders():
    labeled = detect(SPLITS + ["test/cat/f.jpg", "test/dog/g.jpg"], "SRC")
    assert [(f.image_id, f.label, f.split) for f in labeled.images if f.split == "test"] == [
        ("cat/f", "cat", "test"), ("dog/g", "dog", "test")]
    unlabeled = detect(SPLITS + ["test/1.jpg", "test/10.jpg", "test/holiday.png", "test/notes.txt"], "SRC")
    assert sorted((f.image_id, f.label, f.split) for f in unlabeled.images if f.split == "test") == [
        ("1", "", "test"), ("10", "", "test"), ("holiday", "", "test")]
    assert unlabeled.rejects == [("test/notes.txt", "not-an-image-name")]


def test_without_a_val_folder_train_is_split_by_hash():
    found = detect(["train/cat/a.jpg", "train/dog/b.jpg", "test/1.jpg"], "SRC")
    assert {(f.label, f.split) for f in found.images} == {("cat", ""), ("dog", ""), ("", "test")}
    assert not any("--val-fraction" in n for n in found.notices)


def test_kaggle_flat_files_inside_split_folders():
    found = detect(["train/cat.1.jpg", "train/dog.2.jpg", "val/cat.3.jpg", "test/1.jpg"], "SRC")
    assert _summary(found) == [("1", "", "test"), ("cat.1", "cat", "train"), ("cat.3", "cat", "val"),
                               ("dog.2", "dog", "train")]


def test_split_tree_inside_a_zip_with_a_top_folder(tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in SPLITS + ["test/7.jpg"]:
            zf.writestr(f"data/{name}", name)
    source, items, rejects = scan_source(str(archive))
    assert source.layout == "splits" and not rejects
    assert sorted((i.image_id, i.split, i.member) for i in items)[:2] == [
        ("7", "test", "data/test/7.jpg"), ("cat/a", "train", "data/train/cat/a.jpg")]


def test_mixed_tree_is_one_line_error_naming_folder_and_layouts():
    with pytest.raises(DataError) as e:
        detect(SPLITS + ["extra/cat/z.jpg"], "SRC")
    message = str(e.value)
    assert message.startswith("SRC: mixes split folders (train/, val/) with other folders (extra/)")
    assert LAYOUTS_TEXT in message and "\n" not in message
    with pytest.raises(DataError, match="both val/ and valid/"):
        detect(SPLITS + ["valid/cat/z.jpg"], "SRC")


def test_split_folder_without_class_folders_is_an_error_naming_it():
    with pytest.raises(DataError, match=r"^SRC/train: a train folder needs class folders"):
        detect(["train/a.jpg", "train/b.jpg", "val/cat/c.jpg"], "SRC")


def test_class_only_in_val_is_an_error_and_class_missing_from_val_a_warning():
    with pytest.raises(DataError, match=r"^SRC/val/bird: class 'bird' has no images in train/"):
        detect(SPLITS + ["val/bird/x.jpg"], "SRC")
    found = detect(SPLITS + ["train/bird/x.jpg"], "SRC")
    assert any(n.startswith("SRC/val: no images of class 'bird'") for n in found.notices)


def test_petimages_download_with_licence_thumbs_db_and_nothing_else_as_a_class(tmp_path):
    archive = tmp_path / "kagglecatsanddogs_5340.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ["CDLA-Permissive-2.0.pdf", "readme[1].txt", "PetImages/Cat/0.jpg", "PetImages/Cat/1.jpg",
                     "PetImages/Cat/Thumbs.db", "PetImages/Dog/0.jpg", "PetImages/Dog/Thumbs.db"]:
            zf.writestr(name, name)
    source, items, rejects = scan_source(str(archive))
    assert source.layout == "classes"
    assert sorted((i.image_id, i.label) for i in items) == [("Cat/0", "Cat"), ("Cat/1", "Cat"), ("Dog/0", "Dog")]
    assert sorted((p.rsplit("zip/", 1)[1], r) for p, r in rejects) == [
        ("CDLA-Permissive-2.0.pdf", "outside-data-folder"), ("PetImages/Cat/Thumbs.db", "system-file"),
        ("PetImages/Dog/Thumbs.db", "system-file"), ("readme[1].txt", "outside-data-folder")]


def test_kaggle_flat_folder_with_a_stray_sub_folder_keeps_its_layout():
    names = [f"cat.{i}.jpg" for i in range(5)] + [f"dog.{i}.jpg" for i in range(5)] + ["backup/cat.1.jpg", "backup/x.jpg"]
    found = detect(names, "train")
    assert found.layout == "flat" and len(found.images) == 10
    assert sorted(found.rejects) == [("backup/cat.1.jpg", "in-sub-folder"), ("backup/x.jpg", "in-sub-folder")]
    assert found.notices == ["train: ignored 2 files in sub-folders (backup/) of a flat folder (listed in rejected.csv)"]
    numbered = detect(["1.jpg", "2.jpg", "3.jpg", "thumbs/1.jpg"], "test1")
    assert numbered.layout == "numbered" and numbered.rejects == [("thumbs/1.jpg", "in-sub-folder")]


def test_unsafe_zip_members_are_rejected_by_name_and_never_decide_the_layout(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ["cat.1.jpg", "dog.2.jpg", "cat.3.jpg"]:
            zf.writestr(name, name)
        for name in ["../../etc/cat.9.jpg", "/abs/dog/x.jpg", "a/../../b/dog/y.jpg"]:
            zf.writestr(zipfile.ZipInfo(name), name)  # ZipInfo keeps the name as given
    source, items, rejects = scan_source(str(archive))
    assert source.layout == "flat" and sorted(i.image_id for i in items) == ["cat.1", "cat.3", "dog.2"]
    assert sorted(r for _, r in rejects) == ["unsafe-path"] * 3
