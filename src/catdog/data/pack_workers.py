"""The work pack does per image: check (in worker processes, or in-process for workers <= 1), then write.

Checking decodes every image (Pillow) and is the CPU-heavy pass, so it runs on a pool of workers started
with `spawn` (fork after TensorFlow is imported is unsafe). The workers never import TensorFlow: that
import costs ~3 s of CPU per process, more than checking 2,000 photos. Writing the shards (re-read, hash,
serialize, append) is cheap per image and runs in the parent, which has TensorFlow anyway. State lives in
module globals set once by `init_worker`: a `Reader` (one open ZipFile per archive), the pixel limit, and
where to report progress. The parent only ever receives ~200 bytes per image from a worker, never pixels.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
import zipfile
import zlib

from catdog import atomic
from catdog.data.imagecheck import DEFAULT_MAX_PIXELS, check_image
from catdog.data.scan import MemberTooLarge, Reader, Source
from catdog.errors import DataError

# Test hook: a process that has written this many shards stops and waits to be killed, so a test can kill a
# pack mid-way without racing it (see tests/test_pack_kill.py). Unset in normal use.
PAUSE_ENV = "CATDOG_TEST_PAUSE_AFTER_SHARDS"

_READER: Reader | None = None
_MAX_PIXELS = DEFAULT_MAX_PIXELS
_PROGRESS = None  # callable(n): the write pass's progress reporter
_SHARDS_WRITTEN = 0  # by this process, for PAUSE_ENV


def init_worker(sources: list[tuple[str, str]], max_pixels: int) -> None:
    global _READER, _MAX_PIXELS
    _READER, _MAX_PIXELS = Reader(sources), max_pixels


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
    from catdog._tf import tf
    from catdog.data import manifest as manifest_lib
    from catdog.data.records import make_example

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
    """Checks on a spawn pool (or in-process for workers <= 1); writes in this process."""

    def __init__(self, workers: int, sources: list[Source], max_pixels: int):
        self.workers = workers
        self.args = ([(s.path, s.kind) for s in sources], max_pixels)
        self.pool = None

    def __enter__(self):
        if self.workers > 1:
            ctx = multiprocessing.get_context("spawn")  # fork after TF import is unsafe
            self.pool = ctx.Pool(self.workers, initializer=init_worker, initargs=self.args)
        init_worker(*self.args)  # this process writes
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.terminate()  # idle once every result was read; else (an error, a no-op re-run) unwanted
            self.pool.join()
        return False

    def start_checks(self, chunks):
        """Hand every chunk to the workers now, so they check while this process goes on (it imports
        TensorFlow meanwhile); returns an iterator of each chunk's rows. In-process: checked as it is read."""
        if self.pool is None:
            return (check_chunk(chunk) for chunk in chunks)
        return self.pool.imap_unordered(check_chunk, chunks)

    def write(self, specs, advance):
        global _PROGRESS
        _PROGRESS = advance
        try:
            for spec in specs:
                yield write_shard(spec)
        finally:
            _PROGRESS = None
