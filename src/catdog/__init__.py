"""catdog: turn a folder of labeled photos into a trained, exported image classifier.

The notebook API: five functions, one per CLI step, with the CLI's option names as keywords.

    import catdog
    catdog.pack(["photos/"], "packed/")                                   # -> the manifest (dict)
    run = catdog.train("packed/", backbone="small-cnn", weights="none", image_size=64, epochs=2)  # -> Path
    metrics = catdog.evaluate(run)                                        # -> dict: accuracy, log_loss, ...
    preds = catdog.predict(run, ["a.jpg", "b.jpg"])                       # -> pandas.DataFrame
    catdog.export(run, "savedmodel", "exported/")                         # -> ExportResult (.path)

Each function imports its library module on first use: TensorFlow takes seconds to import, and
`import catdog` (or `catdog --help`) should not. No module of the package is named like these
functions (training/, evaluation.py, exporting.py, ...): importing a submodule sets an attribute of the
same name on the package, which would replace the function.
"""

import os

from catdog._version import __version__

__all__ = ["__version__", "evaluate", "export", "pack", "predict", "train"]


def pack(sources, out, **options) -> dict:
    """Pack labeled photos into TFRecord shards (`catdog pack SRC... --out OUT`); returns the manifest.

    Args:
        sources: folders, zips or files (a list, or one path).
        out: the packed folder to write.
        **options: catdog.data.pack.pack's keywords (val_fraction, seed, shard_size, workers, ...).
    """
    from catdog.data.pack import pack as run_pack

    return run_pack(sources, out, **options)


def train(data=None, *, resume=None, callbacks=(), **options):
    """Train a classifier on a packed folder (`catdog train DATA --option ...`); returns the run folder (Path).

    Args:
        data: the packed folder. With `resume`, None = the folder the run was trained on.
        resume: a run folder to continue from its last recorded epoch (options must match its config).
        callbacks: extra keras callbacks for every fit call.
        **options: the fields of catdog.training.TrainConfig, named like the CLI options with `_` for `-`
            (backbone, weights, image_size, epochs, batch_size, lr, fine_tune_epochs, name, runs_dir, ...).
            An unknown name is an error (a typo must not silently train with a default).
    """
    from catdog.training import train as run_training
    from catdog.training.config import config_from_options

    config = config_from_options(data, options, resume=resume)
    return run_training(config, resume=resume, callbacks=callbacks)


def evaluate(run, data=None, split: str = "val", **options) -> dict:
    """Score a run on a labeled split (`catdog evaluate RUN --data DATA`); returns the metrics (dict).

    The dict is what RUN/eval/<split>/metrics.json holds: accuracy, log_loss, roc_auc, per-class
    precision/recall/F1, the confusion matrix, counts.

    Args:
        run: a run folder written by train.
        data: the packed folder; None = the one the run was trained on (its config.json says which).
        split: val (default), train, or any other labeled split.
        **options: catdog.evaluation.evaluate's keywords (tta, batch_size, mistakes, progress, runtime).
    """
    from catdog.evaluation import evaluate as run_evaluation
    from catdog.run import run_data_dir

    data = run_data_dir(run) if data is None else data
    return run_evaluation(run, data, split, **options).metrics


def predict(model, inputs, *, split: str = "test", batch_size: int = 32, tta: str = "none",
            skip_bad: bool = False, progress: bool = False, runtime: str = "auto"):
    """Predict in memory: a pandas DataFrame, one row per image, sorted by id as in `catdog predict`'s CSV.

    Columns: "id" (as in the submission CSV: `12` for 12.jpg, `cat.3` for cat.3.jpg), one column of
    calibrated probabilities per class (named after the class), and "predicted" (the most probable class).

    Args:
        model: a run folder, an exported SavedModel, a .tflite or an exported .keras file.
        inputs: image files, folders, zips or a packed folder (one path or a list).
        split: the packed folder's split to read. Defaults to "test".
        batch_size: images per model call. Defaults to 32.
        tta: "none" or "flip" (average with the mirrored image). Defaults to "none".
        skip_bad: leave out images that cannot be decoded instead of failing. Defaults to False.
        progress: show a progress bar. Defaults to False.
        runtime: "auto" (LiteRT on a CPU, TensorFlow on a GPU), "tensorflow" or "litert". Defaults to "auto".
    """
    import numpy as np
    import pandas as pd

    from catdog.errors import ConfigError, DataError
    from catdog.inputs import collect_inputs, natural_key
    from catdog.prediction import run_predictions
    from catdog.predictors import TTA_MODES, load_predictor

    if tta not in TTA_MODES:
        raise ConfigError(f"tta must be one of {', '.join(TTA_MODES)}; got {tta!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1; got {batch_size}")
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    predictor = load_predictor(model, runtime=runtime)
    sources = collect_inputs([str(p) for p in paths], split=split)
    result = run_predictions(predictor, sources, batch_size=batch_size, tta=tta, progress=progress)
    if result.bad and not skip_bad:
        listed = "; ".join(f"{name} ({reason})" for _, name, reason in result.bad[:5])
        raise DataError(f"{len(result.bad)} of {sources.total} images could not be read: {listed} "
                        "(pass skip_bad=True to predict the rest)")
    order = sorted(range(len(result.ids)), key=lambda k: natural_key(result.ids[k]))
    classes = [str(c) for c in predictor.classes]
    probs = np.asarray(result.probs, np.float64)[order] if order else np.zeros((0, len(classes)))
    frame = pd.DataFrame(probs, columns=classes)
    frame.insert(0, "id", [result.ids[k] for k in order])
    frame["predicted"] = [classes[i] for i in probs.argmax(axis=1)] if len(probs) else []
    return frame


def export(run, format: str, out, **options):
    """Export a run's calibrated model (`catdog export RUN --format FORMAT --out OUT`), parity-checked.

    Args:
        run: a run folder written by train.
        format: "savedmodel", "tflite", "onnx" (needs `catdog[onnx]`) or "keras".
        out: the folder to write to.
        **options: catdog.exporting.export's keywords (quantize: "none", "float16", "dynamic" or "int8", TFLite
            only; eval_images; parity_samples; version).

    Returns:
        catdog.exporting.ExportResult: `.path` (where the model went), `.max_abs_diff` (parity), `.report`
        (file size, val accuracy / log loss beside the float model, images/s; also in OUT/export.json).
    """
    from catdog.exporting import export as run_export

    return run_export(run, format, out, **options)
