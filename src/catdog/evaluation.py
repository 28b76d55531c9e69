"""Score a run on a labeled split of a packed folder: every record exactly once, checked, in bounded memory.

    $ catdog evaluate runs/lite0-20250101-120000 --data packed/ --split val

Writes RUN/eval/<split>/ (RUN/eval/<split>-tta-flip/ with --tta flip, so both can be compared):
metrics.json (accuracy, log loss, ROC AUC, per-class precision/recall/F1, confusion matrix),
predictions.csv (id, true label, predicted label, one probability column per class),
confusion_matrix.png and mistakes.html (the most confident mistakes, thumbnails embedded).

The original system read the test set through a queue that repeated some images and skipped others
without a word; here the reader asserts the manifest's count, and the ids are checked for duplicates.
"""

from __future__ import annotations

import base64
import heapq
import html
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog import atomic, progress as progress_lib
from catdog.classes import is_binary
from catdog.data.manifest import SPLITS
from catdog.errors import ConfigError, DataError
from catdog.outputs import check_report_folder

MISTAKES = 24  # thumbnails on the mistakes page


@dataclass
class EvalResult:
    out_dir: Path
    metrics: dict


REPORT_FILES = ("metrics.json", "predictions.csv", "confusion_matrix.png", "mistakes.html")


def eval_dir(run_dir, split: str, tta: str = "none") -> Path:
    return Path(run_dir) / "eval" / (split if tta == "none" else f"{split}-tta-{tta}")


def evaluate(run_dir, data, split: str = "val", *, tta: str = "none", batch_size: int = 32,
             mistakes: int = MISTAKES, progress: bool = True, runtime: str = "auto") -> EvalResult:
    """Run the calibrated model (on `runtime`, as catdog.runtime) over one labeled split; write and return the metrics."""
    from catdog.data import load
    from catdog.data import manifest as manifest_lib
    from catdog.data.pipeline import checked
    from catdog.predictors import TTA_MODES, KerasPredictor, predict_batch
    from catdog.run import load_run

    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    if tta not in TTA_MODES:
        raise ConfigError(f"--tta must be one of {', '.join(TTA_MODES)}; got {tta!r}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1; got {batch_size}")
    data = str(data)
    manifest = manifest_lib.read_manifest(data)
    info = manifest_lib.split_info(manifest, split, data)
    if not sum(info.get("class_counts", {}).values()):  # a labeled test split (SRC/test/<class>/) is scored
        raise DataError(f"{data}: split '{split}' is unlabeled, so there is nothing to score; evaluate --split val, "
                        f"or write its predictions with `catdog predict {run_dir} {data} -o submission.csv`")
    run = load_run(run_dir)
    if list(manifest["classes"]) != list(run.classes):
        raise DataError(f"{data}: classes {manifest['classes']} differ from the model's {run.classes} ({run_dir}); "
                        "evaluate on a pack made from the same class folders")
    check_report_folder(eval_dir(run.run_dir, split, tta), REPORT_FILES, protected=[data], what="evaluate output")
    expected = int(info["num_examples"])
    predictor = KerasPredictor.from_run(run, runtime=runtime)
    dataset = load(data, split, run.image_size, batch_size=batch_size, resize=run.resize, with_ids=True)

    ids, labels, probs = [], [], []
    worst: list = []  # min-heap of the `mistakes` most confident mistakes: (confidence, id, label, pred, uint8)
    start = time.perf_counter()
    with progress_lib.bar(expected, f"evaluate {split}", enabled=progress) as advance:
        for batch in checked(dataset, data, split):
            batch_probs = predict_batch(predictor, batch["image"], tta)
            batch_labels = batch["label"].numpy()
            batch_ids = [i.decode() for i in batch["id"].numpy()]
            _keep_mistakes(worst, mistakes, batch_ids, batch_labels, batch_probs, batch["image"].numpy())
            ids.extend(batch_ids)
            labels.append(batch_labels)
            probs.append(batch_probs)
            advance(len(batch_ids))
    seconds = time.perf_counter() - start
    labels, probs = np.concatenate(labels), np.concatenate(probs).astype(np.float64)
    if len(ids) != expected or len(set(ids)) != len(ids):
        raise DataError(f"{data}: split '{split}' yielded {len(ids)} records ({len(ids) - len(set(ids))} repeated ids) "
                        f"but its manifest lists {expected}; repack the folder")
    if (labels < 0).any() or (labels >= len(run.classes)).any():
        raise DataError(f"{data}: split '{split}' has {int(((labels < 0) | (labels >= len(run.classes))).sum())} "
                        f"records without a valid label; only labeled splits can be scored")

    metrics = compute_metrics(labels, probs, run.classes)
    metrics.update({"run": str(run.run_dir), "data": data, "split": split, "tta": tta, "num_examples": len(ids),
                    "temperature": run.temperature, "calibrated": run.calibrated,
                    "images_per_second": len(ids) / seconds if seconds > 0 else None})
    out = eval_dir(run.run_dir, split, tta)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / "metrics.json", metrics)
    _write_predictions(out / "predictions.csv", ids, labels, probs, run.classes)
    atomic.write_bytes(out / "confusion_matrix.png", confusion_png(np.array(metrics["confusion_matrix"]), run.classes))
    atomic.write_text(out / "mistakes.html", mistakes_html(sorted(worst, reverse=True), run.classes, run.run_dir, split))
    return EvalResult(out, metrics)


def compute_metrics(labels: np.ndarray, probs: np.ndarray, classes) -> dict:
    """accuracy, log loss, ROC AUC (binary, or macro one-vs-rest), per-class P/R/F1, confusion matrix."""
    from sklearn import metrics as skm

    num = len(classes)
    index = list(range(num))
    predicted = probs.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(labels, predicted, labels=index,
                                                                         zero_division=0)
    result = {
        "classes": list(classes),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "log_loss": float(skm.log_loss(labels, probs / probs.sum(axis=1, keepdims=True), labels=index)),
        "roc_auc": None,
        "roc_auc_kind": "binary (positive class: %s)" % classes[1] if is_binary(num) else "macro one-vs-rest",
        "per_class": {c: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                          "support": int(support[k])} for k, c in enumerate(classes)},
        "confusion_matrix": skm.confusion_matrix(labels, predicted, labels=index).tolist(),  # rows: true
    }
    present = np.unique(labels)
    if len(present) < num:
        result["roc_auc_note"] = f"undefined: only {len(present)} of {num} classes occur in this split"
    elif is_binary(num):
        result["roc_auc"] = float(skm.roc_auc_score(labels, probs[:, 1]))
    else:
        result["roc_auc"] = float(skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=index))
    return result


def _keep_mistakes(heap: list, limit: int, ids, labels, probs, images) -> None:
    predicted = probs.argmax(axis=1)
    for k in np.nonzero(predicted != labels)[0]:
        item = (float(probs[k, predicted[k]]), ids[k], int(labels[k]), int(predicted[k]),
                np.clip(np.round(images[k]), 0, 255).astype(np.uint8))
        if len(heap) < limit:
            heapq.heappush(heap, item)
        elif item[:2] > heap[0][:2]:
            heapq.heapreplace(heap, item)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def mistakes_html(worst, classes, run_dir, split: str) -> str:
    """A self-contained page (thumbnails as base64 PNG) of mistakes, most confident first."""
    cells = []
    for confidence, image_id, label, predicted, pixels in worst:
        data = base64.b64encode(_png(pixels)).decode()
        cells.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(image_id)}">'
            f"<figcaption><b>{html.escape(image_id)}</b><br>true: {html.escape(classes[label])}<br>"
            f"predicted: {html.escape(classes[predicted])} ({confidence:.3f})</figcaption></figure>")
    body = "\n".join(cells) if cells else "<p>No mistakes on this split.</p>"
    title = f"Most confident mistakes: {html.escape(str(run_dir))}, split {html.escape(split)}"
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title><style>"
            "body{font-family:sans-serif} figure{display:inline-block;margin:6px;width:160px;vertical-align:top}"
            "img{width:160px;image-rendering:pixelated} figcaption{font-size:12px}</style></head>"
            f"<body><h1>{title}</h1><p>The images as the model saw them (resized).</p>\n{body}\n</body></html>\n")


def confusion_png(matrix: np.ndarray, classes) -> bytes:
    """Confusion matrix (rows: true class, columns: predicted) as PNG bytes; no global pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    size = 2.5 + 0.6 * len(classes)
    figure = Figure(figsize=(size, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    ticks = range(len(classes))
    axes.set_xticks(ticks, labels=classes, rotation=45, ha="right")
    axes.set_yticks(ticks, labels=classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in ticks:
        for j in ticks:
            axes.text(j, i, str(matrix[i, j]), ha="center", va="center",
                      color="white" if matrix[i, j] > threshold else "black")
    figure.tight_layout()
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _write_predictions(path: Path, ids, labels, probs, classes) -> None:
    from catdog.csvfile import write_csv
    from catdog.inputs import natural_key

    order = sorted(range(len(ids)), key=lambda k: natural_key(ids[k]))
    rows = [[ids[k], classes[labels[k]], classes[int(probs[k].argmax())], *(f"{p:.8g}" for p in probs[k])]
            for k in order]
    write_csv(path, ["id", "label", "predicted", *classes], rows)
