"""predict's INPUT arguments -> every image once, by unique id, streamed as (id, encoded bytes).

INPUT is a packed folder (one split, by default its test split), a folder of images, a `.zip`, or image
files. Each source streams (id, bytes, orientation): a packed record's `image/orientation`, or RAW (-1)
for a file, whose EXIF tag the decoder reads from the bytes. Folders and zips are listed by `catdog.data.scan` (the same skip rules as pack: hidden files and
folders, macOS resource forks), then filtered to image file endings; ids are file stems (or record ids
of a pack) and must be unique across all inputs.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from catdog import csvfile
from catdog.data import heif
from catdog.data.scan import check_member, list_folder, list_zip
from catdog.errors import DataError
from catdog.imageformats import IMAGE_EXTENSIONS

RAW = -1  # orientation of an input that is not a packed record: read the EXIF tag from the bytes


def natural_key(text: str) -> list:
    """Sort key that orders "1" < "2" < "10" < "100" and "cat.2" < "cat.10" (ids are file stems)."""
    return [int(part) if part.isdecimal() else part.lower() for part in re.split(r"(\d+)", text)]


@dataclass
class _Files:
    """Image files on disk; ids are file stems."""

    ids: list[str]
    paths: list[str]

    def names(self):
        return self.paths

    def dataset(self):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((self.ids, self.paths))
        return ds.map(lambda i, p: (i, tf.io.read_file(p), RAW), num_parallel_calls=tf.data.AUTOTUNE)

    def read(self, index: int) -> bytes:
        return Path(self.paths[index]).read_bytes()


@dataclass
class _Zip:
    """Image members of a .zip, read one at a time (never extracted)."""

    path: str
    ids: list[str]
    members: list[str]
    ignored: int = 0  # non-image members

    def names(self):
        return [f"{self.path}:{m}" for m in self.members]

    def dataset(self):
        import tensorflow as tf

        def members():
            with zipfile.ZipFile(self.path) as zf:
                for image_id, member in zip(self.ids, self.members):
                    try:
                        check_member(zf.getinfo(member), self.path)  # zip bombs: refused before inflating
                        data = zf.read(member)
                    except (zipfile.BadZipFile, OSError, RuntimeError, zlib.error):
                        data = b""  # decodes to an error below; `read` gives the real reason
                    yield image_id, data, RAW

        spec = tf.TensorSpec([], tf.string)
        return tf.data.Dataset.from_generator(members, output_signature=(spec, spec, tf.TensorSpec([], tf.int32)))

    def read(self, index: int) -> bytes:
        with zipfile.ZipFile(self.path) as zf:
            check_member(zf.getinfo(self.members[index]), self.path)
            return zf.read(self.members[index])


@dataclass
class _Pack:
    """One split of a packed folder; ids are the record ids."""

    directory: str
    split: str
    ids: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (id, path, reason): files pack refused

    def __post_init__(self):
        import tensorflow as tf

        from catdog.data import manifest as manifest_lib
        from catdog.data.pipeline import checked, record_dataset

        records = record_dataset(self.directory, self.split)
        parse = lambda s: tf.io.parse_single_example(s, {"image/id": tf.io.FixedLenFeature([], tf.string)})["image/id"]
        ids = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(4096)
        self.ids = [i.decode() for batch in checked(ids, self.directory, self.split) for i in batch.numpy()]
        # Test files that pack rejected (truncated, not an image, ...) have no record, so no row: predict names
        # them as it names the files it cannot read itself. (Packs older than rejected.csv's `split`: none.)
        rejected = manifest_lib.join(self.directory, "rejected.csv")
        if tf.io.gfile.exists(rejected):
            self.rejected = [(r["id"], r["path"], r["reason"] + ", rejected by pack")
                             for r in csvfile.read_dicts(rejected) if r.get("split") == self.split and r.get("id")]

    def names(self):
        return [f"{self.directory}:{self.split}/{i}" for i in self.ids]

    def dataset(self):
        import tensorflow as tf

        from catdog.data.pipeline import record_dataset
        from catdog.data.records import parse_example

        def fields(serialized):
            example = parse_example(serialized)
            return example["image/id"], example["image/encoded"], tf.cast(example["image/orientation"], tf.int32)

        return record_dataset(self.directory, self.split).map(fields, num_parallel_calls=tf.data.AUTOTUNE)

    def read(self, index: int) -> bytes:
        import tensorflow as tf

        from catdog.data.pipeline import record_dataset
        from catdog.data.records import parse_example

        for serialized in record_dataset(self.directory, self.split).skip(index).take(1):
            return parse_example(serialized)["image/encoded"].numpy()
        raise DataError(f"{self.directory}: record {index} of split '{self.split}' is missing")


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS  # hidden names never get here (scan skips them)


@dataclass
class Inputs:
    """Every input image, by unique id; streams (id, encoded bytes, orientation or RAW)."""

    sources: list
    ignored: int = 0  # non-image files skipped while listing folders / zips

    @property
    def ids(self) -> list[str]:
        return [i for s in self.sources for i in s.ids]

    def __len__(self) -> int:
        return sum(len(s.ids) for s in self.sources)

    @property
    def total(self) -> int:
        """Every input image, those that pack rejected included (the rows a complete submission has)."""
        return len(self) + len(self.rejected)

    @property
    def rejected(self) -> list[tuple[str, str, str]]:
        """(id, path, reason) of the files that packed inputs' pack refused in this split (no record, no row)."""
        return [r for s in self.sources if isinstance(s, _Pack) for r in s.rejected]

    def names(self) -> dict[str, str]:
        return {i: n for s in self.sources for i, n in zip(s.ids, s.names())}

    def dataset(self):
        sources = [s.dataset() for s in self.sources]
        ds = sources[0]
        for other in sources[1:]:
            ds = ds.concatenate(other)
        return ds

    def read(self, image_id: str) -> bytes:
        for source in self.sources:
            if image_id in source.ids:
                return source.read(source.ids.index(image_id))
        raise KeyError(image_id)


def collect_inputs(inputs, split: str = "test") -> Inputs:
    """Resolve INPUT arguments into sources; DataError on a missing input, an empty one, or a duplicate id."""
    if not inputs:
        raise DataError("no INPUT given: pass a packed folder, a folder of images, a .zip or image files")
    files = _Files([], [])
    sources, ignored = [], 0
    for raw in inputs:
        if "://" in str(raw):  # a packed folder on a tf.io.gfile filesystem (gs://, s3://, ram://)
            import tensorflow as tf

            from catdog.data import manifest as manifest_lib

            if not tf.io.gfile.exists(manifest_lib.join(str(raw), manifest_lib.MANIFEST_NAME)):
                raise DataError(f"{raw}: not a packed folder (no manifest.json); URLs must point to a pack")
            sources.append(_Pack(str(raw), split))
            continue
        path = Path(raw)
        if not path.exists():
            raise DataError(f"{path}: input does not exist")
        if path.is_dir() and (path / "manifest.json").is_file():
            sources.append(_Pack(str(path), split))
        elif path.is_dir():
            found, skipped = _list_folder(path)
            if not found:
                raise DataError(f"{path}: no images in folder (allowed: {', '.join(IMAGE_EXTENSIONS)})")
            sources.append(_Files([Path(p).stem for p in found], found))
            ignored += skipped
        elif path.suffix.lower() == ".zip":
            sources.append(_list_zip(path))
            ignored += sources[-1].ignored
        else:  # an explicitly named file is always an input, even if it turns out not to be an image
            files.ids.append(path.stem)
            files.paths.append(str(path))
    if files.ids:
        sources.append(files)
    result = Inputs(sources, ignored)
    for name in (n for source in sources if not isinstance(source, _Pack) for n in source.names()):
        if heif.is_heif_name(name):
            heif.require(name)  # one line saying what to install, before any work
            break
    seen: dict[str, str] = {}
    for source in sources:
        for image_id, name in zip(source.ids, source.names()):
            if image_id in seen:
                raise DataError(f"duplicate id {image_id!r}: {seen[image_id]} and {name} (ids are file stems and "
                                "must be unique across all inputs)")
            seen[image_id] = name
    return result


def _list_folder(folder: Path) -> tuple[list[str], int]:
    """Image files under `folder` (recursive, natural order) and the number of other files skipped."""
    names = [rel for rel, _ in list_folder(str(folder))]
    found = [os.path.join(folder, rel) for rel in names if _is_image_name(rel)]
    return sorted(found, key=natural_key), len(names) - len(found)


def _list_zip(path: Path) -> _Zip:
    names = [name for name, _ in list_zip(str(path))]
    members = sorted((n for n in names if _is_image_name(n)), key=natural_key)
    if not members:
        raise DataError(f"{path}: no images in the .zip (allowed: {', '.join(IMAGE_EXTENSIONS)})")
    return _Zip(str(path), [Path(m).stem for m in members], members, len(names) - len(members))
