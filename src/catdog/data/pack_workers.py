"""The work pack does per image, in worker processes (or in-process for workers <= 1): check, then write.

Workers are started with `spawn` (fork after TensorFlow is imported is unsafe) and keep their state in
module globals set once by `init_worker`: a `Reader` (one open ZipFile per archive), the pixel limit, and
where to report progress. The parent only ever receives ~200 bytes per image, never pixels.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue as queue_lib
import time
import zipfile
import zlib

import tensorflow as tf

from catdog import atomic
from catdog.data import manifest as manifest_lib
from catdog.data.imagecheck import DEFAULT_MAX_PIXELS, check_image
from catdog.data.records import make_example
from catdog.data.scan import MemberTooLarge, Reader, Source
from catdog.errors import DataError

# Test hook: a process that has written this many shards stops and waits to be killed, so a test can kill a
# pack mid-way without racing it (see tests/test_pack_kill.py). Unset in normal use.
PAUSE_ENV = "CATDOG_TEST_PAUSE_AFTER_SHARDS"

_READER: Reader | None = None
_MAX_PIXELS = DEFAULT_MAX_PIXELS
_PROGRESS = None  # callable(n): a multiprocessing queue's put in workers, a progress reporter in-process
_SHARDS_WRITTEN = 0  # by this process, for PAUSE_ENV


def init_worker(sources: list[tuple[str, str]], max_pixels: int, progress_queue) -> None:
    global _READER, _MAX_PIXELS, _PROGRESS
    _READER, _MAX_PIXELS = Reader(sources), max_pixels
    _PROGRESS = progress_queue.put if progress_queue is not None else None


def check_chunk(chunk: list[tuple[int, int, str]]) -> list[tuple]:
    """[(position, source, member)] -> [(position, reason, sha256, phash, h, w, converted_from, stored_bytes,
    source_bytes, orientation, exif_problem)]."""
    out = []
    for position, source, member in chunk:
        try:
            data = _READER.read(source, member)
        except MemberTooLarge as e:  # a zip bomb: refused from the zip's directory, never inflated
            out.append((position, e.reason, "", 0, 0, 0, "", 0, 0, 1, ""))
            continue
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error, RuntimeError):
            # a zip member with a bad CRC / broken deflate stream, or encrypted (RuntimeError): a reject, not a crash
            out.append((position, "unreadable", "", 0, 0, 0, "", 0, 0, 1, ""))
            continue
        checked = check_image(data, max_pixels=_MAX_PIXELS)
        stored = len(checked.encoded) if checked.encoded is not None else len(data)
        out.append((position, checked.reason, hashlib.sha256(data).hexdigest(), checked.phash, checked.height,
                    checked.width, checked.converted_from, stored, len(data), checked.orientation, checked.exif_problem))
    return out


def write_shard(spec: dict) -> dict:
    """Write one shard under a temporary name, rename it into place, then write its done-marker."""
    final = manifest_lib.join(spec["out"], spec["file"])
    count = 0
    with atomic.writing(final) as tmp, tf.io.TFRecordWriter(tmp) as writer:
        for source, member, sha, label, text, image_id, converted, height, width, orientation in spec["records"]:
            data = _READER.read(source, member)
            if hashlib.sha256(data).hexdigest() != sha:
                raise DataError(f"{_READER.path(source)}/{member}: file changed while packing; run the pack again")
            encoded = data
            if converted:
                checked = check_image(data, max_pixels=_MAX_PIXELS)
                encoded, height, width = checked.encoded, checked.height, checked.width
            writer.write(make_example(encoded=encoded, height=height, width=width, label=label, label_text=text,
                                      image_id=image_id, source=member, sha256=sha, converted_from=converted,
                                      orientation=orientation))
            count += 1
            if _PROGRESS is not None and count % 16 == 0:
                _PROGRESS(16)
    if _PROGRESS is not None and count % 16:
        _PROGRESS(count % 16)
    info = {"file": spec["file"], "num_examples": count, "num_bytes": tf.io.gfile.stat(final).length,
            "sha256": manifest_lib.file_sha256(final)}
    atomic.write_text(spec["marker"], json.dumps({**info, "digest": spec["digest"]}))
    _maybe_pause()
    return info


def _maybe_pause() -> None:
    global _SHARDS_WRITTEN
    _SHARDS_WRITTEN += 1
    if os.environ.get(PAUSE_ENV) and _SHARDS_WRITTEN >= int(os.environ[PAUSE_ENV]):
        while True:  # until killed
            time.sleep(60)


class Runner:
    """Runs the worker functions on a spawn pool (workers import TF themselves), or in-process for workers<=1."""

    def __init__(self, workers: int, sources: list[Source], max_pixels: int):
        self.workers = workers
        self.args = ([(s.path, s.kind) for s in sources], max_pixels)
        self.pool = self.queue = None

    def __enter__(self):
        if self.workers > 1:
            ctx = multiprocessing.get_context("spawn")  # fork after TF import is unsafe
            self.queue = ctx.Queue()
            self.pool = ctx.Pool(self.workers, initializer=init_worker, initargs=(*self.args, self.queue))
        else:
            init_worker(*self.args, None)
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.terminate() if exc[0] is not None else self.pool.close()
            self.pool.join()
        return False

    def check(self, chunks, advance):
        if self.pool is None:
            for chunk in chunks:
                yield from check_chunk(chunk)
                advance(len(chunk))
            return
        for result in self.pool.imap_unordered(check_chunk, chunks):
            advance(len(result))
            yield from result

    def write(self, specs, advance):
        global _PROGRESS
        if self.pool is None:
            _PROGRESS = advance
            try:
                for spec in specs:
                    yield write_shard(spec)
            finally:
                _PROGRESS = None
            return
        pending = [self.pool.apply_async(write_shard, (spec,)) for spec in specs]
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
