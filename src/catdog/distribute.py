"""Choosing a `tf.distribute` strategy: catdog scales out with TensorFlow's own engine, never a home-made one.

`auto` picks MultiWorkerMirroredStrategy when TF_CONFIG names several workers, MirroredStrategy when
more than one GPU is visible, and the default (single-device) strategy otherwise. Only the chief
writes the run folder; other workers write into a throw-away folder, as the TensorFlow multi-worker
guide prescribes (every worker must still *run* the save ops, since they may be collective).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from catdog._tf import tf

from catdog.errors import ConfigError

STRATEGIES = ("auto", "mirrored", "multiworker", "none")


def cluster_spec() -> dict:
    """The parsed TF_CONFIG environment variable ({} when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e})") from e


def num_workers_in_tf_config() -> int:
    cluster = cluster_spec().get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


_MULTIWORKER: dict[str, tf.distribute.Strategy] = {}  # TF_CONFIG -> strategy: collectives are configured once a process


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Build the strategy; call before creating any model, optimizer or dataset.

    A process joins its cluster once: a second multiworker call (a notebook training twice) returns
    the strategy it already made for the same TF_CONFIG.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}; got {name!r}")
    if name == "auto":
        if num_workers_in_tf_config() > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "none"
    if name == "multiworker":
        if num_workers_in_tf_config() < 1:
            raise ConfigError("--strategy multiworker needs TF_CONFIG naming the cluster and this task")
        key = os.environ.get("TF_CONFIG", "")
        if key not in _MULTIWORKER:
            _MULTIWORKER[key] = _patch_keras_multiworker(tf.distribute.MultiWorkerMirroredStrategy())
        return _MULTIWORKER[key]
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def names_multiworker(name: str) -> bool:
    """Whether make_strategy(name) will build a multi-worker strategy (known before building it)."""
    return name == "multiworker" or (name == "auto" and num_workers_in_tf_config() > 1)


def describe(strategy: tf.distribute.Strategy) -> str:
    """One log line: which strategy, how many replicas, which task this process is."""
    task = cluster_spec().get("task", {})
    where = f", task {task.get('type')}:{task.get('index')}{' (chief)' if is_chief() else ''}" if task else ""
    return f"{type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s) in sync{where}"


def is_chief(strategy: tf.distribute.Strategy | None = None) -> bool:
    """True on the worker that owns the run folder (the single process when not multi-worker)."""
    task = cluster_spec().get("task", {})
    if not task:
        return True
    task_type, task_id = task.get("type"), int(task.get("index", 0))
    if task_type == "chief":
        return True
    has_chief = "chief" in cluster_spec().get("cluster", {})
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_dir_for(run_dir: str) -> str:
    """Where this worker keeps its copy of `run_dir`: the run folder itself on the chief; elsewhere a
    temporary folder named after the run's absolute path and this task, so a restarted worker finds its
    own backup again (non-chief workers may not see the chief's disk)."""
    if is_chief():
        return str(run_dir)
    task = cluster_spec().get("task", {})
    digest = hashlib.sha1(str(Path(run_dir).absolute()).encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"catdog-{task.get('type', 'worker')}{task.get('index', 0)}-{digest}")


def worker_write_dir(run_dir: str | None = None) -> str:
    """Where this worker writes: the run folder on the chief, a temporary folder elsewhere (created).

    Without a run folder (an unnamed run: only the chief picks its timestamped name) a fresh temporary
    folder is made, which a restarted worker cannot find again.
    """
    if run_dir is not None and is_chief():
        return str(run_dir)
    if run_dir is None:
        task = cluster_spec().get("task", {})
        return tempfile.mkdtemp(prefix=f"catdog-{task.get('type', 'worker')}{task.get('index', 0)}-")
    path = worker_dir_for(run_dir)
    os.makedirs(path, exist_ok=True)
    return path


def shard_options(num_files: int, strategy: tf.distribute.Strategy, *, training: bool) -> tf.data.Options:
    """tf.data options for a dataset that `strategy` will split across workers.

    Training data is sharded by FILE (each worker reads only its shards) when there is at least one
    shard per worker, else by DATA (every worker reads every shard and keeps its share: correct, slower).
    Evaluation data is not sharded (OFF): every worker scores the whole split, so the count check of
    the reader holds and every worker computes the same validation metrics.
    """
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy
    if not training:
        options.experimental_distribute.auto_shard_policy = policy.OFF
    else:
        workers = max(1, num_workers_in_tf_config())
        options.experimental_distribute.auto_shard_policy = policy.FILE if num_files >= workers else policy.DATA
    return options


def weights_checksum(model) -> str:
    """sha256 (16 hex digits) over every weight of `model`, in order: equal on workers that are in sync."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = weight.numpy()
        digest.update(str(value.shape).encode())
        digest.update(value.astype(value.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()[:16]


def _leaf_rank(value) -> int:
    if isinstance(value, tf.distribute.DistributedValues):
        value = value.values[0]
    return len(getattr(value, "shape", ()))


def _patch_keras_multiworker(strategy: tf.distribute.Strategy) -> tf.distribute.Strategy:
    """Work around keras-team/keras#20585 so `Model.fit` runs under MultiWorkerMirroredStrategy.

    Keras 3's TF trainer calls `strategy.reduce` (a) on a whole (x, y) batch structure, which
    CollectiveAllReduceStrategy only accepts leaf by leaf, and (b) with axis=0 on scalar metric values.
    Reducing leaf by leaf, and over replicas only for scalars, is what Keras means in both places.
    Remove once Keras fixes the issue.
    """
    original_reduce = strategy.reduce

    def reduce(reduce_op, value, axis=None):
        return tf.nest.map_structure(
            lambda leaf: original_reduce(reduce_op, leaf, axis=axis if axis is None or _leaf_rank(leaf) > 0 else None),
            value,
        )

    strategy.reduce = reduce
    return strategy
