"""tf.distribute (issue 6): strategy choice, chief-only writing, file sharding, packed data on any tf.io.gfile
filesystem, and two real `catdog train --strategy multiworker` processes on localhost."""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from catdog import distribute
from catdog.data import load, manifest as manifest_lib
from catdog.errors import ConfigError
from fixtures.packed import build_pack

CLI = [sys.executable, "-m", "catdog"]


def _tf_config(ports, index, task_type="worker"):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": task_type, "index": index}})


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# ------------------------------------------------------------------ in-process: choice, chief, sharding


def test_strategy_names_and_auto_without_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="--strategy must be one of auto, mirrored, multiworker, none; got 'ps'"):
        distribute.make_strategy("ps")
    with pytest.raises(ConfigError, match="needs TF_CONFIG"):
        distribute.make_strategy("multiworker")
    assert distribute.make_strategy("auto") is tf.distribute.get_strategy()  # one CPU: the default strategy
    assert distribute.make_strategy("none").num_replicas_in_sync == 1
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        distribute.cluster_spec()


def test_only_the_chief_writes_the_run_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    run = str(tmp_path / "runs" / "r")
    assert distribute.is_chief() and distribute.worker_write_dir(run) == run
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2], 0))
    assert distribute.is_chief() and distribute.worker_write_dir(run) == run
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2], 1))
    assert not distribute.is_chief()
    mine = distribute.worker_write_dir(run)
    try:
        assert Path(mine).is_dir() and not mine.startswith(str(tmp_path)) and "worker1" in mine
        assert distribute.worker_write_dir(run) == mine  # stable: a restarted worker finds its backup again
        assert distribute.worker_dir_for(str(tmp_path / "other")) != mine
    finally:
        os.rmdir(mine)
    # an explicit chief task: worker 0 is then not the chief
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["h:1"], "worker": ["h:2"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert not distribute.is_chief() and distribute.num_workers_in_tf_config() == 2


def test_shard_policy_by_file_when_enough_shards(monkeypatch):
    policy = tf.data.experimental.AutoShardPolicy
    monkeypatch.setenv("TF_CONFIG", _tf_config([1, 2], 0))
    strategy = tf.distribute.get_strategy()
    assert distribute.shard_options(4, strategy, training=True).experimental_distribute.auto_shard_policy == policy.FILE
    assert distribute.shard_options(1, strategy, training=True).experimental_distribute.auto_shard_policy == policy.DATA
    assert distribute.shard_options(4, strategy, training=False).experimental_distribute.auto_shard_policy == policy.OFF


def test_weights_checksum_follows_the_values():
    import keras

    def model(seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    a, b, c = model(1), model(1), model(2)
    assert distribute.weights_checksum(a) == distribute.weights_checksum(b) != distribute.weights_checksum(c)


# ------------------------------------------------------------------ packed data on a non-local filesystem


def _copy_tree(src: Path, dst: str) -> None:
    tf.io.gfile.makedirs(dst)
    for path in src.iterdir():
        tf.io.gfile.copy(str(path), f"{dst}/{path.name}", overwrite=True)


def test_reader_works_on_a_non_local_filesystem(tmp_path):
    """ram:// (TensorFlow's in-memory filesystem) stands in for gs:// or s3://: nothing assumes a local path."""
    local = tmp_path / "packed"
    build_pack(local, {"train": 7, "val": 4, "test": 3}, shards_per_split=3)
    remote = f"ram://catdog-test-{os.getpid()}/packed"
    _copy_tree(local, remote)
    try:
        assert manifest_lib.read_manifest(remote)["classes"] == ["cat", "dog"]
        assert manifest_lib.verify_shards(remote) == []
        for split in ("train", "val", "test"):
            here = list(load(str(local), split, 32, batch_size=4, with_ids=True).unbatch())
            there = list(load(remote, split, 32, batch_size=4, with_ids=True).unbatch())
            assert [r["id"].numpy() for r in there] == [r["id"].numpy() for r in here]
            assert np.array_equal(np.stack([r["image"] for r in there]), np.stack([r["image"] for r in here]))
        shuffled = load(remote, "train", 32, batch_size=4, training=True, seed=1)
        assert sum(int(y.shape[0]) for _, y in shuffled) == 7
    finally:
        tf.io.gfile.rmtree(f"ram://catdog-test-{os.getpid()}")


# ------------------------------------------------------------------ two real workers on localhost


def _weights_checksums(text: str) -> list[str]:
    return re.findall(r"weights checksum ([0-9a-f]{16})", text)


def test_two_workers_train_in_sync_and_only_the_chief_writes(tmp_path):
    packed = tmp_path / "packed"
    build_pack(packed, {"train": 32, "val": 8}, shards_per_split=4, size=(32, 32))
    ports = _free_ports(2)
    procs = []
    for index in (0, 1):
        runs = tmp_path / f"runs{index}"  # each worker its own --runs-dir: the non-chief's must stay empty
        env = {**os.environ, "TF_CONFIG": _tf_config(ports, index), "CUDA_VISIBLE_DEVICES": "-1",
               "TMPDIR": str(tmp_path / f"tmp{index}")}
        (tmp_path / f"tmp{index}").mkdir()
        args = [*CLI, "train", str(packed), "--strategy", "multiworker", "--backbone", "small-cnn", "--weights",
                "none", "--image-size", "32", "--epochs", "3", "--batch-size", "4", "--lr", "0.003",
                "--schedule", "constant", "--no-flip", "--crop-scale", "1", "--brightness", "0", "--contrast", "0",
                "--saturation", "0", "--hue", "0", "--runs-dir", str(runs), "--name", "mw"]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        outputs.append(out)
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
    chief, other = outputs
    assert "2 replica(s) in sync" in chief and "global batch 8" in chief
    assert "best val accuracy" in chief and "not the chief" in other
    # both workers end with identical weights (synchronised every step)
    sums = [_weights_checksums(out) for out in outputs]
    assert len(sums[0]) == 1 and sums[0] == sums[1], (sums, outputs)
    # the chief's run folder is complete; the non-chief wrote nothing outside its (removed) temp folder
    run = tmp_path / "runs0" / "mw"
    for name in ("config.json", "best.keras", "last.keras", "metrics.csv", "summary.json", "calibration.json",
                 "plots/loss.png", "tensorboard/phase1"):
        assert (run / name).exists(), name
    assert not (tmp_path / "runs1").exists()
    assert list((tmp_path / "tmp1").iterdir()) == []
    assert not (run / "backup").exists()  # BackupAndRestore removes its backup once fit completes
    with (run / "metrics.csv").open() as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 3 and losses[-1] < losses[0]
    # the chief's saved last epoch is the weights both workers logged
    import keras

    import catdog  # noqa: F401  (registers catdog's custom layers)

    assert distribute.weights_checksum(keras.saving.load_model(run / "last.keras")) == sums[0][0]


RESTART_SCRIPT = """
import json, sys
from pathlib import Path
import keras
from catdog.training import TrainConfig, train

packed, runs = sys.argv[1], Path(sys.argv[2])
cfg = TrainConfig(data=packed, backbone="small-cnn", weights="none", image_size=32, epochs=3, batch_size=4,
                  strategy="multiworker", runs_dir=str(runs), name="r", flip=False, crop_scale=1.0, patience=0)

class Crash(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt

try:
    train(cfg, callbacks=[Crash()])
except KeyboardInterrupt:
    pass
backup = runs / "r" / "backup"
print("BACKUP", json.dumps({"files": sorted(p.name for p in backup.iterdir()),
                            "meta": json.loads((backup / "training_metadata.json").read_text())}))
train(cfg)  # the same call again, as a restarted worker would run the same command
"""


def test_a_restarted_worker_resumes_from_its_backup(tmp_path):
    """One worker of a one-worker cluster (MultiWorkerMirroredStrategy in its own process) is interrupted after
    epoch 1; starting the same run again resumes at epoch 2 from BackupAndRestore's backup and state.json."""
    packed = tmp_path / "packed"
    build_pack(packed, {"train": 12, "val": 6}, shards_per_split=2)
    env = {**os.environ, "TF_CONFIG": _tf_config(_free_ports(1), 0), "CUDA_VISIBLE_DEVICES": "-1"}
    proc = subprocess.run([sys.executable, "-c", RESTART_SCRIPT, str(packed), str(tmp_path / "runs")], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    backup = json.loads(proc.stdout.split("BACKUP ", 1)[1].splitlines()[0])
    assert backup["files"] == ["latest.weights.h5", "training_metadata.json"] and backup["meta"]["epoch"] == 1
    assert "resuming" in proc.stderr and "after 1 recorded epoch(s)" in proc.stderr
    run = tmp_path / "runs" / "r"
    with (run / "metrics.csv").open() as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3]
    assert json.loads((run / "state.json").read_text())["complete"] and not (run / "backup").exists()


def test_pack_warns_when_train_has_too_few_shards_for_several_workers(tmp_path):
    from typer.testing import CliRunner

    import catdog.cli
    from fixtures.images import flat_tree

    catdog.cli._register_commands()
    src = flat_tree(tmp_path / "src", n=6)
    runner = CliRunner()
    few = runner.invoke(catdog.cli.app, ["pack", str(src), "--out", str(tmp_path / "one"), "--workers", "1"])
    assert few.exit_code == 0, few.output
    text = " ".join(few.output.split())  # rich wraps long lines at the console width
    assert "warning train has 1 shard(s): multi-worker training needs at least one shard per worker" in text
    many = runner.invoke(catdog.cli.app, ["pack", str(src), "--out", str(tmp_path / "many"), "--workers", "1",
                                          "--shard-size", "2000"])
    assert many.exit_code == 0 and "warning    train" not in many.output, many.output
