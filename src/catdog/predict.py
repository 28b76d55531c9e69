"""Predict calibrated class probabilities for any number of images and write a Kaggle submission.

    $ catdog predict runs/lite0-20250101-120000 ../shared/data/dogs-vs-cats/test1 -o submission.csv

MODEL is a run folder, an exported SavedModel folder, a `.tflite` or an exported `.keras` file; all of
them sit behind one small `Predictor` interface (classes, image_size, resize, predict_images), so the
input pipeline below is the same for every format. INPUT is a packed folder (its test split), a folder
of images, a `.zip`, or image files. Images stream through tf.data (read -> decode_and_resize ->
batch -> prefetch), so memory stays bounded; an image that does not decode is dropped from the stream,
found again by its missing id, and reported by name with the reason.
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from catdog.data.header import BadImage, read_header
from catdog.data.scan import check_member
from catdog.errors import ConfigError, DataError, ModelError
from catdog.outputs import check_output_file, disk_full

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
TTA_MODES = ("none", "flip")  # flip: average the plain and the left-right mirrored view
MAX_LISTED = 10  # bad images named in a one-line error; the rest are counted


def natural_key(text: str) -> list:
    """Sort key that orders "1" < "2" < "10" < "100" and "cat.2" < "cat.10" (ids are file stems)."""
    return [int(part) if part.isdecimal() else part.lower() for part in re.split(r"(\d+)", text)]


# ----------------------------------------------------------------------------------------------- models


class Predictor(Protocol):
    """What the input pipeline needs from a model, whatever its format."""

    classes: list[str]
    image_size: tuple[int, int]  # (height, width)
    resize: str  # "squash" | "crop" | "pad", as in training
    source: str  # the path that was loaded, for messages
    name: str  # short display name (run folder or file name)
    info: dict  # "format", "backbone", "temperature", "metrics" (a run's summary.json) where known

    def predict_images(self, images) -> np.ndarray:
        """float32 (N, H, W, 3) RGB 0..255 -> calibrated probabilities (N, C)."""


class KerasPredictor:
    """A Keras model that already outputs calibrated (N, C) probabilities (Run.inference_model())."""

    def __init__(self, model, classes, image_size, resize: str, source: str = "", info: dict | None = None):
        import tensorflow as tf

        self.model, self.classes, self.resize, self.source = model, list(classes), resize, source
        self.image_size = tuple(int(v) for v in image_size)
        self.name = Path(source).name if source else model.name
        self.info = dict(info or {"format": "keras"})
        h, w = self.image_size
        # One traced graph for every batch size (the last batch is usually smaller).
        self._forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                                    input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)])

    @classmethod
    def from_run(cls, run) -> KerasPredictor:
        info = {"format": "run", "backbone": run.config.get("backbone"), "temperature": run.temperature}
        summary = run.run_dir / "summary.json"
        if summary.is_file():
            info["metrics"] = json.loads(summary.read_text())
        return cls(run.inference_model(), run.classes, run.image_size, run.resize, source=str(run.run_dir), info=info)

    def predict_images(self, images) -> np.ndarray:
        if isinstance(images, np.ndarray):
            images = images.astype(np.float32, copy=False)
        return self._forward(images).numpy()


class SavedModelPredictor:
    """An exported SavedModel (catdog export --format savedmodel), through its float32 image signature."""

    def __init__(self, path: Path, metadata: dict):
        import tensorflow as tf

        self.source, self.name, self.info = str(path), _display_name(path), _info(metadata)
        self.classes, self.image_size, self.resize = _from_metadata(metadata)
        try:
            self._loaded = tf.saved_model.load(str(path))
            self._fn = self._loaded.signatures["images_float32"]
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"{path}: cannot load the SavedModel's 'images_float32' signature ({e})") from e

    def predict_images(self, images) -> np.ndarray:
        import tensorflow as tf

        return self._fn(images=tf.cast(images, tf.float32))["probabilities"].numpy()


class TFLitePredictor:
    """A .tflite model run with the LiteRT interpreter; input float32 (N, H, W, 3) 0..255."""

    def __init__(self, path: Path, metadata: dict, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.source, self.name, self.info = str(path), path.name, _info(metadata)
        self.classes, self.image_size, self.resize = _from_metadata(metadata)
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads or os.cpu_count() or 1)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"{path}: cannot load the TFLite model ({e})") from e
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = None

    def predict_images(self, images) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.shape[0] != self._batch:  # the interpreter has static shapes: resize per batch size
            self._interpreter.resize_tensor_input(self._input, list(images.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._batch = images.shape[0]
        self._interpreter.set_tensor(self._input, images)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def _display_name(path: Path) -> str:
    """exported/catdog/3 -> "catdog/3" (TF Serving layout: the version alone says little)."""
    return f"{path.parent.name}/{path.name}" if path.name.isdigit() else path.name


def _info(metadata: dict) -> dict:
    info = {k: metadata.get(k) for k in ("backbone", "temperature", "quantize")}
    info["format"] = metadata.get("model_format")
    return info


def _from_metadata(metadata: dict):
    return [str(c) for c in metadata["classes"]], tuple(int(v) for v in metadata["image_size"]), metadata["resize"]


def load_predictor(path) -> Predictor:
    """A run folder, SavedModel folder (or its TF Serving base folder), .tflite or exported .keras -> Predictor."""
    from catdog import export

    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: model does not exist")
    if path.is_dir() and (path / "config.json").is_file():
        from catdog.run import load_run

        return KerasPredictor.from_run(load_run(path))
    if path.is_dir():
        saved = export.find_saved_model(path)
        if saved is None:
            raise ModelError(f"{path}: not a run folder (no config.json) and no SavedModel (no saved_model.pb) inside")
        return SavedModelPredictor(saved, export.read_metadata(saved))
    if path.suffix == ".tflite":
        return TFLitePredictor(path, export.read_metadata(path))
    if path.suffix == ".keras":
        from catdog.run import load_keras_model

        metadata = export.read_metadata(path)
        classes, image_size, resize = _from_metadata(metadata)
        return KerasPredictor(load_keras_model(path), classes, image_size, resize, source=str(path), info=_info(metadata))
    raise ModelError(f"{path}: unknown model; pass a run folder, a SavedModel folder, a .tflite or a .keras file")


def predict_batch(predictor: Predictor, images, tta: str = "none") -> np.ndarray:
    """Probabilities of one batch, averaged with the mirrored view when tta == "flip"."""
    probs = predictor.predict_images(images)
    if tta == "flip":
        import tensorflow as tf

        probs = (probs + predictor.predict_images(tf.image.flip_left_right(images))) / 2.0
    return probs


# ----------------------------------------------------------------------------------------------- inputs


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
        return ds.map(lambda i, p: (i, tf.io.read_file(p)), num_parallel_calls=tf.data.AUTOTUNE)

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
                    yield image_id, data

        spec = tf.TensorSpec([], tf.string)
        return tf.data.Dataset.from_generator(members, output_signature=(spec, spec))

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

    def __post_init__(self):
        import tensorflow as tf

        from catdog.data.pipeline import checked, record_dataset

        records = record_dataset(self.directory, self.split)
        parse = lambda s: tf.io.parse_single_example(s, {"image/id": tf.io.FixedLenFeature([], tf.string)})["image/id"]
        ids = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(4096)
        self.ids = [i.decode() for batch in checked(ids, self.directory, self.split) for i in batch.numpy()]

    def names(self):
        return [f"{self.directory}:{self.split}/{i}" for i in self.ids]

    def dataset(self):
        import tensorflow as tf

        from catdog.data.pipeline import record_dataset
        from catdog.data.records import parse_example

        def fields(serialized):
            example = parse_example(serialized)
            return example["image/id"], example["image/encoded"]

        return record_dataset(self.directory, self.split).map(fields, num_parallel_calls=tf.data.AUTOTUNE)

    def read(self, index: int) -> bytes:
        import tensorflow as tf

        from catdog.data.pipeline import record_dataset
        from catdog.data.records import parse_example

        for serialized in record_dataset(self.directory, self.split).skip(index).take(1):
            return parse_example(serialized)["image/encoded"].numpy()
        raise DataError(f"{self.directory}: record {index} of split '{self.split}' is missing")


def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and Path(base).suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class Inputs:
    """Every input image, by unique id; streams (id, encoded bytes) pairs."""

    sources: list
    ignored: int = 0  # non-image files skipped while listing folders / zips

    @property
    def ids(self) -> list[str]:
        return [i for s in self.sources for i in s.ids]

    def __len__(self) -> int:
        return sum(len(s.ids) for s in self.sources)

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
    found, skipped = [], 0
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            if _is_image_name(name):
                found.append(os.path.join(root, name))
            elif not name.startswith("."):
                skipped += 1
    return sorted(found, key=natural_key), skipped


def _list_zip(path: Path) -> _Zip:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable .zip ({e})") from e
    members = sorted((i.filename for i in infos if not i.is_dir() and not i.filename.startswith("__MACOSX/")
                      and _is_image_name(i.filename)), key=natural_key)
    if not members:
        raise DataError(f"{path}: no images in the .zip (allowed: {', '.join(IMAGE_EXTENSIONS)})")
    ignored = sum(1 for i in infos if not i.is_dir()) - len(members)
    return _Zip(str(path), [Path(m).stem for m in members], members, ignored)


# ----------------------------------------------------------------------------------------------- running


@dataclass
class Predictions:
    ids: list[str]  # in stream order
    probs: np.ndarray  # (N, C) calibrated probabilities
    bad: list[tuple[str, str, str]]  # (id, name, reason) of images that could not be decoded
    seconds: float

    @property
    def images_per_second(self) -> float:
        return len(self.ids) / self.seconds if self.seconds > 0 else float("nan")


def run_predictions(predictor: Predictor, inputs: Inputs, *, batch_size: int = 32, tta: str = "none",
                    progress: bool = True) -> Predictions:
    """Stream every input through the predictor; undecodable images are collected, not fatal."""
    import tensorflow as tf

    from catdog.data.decode import decode_and_resize

    size, mode = predictor.image_size, predictor.resize
    decoded = inputs.dataset().map(lambda i, data: (i, decode_and_resize(header_checked(data), size, mode)),
                                   num_parallel_calls=tf.data.AUTOTUNE)
    # A bad image raises inside the parallel map; ignore_errors drops exactly that element and the id
    # that never comes out is what we report (with the reason found by decoding it again below).
    batches = decoded.ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE)
    # Trace/allocate the model once before the clock starts, so images/s is the streaming rate.
    predictor.predict_images(np.zeros((1, *size, 3), np.float32))
    ids, probs = [], []
    start = time.perf_counter()
    with progress_bar(len(inputs), "predict", enabled=progress) as advance:
        for batch_ids, images in batches:
            probs.append(predict_batch(predictor, images, tta))
            ids.extend(i.decode() for i in batch_ids.numpy())
            advance(len(batch_ids))
    seconds = time.perf_counter() - start
    probs = np.concatenate(probs) if probs else np.zeros((0, len(predictor.classes)), np.float32)
    missing = set(inputs.ids) - set(ids)
    if len(ids) != len(set(ids)) or len(ids) + len(missing) != len(inputs):
        raise DataError(f"input stream yielded {len(ids)} predictions for {len(inputs)} inputs "
                        f"({len(ids) - len(set(ids))} repeated); this is a bug, please report it")
    names = inputs.names()
    bad = [(i, names[i], diagnose(inputs, i, size, mode)) for i in sorted(missing, key=natural_key)]
    return Predictions(ids, probs, bad, seconds)


def diagnose(inputs: Inputs, image_id: str, image_size, mode: str) -> str:
    """Why one image failed: read and decode it again on its own, and describe the error in a few words."""
    import tensorflow as tf

    from catdog.data.decode import decode_and_resize

    try:
        data = inputs.read(image_id)
    except (OSError, zipfile.BadZipFile, RuntimeError, zlib.error) as e:
        return f"cannot read: {e}"
    try:
        read_header(data)  # the pre-decode check the stream applied (pixel limit, truncation, CRCs)
    except BadImage as e:
        return str(e)
    try:
        decode_and_resize(tf.constant(data), image_size, mode)
    except tf.errors.InvalidArgumentError as e:
        message = e.message.split("[Op:")[0].split("}}")[-1].strip()
        if "Unknown image file format" in message:
            return "not an image (unknown format)"
        if "jpeg" in message.lower():
            return f"corrupt or truncated JPEG: {message}"
        return message.splitlines()[0][:200]
    return "failed in the input pipeline, but decodes on its own"


def header_checked(data):
    """`data` (a scalar tf.string) once catdog.data.header.read_header accepts it: the same pixel limit and
    checks as pack and serve, BEFORE any decode (a 20000x20000 PNG is refused without allocating 1.2 GB)."""
    import tensorflow as tf

    def check(encoded) -> np.bool_:
        read_header(bytes(encoded))  # BadImage fails this element; `diagnose` reports the reason
        return np.bool_(True)

    ok = tf.numpy_function(check, [data], tf.bool, stateful=True)  # stateless would be pruned: unused output
    with tf.control_dependencies([ok]):
        return tf.identity(data)


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Iterator:
    """A rich progress bar on stderr with images/s; yields advance(n). Silent when not a terminal."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} images/s" if speed else "… images/s")

    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                   disable=not (enabled and console.is_terminal))
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


# ----------------------------------------------------------------------------------------------- output


@dataclass
class PredictSummary:
    output: Path
    rows: int
    skipped: list[tuple[str, str, str]]  # (id, name, reason)
    skipped_file: Path | None
    seconds: float
    images_per_second: float
    model: str
    classes: list[str]
    replaced: bool = False  # an existing CSV at `output` was replaced


def check_output_path(output) -> Path:
    """The output's folder must exist before any work is done (a typo must not cost a full run)."""
    output = Path(output)
    if output.is_dir():
        raise ConfigError(f"{output}: output path is a folder; give a file name such as {output / 'submission.csv'}")
    if not output.parent.is_dir():
        raise ConfigError(f"{output}: output folder {output.parent} does not exist")
    return output


def skipped_path(output: Path) -> Path:
    """submission.csv -> submission.skipped.csv: the images left out by --skip-bad, with reasons."""
    return output.with_name(f"{output.stem}.skipped.csv")


def format_rows(ids, probs: np.ndarray, classes) -> tuple[list[str], list[list[str]]]:
    """Kaggle's `id,label` (label = P(classes[1])) for 2 classes, else `id,<class>...`; rows in natural id order."""
    order = sorted(range(len(ids)), key=lambda k: natural_key(ids[k]))
    if len(classes) == 2:
        return ["id", "label"], [[ids[k], f"{probs[k, 1]:.8g}"] for k in order]
    return ["id", *classes], [[ids[k], *(f"{p:.8g}" for p in probs[k])] for k in order]


def write_csv(path: Path, header: list[str], rows) -> None:
    """Write to a temporary name beside `path`, then rename: never a partial file under the final name."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def predict(model, inputs, output, *, split: str = "test", skip_bad: bool = False, clip: float | None = None,
            batch_size: int = 32, tta: str = "none", progress: bool = True) -> PredictSummary:
    """MODEL + INPUT... -> submission CSV at `output` (see the module docstring)."""
    output = check_output_path(output)
    protected = [str(model), *(str(i) for i in inputs)]  # never written over (issue 13)
    replaced = check_output_file(output, protected=protected, what="-o")
    check_output_file(skipped_path(output), protected=protected, what="-o's .skipped.csv")
    if clip is not None and not 0.0 <= clip < 0.5:
        raise ConfigError(f"--clip must be in [0, 0.5); got {clip}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {batch_size}")
    if tta not in TTA_MODES:
        raise ConfigError(f"--tta must be one of {', '.join(TTA_MODES)}; got {tta!r}")
    predictor = load_predictor(model)
    sources = collect_inputs([str(i) for i in inputs], split=split)
    result = run_predictions(predictor, sources, batch_size=batch_size, tta=tta, progress=progress)
    side = skipped_path(output)
    if result.bad and not skip_bad:
        listed = "; ".join(f"{name} ({reason})" for _, name, reason in result.bad[:MAX_LISTED])
        more = f"; and {len(result.bad) - MAX_LISTED} more" if len(result.bad) > MAX_LISTED else ""
        raise DataError(f"{len(result.bad)} of {len(sources)} images could not be read: {listed}{more}; "
                        f"nothing written to {output} (rerun with --skip-bad to write the rest and list these in {side})")
    if not result.ids:
        raise DataError(f"none of the {len(sources)} images could be read; nothing written to {output}")
    probs = result.probs.astype(np.float64)
    if clip:
        probs = np.clip(probs, clip, 1.0 - clip)
    header, rows = format_rows(result.ids, probs, predictor.classes)
    with disk_full(output, "writing predictions"):
        if result.bad:
            write_csv(side, ["id", "name", "reason"], [list(b) for b in result.bad])
        write_csv(output, header, rows)
    return PredictSummary(output=output, rows=len(rows), skipped=result.bad, skipped_file=side if result.bad else None,
                          seconds=result.seconds, images_per_second=result.images_per_second,
                          model=predictor.source, classes=list(predictor.classes), replaced=replaced)

