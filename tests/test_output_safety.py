"""Issue 13: outputs never destroy what catdog did not create, and one writer at a time.

Each test plays the careless user of the probe: the user's files must still be there, byte-identical;
a device node must still be a device; the command must end with one `error:` line, exit 1, no traceback.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from catdog import csvfile, lock
from catdog.data.pack import inspect, pack
from catdog.errors import DataError
from fixtures.images import make_image
from fixtures.packed import build_pack
from fixtures.runs import write_run
from fixtures.cli import invoke

SRC = Path(__file__).resolve().parents[1] / "src"


def one_line_error(result, pattern: str = "") -> str:
    """exit 1, exactly one line on the output, starting with `error:`, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert pattern in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def flat(root: Path, n: int = 3, seed: int = 0) -> Path:
    for i in range(1, n + 1):
        make_image(root / f"cat.{i}.jpg", (200, 60, 40), size=(32, 32), seed=seed + i)
        make_image(root / f"dog.{i}.jpg", (40, 60, 200), size=(32, 32), seed=seed + 100 + i)
    return root


# ------------------------------------------------------------------------------------------------ pack


def test_pack_into_a_folder_of_user_files_is_refused_and_leaves_them_byte_identical(tmp_path):
    src = flat(tmp_path / "train")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train-00000-of-00003.tfrecord").write_bytes(b"my own records")  # looks like a shard
    (mine / "rejected.csv").write_text("my,own,table\n")
    (mine / "leakage.csv").write_text("also mine\n")
    before = snapshot(mine)
    for extra in ([], ["--overwrite"]):  # --overwrite replaces only a catdog pack
        one_line_error(invoke("pack", src, "--out", mine, "--workers", "1", *extra), "but no manifest.json")
    assert snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == sorted(before)
    # an empty folder and a new one are fine
    (tmp_path / "empty").mkdir()
    assert pack([src], tmp_path / "empty", workers=1, progress=False)["splits"]["train"]["num_examples"] > 0
    assert not (tmp_path / "empty" / lock.LOCK_NAME).exists()  # the lock is gone when the pack is done


# ------------------------------------------------------------------------------------------------ predict


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    run = write_run(root / "run")
    images = root / "images"
    for i in range(1, 4):
        make_image(images / f"{i}.jpg", (40 * i, 120, 200), seed=i)
    return root, run, images


def test_predict_refuses_to_write_over_an_input_a_model_a_symlink_or_a_device(env, tmp_path):
    root, run, images = env
    photo = images / "1.jpg"
    before = snapshot(root)
    one_line_error(invoke("predict", run, images, "-o", photo), "an input or model")
    one_line_error(invoke("predict", run, photo, "-o", photo), "an input or model")
    one_line_error(invoke("predict", run, images, "-o", run / "best.keras"), "an input or model")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    one_line_error(invoke("predict", run, images, "-o", notes), "not a file catdog writes")
    link = tmp_path / "submission.csv"
    link.symlink_to(notes)
    one_line_error(invoke("predict", run, images, "-o", link), "symbolic link")
    assert link.is_symlink() and notes.read_text() == "my notes"
    one_line_error(invoke("predict", run, images, "-o", "/dev/null"), "not a regular file")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still a device
    assert snapshot(root) == before


def test_predict_replaces_an_existing_csv_and_says_so(env, tmp_path):
    _, run, images = env
    out = tmp_path / "submission.csv"
    out.write_text("id,label\nold,0.5\n")
    result = invoke("predict", run, images, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"replaced the existing {out}" in result.output
    assert out.read_text().splitlines()[1:] and "old" not in out.read_text()


def test_a_skipped_list_from_an_earlier_run_does_not_outlive_its_submission(env, tmp_path):
    _, run, images = env
    out = tmp_path / "submission.csv"
    side = tmp_path / "submission.skipped.csv"
    side.write_text("id,name,reason\r\n7,7.jpg,truncated image\r\n")  # left by a --skip-bad run over other photos
    result = invoke("predict", run, images, "-o", out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert out.is_file() and not side.exists()


def test_failures_of_the_machine_are_one_line(tmp_path):
    """Permission denied, a path through a file, a full disk: the user's environment, not a bug in catdog."""
    import errno

    import tensorflow as tf

    from catdog.outputs import environment_error

    packed = tmp_path / "packed"
    build_pack(packed, {"train": 4, "val": 2})
    afile = tmp_path / "afile.txt"
    afile.write_text("not a folder")
    one_line_error(invoke("train", packed, "--backbone", "small-cnn", "--image-size", "32", "--epochs", "1",
                          "--runs-dir", afile), "afile.txt")
    assert afile.read_text() == "not a folder"
    denied = PermissionError(errno.EACCES, "Permission denied", "/data/runs")
    assert environment_error(denied) == "/data/runs: Permission denied"
    assert environment_error(OSError(errno.ENOSPC, "No space left on device", "/data/x")).startswith(
        "/data/x: disk full (")
    assert environment_error(tf.errors.PermissionDeniedError(None, None, "/out/p; Permission denied\nmore")) == \
        "/out/p; Permission denied"
    assert environment_error(ValueError("a bug")) is None and environment_error(OSError(errno.EBADF, "x")) is None


# ------------------------------------------------------------------------------------------------ evaluate / export


def test_evaluate_does_not_write_through_a_symlink_in_its_output_folder(tmp_path):
    packed = tmp_path / "packed"
    build_pack(packed, {"train": 2, "val": 4})
    run = write_run(tmp_path / "run", data=packed)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = run / "eval" / "val"
    out.mkdir(parents=True)
    (out / "predictions.csv").symlink_to(victim)
    one_line_error(invoke("evaluate", run, "--data", packed), "symbolic link")
    assert victim.read_text() == "keep me" and (out / "predictions.csv").is_symlink()
    assert not (out / "metrics.json").exists()  # refused before any work


def test_export_does_not_replace_a_user_file_nor_write_through_a_symlink(env, tmp_path):
    _, run, _ = env
    out = tmp_path / "exported"
    out.mkdir()
    (out / "model.keras").write_bytes(b"my own model")
    one_line_error(invoke("export", run, "--format", "keras", "--out", out), "not a file catdog writes")
    assert (out / "model.keras").read_bytes() == b"my own model"
    link = tmp_path / "link"
    link.symlink_to(out)
    one_line_error(invoke("export", run, "--format", "keras", "--out", link), "symbolic link")


def test_export_keeps_a_users_export_json_and_stays_out_of_run_and_pack_folders(env, tmp_path):
    """A user's own export.json was silently replaced (or, holding a list, crashed the export after the model
    was written); --out the run folder or a pack mixed the export into them."""
    _, run, _ = env
    for text in ("my notes, not json", "[1, 2, 3]", '{"mine": 1}'):
        out = tmp_path / f"mine{len(text)}"
        out.mkdir()
        (out / "export.json").write_text(text)
        one_line_error(invoke("export", run, "--format", "keras", "--out", out), "not a file catdog writes")
        assert (out / "export.json").read_text() == text and sorted(p.name for p in out.iterdir()) == ["export.json"]
    before = snapshot(run)
    one_line_error(invoke("export", run, "--format", "keras", "--out", run), "inside the run folder")
    one_line_error(invoke("export", run, "--format", "keras", "--out", run / "exported"), "inside the run folder")
    assert snapshot(run) == before and not (run / "exported").exists()
    packed = tmp_path / "packed"
    build_pack(packed, {"train": 2, "val": 2})
    one_line_error(invoke("export", run, "--format", "keras", "--out", packed), "a packed folder")
    ours = tmp_path / "ours"
    assert invoke("export", run, "--format", "keras", "--out", ours).exit_code == 0
    result = invoke("export", run, "--format", "keras", "--out", ours)  # its own report: replaced
    assert result.exit_code == 0, result.output
    assert list(json.loads((ours / "export.json").read_text())["exports"]) == ["model.keras"]


# ------------------------------------------------------------------------------------------------ train options


def test_run_name_must_be_a_plain_name(tmp_path):
    for name in ("../../x", "a/b", "..", ".hidden"):
        one_line_error(invoke("train", tmp_path, "--name", name, "--runs-dir", tmp_path / "runs"), "plain folder name")
    assert not (tmp_path / "runs").exists() and not (tmp_path.parent / "x").exists()


def test_image_size_is_checked_against_memory_before_a_run_folder_exists(tmp_path):
    packed = tmp_path / "packed"
    build_pack(packed, {"train": 4, "val": 2})
    runs = tmp_path / "runs"
    one_line_error(invoke("train", packed, "--backbone", "small-cnn", "--image-size", "100000", "--runs-dir", runs),
                   "--image-size 100000x100000")
    assert not runs.exists()


def test_a_damaged_training_shard_is_named_in_one_line(tmp_path):
    packed = tmp_path / "packed"
    manifest = build_pack(packed, {"train": 8, "val": 4}, shards_per_split=1)
    shard = packed / manifest["splits"]["train"]["shards"][0]["file"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # a damaged disk block in the middle of a record
    shard.write_bytes(bytes(data))
    result = invoke("train", packed, "--backbone", "small-cnn", "--image-size", "32", "--epochs", "1",
                    "--runs-dir", tmp_path / "runs", "--batch-size", "4")
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.output.strip().endswith(errors[0])  # after the "training ..." line
    assert f"{shard}: checksum mismatch" in errors[0]  # named as evaluate names it


# ------------------------------------------------------------------------------------------------ locks


HOLD = """
import sys
sys.path.insert(0, sys.argv[2])
from catdog import lock
with lock.exclusive(sys.argv[1], "pack"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_second_writer_gets_one_line_naming_the_holder_and_a_dead_holders_lock_is_taken_over(tmp_path):
    src = flat(tmp_path / "train")
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(SRC)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = one_line_error(invoke("pack", src, "--out", out, "--workers", "1"), "another catdog pack is writing")
        assert f"pid {holder.pid} on {socket.gethostname()}, started 20" in line
        assert not (out / "manifest.json").exists()
    finally:
        holder.communicate("\n", timeout=60)
    # a holder killed without cleaning up: its lock file stays, but the kernel released the flock
    (out / lock.LOCK_NAME).write_text(json.dumps({"pid": 999_999_999, "host": socket.gethostname(), "started": "x"}))
    pack([src], out, workers=1, progress=False)
    assert inspect(out)[1] == []


def test_object_store_marker_refuses_a_live_writer_and_takes_over_a_dead_one():
    import tensorflow as tf

    folder = "ram://catdog-lock-test"
    tf.io.gfile.makedirs(folder)
    marker = f"{folder}/{lock.LOCK_NAME}"
    with tf.io.gfile.GFile(marker, "w") as f:
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))
    with pytest.raises(DataError, match=f"pid {os.getpid()} on"):
        with lock.exclusive(folder, "pack"):
            pass
    tf.io.gfile.remove(marker)
    with tf.io.gfile.GFile(marker, "w") as f:
        f.write(json.dumps({"pid": 999_999_999, "host": socket.gethostname(), "started": "then"}))
    with lock.exclusive(folder, "pack"):
        with tf.io.gfile.GFile(marker) as f:
            assert json.load(f)["pid"] == os.getpid()
    assert not tf.io.gfile.exists(marker)


def test_two_concurrent_packs_into_one_folder_give_one_verified_pack_and_one_error(tmp_path):
    a, b = flat(tmp_path / "a", n=20), flat(tmp_path / "b", n=20, seed=500)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(SRC), "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen([sys.executable, "-m", "catdog", "pack", str(src), "--out", str(out), "--workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for src in (a, b)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    (_, _, err), = [r for r in results if r[0] == 1]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    # whichever came second: it met the first one's lock, or its finished (different) pack
    assert "another catdog pack is writing" in lines[0] or "holds a different pack" in lines[0]
    manifest, problems = inspect(out)
    assert problems == [] and manifest["splits"]["train"]["num_examples"] + manifest["splits"]["val"]["num_examples"] == 40


# ------------------------------------------------------------------------------------------------ CSV injection


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(env, tmp_path):
    _, run, _ = env
    images = tmp_path / "images"
    for n, stem in enumerate(("=1+2", "@SUM(A1)", "+cmd", "-x", "-2", "7")):
        make_image(images / f"{stem}.jpg", (40 + 30 * n, 120, 200), seed=n)
    out = tmp_path / "submission.csv"
    result = invoke("predict", run, images, "-o", out)
    assert result.exit_code == 0, result.output
    with open(out, newline="") as f:
        ids = [row[0] for row in csv.reader(f)][1:]
    # formulas become text (leading '); numbers stay numbers, so Kaggle ids are unchanged
    assert sorted(ids) == sorted(["'=1+2", "'@SUM(A1)", "'+cmd", "'-x", "-2", "7"])
    assert [csvfile.escape_cell(v) for v in ("\tx", "\rz", -1.5, "-1.5", "+3e2", "a=b", "")] == \
        ["'\tx", "'\rz", -1.5, "-1.5", "+3e2", "a=b", ""]
