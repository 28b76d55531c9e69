"""`catdog demo`: the whole chain offline on generated images (the README's first command)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from catdog.cli import app, handle_errors


@app.command()
@handle_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo writes.")] = Path("catdog-demo"),
    backbone: Annotated[str, typer.Option(help="small-cnn (from scratch) or a .keras feature extractor file, "
                                          "e.g. ../shared/weights/efficientnet_lite0_imagenet_notop.keras.")] = "small-cnn",
    per_class: Annotated[int, typer.Option(help="Generated training images per class.")] = 150,
    test: Annotated[int, typer.Option(help="Generated unlabeled test images.")] = 40,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 20,
    image_size: Annotated[Optional[int], typer.Option(help="Input size in pixels (default: 64 for small-cnn, else the backbone's native size).")] = None,
) -> None:
    """Generate circles vs squares, pack, train, evaluate, predict and export: offline, on a CPU, in minutes."""
    from catdog.demo import demo as run_demo

    r = run_demo(out, backbone=backbone, per_class=per_class, test=test, epochs=epochs, image_size=image_size,
                 echo=typer.echo)
    m = r.metrics
    typer.echo(f"\ndone in {r.seconds:.0f} s: validation accuracy {m['accuracy']:.3f}, log loss {m['log_loss']:.3g}")
    for label, path in (("images", r.images), ("packed", r.packed), ("run", r.run_dir), ("evaluation", r.eval_dir),
                        ("submission", r.submission), ("SavedModel", r.savedmodel), ("TFLite", r.tflite)):
        typer.echo(f"  {label:<11} {path}")
    typer.echo(f"next: catdog predict {r.run_dir} YOUR_IMAGES/ -o predictions.csv")
