"""Packing real-world trees end to end (issue 9): every unlabeled file keeps its id through pack -> inspect ->
predict, split folders keep their given splits (and a labeled test split is scored), PetImages junk is
rejected with a reason, a test split that mixes labeled and unlabeled files is refused."""

from __future__ import annotations

import shutil

import pytest

from catdog.data.pack import pack
from catdog.errors import DataError
from fixtures.images import make_image
from fixtures.runs import write_run
from fixtures.cli import invoke, read_csv


def quick(sources, out, **kw):
    return pack([str(s) for s in sources], str(out), workers=1, progress=False, **kw)


def test_byte_identical_test_files_each_get_a_record_and_a_submission_row(kaggle_flat, tmp_path):
    test = tmp_path / "test1"
    for i in range(1, 6):
        make_image(test / f"{i}.jpg", (120, 120, 40 * i), seed=50 + i)
    for copy, original in ((6, 1), (7, 2), (8, 1)):
        shutil.copyfile(test / f"{original}.jpg", test / f"{copy}.jpg")
    shutil.copyfile(kaggle_flat / "cat.1.jpg", kaggle_flat / "cat.7.jpg")  # a labeled copy: kept once
    m = quick([kaggle_flat, test], tmp_path / "packed")
    assert m["splits"]["test"]["num_examples"] == 8
    assert m["splits"]["train"]["num_examples"] + m["splits"]["val"]["num_examples"] == 12
    assert m["duplicates"]["exact"] == 1 and m["duplicates"]["unlabeled_copies"] == 3
    rows = read_csv(tmp_path / "packed" / "duplicates.csv")
    kept = sorted((r[1].rsplit("/", 1)[1], r[2].rsplit("/", 1)[1]) for r in rows if r[0] == "exact-unlabeled-kept")
    assert kept == [("1.jpg", "6.jpg"), ("1.jpg", "8.jpg"), ("2.jpg", "7.jpg")]

    shown = invoke("inspect", tmp_path / "packed")
    assert shown.exit_code == 0 and "3 byte-identical test files kept" in " ".join(shown.output.split())
    test_row = next(line for line in shown.output.splitlines() if line.strip("│ ").startswith("test"))
    assert " 8 " in test_row

    run = write_run(tmp_path / "run", image_size=(24, 24))
    result = invoke("predict", run, tmp_path / "packed", "-o", tmp_path / "submission.csv")
    assert result.exit_code == 0, result.output
    rows = read_csv(tmp_path / "submission.csv")
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(1, 9)]
    label = {r[0]: r[1] for r in rows[1:]}
    assert label["6"] == label["8"] == label["1"] and label["7"] == label["2"]


def _split_tree(root):
    colours = {"cat": (200, 60, 40), "dog": (40, 60, 200)}
    seed = 0
    for split, n in (("train", 4), ("validation", 2), ("test", 2)):
        for cls, colour in colours.items():
            for i in range(n):
                seed += 1
                make_image(root / split / cls / f"{split}{i}.jpg", colour, seed=seed)
    return root


def test_split_folders_are_packed_as_given_and_labeled_test_is_scored(tmp_path):
    src = _split_tree(tmp_path / "data")
    result = invoke("pack", src, "--out", tmp_path / "packed", "--val-fraction", "0.5", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "--val-fraction does not apply to this source" in result.output
    from catdog.data import manifest as manifest_lib

    m = manifest_lib.read_manifest(str(tmp_path / "packed"))
    assert m["sources"][0]["layout"] == "splits"
    assert {s: (m["splits"][s]["num_examples"], m["splits"][s]["class_counts"]) for s in ("train", "val", "test")} == {
        "train": (8, {"cat": 4, "dog": 4}), "val": (4, {"cat": 2, "dog": 2}), "test": (4, {"cat": 2, "dog": 2})}
    run = write_run(tmp_path / "run", image_size=(24, 24), data=tmp_path / "packed")
    scored = invoke("evaluate", run, "--data", tmp_path / "packed", "--split", "test")
    assert scored.exit_code == 0, scored.output
    import json

    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert metrics["num_examples"] == 4 and metrics["per_class"]["cat"]["support"] == 2


def test_test_split_mixing_labeled_and_unlabeled_files_is_refused(tmp_path):
    src = _split_tree(tmp_path / "data")
    unlabeled = tmp_path / "test1"
    make_image(unlabeled / "1.jpg", (90, 90, 90), seed=99)
    make_image(unlabeled / "2.jpg", (90, 90, 20), seed=98)
    with pytest.raises(DataError, match="is a labeled test image but .*test1/1.jpg is an unlabeled one"):
        quick([src, unlabeled], tmp_path / "packed")


def test_petimages_junk_is_rejected_with_reasons_and_never_a_class(tmp_path):
    root = tmp_path / "kagglecatsanddogs"
    for i in range(3):
        make_image(root / "PetImages" / "Cat" / f"{i}.jpg", (200, 60, 40), seed=i)
        make_image(root / "PetImages" / "Dog" / f"{i}.jpg", (40, 60, 200), seed=10 + i)
    good = (root / "PetImages" / "Cat" / "0.jpg").read_bytes()
    (root / "PetImages" / "Cat" / "666.jpg").write_bytes(good[: len(good) // 2])  # the tutorial's corrupt files
    (root / "PetImages" / "Dog" / "11702.jpg").write_bytes(b"")
    (root / "PetImages" / "Cat" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 OLE")
    (root / "PetImages" / "Dog" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 OLE")
    (root / "readme[1].txt").write_text("Microsoft Cats vs Dogs")
    m = quick([root], tmp_path / "packed")
    assert m["classes"] == ["Cat", "Dog"]
    assert m["rejected"]["by_reason"] == {"empty-file": 1, "outside-data-folder": 1, "system-file": 2, "decode-error": 1}
    assert sum(m["splits"][s]["num_examples"] for s in ("train", "val")) == 6
