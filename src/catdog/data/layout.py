"""Decide how a pack source is laid out, from file NAMES only (contents are checked later). Pure: no I/O.

Layouts understood (LAYOUTS_TEXT, quoted in every layout error):

    flat      Kaggle `train/`: `<class>.<id>.<ext>`   -> label `<class>`, id `cat.123` (the stem)
    classes   `SRC/<class>/...`                      -> label = sub-folder, id `<class>/<stem>`
    numbered  Kaggle `test1/`: `<number>.<ext>`       -> unlabeled (split `test`), id = the number
    splits    `SRC/train/<class>/...` + `SRC/val/<class>/...` (also `valid/`, `validation/`) and an
              optional `SRC/test/<class>/...` (labeled test) or `SRC/test/*` (unlabeled, id = stem);
              each split folder may also be Kaggle-flat. The given splits are kept: `--val-fraction`
              only splits `train/` when there is no val folder.

Before deciding, the data root is found: a source whose only folder holds the data (Kaggle's
`train.zip` -> `train/`, Microsoft's `kagglecatsanddogs.zip` -> `PetImages/` beside a licence PDF) is
read from inside that folder. Unsafe names (absolute, `..`), system files (`Thumbs.db`) and documents or
data files (`labels.json`, `notes/readme.txt`) are rejected by name and never decide anything. A file that
fits no layout is a reject with a reason; a tree that is ambiguous (split folders beside other folders) or
unlabeled is a one-line DataError naming the folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from catdog.errors import DataError
from catdog.imageformats import IMAGE_EXTENSIONS

LAYOUTS = ("flat", "classes", "numbered", "splits")
LAYOUTS_TEXT = ("class folders (SRC/cat/*.jpg), Kaggle names (cat.1.jpg), numbered test files (1.jpg), "
                "or split folders (SRC/train/<class>/, SRC/val/<class>/, optional SRC/test/)")
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
SYSTEM_FILES = {"thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"}  # Windows/macOS folder metadata
# Endings of files that sit beside photos in real downloads and are never images: rejected by name
DOCUMENT_EXTENSIONS = (".txt", ".md", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".yaml", ".yml", ".html",
                       ".htm", ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".log", ".ini", ".cfg", ".py", ".ipynb",
                       ".sh", ".zip", ".tar", ".gz", ".tgz", ".7z", ".rar", ".npy", ".npz", ".pkl", ".mat", ".h5",
                       ".tfrecord", ".db", ".sqlite", ".lst", ".names")
_FLAT = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9]+)$")  # cat.123.jpg
_NUMBERED = re.compile(r"^(\d+)\.([A-Za-z0-9]+)$")  # 123.jpg


@dataclass(frozen=True, slots=True)
class Found:
    """One candidate image: its full name in the source, id, label ("" = unlabeled) and given split."""

    name: str
    image_id: str
    label: str
    split: str = ""  # "" = decided later by content hash; else "train" | "val" | "test" from a split folder


@dataclass
class Layout:
    layout: str
    images: list[Found]
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    notices: list[str] = field(default_factory=list)  # one-line warnings for the user


def unsafe(name: str) -> bool:
    """An absolute path or one climbing out with `..` (a hostile or broken zip member)."""
    return name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) is not None or ".." in re.split(r"[/\\]", name)


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _is_document_name(name: str) -> bool:
    return name.lower().endswith(DOCUMENT_EXTENSIONS)


def _flat_or_numbered(names: list[str]) -> tuple[str, list[tuple[str, str, str]]] | None:
    """Loose names -> ("flat"|"numbered", [(name, id, label)]) by whichever pattern matches more; None if neither."""
    flat = [(n, f"{m.group(1)}.{m.group(2)}", m.group(1)) for n in names if (m := _FLAT.match(n))]
    numbered = [(n, m.group(1), "") for n in names if (m := _NUMBERED.match(n))]
    if not flat and not numbered:
        return None
    return ("flat", flat) if len(flat) >= len(numbered) else ("numbered", numbered)


def _data_root(names: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """The prefix ('' or 'PetImages/') under which the data sits, and the loose files left outside it.

    Descend into a single top folder when no image file sits beside it and it holds folders or
    Kaggle-style names (a lone class folder `cat/a.jpg` stays a class)."""
    prefix, outside = "", []
    while True:
        rest = [n[len(prefix):] for n in names if n.startswith(prefix)]
        tops = {r.split("/", 1)[0] for r in rest if "/" in r}
        loose = [r for r in rest if "/" not in r]
        if len(tops) != 1 or any(_is_image_name(r) for r in loose):
            return prefix, outside
        top = tops.pop()
        inner = [r.split("/", 1)[1] for r in rest if r.startswith(top + "/")]
        if not (any("/" in r for r in inner) or _flat_or_numbered(inner)):
            return prefix, outside
        outside += [(prefix + r, "outside-data-folder") for r in loose]
        prefix += top + "/"


def detect(names: list[str], where: str) -> Layout:
    """Relative names (posix) -> Layout. DataError for an empty, unlabeled or ambiguous tree."""
    if not names:
        raise DataError(f"{where}: no files found (empty folder)")
    rejects = [(n, "unsafe-path") for n in names if unsafe(n)]
    rejects += [(n, "system-file") for n in names if not unsafe(n) and n.rsplit("/", 1)[-1].lower() in SYSTEM_FILES]
    bad = {n for n, _ in rejects}
    names = [n for n in names if n not in bad]
    if not names:
        raise DataError(f"{where}: no image files found ({len(rejects)} unsafe or system files only)")
    prefix, outside = _data_root(names)
    rejects += outside
    rel = [n[len(prefix):] for n in names if n.startswith(prefix)]
    # Documents and data files never decide a layout or a class: `labels.v2.json` in a Kaggle folder was class
    # `labels`, `notes/readme.txt` beside class folders class `notes`. Other names are checked by content
    # (`photo.img`, `IMG_1` are images); a class whose files all fail that check is a warning, and train refuses it.
    documents = [r for r in rel if _is_document_name(r)]
    rejects += [(prefix + r, "not-an-image-name") for r in documents]
    rel = [r for r in rel if not _is_document_name(r)]
    if not rel:
        raise DataError(f"{where}: no image files found ({len(documents)} documents and data files only)")
    folders = sorted({r.split("/", 1)[0] for r in rel if "/" in r})
    splits = [f for f in folders if f.lower() in SPLIT_FOLDERS]
    root = where + ("/" + prefix.rstrip("/") if prefix else "")
    if splits:
        result = _split_tree(rel, folders, splits, root)
    else:
        result = _plain(rel, folders, root)
    result.images = [Found(prefix + f.name, f.image_id, f.label, f.split) for f in result.images]
    result.rejects = rejects + [(prefix + n, reason) for n, reason in result.rejects]
    return result


def _plain(rel: list[str], folders: list[str], root: str) -> Layout:
    """No split folders: class folders, or flat/numbered loose files (a stray sub-folder does not switch)."""
    loose = [r for r in rel if "/" not in r]
    nested = [r for r in rel if "/" in r]
    pattern = _flat_or_numbered(loose)
    if nested and not (pattern and len(pattern[1]) > len(nested)):
        images = [Found(n, f"{n.split('/', 1)[0]}/{_stem(n.split('/', 1)[1])}", n.split("/", 1)[0]) for n in nested]
        return Layout("classes", images, [(n, "not-in-class-folder") for n in loose])
    if pattern is None:
        raise DataError(f"{root}: no recognisable labels (found e.g. {loose[0]!r}); layouts understood: {LAYOUTS_TEXT}")
    layout, matched = pattern
    names = {n for n, _, _ in matched}
    rejects = [(n, "unrecognised-name") for n in loose if n not in names] + [(n, "in-sub-folder") for n in nested]
    notices = [f"{root}: ignored {len(nested)} files in sub-folders ({', '.join(f + '/' for f in folders)}) of a "
               f"{layout} folder (listed in rejected.csv)"] if nested else []
    return Layout(layout, [Found(n, i, label) for n, i, label in matched], rejects, notices)


def _split_tree(rel: list[str], folders: list[str], splits: list[str], root: str) -> Layout:
    others = [f for f in folders if f not in splits]
    if others:
        raise DataError(f"{root}: mixes split folders ({', '.join(s + '/' for s in splits)}) with other folders "
                        f"({', '.join(o + '/' for o in others)}); layouts understood: {LAYOUTS_TEXT}")
    by_split: dict[str, str] = {}
    for folder in splits:
        split = SPLIT_FOLDERS[folder.lower()]
        if split in by_split:
            raise DataError(f"{root}: both {by_split[split]}/ and {folder}/ would be the {split} split; keep one")
        by_split[split] = folder
    result = Layout("splits", [], [(r, "not-in-split-folder") for r in rel if "/" not in r])
    classes: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        if split not in by_split:
            continue
        folder = by_split[split]
        inner = [r.split("/", 1)[1] for r in rel if r.startswith(folder + "/")]
        found, rejects, labeled = _split_folder(inner, split, f"{root}/{folder}")
        given = split if split != "train" or "val" in by_split else ""  # no val folder: train is split by hash
        result.images += [Found(f"{folder}/{n}", i, label, given) for n, i, label in found]
        result.rejects += [(f"{folder}/{n}", reason) for n, reason in rejects]
        if labeled:
            classes[split] = {label for _, _, label in found}
    if "train" in classes:
        for split in ("val", "test"):
            for name in sorted(classes.get(split, set()) - classes["train"]):
                raise DataError(f"{root}/{by_split[split]}/{name}: class {name!r} has no images in "
                                f"{by_split['train']}/ (train classes: {', '.join(sorted(classes['train']))})")
        for name in sorted(classes["train"] - classes.get("val", classes["train"])):
            result.notices.append(f"{root}/{by_split['val']}: no images of class {name!r} (it is in "
                                  f"{by_split['train']}/); its validation metrics will be undefined")
    if "val" in by_split:
        result.notices.append(f"{root}: split folders {', '.join(by_split[s] + '/' for s in by_split)} are packed as "
                              "given; --val-fraction does not apply to this source")
    return result


def _split_folder(inner: list[str], split: str, where: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], bool]:
    """Names inside one split folder -> ([(name, id, label)], rejects, labeled?)."""
    loose = [r for r in inner if "/" not in r]
    nested = [r for r in inner if "/" in r]
    if nested:  # class folders
        found = [(n, f"{n.split('/', 1)[0]}/{_stem(n.split('/', 1)[1])}", n.split("/", 1)[0]) for n in nested]
        return found, [(n, "not-in-class-folder") for n in loose], True
    if split == "test":  # loose test files are unlabeled, numbered or not
        found = [(n, _stem(n), "") for n in loose if _is_image_name(n)]
        return found, [(n, "unrecognised-name") for n in loose if not _is_image_name(n)], False
    pattern = _flat_or_numbered(loose)
    if pattern is None or pattern[0] != "flat":
        raise DataError(f"{where}: a {split} folder needs class folders ({where}/<class>/...) or Kaggle names "
                        f"(cat.1.jpg); found {len(loose)} loose files without labels, e.g. {loose[0]!r}")
    names = {n for n, _, _ in pattern[1]}
    return pattern[1], [(n, "unrecognised-name") for n in loose if n not in names], True
