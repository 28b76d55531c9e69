"""Temp-file-then-rename writes: the one place that makes sure no reader ever sees half a file.

Every file catdog writes (manifest, shards, CSVs, JSON side files, models, exports) goes through here:
the data is written under a hidden temporary name in the SAME folder (a rename is only atomic within one
filesystem), flushed to disk with fsync, then renamed over the final name with `os.replace`. A crash or a
kill leaves either the old file or the new one, plus at most a `.tmp-<pid>-<name>` file that nothing reads.

The temporary name keeps the final name as its ending, so writers that pick a format from the suffix
(`model.save("x.keras")`, `save_weights("x.weights.h5")`) work on it unchanged.

Paths with a scheme (gs://, s3://, ...) go through `tf.io.gfile` (imported only then, TensorFlow is slow to
import); object stores have no fsync, and their rename is the best atomicity they offer.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TEMP_PREFIX = ".tmp-"  # every temporary name starts with this: hidden, and never all digits (TF Serving versions)


def is_url(path) -> bool:
    return "://" in str(path)


def temp_path(path) -> str:
    """The temporary name for `path`: same folder, hidden, unique per process, same ending."""
    path = str(path)
    if is_url(path):
        head, name = posixpath.split(path)
        return posixpath.join(head, f"{TEMP_PREFIX}{os.getpid()}-{name}")
    head, name = os.path.split(path)
    return os.path.join(head, f"{TEMP_PREFIX}{os.getpid()}-{name}")


@contextmanager
def writing(path) -> Iterator[str]:
    """Yield a temporary path to write `path`'s content to (a file or a folder); renamed over `path` on success.

    For writers that need a file name of their own (keras `model.save`, a TFRecord writer, a SavedModel
    export): everything written to the yielded path appears under `path` at once when the block ends
    without an exception. On an exception the temporary file or folder is removed and `path` is untouched.
    Checks done inside the block (e.g. export's parity check) therefore decide whether the result appears.
    """
    tmp = temp_path(path)
    try:
        yield tmp
        _commit(tmp, str(path))
    except BaseException:
        _remove(tmp)
        raise


def write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with writing(path) as tmp:
        if is_url(tmp):
            import tensorflow as tf

            with tf.io.gfile.GFile(tmp, "wb") as f:
                f.write(data)
        else:
            with open(tmp, "wb") as f:
                f.write(data)


def write_text(path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, data, *, indent: int | None = 2, **dumps_kwargs) -> None:
    """Write `data` as JSON plus a final newline, atomically; extra keywords go to json.dumps (e.g. default=)."""
    write_text(path, json.dumps(data, indent=indent, **dumps_kwargs) + "\n")


def _commit(tmp: str, path: str) -> None:
    if is_url(tmp):
        import tensorflow as tf

        tf.io.gfile.rename(tmp, path, overwrite=True)
        return
    if os.path.isfile(tmp):
        _fsync(tmp)
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path) or ".")


def _fsync(path: str) -> None:
    """Flush a file's data to disk before it gets its final name (else a power cut can leave an empty file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: str) -> None:
    """Flush the rename itself (the folder entry); not possible on every OS, so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale(folder) -> list[str]:
    """Remove the temporary files and folders that killed processes left in a local `folder` (kill -9 gives
    no chance to clean up; a SavedModel's is megabytes). Call it holding the folder's lock; names of live
    processes are kept. Returns the names removed."""
    removed = []
    if is_url(folder) or not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        pid = name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not (name.startswith(TEMP_PREFIX) and pid.isdecimal()) or _alive(int(pid)):
            continue
        _remove(os.path.join(folder, name))
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, someone else's
        return True
    return True


def _remove(tmp: str) -> None:
    try:
        if is_url(tmp):
            import tensorflow as tf

            if tf.io.gfile.isdir(tmp):
                tf.io.gfile.rmtree(tmp)
            elif tf.io.gfile.exists(tmp):
                tf.io.gfile.remove(tmp)
        elif os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            Path(tmp).unlink(missing_ok=True)
    except Exception:  # cleanup must never hide the error that brought us here
        pass
