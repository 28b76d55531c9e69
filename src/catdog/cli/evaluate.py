"""`catdog evaluate`: score a run on a labeled split of a packed folder."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from catdog.cli import app, handle_errors


class Split(str, Enum):
    train = "train"
    val = "val"
    test = "test"


class Runtime(str, Enum):
    """catdog.runtime.RUNTIMES, as a CLI choice (shared by evaluate, predict, serve, train)."""

    auto = "auto"
    tensorflow = "tensorflow"
    litert = "litert"


class TTA(str, Enum):
    none = "none"
    flip = "flip"


@app.command()
@handle_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="Run folder written by `catdog train`.")],
    data: Annotated[str, typer.Option("--data", help="Packed folder or URL (gs://...); its classes must equal the run's.")],
    split: Annotated[Split, typer.Option(help="Labeled split to score; `test` is unlabeled.")] = Split.val,
    tta: Annotated[TTA, typer.Option(help="flip: average the plain and the mirrored view.")] = TTA.none,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    runtime: Annotated[Runtime, typer.Option(help="auto: LiteRT (XNNPACK) on a CPU, TensorFlow on a GPU; or force tensorflow | litert.")] = Runtime.auto,
) -> None:
    """Score RUN on every record of one split exactly once; write RUN/eval/<split>/."""
    from catdog.evaluation import evaluate as evaluate_run

    result = evaluate_run(run, data, split.value, tta=tta.value, batch_size=batch_size, runtime=runtime.value)
    m = result.metrics
    auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
    typer.echo(f"{m['split']}: {m['num_examples']} images, accuracy {m['accuracy']:.4f}, "
               f"log loss {m['log_loss']:.4f}, ROC AUC {auc} (temperature {m['temperature']:.3g}, tta {m['tta']})")
    for name, c in m["per_class"].items():
        typer.echo(f"  {name:>12}: precision {c['precision']:.3f}  recall {c['recall']:.3f}  "
                   f"F1 {c['f1']:.3f}  n={c['support']}")
    typer.echo(f"wrote metrics.json, predictions.csv, confusion_matrix.png, mistakes.html to {result.out_dir}")
