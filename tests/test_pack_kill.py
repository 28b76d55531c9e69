"""A pack killed with SIGKILL part-way through its shards (no cleanup code runs) is finished by re-running
the same command, and ends byte-identical to an uninterrupted pack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from catdog.data.pack import inspect, pack
from catdog.data.pack_state import PARTIAL_DIR
from catdog.data.pack_workers import PAUSE_ENV
from fixtures.images import make_image


def _tree(root: Path, n: int) -> Path:
    for i in range(1, n + 1):
        make_image(root / f"cat.{i}.jpg", (200, 60, 40), size=(64, 64), seed=i)
        make_image(root / f"dog.{i}.jpg", (40, 60, 200), size=(64, 64), seed=10_000 + i)
    return root


def _shas(manifest: dict) -> dict[str, str]:
    return {s["file"]: s["sha256"] for info in manifest["splits"].values() for s in info["shards"]}


def test_sigkilled_pack_is_finished_by_rerunning(tmp_path):
    src = _tree(tmp_path / "train", n=120)
    options = ["--shard-size", "16KB", "--workers", "1"]
    out = tmp_path / "out"
    # The pack stops after its 3rd shard and waits (a test hook), so the kill always lands mid-way.
    env = {**os.environ, PAUSE_ENV: "3"}
    proc = subprocess.Popen([sys.executable, "-m", "catdog", "pack", str(src), "--out", str(out), *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    markers = out / PARTIAL_DIR
    try:
        while proc.poll() is None and len(list(markers.glob("*.done"))) < 3:
            time.sleep(0.05)  # polling only: no outcome depends on how long this takes
        assert proc.poll() is None, "the pack exited instead of pausing after 3 shards"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists()  # nothing claims the half-done pack
    finished = [p for p in out.glob("*.tfrecord") if not p.name.startswith(".")]
    assert len(finished) == 3  # the shards written before the kill, under their final names

    rerun = subprocess.run([sys.executable, "-m", "catdog", "pack", str(src), "--out", str(out), *options],
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    resumed, problems = inspect(out)
    assert problems == []
    reference = pack([str(src)], str(tmp_path / "ref"), shard_size=16 * 1024, workers=1, progress=False)
    assert _shas(resumed) == _shas(reference)
    assert resumed["splits"]["train"]["num_examples"] + resumed["splits"]["val"]["num_examples"] == 240
