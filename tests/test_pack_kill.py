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
from conftest import make_image


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
    proc = subprocess.Popen([sys.executable, "-m", "catdog", "pack", str(src), "--out", str(out), *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(out.glob("*.tfrecord"))) >= 3:  # some shards finished, others still to come
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the pack finished before it could be killed"
    assert not (out / "manifest.json").exists()  # nothing claims the half-done pack

    rerun = subprocess.run([sys.executable, "-m", "catdog", "pack", str(src), "--out", str(out), *options],
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    resumed, problems = inspect(out)
    assert problems == []
    reference = pack([str(src)], str(tmp_path / "ref"), shard_size=16 * 1024, workers=1, progress=False)
    assert _shas(resumed) == _shas(reference)
    assert resumed["splits"]["train"]["num_examples"] + resumed["splits"]["val"]["num_examples"] == 240
