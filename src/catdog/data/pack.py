"""`pack`: source folders/zips -> TFRecord shards + manifest.json. `inspect`: read a pack back and verify it.

    catdog pack ../shared/data/dogs-vs-cats/train --out packed/

Four passes, none of which holds image bytes in the parent (memory stays flat from 5k to 50k images):
1. scan     names only (scan.py): layout, label, id per file;
2. check    workers read + decode-check + hash every file (imagecheck.py) and return ~200 bytes each;
3. plan     dedupe (dedupe.py), split as given by split folders or by content hash (split.py), order, cut
            into shards of ~shard_size;
4. write    re-read each shard's files and write it with tf.io.TFRecordWriter (in this process).
Each shard is written under a temporary name and renamed when complete, with a done-marker in `.partial/`
recording what it holds; the manifest is written last. A killed pack therefore never leaves a shard that a manifest claims,
and re-running the same command skips the shards already done.

This module runs the passes; the pieces live beside it: pack_workers.py (check in worker processes,
write), pack_plan.py (pass 3), pack_state.py (the output folder: resume, clear, finish) and
pack_manifest.py (the manifest's content, shared with merge.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter

from catdog import lock, progress as progress_lib
from catdog.data import heif
from catdog.data import manifest as manifest_lib
from catdog.data import pack_manifest, pack_state as state
from catdog.data import pack_plan as plan_lib
from catdog.data.imagecheck import DEFAULT_MAX_PIXELS
from catdog.data.pack_plan import Entry, Plan, part_of, shard_file
from catdog.data.pack_workers import Runner
from catdog.data.scan import Source, display_path, scan
from catdog.data.split import check_val_fraction
from catdog.errors import ConfigError, DataError
from catdog.outputs import check_pack_folder, disk_full, within

DEFAULT_SHARD_SIZE = 128 * 2**20  # TFDS's guidance: 64-256 MB shards read fast and parallelise well
_CHUNK = 32  # images per check task: big enough to amortise IPC, small enough for a smooth progress bar
RECORD_VERSION = 2  # 2: image/orientation, unlabeled copies kept; part of the fingerprint, so an older pack is redone


def _fingerprint(sources: list[Source], config: dict, part: tuple[int, int] | None = None) -> str:
    """Identifies what a pack was made from: every source file's name/size/mtime (or zip CRC) + options."""
    blob = json.dumps({"format": manifest_lib.FORMAT, "records": RECORD_VERSION, "config": config, "part": part,
                       "sources": [(s.layout, s.kind, s.digest) for s in sources]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _check_options(val_fraction, seed, shard_size, workers, max_pixels) -> int:
    check_val_fraction(val_fraction)
    if not isinstance(seed, int):
        raise ConfigError(f"--seed must be an integer, got {seed!r}")
    if shard_size < 1:
        raise ConfigError(f"--shard-size must be at least 1 byte, got {shard_size}")
    if max_pixels < 1:
        raise ConfigError(f"--max-pixels must be at least 1, got {max_pixels}")
    if workers is None:
        return os.cpu_count() or 1
    if workers < 0:
        raise ConfigError(f"--workers must be >= 0 (0 or 1 = in this process), got {workers}")
    return workers


def pack(sources, out, *, val_fraction: float = 0.2, seed: int = 0, shard_size: int = DEFAULT_SHARD_SIZE,
         workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, overwrite: bool = False,
         progress: bool = True, num_workers: int = 1, worker_index: int = 0) -> dict:
    """Pack image folders/zips into TFRecord shards in `out`; returns the manifest (also written to
    out/manifest.json).

    Args:
        sources: folders or .zip files (a single path is accepted too). Layouts: see catdog.data.scan.
        out: output folder; created if needed. Re-running the same pack resumes or is a no-op.
        val_fraction: share of labeled images that go to `val`, by content hash. Defaults to `0.2`.
        seed: salts the split and the record order. Defaults to `0`.
        shard_size: approximate bytes per shard. Defaults to 128 MiB.
        workers: processes that check images (shards are written in this process); None = all cores, 0 or 1 = none.
        max_pixels: images whose header claims more pixels are rejected undecoded. Defaults to 40 MP.
        overwrite: replace a different pack already in `out`. Defaults to `False` (DataError instead).
        progress: report progress on stderr (a bar on a terminal, else a line every ~10 s). Defaults to `True`.
        num_workers, worker_index: pack only this machine's share (by a hash of each image id) into
            `out/part-<index>-of-<num_workers>/`; `merge(out)` then writes one manifest over all parts.
    """
    start = time.perf_counter()
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    workers = _check_options(val_fraction, seed, shard_size, workers, max_pixels)
    out = str(out)
    if not (isinstance(num_workers, int) and num_workers >= 1 and 0 <= worker_index < num_workers):
        raise ConfigError(f"--worker-index must be in [0, --num-workers), got {worker_index} of {num_workers}")
    check_pack_folder(out)  # never write into a folder of someone else's files (checked before any work)
    _check_out_outside_sources(out, sources)
    notices: list[str] = []  # one-line warnings: given splits, ignored sub-folders, damaged EXIF tags
    found, items, rejects = scan([str(s) for s in sources], notices)
    heif_item = next((it for it in items if heif.is_heif_name(it.member)), None)
    if heif_item is not None:
        heif.require(display_path(found[heif_item.source], heif_item))
    classes = sorted({it.label for it in items if it.label})  # from names: identical on every machine
    _refuse_case_variants(items, found)
    config = {"val_fraction": float(val_fraction), "seed": seed, "shard_size": int(shard_size),
              "max_pixels": int(max_pixels)}
    fingerprint = _fingerprint(found, config)
    part = None
    if num_workers > 1:
        items = [it for it in items if part_of(it.image_id, num_workers) == worker_index]
        rejects = [r for r in rejects if part_of(r[0], num_workers) == worker_index]
        part = {"index": worker_index, "count": num_workers, "pack_fingerprint": fingerprint}
        fingerprint = _fingerprint(found, config, (worker_index, num_workers))
        out = state.part_dir(out, worker_index, num_workers)
    num_files = len(items) + len(rejects)
    check_pack_folder(out)
    with Runner(min(workers, max(1, len(items) // _CHUNK)), found, max_pixels) as runner:
        # The workers start checking now, while this process imports TensorFlow (first needed just below;
        # ~5 s of one core here, as long as the checks of 5,000 photos on two).
        checks, started = runner.start_checks(_chunks(items)), time.monotonic()
        _makedirs(out)
        with lock.exclusive(out, "pack"), disk_full(out, "packing"):  # one writer; ENOSPC -> one line
            existing = state.prepare(out, fingerprint, overwrite)
            if existing is not None:
                return existing  # the same pack is already there: the checks are cancelled unread

            with progress_lib.reporter(progress) as report:
                meant: dict[str, tuple[str, str]] = {}
                entries, source_bytes = _check_all(checks, report.task("check", len(items), started), found, items,
                                                   rejects, notices, meant)
                plan, report_rows = plan_lib.plan(entries, rejects, val_fraction, seed, shard_size, found, classes,
                                                  part is not None)
                if part is None:
                    notices += _empty_classes(plan) + report_rows["notices"]
                shards = _write_all(runner, report, plan, out, fingerprint)

            manifest = _manifest(found, config, fingerprint, plan, shards, rejects, report_rows,
                                 seconds=time.perf_counter() - start, num_files=num_files,
                                 source_bytes=source_bytes, notices=notices)
            records = None
            if part is not None:
                manifest["part"] = part
                records = plan_lib.record_rows(plan, found)
            state.finish(out, manifest, report_rows, rejects, records, meant)
            return manifest


def _check_out_outside_sources(out: str, sources) -> None:
    """A pack inside a source folder becomes part of that source: the next identical command sees other files
    (a different pack), and every later pack lists the shards in rejected.csv."""
    if "://" in out:
        return
    for source in sources:
        if os.path.isdir(str(source)) and within(out, source):
            raise ConfigError(f"--out {out}: inside the source folder {source}; pack into a folder beside it")


def _refuse_case_variants(items, found) -> None:
    """`Cat.5.jpg` among `cat.*.jpg` would be a third class `Cat`: one class spelled two ways is an error."""
    first: dict[str, object] = {}
    for item in items:
        if item.label:
            other = first.setdefault(item.label.lower(), item)
            if other.label != item.label:
                raise DataError(f"{display_path(found[item.source], item)}: class {item.label!r} differs from class "
                                f"{other.label!r} ({display_path(found[other.source], other)}) only in case; rename "
                                "the files or folders so that each class has one spelling")


def _empty_classes(plan: Plan) -> list[str]:
    """Warnings for classes without a training image (all their files rejected, or a lone image sent to val):
    train refuses such a pack, so say it here, where the files can be fixed. (A pack without a train split,
    e.g. a labeled test set alone, warns nothing.)"""
    train = Counter(e.item.label for shard in plan.splits["train"] for e in shard)
    other = Counter(e.item.label for split, shards in plan.splits.items() if split != "train"
                    for shard in shards for e in shard)
    return [f"class {c!r} has no usable training images ({other[c]} in val/test; rejected files are listed in "
            "rejected.csv); `catdog train` refuses a class it cannot learn" for c in plan.classes if train and not train[c]]


def _makedirs(path: str) -> None:
    from catdog._tf import tf  # a local path or a gs:// URL

    tf.io.gfile.makedirs(path)


def _chunks(items) -> list[list[tuple[int, int, str]]]:
    """The check tasks: (position, source, member) in chunks of _CHUNK."""
    return [[(i, it.source, it.member) for i, it in enumerate(items[k:k + _CHUNK], start=k)]
            for k in range(0, len(items), _CHUNK)]


def _check_all(checks, advance, found, items, rejects, notices, meant):
    """Pass 2: collect the workers' decode-check + hash of every item (`checks`: the chunks' results from
    Runner.start_checks). Returns usable entries (in scan order); a damaged EXIF orientation becomes a warning
    in `notices`; a rejected item's path -> (id, split it was meant for) goes to `meant`."""
    results: list[tuple | None] = [None] * len(items)
    source_bytes = 0
    for chunk in checks:
        advance(len(chunk))
        for row in chunk:
            results[row[0]] = row[1:]
    entries = []
    for item, (reason, sha, phash, height, width, converted, stored, size, orientation, problem) in zip(items, results):
        source_bytes += size
        if reason:
            path = display_path(found[item.source], item)
            rejects.append((path, reason))
            meant[path] = (item.image_id, item.split or ("" if item.label else "test"))  # unlabeled = test
            continue
        if problem:
            notices.append(f"{display_path(found[item.source], item)}: {problem}; read as upright (orientation 1)")
        entries.append(Entry(item, sha, phash, height, width, converted, stored, orientation))
    return entries, source_bytes


def _write_all(runner, report, plan: Plan, out: str, fingerprint: str) -> dict[str, list[dict]]:
    """Pass 4: write the shards not already complete; returns shard infos per split in manifest order."""
    from catdog.data.records import UNLABELED  # records imports TensorFlow: not needed before this pass

    label_index = {c: i for i, c in enumerate(plan.classes)}
    planned = plan.shard_files()
    state.clear(out, keep=set(planned))  # shards of an older, different plan
    infos: dict[str, dict] = {}
    specs = []
    for file, (split, members) in planned.items():
        digest = plan_lib.shard_digest(fingerprint, file, members)
        info = state.done_shard(out, file, digest)
        if info is not None:
            infos[file] = info
            continue
        records = [(e.item.source, e.item.member, e.sha256, label_index.get(e.item.label, UNLABELED), e.item.label,
                    e.item.image_id, e.converted_from, e.height, e.width, e.orientation) for e in members]
        specs.append({"file": file, "out": out, "marker": state.marker_path(out, file), "digest": digest,
                      "records": records})
    advance = report.task("write", sum(len(s["records"]) for s in specs))
    for info in runner.write(specs, advance):
        infos[info["file"]] = info
    return {split: [infos[shard_file(split, i, len(shards))] for i in range(len(shards))]
            for split, shards in plan.splits.items()}


def _manifest(found, config, fingerprint, plan: Plan, shards, rejects, rows, *, seconds, num_files, source_bytes,
              notices=()):
    splits = {}
    for split in manifest_lib.SPLITS:
        counts = Counter(e.item.label for shard in plan.splits[split] for e in shard)
        splits[split] = pack_manifest.split_entry(split, shards[split], counts, plan.classes)
    stored = [e for split in plan.splits.values() for shard in split for e in shard]
    per_source = Counter(e.item.source for e in stored)
    return pack_manifest.assemble(
        versions=pack_manifest.versions(), fingerprint=fingerprint, config=config,
        sources=[{"path": s.path, "layout": s.layout, "num_files": s.num_files, "num_packed": per_source.get(i, 0)}
                 for i, s in enumerate(found)],
        classes=plan.classes, splits=splits, rejects=rejects,
        converted=Counter(e.converted_from for e in stored if e.converted_from),
        duplicates=rows["counts"], leakage=len(rows["leakage"]),
        stats={"seconds": round(seconds, 2), "images_per_second": round(num_files / max(seconds, 1e-9), 1),
               "source_bytes": source_bytes},
        turned=sum(1 for e in stored if e.orientation != 1), warnings=list(notices))


def inspect(directory, verify: bool = True) -> tuple[dict, list[str]]:
    """Read a pack's manifest and (by default) re-hash every shard.

    Returns (manifest, problems): one line per missing or altered shard; empty when intact.
    Raises DataError when `directory` is not a pack.
    """
    directory = str(directory)
    manifest = manifest_lib.read_manifest(directory)
    return manifest, (manifest_lib.verify_shards(directory, manifest) if verify else [])
