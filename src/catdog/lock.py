"""One writer at a time per output folder: pack, merge, a training run folder, an export folder.

Two writers in one folder delete each other's temporary files and leave a pack whose manifest lists
shards that do not exist. So every writer holds `<folder>/.catdog.lock` for as long as it writes:

- Local folders: an exclusive `fcntl.flock` on the lock file. The kernel drops it when the process dies
  (kill -9, power cut of a client), so a stale lock of a dead process is simply free again: the next writer
  takes it over without anyone deleting anything. The file also holds the holder's pid, host and start time,
  which the second writer's one-line error shows. The file is removed on release; a writer that locked a
  file that was removed meanwhile (inode changed) retries on the new one, so two writers never both hold it.
- Object-store URLs (gs://, s3://): no flock exists. The lock is a marker object created only if absent
  (checked, then written; `tf.io.gfile` offers no conditional create, so two writers starting within the
  same second can both win: start one writer per folder). A marker left by a writer on THIS host whose
  pid is no longer alive is taken over; one from another host must be deleted by hand (the error says so).
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import socket
from contextlib import contextmanager
from typing import Iterator

from catdog.errors import DataError

LOCK_NAME = ".catdog.lock"


def _holder() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def describe(holder: dict) -> str:
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"


def _busy(folder: str, what: str, holder: dict) -> DataError:
    return DataError(f"{folder}: another catdog {what} is writing here ({describe(holder)}); wait for it to "
                     "finish or use another output folder")


def _read_holder(text: str) -> dict:
    try:
        holder = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


@contextmanager
def exclusive(folder, what: str = "writer") -> Iterator[str]:
    """Hold the folder's lock for the `with` block (the folder must exist); DataError if someone else holds it.

    `what` names the kind of writer in the error ("pack", "merge", "training run", "export").
    """
    folder = str(folder)
    if "://" in folder:
        with _marker(folder, what) as path:
            yield path
        return
    with _flock(folder, what) as path:
        yield path


@contextmanager
def _flock(folder: str, what: str) -> Iterator[str]:
    import fcntl

    path = os.path.join(folder, LOCK_NAME)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _busy(folder, what, _read_holder(text)) from None
            raise
        try:  # the previous holder may have removed the file between our open and our flock: lock the new one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        data = json.dumps(_holder()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        yield path
    finally:
        try:
            os.unlink(path)  # while still locked: a waiting writer then sees a new inode and retries
        except OSError:
            pass
        os.close(fd)  # releases the flock


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True  # exists but not ours, or unreadable: assume a live holder
    return True


@contextmanager
def _marker(folder: str, what: str) -> Iterator[str]:
    from catdog._tf import tf  # quietly, whichever module imports TensorFlow first

    path = f"{folder.rstrip('/')}/{LOCK_NAME}"
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            holder = _read_holder(f.read())
        if holder.get("host") == socket.gethostname() and not _alive(holder.get("pid")):
            tf.io.gfile.remove(path)  # stale: its writer on this machine is gone
        else:
            raise DataError(f"{folder}: another catdog {what} is writing here ({describe(holder)}); if no writer "
                            f"is running any more, delete {path}")
    mine = _holder()
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(mine))
    try:
        yield path
    finally:
        try:
            tf.io.gfile.remove(path)
        except Exception:  # noqa: BLE001 - releasing must never hide the error that ended the block
            pass
