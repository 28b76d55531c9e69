"""`merge`: one manifest over the parts written by `pack(..., num_workers=N, worker_index=I)`.

    catdog pack SRC --out DIR --num-workers 2 --worker-index 0     # machine 0
    catdog pack SRC --out DIR --num-workers 2 --worker-index 1     # machine 1 (same SRC, same DIR)
    catdog pack --merge --out DIR                                  # anywhere, once both are done

Each part deduplicated its own share; merge repeats the duplicate/leakage analysis over every part's
record metadata (records.csv: no image bytes), so an exact duplicate split across two machines is still
kept once (the shard holding the dropped copy is rewritten without it). Split and label index need no
fix-up: the split comes from the content hash or a split folder's name, and the class list from file
names, identical everywhere.
Shards are then renamed into DIR under global names, each recorded by a done-marker, and the manifest
is written last; a killed merge is finished by running it again.
"""

from __future__ import annotations

import json
import time
from collections import Counter

from catdog._tf import tf

from catdog import atomic, lock
from catdog.csvfile import read_dicts
from catdog.data import manifest as manifest_lib
from catdog.data import pack_manifest
from catdog.data.dedupe import Candidate, analyse
from catdog.data.pack_plan import SPLIT_RANK, shard_file
from catdog.data.pack_state import PART_NAME, PARTIAL_DIR, RECORDS_FILE, clear, finish, marker_path, part_dir, read_existing
from catdog.data.records import parse_example
from catdog.errors import DataError
from catdog.outputs import disk_full


def _parts(out: str) -> list[tuple[str, dict]]:
    names = sorted(n.rstrip("/") for n in tf.io.gfile.listdir(out) if PART_NAME.match(n.rstrip("/")))
    counts = {int(PART_NAME.match(n).group(2)) for n in names}
    if len(counts) != 1:
        raise DataError(f"{out}: expected part-XXXXX-of-N folders of one N, found {', '.join(names) or 'none'}")
    count = counts.pop()
    parts = []
    for index in range(count):
        path = part_dir(out, index, count)
        if not tf.io.gfile.exists(manifest_lib.join(path, manifest_lib.MANIFEST_NAME)):
            raise DataError(f"{path}: part {index} of {count} is missing or unfinished; run "
                            f"`catdog pack SRC --out {out} --num-workers {count} --worker-index {index}`")
        parts.append((path, manifest_lib.read_manifest(path)))
    fingerprints = {m["part"]["pack_fingerprint"] for _, m in parts}
    if len(fingerprints) != 1:
        raise DataError(f"{out}: parts were packed from different sources or options; re-pack them with one command")
    return parts


def _filter_shard(src: str, tmp: str, drop: set[str]) -> int:
    count = 0
    with tf.io.TFRecordWriter(tmp) as writer:
        for raw in tf.data.TFRecordDataset(src):
            if parse_example(raw)["image/id"].numpy().decode() not in drop:
                writer.write(raw.numpy())
                count += 1
    return count


def merge(out, *, overwrite: bool = False, progress: bool = True) -> dict:
    """Merge out/part-*-of-N/ into one pack in `out`; returns its manifest. Re-running after success is a no-op."""
    del progress  # renames are instant; only shards with cross-part duplicates are rewritten
    out = str(out)
    if not tf.io.gfile.isdir(out):
        raise DataError(f"{out}: folder does not exist (nothing to merge)")
    with lock.exclusive(out, "merge"), disk_full(out, "merging"):  # one writer at a time; ENOSPC -> one line
        return _merge(out, overwrite)


def _merge(out: str, overwrite: bool) -> dict:
    start = time.perf_counter()
    existing = read_existing(out)
    if existing is not None and existing.get("merged_from") and not any(
            PART_NAME.match(n.rstrip("/")) for n in tf.io.gfile.listdir(out)):
        problems = manifest_lib.verify_shards(out, existing)
        if problems:
            raise DataError(problems[0])
        return existing
    parts = _parts(out)
    first = parts[0][1]
    fingerprint = first["part"]["pack_fingerprint"]
    if existing is not None and existing.get("fingerprint") != fingerprint:
        if not overwrite:
            raise DataError(f"{out}: holds a different pack (fingerprint {str(existing.get('fingerprint'))[:12]}); "
                            "use --overwrite or another --out")
        tf.io.gfile.remove(manifest_lib.join(out, manifest_lib.MANIFEST_NAME))
    partial = manifest_lib.join(out, PARTIAL_DIR)
    tf.io.gfile.makedirs(partial)

    # global duplicate analysis over every part's kept records, in the order a single pack uses
    records = [{**r, "part": i} for i, (path, _) in enumerate(parts) for r in read_dicts(manifest_lib.join(path, RECORDS_FILE))]
    # the order a single pack uses (pack_plan.plan): given train before val before test; copies of one
    # photo split by content hash share their split, so the final split ranks them the same way
    records.sort(key=lambda r: (not r["label"], SPLIT_RANK.get(r["split"], 0), int(r["source"]), r["id"]))
    report = analyse([Candidate(r["sha256"], int(r["phash"], 16), r["label"]) for r in records])
    drops: dict[tuple[int, str], set[str]] = {}  # (part, shard file) -> ids to leave out
    for r, keep in zip(records, report.keep):
        if not keep:
            drops.setdefault((r["part"], r["shard"]), set()).add(r["id"])

    # global shard names: each split's shards, part by part
    plan = []  # (global name, part path, part shard info, ids to drop)
    for split in manifest_lib.SPLITS:
        shards = [(i, path, s) for i, (path, m) in enumerate(parts) for s in m["splits"][split]["shards"]]
        for k, (i, path, shard) in enumerate(shards):
            drop = drops.get((i, shard["file"]), set())
            plan.append((shard_file(split, k, len(shards)), path, shard, drop))
    clear(out, keep={name for name, *_ in plan})
    infos = {}
    for name, path, shard, drop in plan:
        final, marker = manifest_lib.join(out, name), marker_path(out, name)
        source = manifest_lib.join(path, shard["file"])
        if tf.io.gfile.exists(marker) and tf.io.gfile.exists(final) and not tf.io.gfile.exists(source):
            with tf.io.gfile.GFile(marker) as f:
                infos[name] = json.load(f)
            continue
        if not tf.io.gfile.exists(source):
            raise DataError(f"{source}: shard of a part is missing; re-run that part's pack")
        if drop:
            with atomic.writing(final) as tmp:
                count = _filter_shard(source, tmp, drop)
            tf.io.gfile.remove(source)
        else:
            count = shard["num_examples"]
            tf.io.gfile.rename(source, final, overwrite=True)
        info = {"file": name, "num_examples": count, "num_bytes": tf.io.gfile.stat(final).length,
                "sha256": shard["sha256"] if not drop else manifest_lib.file_sha256(final)}
        atomic.write_text(marker, json.dumps(info))
        infos[name] = info

    kept = [r for r, keep in zip(records, report.keep) if keep]
    classes = first["classes"]
    splits = {}
    for split in manifest_lib.SPLITS:
        shards = [infos[name] for name, *_ in plan if name.startswith(f"{split}-")]
        counts = Counter(r["label"] for r in kept if r["split"] == split)
        splits[split] = pack_manifest.split_entry(split, shards, counts, classes)

    def path_of(i):
        return records[i]["path"]

    part_dups = [row for path, _ in parts for row in read_dicts(manifest_lib.join(path, "duplicates.csv"))
                 if row["kind"] not in ("near", "exact-unlabeled-kept")]  # both redone below
    dup_rows = [(r["kind"], r["kept"], r["duplicate"], r["distance"]) for r in part_dups]
    dup_rows += [("exact", path_of(a), path_of(b), 0) for a, b in report.exact]
    dup_rows += [("label-conflict", path_of(a), path_of(b), 0) for a, b in report.conflicts]
    dup_rows += [("near", path_of(a), path_of(b), d) for a, b, d in report.near]
    dup_rows += [("exact-unlabeled-kept", path_of(a), path_of(b), 0) for a, b in report.copies]
    leak_rows = [(kind, path_of(a), records[a]["split"], path_of(b), d) for kind, a, b, d in report.leakage]
    rejected = [r for path, _ in parts for r in read_dicts(manifest_lib.join(path, "rejected.csv"))]
    rejects = [(r["path"], r["reason"]) for r in rejected]
    meant = {r["path"]: (r.get("id", ""), r.get("split", "")) for r in rejected}  # empty in parts packed before the columns
    stats = [m.get("stats", {}) for _, m in parts]
    slowest = max(s.get("seconds", 0) for s in stats)
    num_files = sum(s.get("images_per_second", 0) * s.get("seconds", 0) for s in stats)
    sources = [{**s, "num_packed": sum(m["sources"][j].get("num_packed", 0) for _, m in parts)}
               for j, s in enumerate(first["sources"])]
    manifest = pack_manifest.assemble(
        versions={k: first[k] for k in ("format", "catdog_version", "tensorflow_version")},
        fingerprint=fingerprint, config=first["config"], sources=sources, classes=classes, splits=splits,
        rejects=rejects, converted=Counter(r["converted_from"] for r in kept if r["converted_from"]),
        duplicates={"exact": sum(1 for r in dup_rows if r[0] == "exact"), "near": len(report.near),
                    "label_conflicts": sum(1 for r in dup_rows if r[0] == "label-conflict"),
                    "unlabeled_copies": len(report.copies)},
        leakage=len(leak_rows),
        stats={"seconds": round(slowest + time.perf_counter() - start, 2),
               "images_per_second": round(num_files / max(slowest, 1e-9), 1),
               "source_bytes": sum(s.get("source_bytes", 0) for s in stats)})
    manifest["merged_from"] = len(parts)
    finish(out, manifest, {"duplicates": dup_rows, "leakage": leak_rows}, rejects, meant=meant)
    for path, _ in parts:  # only part folders remain to tidy: their shards now live in `out`
        tf.io.gfile.rmtree(path)
    return manifest

