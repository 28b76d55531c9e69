"""`catdog predict`: calibrated probabilities for images -> a Kaggle-style submission CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from catdog.cli import app, handle_errors
from catdog.cli.evaluate import TTA, Runtime, Split


@app.command()
@handle_errors
def predict(
    model: Annotated[Path, typer.Argument(help="Run folder, exported SavedModel folder, .tflite, .onnx or exported .keras.")],
    inputs: Annotated[list[str], typer.Argument(help="Packed folder (local or gs://...), folder of images, .zip, or image files.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV to write (its folder must exist).")],
    split: Annotated[Split, typer.Option(help="Split to read from packed folders.")] = Split.test,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Leave unreadable images out (listed in "
                                           "<output>.skipped.csv) instead of failing.")] = False,
    clip: Annotated[Optional[float], typer.Option(help="Clip probabilities to c .. 1-c, e.g. 0.005 (log loss punishes over-confidence).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    tta: Annotated[TTA, typer.Option(help="flip: average the plain and the mirrored view.")] = TTA.none,
    runtime: Annotated[Runtime, typer.Option(help="auto: LiteRT (XNNPACK) on a CPU, TensorFlow on a GPU; or force tensorflow | litert.")] = Runtime.auto,
    fmt: Annotated[Optional[str], typer.Option("--format", help="kaggle: id,label = P(second class) (2 classes); "
                                               "full: id,predicted,<one column per class>. Default: kaggle for "
                                               "2 classes, full for more.")] = None,
) -> None:
    """Predict every INPUT image once; rows sorted by id; 2 classes: Kaggle's `id,label` (label = P(class 2))."""
    from catdog.prediction import predict as predict_images

    summary = predict_images(model, inputs, output, split=split.value, skip_bad=skip_bad, clip=clip,
                             batch_size=batch_size, tta=tta.value, fmt=fmt,
                             runtime=runtime.value)
    for line in summary.warnings[:20]:
        typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
    if len(summary.warnings) > 20:
        typer.secho(f"warning: ... and {len(summary.warnings) - 20} more images with a damaged EXIF orientation",
                    fg=typer.colors.YELLOW, err=True)
    for image_id, name, reason in summary.skipped:
        typer.secho(f"skipped {name}: {reason}", fg=typer.colors.YELLOW, err=True)
    if summary.skipped:
        typer.echo(f"skipped {len(summary.skipped)} unreadable images, listed in {summary.skipped_file}")
    columns = ("id,label = P(%s)" % summary.classes[1] if summary.format == "kaggle"
               else "id,predicted," + ",".join(summary.classes))
    if summary.replaced:
        typer.echo(f"replaced the existing {summary.output}")
    typer.echo(f"wrote {summary.rows} predictions ({columns}) to {summary.output} in {summary.seconds:.1f} s "
               f"({summary.images_per_second:,.1f} images/s)")
