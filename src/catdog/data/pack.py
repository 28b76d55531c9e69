"""`pack`: source folders/zips -> TFRecord shards + manifest.json. `inspect`: read a pack back and verify it.

    catdog pack ../shared/data/dogs-vs-cats/train --out packed/

Four passes, none of which holds image bytes in the parent (memory stays flat from 5k to 50k images):
1. scan     names only (scan.py): layout, label, id per file;
2. check    workers read + decode-check + hash every file (imagecheck.py) and return ~200 bytes each;
3. plan     dedupe (dedupe.py), split by content hash (split.py), order, cut into shards of ~shard_size;
4. write    workers re-read their shard's files and write it with tf.io.TFRecordWriter.
Each shard is written under `.partial/` and renamed when complete, with a done-marker recording what it
holds; the manifest is written last. A killed pack therefore never leaves a shard that a manifest claims,
and re-running the same command skips the shards already done.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import math
import multiprocessing
import os
import queue as queue_lib
import re
import time
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass

import tensorflow as tf

from catdog.data import manifest as manifest_lib
from catdog.data.dedupe import Candidate, analyse
from catdog.data.imagecheck import DEFAULT_MAX_PIXELS, check_image
from catdog.data.records import UNLABELED, make_example
from catdog.data.scan import Item, MemberTooLarge, Reader, Source, display_path, scan
from catdog.data.split import assign_split, check_val_fraction, record_order
from catdog import lock
from catdog.errors import ConfigError, DataError
from catdog.outputs import check_pack_folder, disk_full

DEFAULT_SHARD_SIZE = 128 * 2**20  # TFDS's guidance: 64-256 MB shards read fast and parallelise well
PARTIAL_DIR = ".partial"  # temp shards + done-markers of an unfinished pack; removed when it completes
SIDE_FILES = ("rejected.csv", "duplicates.csv", "leakage.csv")
SHARD_NAME = re.compile(r"^(train|val|test)-\d{5}-of-\d{5}\.tfrecord$")
RECORD_OVERHEAD = 256  # bytes of features + framing per record, for shard planning only
_CHUNK = 32  # images per check task: big enough to amortise IPC, small enough for a smooth progress bar
@dataclass(frozen=True, slots=True)
class Entry:
    """One usable image after the check pass: all the parent keeps per image (no pixels, no bytes)."""

    item: Item
    sha256: str
    phash: int
    height: int
    width: int
    converted_from: str
    stored_bytes: int


# ---------------------------------------------------------------- worker side (also used in-process)

_READER: Reader | None = None
_MAX_PIXELS = DEFAULT_MAX_PIXELS
_PROGRESS = None  # callable(n): a multiprocessing queue's put in workers, a progress bar in-process


def _init_worker(sources: list[tuple[str, str]], max_pixels: int, progress_queue) -> None:
    global _READER, _MAX_PIXELS, _PROGRESS
    _READER, _MAX_PIXELS = Reader(sources), max_pixels
    _PROGRESS = progress_queue.put if progress_queue is not None else None


def _check_chunk(chunk: list[tuple[int, int, str]]) -> list[tuple]:
    """[(position, source, member)] -> [(position, reason, sha256, phash, h, w, converted_from, stored_bytes, source_bytes)]."""
    out = []
    for position, source, member in chunk:
        try:
            data = _READER.read(source, member)
        except MemberTooLarge as e:  # a zip bomb: refused from the zip's directory, never inflated
            out.append((position, e.reason, "", 0, 0, 0, "", 0, 0))
            continue
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, RuntimeError):
            # a zip member with a bad CRC / broken deflate stream, or encrypted (RuntimeError): a reject, not a crash
            out.append((position, "unreadable", "", 0, 0, 0, "", 0, 0))
            continue
        checked = check_image(data, max_pixels=_MAX_PIXELS)
        stored = len(checked.encoded) if checked.encoded is not None else len(data)
        out.append((position, checked.reason, hashlib.sha256(data).hexdigest(), checked.phash, checked.height,
                    checked.width, checked.converted_from, stored, len(data)))
    return out


def _write_shard(spec: dict) -> dict:
    """Write one shard to a temp name, rename it into place, then write its done-marker."""
    tmp = spec["path"] + ".tmp"
    count = 0
    with tf.io.TFRecordWriter(tmp) as writer:
        for source, member, sha, label, text, image_id, converted, height, width in spec["records"]:
            data = _READER.read(source, member)
            if hashlib.sha256(data).hexdigest() != sha:
                raise DataError(f"{_READER.path(source)}/{member}: file changed while packing; run the pack again")
            encoded = data
            if converted:
                checked = check_image(data, max_pixels=_MAX_PIXELS)
                encoded, height, width = checked.encoded, checked.height, checked.width
            writer.write(make_example(encoded=encoded, height=height, width=width, label=label, label_text=text,
                                      image_id=image_id, source=member, sha256=sha, converted_from=converted))
            count += 1
            if _PROGRESS is not None and count % 16 == 0:
                _PROGRESS(16)
    if _PROGRESS is not None and count % 16:
        _PROGRESS(count % 16)
    final = manifest_lib.join(spec["out"], spec["file"])
    tf.io.gfile.rename(tmp, final, overwrite=True)
    info = {"file": spec["file"], "num_examples": count, "num_bytes": tf.io.gfile.stat(final).length,
            "sha256": manifest_lib.file_sha256(final)}
    manifest_lib.atomic_write_text(spec["marker"], json.dumps({**info, "digest": spec["digest"]}))
    return info


# ---------------------------------------------------------------- parent side

class _Runner:
    """Runs worker functions on a spawn pool (workers import TF themselves), or in-process for workers<=1."""

    def __init__(self, workers: int, sources: list[Source], max_pixels: int):
        self.workers = workers
        self.args = ([(s.path, s.kind) for s in sources], max_pixels)
        self.pool = self.queue = None

    def __enter__(self):
        if self.workers > 1:
            ctx = multiprocessing.get_context("spawn")  # fork after TF import is unsafe
            self.queue = ctx.Queue()
            self.pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=(*self.args, self.queue))
        else:
            _init_worker(*self.args, None)
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.terminate() if exc[0] is not None else self.pool.close()
            self.pool.join()
        return False

    def check(self, chunks, advance):
        if self.pool is None:
            for chunk in chunks:
                yield from _check_chunk(chunk)
                advance(len(chunk))
            return
        for result in self.pool.imap_unordered(_check_chunk, chunks):
            advance(len(result))
            yield from result

    def write(self, specs, advance):
        global _PROGRESS
        if self.pool is None:
            _PROGRESS = advance
            try:
                for spec in specs:
                    yield _write_shard(spec)
            finally:
                _PROGRESS = None
            return
        pending = [self.pool.apply_async(_write_shard, (spec,)) for spec in specs]
        while pending:
            try:
                advance(self.queue.get(timeout=0.1))
            except queue_lib.Empty:
                pass
            for job in [j for j in pending if j.ready()]:
                pending.remove(job)
                yield job.get()  # re-raises a worker's exception here
        while True:
            try:
                advance(self.queue.get_nowait())
            except queue_lib.Empty:
                break


def _progress_bar(enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
        console=console, disable=not (enabled and console.is_terminal), transient=False,
    )


def _advance(bar, task, start):
    def advance(n):
        bar.advance(task, n)
        done = bar.tasks[task].completed
        bar.update(task, rate=f"{done / max(time.perf_counter() - start, 1e-9):,.0f} img/s")

    return advance


def _fingerprint(sources: list[Source], config: dict, part: tuple[int, int] | None = None) -> str:
    """Identifies what a pack was made from: every source file's name/size/mtime (or zip CRC) + options."""
    blob = json.dumps({"format": manifest_lib.FORMAT, "config": config, "part": part,
                       "sources": [(s.layout, s.kind, s.digest) for s in sources]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_existing(out: str) -> dict | None:
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


def _clear(out: str, keep: set[str] = frozenset()) -> None:
    """Remove catdog's own files from out (shards not in `keep`, side files, leftovers); never anything else."""
    for name in tf.io.gfile.listdir(out):
        name = name.rstrip("/")
        if (SHARD_NAME.match(name) and name not in keep) or (not keep and name in SIDE_FILES):
            tf.io.gfile.remove(manifest_lib.join(out, name))


def _prepare_out(out: str, fingerprint: str, overwrite: bool, verify_existing: bool = True) -> dict | None:
    """Returns an existing complete manifest of the same pack (nothing to do), else readies `out`."""
    if tf.io.gfile.exists(out) and not tf.io.gfile.isdir(out):
        raise DataError(f"{out}: output exists and is not a folder")
    tf.io.gfile.makedirs(out)
    existing = _read_existing(out)
    if existing is not None and existing.get("fingerprint") != fingerprint:
        if not overwrite:
            what = f"{existing.get('splits', {}).get('train', {}).get('num_examples', '?')} train images, fingerprint " \
                   f"{str(existing.get('fingerprint'))[:12]}"
            raise DataError(f"{out}: holds a different pack ({what}); use --overwrite or another --out")
        tf.io.gfile.remove(manifest_lib.join(out, manifest_lib.MANIFEST_NAME))  # first: the folder stops being a pack
        partial = manifest_lib.join(out, PARTIAL_DIR)
        if tf.io.gfile.exists(partial):
            tf.io.gfile.rmtree(partial)
        _clear(out)
        existing = None
    if existing is not None and verify_existing and not manifest_lib.verify_shards(out, existing):
        return existing
    tf.io.gfile.makedirs(manifest_lib.join(out, PARTIAL_DIR))
    return None


def _plan_shards(entries: list[Entry], shard_size: int) -> list[list[Entry]]:
    """Contiguous runs of ~shard_size bytes (estimated from the stored sizes); at least one shard."""
    sizes = [e.stored_bytes + RECORD_OVERHEAD + len(e.item.image_id) + len(e.item.member) for e in entries]
    total = sum(sizes)
    count = max(1, math.ceil(total / shard_size))
    count = min(count, len(entries))
    shards: list[list[Entry]] = [[] for _ in range(count)]
    offset = 0
    for entry, size in zip(entries, sizes):
        shards[min(count - 1, int(offset * count / total))].append(entry)
        offset += size
    return [s for s in shards if s] or [entries]


def _csv(rows: list[tuple], header: tuple) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


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
        workers: processes for checking and writing; None = all cores, 0 or 1 = in this process.
        max_pixels: images whose header claims more pixels are rejected undecoded. Defaults to 40 MP.
        overwrite: replace a different pack already in `out`. Defaults to `False` (DataError instead).
        progress: show a progress bar (only on a terminal). Defaults to `True`.
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
    found, items, rejects = scan([str(s) for s in sources])
    classes = sorted({it.label for it in items if it.label})  # from names: identical on every machine
    config = {"val_fraction": float(val_fraction), "seed": seed, "shard_size": int(shard_size),
              "max_pixels": int(max_pixels)}
    fingerprint = _fingerprint(found, config)
    part = None
    if num_workers > 1:
        items = [it for it in items if _part_of(it.image_id, num_workers) == worker_index]
        rejects = [r for r in rejects if _part_of(r[0], num_workers) == worker_index]
        part = {"index": worker_index, "count": num_workers, "pack_fingerprint": fingerprint}
        fingerprint = _fingerprint(found, config, (worker_index, num_workers))
        out = part_dir(out, worker_index, num_workers)
    num_files = len(items) + len(rejects)
    check_pack_folder(out)
    tf.io.gfile.makedirs(out)
    with lock.exclusive(out, "pack"), disk_full(out, "packing"):  # one writer; ENOSPC -> one line
        existing = _prepare_out(out, fingerprint, overwrite)
        if existing is not None:
            return existing

        with _progress_bar(progress) as bar, _Runner(min(workers, max(1, len(items) // _CHUNK)), found, max_pixels) as runner:
            entries, source_bytes = _check_all(runner, bar, found, items, rejects)
            plan, report_rows = _plan(entries, rejects, val_fraction, seed, shard_size, found, classes, part is not None)
            shards = _write_all(runner, bar, plan, out, fingerprint)

        manifest = _manifest(found, config, fingerprint, plan, shards, rejects, report_rows,
                             seconds=time.perf_counter() - start, num_files=num_files,
                             source_bytes=source_bytes)
        extra = {}
        if part is not None:
            manifest["part"] = part
            extra[RECORDS_FILE] = _csv(_record_rows(plan, found), RECORD_COLUMNS)
        _finish(out, manifest, report_rows, rejects, extra)
        return manifest


RECORDS_FILE = "records.csv"  # per-record metadata of a part, so `merge` can dedupe across parts
RECORD_COLUMNS = ("id", "split", "shard", "sha256", "phash", "label", "source", "path", "converted_from")
PART_NAME = re.compile(r"^part-(\d{5})-of-(\d{5})$")


def part_dir(out: str, index: int, count: int) -> str:
    return manifest_lib.join(str(out), f"part-{index:05d}-of-{count:05d}")


def _part_of(key: str, count: int) -> int:
    """Which machine packs an image: a stable hash of its id (every machine scans the same names)."""
    return int(hashlib.sha256(f"part:{key}".encode()).hexdigest()[:12], 16) % count


def _record_rows(plan, found) -> list[tuple]:
    rows = []
    for split, shards in plan.splits.items():
        for i, members in enumerate(shards):
            file = f"{split}-{i:05d}-of-{len(shards):05d}.tfrecord"
            rows.extend((e.item.image_id, split, file, e.sha256, f"{e.phash:016x}", e.item.label, e.item.source,
                         display_path(found[e.item.source], e.item), e.converted_from) for e in members)
    return rows


def _check_all(runner, bar, found, items, rejects):
    """Pass 2: decode-check + hash every item in the workers. Returns usable entries (in scan order)."""
    chunks = [[(i, it.source, it.member) for i, it in enumerate(items[k:k + _CHUNK], start=k)]
              for k in range(0, len(items), _CHUNK)]
    task = bar.add_task("check", total=len(items), rate="")
    results: list[tuple | None] = [None] * len(items)
    source_bytes = 0
    for row in runner.check(chunks, _advance(bar, task, time.perf_counter())):
        results[row[0]] = row[1:]
    entries = []
    for item, (reason, sha, phash, height, width, converted, stored, size) in zip(items, results):
        source_bytes += size
        if reason:
            rejects.append((display_path(found[item.source], item), reason))
        else:
            entries.append(Entry(item, sha, phash, height, width, converted, stored))
    return entries, source_bytes


@dataclass
class _Plan:
    classes: list[str]
    splits: dict[str, list[list[Entry]]]  # split -> shards -> entries


def _plan(entries, rejects, val_fraction, seed, shard_size, found, classes, allow_empty=False):
    """Pass 3: dedupe, split, order, shard. Pure bookkeeping on the small per-image metadata."""
    # labeled before unlabeled, then by source and id: decides which copy of a duplicate is kept
    entries.sort(key=lambda e: (not e.item.label, e.item.source, e.item.image_id))
    report = analyse([Candidate(e.sha256, e.phash, e.item.label) for e in entries])
    kept = [e for e, k in zip(entries, report.keep) if k]
    by_split: dict[str, list[Entry]] = {s: [] for s in manifest_lib.SPLITS}
    for e in kept:
        by_split[assign_split(e.sha256, seed=seed, val_fraction=val_fraction, labeled=bool(e.item.label))].append(e)
    if not kept and not allow_empty:
        raise DataError(f"{', '.join(s.path for s in found)}: no usable images "
                        f"({len(rejects)} rejected: {_reasons_text(Counter(r for _, r in rejects))})")
    splits = {}
    for split, members in by_split.items():
        members.sort(key=lambda e: record_order(e.item.image_id, seed))
        splits[split] = _plan_shards(members, shard_size) if members else []

    def ident(i):  # the source path: what a user acts on (a dropped duplicate has no id in the pack)
        return display_path(found[entries[i].item.source], entries[i].item)

    rows = {
        "duplicates": [("exact", ident(a), ident(b), 0) for a, b in report.exact]
        + [("label-conflict", ident(a), ident(b), 0) for a, b in report.conflicts]
        + [("near", ident(a), ident(b), d) for a, b, d in report.near],
        "leakage": [(kind, ident(a), _split_of(entries[a], seed, val_fraction), ident(b), d)
                    for kind, a, b, d in report.leakage],
        "counts": {"exact": len(report.exact), "near": len(report.near), "label_conflicts": len(report.conflicts)},
    }
    return _Plan(classes, splits), rows


def _split_of(entry: Entry, seed: int, val_fraction: float) -> str:
    return assign_split(entry.sha256, seed=seed, val_fraction=val_fraction, labeled=bool(entry.item.label))


def _reasons_text(counts: Counter) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items())) or "none"


def _shard_digest(fingerprint: str, file: str, entries: list[Entry]) -> str:
    blob = "\n".join(f"{e.item.image_id}\t{e.sha256}\t{e.item.label}" for e in entries)
    return hashlib.sha256(f"{fingerprint}\n{file}\n{blob}".encode()).hexdigest()


def _done(out: str, file: str, marker: str, digest: str) -> dict | None:
    """The shard's info if a previous run completed it for exactly this plan (and it is intact)."""
    path = manifest_lib.join(out, file)
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


def _write_all(runner, bar, plan: _Plan, out: str, fingerprint: str) -> dict[str, list[dict]]:
    """Pass 4: write the shards not already complete; returns shard infos per split in manifest order."""
    label_index = {c: i for i, c in enumerate(plan.classes)}
    partial = manifest_lib.join(out, PARTIAL_DIR)
    planned = {f"{split}-{i:05d}-of-{len(shards):05d}.tfrecord": (split, members)
               for split, shards in plan.splits.items() for i, members in enumerate(shards)}
    _clear(out, keep=set(planned))  # shards of an older, different plan
    infos: dict[str, dict] = {}
    specs = []
    for file, (split, members) in planned.items():
        marker = manifest_lib.join(partial, file + ".done")
        digest = _shard_digest(fingerprint, file, members)
        info = _done(out, file, marker, digest)
        if info is not None:
            infos[file] = info
            continue
        records = [(e.item.source, e.item.member, e.sha256, label_index.get(e.item.label, UNLABELED), e.item.label,
                    e.item.image_id, e.converted_from, e.height, e.width) for e in members]
        specs.append({"file": file, "out": out, "path": manifest_lib.join(partial, file), "marker": marker,
                      "digest": digest, "records": records})
    total = sum(len(s["records"]) for s in specs)
    task = bar.add_task("write", total=total, rate="")
    for info in runner.write(specs, _advance(bar, task, time.perf_counter())):
        infos[info["file"]] = info
    return {split: [infos[f"{split}-{i:05d}-of-{len(shards):05d}.tfrecord"] for i in range(len(shards))]
            for split, shards in plan.splits.items()}


def _manifest(found, config, fingerprint, plan: _Plan, shards, rejects, rows, *, seconds, num_files, source_bytes):
    import catdog

    splits = {}
    for split in manifest_lib.SPLITS:
        members = [e for shard in plan.splits[split] for e in shard]
        counts = Counter(e.item.label for e in members)
        splits[split] = {
            "num_examples": len(members),
            "num_bytes": sum(s["num_bytes"] for s in shards[split]),
            "class_counts": {} if split == "test" else {c: counts.get(c, 0) for c in plan.classes},
            "shards": shards[split],
        }
    stored = [e for split in plan.splits.values() for shard in split for e in shard]
    converted = Counter(e.converted_from for e in stored if e.converted_from)
    per_source = Counter(e.item.source for e in stored)
    return {
        "format": manifest_lib.FORMAT,
        "catdog_version": catdog.__version__,
        "tensorflow_version": tf.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
        "config": config,
        "sources": [{"path": s.path, "layout": s.layout, "num_files": s.num_files, "num_packed": per_source.get(i, 0)}
                    for i, s in enumerate(found)],
        "classes": plan.classes,
        "splits": splits,
        "rejected": {"count": len(rejects), "by_reason": dict(sorted(Counter(r for _, r in rejects).items())),
                     "file": "rejected.csv"},
        "converted": {"count": sum(converted.values()), "by_format": dict(sorted(converted.items()))},
        "duplicates": {**rows["counts"], "file": "duplicates.csv"},
        "leakage": {"count": len(rows["leakage"]), "file": "leakage.csv"},
        "stats": {"seconds": round(seconds, 2), "images_per_second": round(num_files / max(seconds, 1e-9), 1),
                  "source_bytes": source_bytes},
    }


def _finish(out: str, manifest: dict, rows: dict, rejects, extra: dict[str, str] | None = None) -> None:
    """Side files, then the manifest (last: it is what makes the folder a pack), then clean up."""
    for name, text in (extra or {}).items():
        manifest_lib.atomic_write_text(manifest_lib.join(out, name), text)
    manifest_lib.atomic_write_text(manifest_lib.join(out, "rejected.csv"), _csv(sorted(rejects), ("path", "reason")))
    manifest_lib.atomic_write_text(manifest_lib.join(out, "duplicates.csv"),
                                   _csv(rows["duplicates"], ("kind", "kept", "duplicate", "distance")))
    manifest_lib.atomic_write_text(manifest_lib.join(out, "leakage.csv"),
                                   _csv(rows["leakage"], ("kind", "labeled", "labeled_split", "test", "distance")))
    manifest_lib.write_manifest(out, manifest)
    tf.io.gfile.rmtree(manifest_lib.join(out, PARTIAL_DIR))


def inspect(directory, verify: bool = True) -> tuple[dict, list[str]]:
    """Read a pack's manifest and (by default) re-hash every shard.

    Returns (manifest, problems): one line per missing or altered shard; empty when intact.
    Raises DataError when `directory` is not a pack.
    """
    directory = str(directory)
    manifest = manifest_lib.read_manifest(directory)
    return manifest, (manifest_lib.verify_shards(directory, manifest) if verify else [])
