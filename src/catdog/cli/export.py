"""`catdog export`: a self-contained SavedModel, TFLite or .keras model, checked against the run."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from catdog.cli import app, handle_errors


class Format(str, Enum):
    savedmodel = "savedmodel"
    tflite = "tflite"
    keras = "keras"


class Quantize(str, Enum):
    none = "none"
    dynamic = "dynamic"


@app.command()
@handle_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run folder written by `catdog train`.")],
    format: Annotated[Format, typer.Option("--format", help="What to write.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (SavedModel: OUT/<version>/).")],
    quantize: Annotated[Quantize, typer.Option(help="TFLite only: dynamic = int8 weights.")] = Quantize.none,
    version: Annotated[Optional[int], typer.Option(help="SavedModel version folder (default: next free).")] = None,
) -> None:
    """Export RUN's calibrated model and check its probabilities against the in-memory model."""
    import catdog

    result = catdog.export(run, format.value, out, quantize=quantize.value, version=version)
    typer.echo(f"exported {result.format}{'' if result.quantize == 'none' else f' ({result.quantize} quantized)'} "
               f"to {result.path}")
    typer.echo(f"metadata: {result.metadata_path}")
    verdict = f"<= {result.tolerance:g} ok" if result.tolerance else "quantized: reported, not enforced"
    typer.echo(f"parity on {result.parity_images} images ({result.parity_source}): "
               f"max |exported - in-memory| = {result.max_abs_diff:.2e} ({verdict})")
