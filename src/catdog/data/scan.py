"""Find the images in each pack source (a folder or a .zip) and give each a stable id, label and split.

The layout is decided per source from file NAMES by catdog.data.layout (flat Kaggle names, class
folders, numbered test files, split folders train/ val/ test/), never from contents (contents are
checked later). A zip is read in place with `zipfile`, never extracted. A file that fits no layout
becomes a reject with a reason (one stray file never aborts a pack); a source where nothing fits is a
DataError. Only small metadata is kept per file: bytes are read later, by the worker that needs them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import zipfile
from dataclasses import dataclass

from catdog.data.layout import LAYOUTS, detect  # noqa: F401 - re-exported: scan is where callers look
from catdog.errors import DataError


@dataclass(frozen=True, slots=True)
class Source:
    """One SRC argument: where it is, how it is laid out, and a digest of its listing (for the fingerprint)."""

    path: str  # absolute path as the user named it
    kind: str  # "dir" or "zip"
    layout: str  # one of LAYOUTS
    num_files: int  # files seen (images and rejects)
    digest: str  # sha256 over (name, size, mtime or CRC) of every file: changes when the files do


@dataclass(frozen=True, slots=True)
class Item:
    """One candidate image. `member` is relative to its source (a zip member name inside a zip)."""

    source: int  # index into the list of sources
    member: str
    image_id: str
    label: str  # class name; "" = unlabeled (split `test`)
    split: str = ""  # "" = by content hash; "train" | "val" | "test" when a split folder gave it


def _hidden(rel: str) -> bool:
    # .DS_Store, .git/, __MACOSX/ (zip resource forks) are never images; `..` is not hidden but unsafe (layout.py)
    return any((part.startswith(".") and part != "..") or part == "__MACOSX" for part in rel.split("/"))


def list_folder(root: str, broken: list | None = None) -> list[tuple[str, str]]:
    """(relative posix path, change token) of every non-hidden file under `root`, in sorted order (pack, predict).

    A symlink that leads nowhere (dangling, or a loop) has no size to list: with `broken` given, it goes
    there as (path, reason) instead (pack lists it in rejected.csv); otherwise it is listed with the token
    "broken" (predict then fails to read it and names it). Never a traceback.
    """
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError as e:
                reason = "link-loop" if e.errno == errno.ELOOP else "dangling-link" \
                    if os.path.islink(os.path.join(dirpath, name)) else "unreadable"
                if broken is None:
                    entries.append((rel, "broken"))
                else:
                    broken.append((rel, reason))
                continue
            entries.append((rel, f"{st.st_size}:{st.st_mtime_ns}"))
    return sorted(entries)


def list_zip(path: str) -> list[tuple[str, str]]:
    """(member name, change token) of every non-hidden file in a zip, sorted; DataError if it is unreadable."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: cannot read the zip archive ({e})") from e
    return sorted((i.filename, f"{i.file_size}:{i.CRC:08x}") for i in infos if not i.is_dir() and not _hidden(i.filename))


def scan_source(path: str, index: int = 0, notices: list[str] | None = None) -> tuple[Source, list[Item], list[tuple[str, str]]]:
    """One SRC -> (Source, items, rejects as (display path, reason)). DataError for a missing/empty/unlabeled
    source; one-line warnings (ignored sub-folders, given splits) are appended to `notices`."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    broken: list[tuple[str, str]] = []
    if os.path.isdir(path):
        kind, entries = "dir", list_folder(path, broken)
    elif os.path.isfile(path) and (zipfile.is_zipfile(path) or path.lower().endswith(".zip")):
        kind, entries = "zip", list_zip(path)  # a broken .zip gets list_zip's "cannot read" error
    elif os.path.exists(path):
        raise DataError(f"{path}: not a folder or a .zip archive")
    else:
        raise DataError(f"{path}: source folder does not exist")
    names = [name for name, _ in entries]
    found = detect(names, path)
    if notices is not None:
        notices.extend(found.notices)
    digest = hashlib.sha256("\n".join(f"{n}\t{token}" for n, token in entries).encode()).hexdigest()
    source = Source(path=path, kind=kind, layout=found.layout, num_files=len(names), digest=digest)
    items = _unique_ids([Item(index, f.name, f.image_id, f.label, f.split) for f in found.images])
    return source, items, [(f"{path}/{name}", reason) for name, reason in found.rejects + broken]


def _unique_ids(items: list[Item]) -> list[Item]:
    """`cat.1.jpg` + `cat.1.png` would share id `cat.1`: later ones keep their extension, then get `#n`."""
    seen: set[str] = set()
    out = []
    for item in items:
        image_id = item.image_id
        if image_id in seen:
            image_id = f"{item.image_id}.{item.member.rsplit('.', 1)[-1]}"
            n = 2
            while image_id in seen:
                image_id, n = f"{item.image_id}#{n}", n + 1
            item = Item(item.source, item.member, image_id, item.label, item.split)
        seen.add(image_id)
        out.append(item)
    return out


def scan(paths: list[str], notices: list[str] | None = None) -> tuple[list[Source], list[Item], list[tuple[str, str]]]:
    """All sources -> (sources, items with pack-wide unique ids, rejects); warnings go to `notices`."""
    if not paths:
        raise DataError("no source given: name at least one folder or .zip to pack")
    sources, items, rejects = [], [], []
    for index, path in enumerate(paths):
        source, found, bad = scan_source(path, index, notices)
        sources.append(source)
        items.extend(found)
        rejects.extend(bad)
    return sources, _unique_ids(items), rejects


def display_path(source: Source, item: Item) -> str:
    return f"{source.path}/{item.member}"


class Reader:
    """Reads item bytes; keeps one open ZipFile per archive (workers each own one Reader)."""

    def __init__(self, sources: list[tuple[str, str]]):
        self._sources = sources  # (path, kind) per source index
        self._zips: dict[int, zipfile.ZipFile] = {}

    def path(self, source: int) -> str:
        return self._sources[source][0]

    def read(self, source: int, member: str) -> bytes:
        path, kind = self._sources[source]
        if kind == "dir":
            with open(os.path.join(path, member), "rb") as f:
                return f.read()
        if source not in self._zips:
            self._zips[source] = zipfile.ZipFile(path)
        info = self._zips[source].getinfo(member)
        check_member(info, path)  # before a byte is inflated: a 2 GiB member of zeros is a 2 MB zip
        return self._zips[source].read(info)


# A zip member is refused from its directory entry, before reading: zipfile never inflates past the declared
# size, so checking the declared size bounds memory. Photos barely compress (JPEG/PNG are compressed already);
# only a big member that compresses more than MAX_RATIO is suspicious (a flat BMP may compress well, but small).
MAX_MEMBER_BYTES = 256 * 2**20  # a 40 MP 32-bit BMP is 160 MB; nothing usable is larger
MAX_RATIO = 100
_RATIO_FLOOR = 4 * 2**20  # members smaller than this may compress as much as they like


class MemberTooLarge(zipfile.BadZipFile):
    """A zip member refused before reading; `reason` is a rejected.csv reason code."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def check_member(info: zipfile.ZipInfo, archive: str = "") -> None:
    """MemberTooLarge when a member's declared size or compression ratio is beyond what a photo can be."""
    name = f"{archive}:{info.filename}" if archive else info.filename
    if info.file_size > MAX_MEMBER_BYTES:
        raise MemberTooLarge(f"{name}: {info.file_size:,} bytes uncompressed, above the {MAX_MEMBER_BYTES:,}-byte "
                             "limit for one image", "too-large")
    if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise MemberTooLarge(f"{name}: compressed {info.file_size / max(info.compress_size, 1):,.0f}:1, above the "
                             f"{MAX_RATIO}:1 limit (a zip bomb?)", "compression-ratio")
