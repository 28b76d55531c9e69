"""`catdog export`: a self-contained SavedModel, TFLite, ONNX or .keras model, checked against the run and measured."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from catdog.cli import app, handle_errors


class Format(str, Enum):
    savedmodel = "savedmodel"
    tflite = "tflite"
    onnx = "onnx"
    keras = "keras"


class Quantize(str, Enum):
    none = "none"
    float16 = "float16"
    dynamic = "dynamic"
    int8 = "int8"


@app.command()
@handle_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run folder written by `catdog train`.")],
    format: Annotated[Format, typer.Option("--format", help="What to write.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (SavedModel: OUT/<version>/).")],
    quantize: Annotated[Quantize, typer.Option(
        help="TFLite only: float16 = half-size weights; dynamic = int8 weights; int8 = full-integer "
             "(uint8 input, calibrated on the run's val split).")] = Quantize.none,
    version: Annotated[Optional[int], typer.Option(help="SavedModel version folder (default: next free).")] = None,
    eval_images: Annotated[int, typer.Option(
        help="Val images for the accuracy / log loss / speed report (0: speed only).", min=0)] = 500,
) -> None:
    """Export RUN's calibrated model, check its probabilities against the in-memory model, and measure it."""
    import catdog

    result = catdog.export(run, format.value, out, quantize=quantize.value, version=version, eval_images=eval_images)
    typer.echo(f"exported {result.format}{'' if result.quantize == 'none' else f' ({result.quantize} quantized)'} "
               f"to {result.path}")
    typer.echo(f"metadata: {result.metadata_path}")
    verdict = f"<= {result.tolerance:g} ok" if result.tolerance else "quantized: reported, not enforced"
    typer.echo(f"parity on {result.parity_images} images ({result.parity_source}): "
               f"max |exported - in-memory| = {result.max_abs_diff:.2e} ({verdict})")
    if result.report is not None:
        from catdog.export_report import EXPORT_JSON, summary_line

        typer.echo(f"report ({out / EXPORT_JSON}): {summary_line(result.report)}")
