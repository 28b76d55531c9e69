"""manifest.json: the description of a packed folder, written last so a folder without it is not a pack.

Every later step (train, evaluate, predict) reads the manifest and the shards it lists, never raw folders.
Paths go through `tf.io.gfile` so packed data can live on any filesystem TensorFlow reads (local, gs://, s3://).
TensorFlow is imported where a file is touched, not with this module: `pack` imports it while its workers
already check images (the import takes ~5 s of one core here).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath

from catdog import atomic
from catdog.errors import DataError

MANIFEST_NAME = "manifest.json"
FORMAT = "catdog-pack/1"
SPLITS = ("train", "val", "test")


def join(directory: str, name: str) -> str:
    """Join like os.path.join, but also for URLs such as gs://bucket/dir (as tf.io.gfile.join does)."""
    return posixpath.join(str(directory), name) if "://" in str(directory) else os.path.join(str(directory), name)


def write_manifest(directory: str, manifest: dict) -> None:
    atomic.write_json(join(directory, MANIFEST_NAME), manifest)


def read_manifest(directory: str) -> dict:
    """Load and sanity-check a manifest; DataError names the folder if it is not a catdog pack."""
    from catdog._tf import tf

    directory = str(directory)
    path = join(directory, MANIFEST_NAME)
    if not tf.io.gfile.exists(directory):
        raise DataError(f"{directory}: packed folder does not exist")
    if not tf.io.gfile.exists(path):
        raise DataError(f"{directory}: not a packed folder (no {MANIFEST_NAME}); run `catdog pack SRC --out {directory}`")
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: manifest is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise DataError(f"{path}: unknown manifest format {found!r}, expected {FORMAT!r}")
    problem = structure_problem(manifest)
    if problem:
        raise DataError(f"{path}: manifest is damaged ({problem}); re-run `catdog pack`")
    return manifest


def structure_problem(manifest: dict) -> str:
    """The first missing/mistyped field readers rely on (a hand-edited manifest must not crash them), or ''."""
    if not isinstance(manifest.get("classes"), list):
        return "'classes' must be a list"
    splits = manifest.get("splits")
    if not isinstance(splits, dict):
        return "'splits' must be an object"
    for split, info in splits.items():
        if not (isinstance(info, dict) and isinstance(info.get("num_examples"), int)
                and isinstance(info.get("num_bytes"), int) and isinstance(info.get("class_counts"), dict)
                and isinstance(info.get("shards"), list)):
            return f"split {split!r} needs num_examples, num_bytes, class_counts and shards"
        for shard in info["shards"]:
            if not (isinstance(shard, dict) and isinstance(shard.get("file"), str) and isinstance(shard.get("sha256"), str)
                    and isinstance(shard.get("num_examples"), int) and isinstance(shard.get("num_bytes"), int)):
                return f"a shard of split {split!r} needs file, sha256, num_examples and num_bytes"
    return consistency_problem(manifest)


def consistency_problem(manifest: dict) -> str:
    """The first count or class that disagrees with the rest of the manifest, or ''. A hand edit (a class
    added, a count raised) otherwise trained a model with a class it never saw, on records repeated to fill
    the claimed count; the shards' own counts are what pack wrote next to their checksums."""
    classes = manifest["classes"]
    if len(set(classes)) != len(classes) or not all(isinstance(c, str) and c for c in classes):
        return "'classes' must be distinct names"
    for split, info in manifest["splits"].items():
        in_shards = sum(shard["num_examples"] for shard in info["shards"])
        if in_shards != info["num_examples"]:
            return f"split {split!r} claims {info['num_examples']} images but its shards hold {in_shards}"
        counts = info["class_counts"]
        if counts and set(counts) != set(classes):
            return f"split {split!r} counts classes {sorted(counts)} but 'classes' lists {classes}"
        if counts and sum(counts.values()) != info["num_examples"]:
            return f"split {split!r}: its class counts add up to {sum(counts.values())}, not {info['num_examples']}"
    return ""


def split_info(manifest: dict, split: str, directory: str = "") -> dict:
    """The manifest entry of one split; DataError lists the splits that exist."""
    splits = manifest.get("splits", {})
    if split not in splits or splits[split]["num_examples"] == 0:
        present = sorted(s for s, v in splits.items() if v["num_examples"] > 0)
        raise DataError(f"{directory or 'pack'}: has no '{split}' split (present: {', '.join(present) or 'none'})")
    return splits[split]


def shard_paths(directory: str, manifest: dict, split: str) -> list[str]:
    return [join(directory, shard["file"]) for shard in split_info(manifest, split, directory)["shards"]]


def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    from catdog._tf import tf

    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_shards(directory: str, manifest: dict | None = None) -> list[str]:
    """Re-hash every shard; returns one problem line per missing or altered shard (empty list = intact)."""
    from catdog._tf import tf

    manifest = manifest or read_manifest(directory)
    problems = []
    for split, info in manifest["splits"].items():
        for shard in info["shards"]:
            path = join(directory, shard["file"])
            if not tf.io.gfile.exists(path):
                problems.append(f"{path}: shard listed in the manifest is missing")
            elif file_sha256(path) != shard["sha256"]:
                problems.append(f"{path}: checksum mismatch (shard changed since it was packed)")
    return problems
