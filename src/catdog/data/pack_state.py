"""The output folder of a pack (or merge): what is in it, what may be cleared, and how it is finished.

A folder is a pack once its manifest.json exists; the manifest is written last. Until then `.partial/`
holds a done-marker per finished shard (its info + a digest of what it holds), so a killed pack or merge
resumes by skipping the shards already done. Only catdog's own files are ever removed from the folder.
`merge` uses these functions too, so both agree on the layout.
"""

from __future__ import annotations

import json
import re

from catdog import atomic, csvfile
from catdog.data import manifest as manifest_lib
from catdog.errors import DataError

PARTIAL_DIR = ".partial"  # done-markers of an unfinished pack; removed when it completes
SIDE_FILES = ("rejected.csv", "duplicates.csv", "leakage.csv")
# id / split: what a rejected image would have been (the split only where the layout gives it: `test` for an
# unlabeled test file, the split folder's name; empty where the content hash would have decided, or for a file
# that was never an image candidate, such as `notes.txt`)
REJECTED_COLUMNS = ("path", "reason", "id", "split")
SHARD_NAME = re.compile(r"^(train|val|test)-\d{5}-of-\d{5}\.tfrecord$")
PART_NAME = re.compile(r"^part-(\d{5})-of-(\d{5})$")
RECORDS_FILE = "records.csv"  # per-record metadata of a part, so `merge` can dedupe across parts
RECORD_COLUMNS = ("id", "split", "shard", "sha256", "phash", "label", "source", "path", "converted_from")
_TEMP_NAME = re.compile(re.escape(atomic.TEMP_PREFIX) + r"\d+-(.+)$")  # a write a killed process left behind


def part_dir(out: str, index: int, count: int) -> str:
    return manifest_lib.join(str(out), f"part-{index:05d}-of-{count:05d}")


def read_existing(out: str) -> dict | None:
    """The folder's manifest if it has one ({"fingerprint": "unreadable"} when damaged), else None."""
    from catdog._tf import tf

    path = manifest_lib.join(out, manifest_lib.MANIFEST_NAME)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            existing = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"fingerprint": "unreadable"}
    if not isinstance(existing, dict) or manifest_lib.structure_problem(existing):  # hand-edited or damaged
        return {"fingerprint": "unreadable"}
    return existing


def _ours(name: str) -> bool:
    return bool(SHARD_NAME.match(name)) or name in SIDE_FILES or name in (manifest_lib.MANIFEST_NAME, RECORDS_FILE)


def clear(out: str, keep: set[str] = frozenset()) -> None:
    """Remove catdog's own files from out (shards not in `keep`, side files, leftovers); never anything else."""
    from catdog._tf import tf

    for name in tf.io.gfile.listdir(out):
        name = name.rstrip("/")
        leftover = _TEMP_NAME.match(name)
        if ((SHARD_NAME.match(name) and name not in keep) or (not keep and name in SIDE_FILES)
                or (leftover and _ours(leftover.group(1)))):
            tf.io.gfile.remove(manifest_lib.join(out, name))


def prepare(out: str, fingerprint: str, overwrite: bool, verify_existing: bool = True) -> dict | None:
    """Returns an existing complete manifest of the same pack (nothing to do), else readies `out`."""
    from catdog._tf import tf

    if tf.io.gfile.exists(out) and not tf.io.gfile.isdir(out):
        raise DataError(f"{out}: output exists and is not a folder")
    tf.io.gfile.makedirs(out)
    existing = read_existing(out)
    if existing is not None and existing.get("fingerprint") != fingerprint:
        if not overwrite:
            what = f"{existing.get('splits', {}).get('train', {}).get('num_examples', '?')} train images, fingerprint " \
                   f"{str(existing.get('fingerprint'))[:12]}"
            raise DataError(f"{out}: holds a different pack ({what}); use --overwrite or another --out")
        tf.io.gfile.remove(manifest_lib.join(out, manifest_lib.MANIFEST_NAME))  # first: the folder stops being a pack
        partial = manifest_lib.join(out, PARTIAL_DIR)
        if tf.io.gfile.exists(partial):
            tf.io.gfile.rmtree(partial)
        clear(out)
        existing = None
    if existing is not None and verify_existing and not manifest_lib.verify_shards(out, existing):
        return existing
    tf.io.gfile.makedirs(manifest_lib.join(out, PARTIAL_DIR))
    return None


def marker_path(out: str, file: str) -> str:
    return manifest_lib.join(manifest_lib.join(out, PARTIAL_DIR), file + ".done")


def done_shard(out: str, file: str, digest: str) -> dict | None:
    """The shard's info if a previous run completed it for exactly this plan (and it is intact)."""
    from catdog._tf import tf

    path, marker = manifest_lib.join(out, file), marker_path(out, file)
    if not (tf.io.gfile.exists(marker) and tf.io.gfile.exists(path)):
        return None
    try:
        with tf.io.gfile.GFile(marker) as f:
            info = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if info.get("digest") != digest or manifest_lib.file_sha256(path) != info.get("sha256"):
        return None
    return {k: info[k] for k in ("file", "num_examples", "num_bytes", "sha256")}


def finish(out: str, manifest: dict, rows: dict, rejects, records: list[tuple] | None = None,
           meant: dict[str, tuple[str, str]] | None = None) -> None:
    """Side files, then the manifest (last: it is what makes the folder a pack), then clean up.

    `rows` holds the "duplicates" and "leakage" rows; `records` (parts only) becomes records.csv; `meant` maps a
    rejected image's path to the id and split it was meant for (rejected.csv's `id` and `split`: predict names
    the rejected files of the split it predicts, as it does for files it cannot read itself).
    """
    from catdog._tf import tf

    if records is not None:
        csvfile.write_csv(manifest_lib.join(out, RECORDS_FILE), RECORD_COLUMNS, records, lineterminator=csvfile.LF,
                          escape=False)  # read back by merge: ids must match the records exactly
    meant = meant or {}
    csvfile.write_csv(manifest_lib.join(out, "rejected.csv"), REJECTED_COLUMNS,
                      sorted((path, reason, *meant.get(path, ("", ""))) for path, reason in rejects),
                      lineterminator=csvfile.LF)
    csvfile.write_csv(manifest_lib.join(out, "duplicates.csv"), ("kind", "kept", "duplicate", "distance"),
                      rows["duplicates"], lineterminator=csvfile.LF)
    csvfile.write_csv(manifest_lib.join(out, "leakage.csv"), ("kind", "labeled", "labeled_split", "test", "distance"),
                      rows["leakage"], lineterminator=csvfile.LF)
    manifest_lib.write_manifest(out, manifest)
    tf.io.gfile.rmtree(manifest_lib.join(out, PARTIAL_DIR))
