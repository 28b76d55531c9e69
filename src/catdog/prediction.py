"""Predict calibrated class probabilities for any number of images and write a Kaggle submission.

    $ catdog predict runs/lite0-20250101-120000 ../shared/data/dogs-vs-cats/test1 -o submission.csv

The model is any `catdog.predictors.Predictor`; the inputs come from `catdog.inputs.collect_inputs`.
Images stream through tf.data (read -> decode_and_resize -> batch -> prefetch), so memory stays bounded;
an image that does not decode is dropped from the stream, found again by its missing id, and reported
by name with the reason.
"""

from __future__ import annotations

import os
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catdog import csvfile, progress as progress_lib
from catdog.classes import is_binary
from catdog.data.imagecheck import DEFAULT_MAX_PIXELS, BadImage, jpeg_min_bytes, read_header
from catdog.errors import ConfigError, DataError
from catdog.inputs import RAW, Inputs, collect_inputs, natural_key
from catdog.outputs import check_output_file, disk_full
from catdog.predictors import TTA_MODES, Predictor, load_predictor, predict_batch

MAX_LISTED = 10  # bad images named in a one-line error; the rest are counted
FORMATS = ("kaggle", "full")  # kaggle: id,label = P(second class) (2 classes only); full: id,predicted,<class>...
EXIF_WARNING = "damaged EXIF block or invalid orientation; read as upright"


@dataclass
class Predictions:
    ids: list[str]  # in stream order
    probs: np.ndarray  # (N, C) calibrated probabilities
    bad: list[tuple[str, str, str]]  # (id, name, reason) of images that could not be decoded or that pack rejected
    seconds: float
    exif_problems: list[str] = field(default_factory=list)  # names of images read as upright despite a bad tag

    @property
    def images_per_second(self) -> float:
        return len(self.ids) / self.seconds if self.seconds > 0 else float("nan")


def run_predictions(predictor: Predictor, inputs: Inputs, *, batch_size: int = 32, tta: str = "none",
                    progress: bool = True) -> Predictions:
    """Stream every input through the predictor; undecodable images are collected, not fatal."""
    import tensorflow as tf

    from catdog.data.pipeline import untuned

    size, mode = predictor.image_size, predictor.resize
    decoded = inputs.dataset().map(tf.autograph.experimental.do_not_convert(stream_decoder(size, mode)),  # as in load
                                   num_parallel_calls=tf.data.AUTOTUNE)
    # A bad image raises inside the parallel map; ignore_errors drops exactly that element and the id
    # that never comes out is what we report (with the reason found by decoding it again below).
    batches = untuned(decoded.ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE))
    # Start-up before the clock, so images/s is the streaming rate: trace/allocate the model once, and build
    # the pipeline's iterator (~0.2-0.3 s of graph optimization on 2 cores).
    predictor.predict_images(np.zeros((1, *size, 3), np.float32))
    stream = iter(batches)
    ids, probs, turned_badly = [], [], []
    start = time.perf_counter()
    with progress_lib.bar(len(inputs), "predict", enabled=progress) as advance:
        for batch_ids, status, images in stream:
            probs.append(predict_batch(predictor, images, tta))
            batch_ids = [i.decode() for i in batch_ids.numpy()]
            ids.extend(batch_ids)
            turned_badly += [i for i, s in zip(batch_ids, status.numpy()) if s == 0]
            advance(len(batch_ids))
    seconds = time.perf_counter() - start
    probs = np.concatenate(probs) if probs else np.zeros((0, len(predictor.classes)), np.float32)
    missing = set(inputs.ids) - set(ids)
    if len(ids) != len(set(ids)) or len(ids) + len(missing) != len(inputs):
        raise DataError(f"input stream yielded {len(ids)} predictions for {len(inputs)} inputs "
                        f"({len(ids) - len(set(ids))} repeated); this is a bug, please report it")
    names = inputs.names()
    # a test file that pack rejected has no record: as missing from the submission as one predict cannot read
    bad = sorted([(i, names[i], diagnose(inputs, i, size, mode)) for i in missing] + inputs.rejected,
                 key=lambda b: natural_key(b[0]))
    return Predictions(ids, probs, bad, seconds, [names[i] for i in sorted(turned_badly, key=natural_key)])


def stream_decoder(size, mode: str):
    """The map function of the input stream: (id, bytes, orientation or RAW) -> (id, EXIF status, pixels).

    Bytes from files and zips (orientation RAW) have their EXIF orientation read in-graph; packed records
    bring the one pack read."""
    import tensorflow as tf

    from catdog.data.decode import decode_and_resize
    from catdog.data.exif import orientation_status

    def decode(image_id, data, orientation):
        data = heif_to_jpeg(header_checked(data))  # pixel limit etc. before any decode
        status = tf.cond(orientation == RAW, lambda: orientation_status(data), lambda: orientation)
        return image_id, status, decode_and_resize(data, size, mode, status)

    return decode


def heif_to_jpeg(data):
    """In tf.data: HEIC/HEIF bytes -> JPEG bytes (Python, pillow-heif); any other bytes pass unchanged."""
    import tensorflow as tf

    from catdog.data import heif

    brands = "|".join(b.decode() for b in heif.BRANDS)
    is_heif = tf.strings.regex_full_match(tf.strings.substr(data, 0, 12), f"(?s)....ftyp({brands})")
    convert = lambda: tf.reshape(tf.py_function(lambda b: heif.to_jpeg(b.numpy()), [data], tf.string), [])
    return tf.cond(is_heif, convert, lambda: data)


def diagnose(inputs: Inputs, image_id: str, image_size, mode: str) -> str:
    """Why one image failed: read and decode it again on its own, and describe the error in a few words."""
    import tensorflow as tf

    from catdog.data.decode import decode_and_resize

    try:
        data = inputs.read(image_id)
    except (OSError, zipfile.BadZipFile, RuntimeError, zlib.error) as e:
        return f"cannot read: {e}"
    if not data:
        return "empty file (0 bytes)"
    from catdog.data import heif

    if heif.is_heif(data):
        try:
            data = heif.to_jpeg(data, image_id)
        except DataError as e:
            return str(e).split(": ", 1)[-1]
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


def header_checked(data, max_pixels: int = DEFAULT_MAX_PIXELS):
    """`data` (a scalar tf.string) once its header passes catdog.data.imagecheck.read_header's checks (the same
    pixel limit and rules as pack and serve), BEFORE any decode: a 20000x20000 PNG is refused without
    allocating 1.2 GB. A failing image fails its element; `diagnose` then names the reason with read_header.

    A JPEG (nearly every photo) is checked in-graph from its frame header with read_header's two rules for
    JPEGs, the pixel limit and the minimum size (`jpeg_min_bytes`): a Python call per photo holds the GIL
    against the model's loop (in-graph: ~5% less CPU per photo and ~6% more photos/s, 6 alternating runs of
    `predict` on 2,000 photos, 2 cores). Any other format goes through read_header itself.
    """
    import tensorflow as tf

    def jpeg_ok():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)  # fails on a broken header
        height, width = shape[0], shape[1]
        size = tf.cast(tf.strings.length(data), tf.int64)
        return tf.logical_and(height * width <= max_pixels, size >= jpeg_min_bytes(width, height))

    def check(encoded) -> np.bool_:
        read_header(bytes(encoded), max_pixels)  # BadImage fails this element
        return np.bool_(True)

    ok = tf.cond(tf.io.is_jpeg(data), jpeg_ok,
                 lambda: tf.numpy_function(check, [data], tf.bool, stateful=True))  # stateless would be pruned
    with tf.control_dependencies([tf.debugging.Assert(ok, ["image header refused"])]):
        return tf.identity(data)


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
    format: str = "kaggle"
    warnings: list[str] = field(default_factory=list)  # one line each (damaged EXIF orientation, read as upright)


def check_output_path(output) -> Path:
    """The output's folder must exist before any work is done (a typo must not cost a full run)."""
    output = Path(output)
    if output.is_dir():
        raise ConfigError(f"{output}: output path is a folder; give a file name such as {output / 'submission.csv'}")
    if not output.parent.is_dir():
        raise ConfigError(f"{output}: output folder {output.parent} does not exist")
    if not os.access(output.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{output}: output folder {output.parent} is not writable")
    return output


def skipped_path(output: Path) -> Path:
    """submission.csv -> submission.skipped.csv: the images left out by --skip-bad, with reasons."""
    return output.with_name(f"{output.stem}.skipped.csv")


def resolve_format(fmt: str | None, classes) -> str:
    """None -> kaggle for 2 classes, full for more; kaggle with more than 2 classes is an error."""
    if fmt is None:
        return "kaggle" if is_binary(len(classes)) else "full"
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "kaggle" and not is_binary(len(classes)):
        raise ConfigError(f"--format kaggle needs 2 classes (id,label = P(second class)); this model has "
                          f"{len(classes)} ({', '.join(classes)}): use --format full")
    return fmt


def format_rows(ids, probs: np.ndarray, classes, fmt: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Rows in natural id order. kaggle: `id,label` (label = P(classes[1])); full: `id,predicted,<class>...`
    (the most probable class, then one probability column per class). Default: see resolve_format."""
    fmt = resolve_format(fmt, classes)
    order = sorted(range(len(ids)), key=lambda k: natural_key(ids[k]))
    if fmt == "kaggle":
        return ["id", "label"], [[ids[k], f"{probs[k, 1]:.8g}"] for k in order]
    return (["id", "predicted", *classes],
            [[ids[k], classes[int(np.argmax(probs[k]))], *(f"{p:.8g}" for p in probs[k])] for k in order])



def predict(model, inputs, output, *, split: str = "test", skip_bad: bool = False, clip: float | None = None,
            batch_size: int = 32, tta: str = "none", progress: bool = True, fmt: str | None = None,
            runtime: str = "auto") -> PredictSummary:
    """MODEL + INPUT... -> submission CSV at `output` (see the module docstring). `fmt`: see format_rows;
    `runtime`: auto | tensorflow | litert, as catdog.runtime."""
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
    predictor = load_predictor(model, runtime=runtime)
    fmt = resolve_format(fmt, predictor.classes)
    sources = collect_inputs([str(i) for i in inputs], split=split)
    result = run_predictions(predictor, sources, batch_size=batch_size, tta=tta, progress=progress)
    side = skipped_path(output)
    if result.bad and not skip_bad:
        listed = "; ".join(f"{name} ({reason})" for _, name, reason in result.bad[:MAX_LISTED])
        more = f"; and {len(result.bad) - MAX_LISTED} more" if len(result.bad) > MAX_LISTED else ""
        raise DataError(f"{len(result.bad)} of {sources.total} images could not be read: {listed}{more}; "
                        f"nothing written to {output} (rerun with --skip-bad to write the rest and list these in {side})")
    if not result.ids:
        raise DataError(f"none of the {sources.total} images could be read; nothing written to {output}")
    probs = result.probs.astype(np.float64)
    if clip:
        probs = np.clip(probs, clip, 1.0 - clip)
    header, rows = format_rows(result.ids, probs, predictor.classes, fmt)
    with disk_full(output, "writing predictions"):
        if result.bad:
            csvfile.write_csv(side, ["id", "name", "reason"], [list(b) for b in result.bad])
        csvfile.write_csv(output, header, rows)
        if not result.bad and side.is_file():  # an earlier run's list (checked replaceable above) would now lie
            side.unlink()
    return PredictSummary(output=output, rows=len(rows), skipped=result.bad, skipped_file=side if result.bad else None,
                          seconds=result.seconds, images_per_second=result.images_per_second,
                          model=predictor.source, classes=list(predictor.classes), format=fmt,
                          warnings=[f"{name}: {EXIF_WARNING}" for name in result.exif_problems], replaced=replaced)

