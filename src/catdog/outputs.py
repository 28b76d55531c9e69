"""Output targets: catdog never destroys a file it did not create.

A rename-into-place write replaces whatever sits at the final name: a user's photo, a run's best.keras, a
symlink (the link itself is replaced), even a device node (as root, `-o /dev/null` used to turn /dev/null
into a regular file). So every output is checked BEFORE any work is done:

- `check_pack_folder`: pack writes only into a missing folder (it creates it), an empty one, or one holding
  a catdog pack (a manifest, its `.partial/` state, or `part-*-of-N/` folders of a multi-machine pack).
- `check_output_file`: predict's CSV (and its `.skipped.csv`), evaluate's files: never through a symlink,
  never over a non-regular file or over an input or a model; an existing regular file is replaced only if
  it is a CSV (or, with `replaceable`, a file catdog wrote) and the caller says so on screen.
- `disk_full`: ENOSPC anywhere inside becomes one line naming the path and the free space left.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from catdog.errors import ConfigError, DataError

PACK_OWN = re.compile(r"^(manifest\.json|\.partial|\.catdog\.lock|part-\d{5}-of-\d{5})$")
_PACK_MARKERS = re.compile(r"^(manifest\.json|\.partial|part-\d{5}-of-\d{5})$")
# what a pack writes besides its manifest (pack_state's SHARD_NAME, SIDE_FILES, RECORDS_FILE, spelled out here:
# importing catdog.data imports TensorFlow): a folder of these alone may be a pack that lost its manifest.json
_PACK_FILES = re.compile(r"^((train|val|test)-\d{5}-of-\d{5}\.tfrecord|(rejected|duplicates|leakage|records)\.csv)$")


def _listdir(folder: str) -> list[str]:
    if "://" in folder:
        import tensorflow as tf

        return [n.rstrip("/") for n in tf.io.gfile.listdir(folder)]
    return os.listdir(folder)


def _exists(path: str) -> bool:
    if "://" in path:
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.lexists(path)


def _isdir(path: str) -> bool:
    if "://" in path:
        import tensorflow as tf

        return tf.io.gfile.isdir(path)
    return os.path.isdir(path) and not os.path.islink(path)


def check_pack_folder(out: str) -> None:
    """DataError unless `out` is missing, empty (but for a lock file) or holds a catdog pack."""
    out = str(out)
    if "://" not in out and os.path.islink(out):
        raise DataError(f"{out}: output is a symbolic link; give the real folder")
    if not _exists(out):
        return
    if not _isdir(out):
        raise DataError(f"{out}: output exists and is not a folder")
    names = [n for n in _listdir(out) if n != ".catdog.lock"]
    if not names or any(_PACK_MARKERS.match(n) for n in names):
        return
    if all(_PACK_FILES.match(n) for n in names):  # never rewritten: shard-like names may be someone's own files
        raise DataError(f"{out}: holds shard and report files but no manifest.json (a pack that lost it, or files "
                        "named like one); catdog cannot tell them from yours: delete the folder and pack again")
    shown = ", ".join(sorted(names)[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    raise DataError(f"{out}: output folder is not empty and holds no catdog pack ({shown}); pack writes only into "
                    "an empty folder, a new one or an existing pack (--overwrite replaces only a catdog pack)")


def check_plain_name(name: str, option: str = "--name") -> None:
    """A run name is one folder name: no path separators, no `..`, nothing hidden or empty."""
    bad = (not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name
           or "\0" in name or (os.altsep and os.altsep in name))
    if bad:
        raise ConfigError(f"{option} {name!r}: must be a plain folder name (no '/', no '..', not hidden)")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _real(path) -> Path:
    return Path(os.path.realpath(os.path.abspath(str(path))))


def within(path, folder) -> bool:
    """`path` is `folder` or lies inside it, links resolved (local paths; a path need not exist yet)."""
    real, root = _real(path), _real(folder)
    return real == root or _inside(real, root)


def check_output_file(path, *, protected: Iterable = (), what: str = "output", replaceable=None) -> bool:
    """Check one output file before any work; returns True when an existing file will be replaced.

    Args:
        path: the final file name.
        protected: inputs and models (files or folders): an existing file equal to or inside one of them is
            never replaced.
        what: the option name for messages (`-o`, `--out`).
        replaceable: callable(Path) -> bool for existing regular files that may be replaced; default: `.csv` files.
    """
    path = Path(path)
    if path.is_symlink():
        raise ConfigError(f"{path}: {what} is a symbolic link; refusing to write through it (give the real path)")
    if not path.exists():
        return False
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (device, pipe or socket)"
        raise ConfigError(f"{path}: {what} is {kind}; refusing to replace it")
    real = _real(path)
    for item in protected:
        if "://" in str(item):
            continue
        root = _real(item)
        if real == root or (root.is_dir() and _inside(real, root)):
            where = "is" if real == root else "is inside"
            raise ConfigError(f"{path}: {what} {where} an input or model ({item}); refusing to replace it")
    allowed = replaceable(path) if replaceable is not None else path.suffix.lower() == ".csv"
    if not allowed:
        raise ConfigError(f"{path}: {what} exists and is not a file catdog writes here; refusing to replace it "
                          "(remove it or choose another name)")
    return True


def check_output_folder(folder, *, what: str = "--out") -> None:
    """An output folder must not be a symlink, nor exist as something other than a folder."""
    folder = Path(folder)
    if folder.is_symlink():
        raise ConfigError(f"{folder}: {what} is a symbolic link; refusing to write through it (give the real folder)")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: {what} exists and is not a folder")


def free_space(path: str) -> str:
    """'1.2 MB free' for the filesystem holding `path` (or its nearest existing parent)."""
    probe = os.path.abspath(path)
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        free = shutil.disk_usage(probe or "/").free
    except OSError:
        return "free space unknown"
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if free >= size:
            return f"{free / size:.1f} {unit} free"
    return f"{free} bytes free"


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text


def environment_error(error: BaseException) -> str | None:
    """One line for a failure of the machine rather than of catdog: permission denied, a read-only or full
    disk, a path through a file. None for anything else (a bug keeps its traceback)."""
    if _is_disk_full(error):
        return _disk_full_message(getattr(error, "filename", None) or "")
    if isinstance(error, OSError) and error.errno in _ENVIRONMENT_ERRNOS:
        where = error.filename or ""
        return f"{where + ': ' if where else ''}{error.strerror or error}"
    if type(error).__module__.startswith("tensorflow") and type(error).__name__ in ("PermissionDeniedError",
                                                                                    "NotFoundError"):
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return None


_ENVIRONMENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENOENT)


@contextmanager
def disk_full(path, what: str = "writing") -> Iterator[None]:
    """Turn 'no space left on device' (an OSError, a TensorFlow error, or a worker's error) into one DataError."""
    try:
        yield
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - only disk-full errors are translated; the rest re-raise unchanged
        if not _is_disk_full(e):
            raise
        where = str(path) if "://" in str(path) else os.path.abspath(str(path))
        raise DataError(_disk_full_message(where, what)) from None


def _disk_full_message(where: str, what: str = "") -> str:
    return (f"{where + ': ' if where else ''}disk full{' while ' + what if what else ''} ({free_space(where or '.')}); "
            "free some space and run the same command again")


def check_report_folder(folder, files: Iterable[str], *, protected: Iterable = (), what: str = "output") -> None:
    """A folder of catdog's own report files (evaluate's RUN/eval/<split>/): neither it, its parent, nor any of
    `files` may be a symlink or a non-regular file; existing regular files there are catdog's and get replaced."""
    folder = Path(folder)
    for level in (folder.parent, folder):
        check_output_folder(level, what=what)
    for name in files:
        check_output_file(folder / name, protected=protected, what=what, replaceable=lambda _: True)
