"""catdog.atomic and catdog.csvfile: the final name holds the old or the new content, never a part."""

import json
import os

import pytest

from catdog import atomic, csvfile


def test_writers_replace_whole_files_and_leave_no_temp(tmp_path):
    path = tmp_path / "a.json"
    atomic.write_json(path, {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1} and path.read_text().endswith("}\n")
    atomic.write_text(path, "new")
    assert path.read_text() == "new"
    atomic.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]


def test_temp_name_is_hidden_beside_the_target_and_keeps_the_suffix(tmp_path):
    tmp = atomic.temp_path(tmp_path / "best.weights.h5")
    assert os.path.dirname(tmp) == str(tmp_path)
    assert os.path.basename(tmp) == f".tmp-{os.getpid()}-best.weights.h5"
    assert atomic.temp_path("gs://bucket/dir/m.json") == f"gs://bucket/dir/.tmp-{os.getpid()}-m.json"


def test_failed_block_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "model.keras"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.writing(path) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("parity check failed")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_writing_a_folder(tmp_path):
    final = tmp_path / "3"
    with atomic.writing(final) as tmp:
        os.makedirs(tmp)
        (open(os.path.join(tmp, "saved_model.pb"), "w")).close()
    assert (final / "saved_model.pb").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["3"]


def test_csv_line_endings_and_quoting(tmp_path):
    csvfile.write_csv(tmp_path / "s.csv", ["id", "label"], [["1", "0.5"], ["a,b", "x"]])
    assert (tmp_path / "s.csv").read_bytes() == b'id,label\r\n1,0.5\r\n"a,b",x\r\n'
    csvfile.write_csv(tmp_path / "r.csv", ("path", "reason"), [("p", "r")], lineterminator=csvfile.LF)
    assert (tmp_path / "r.csv").read_bytes() == b"path,reason\np,r\n"
    assert csvfile.read_dicts(tmp_path / "s.csv") == [{"id": "1", "label": "0.5"}, {"id": "a,b", "label": "x"}]


def test_remove_stale_takes_only_what_dead_processes_left(tmp_path):
    """kill -9 during an export left OUT/.tmp-<pid>-2/, a whole SavedModel, that nothing ever removed."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (tmp_path / f".tmp-{dead}-2").mkdir()
    (tmp_path / f".tmp-{dead}-2" / "saved_model.pb").write_bytes(b"x" * 100)
    (tmp_path / f".tmp-{dead}-model.keras").write_bytes(b"x")
    (tmp_path / f".tmp-{os.getpid()}-model.keras").write_bytes(b"mine, being written")
    (tmp_path / ".tmp-notes").write_text("not ours: no pid")
    (tmp_path / "1").mkdir()
    removed = atomic.remove_stale(tmp_path)
    assert removed == [f".tmp-{dead}-2", f".tmp-{dead}-model.keras"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".tmp-{os.getpid()}-model.keras", ".tmp-notes", "1"])

