"""`catdog serve MODEL`: the HTTP API and drag-and-drop page (thin: parse -> catdog.serve.serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catdog.cli import app, handle_errors
from catdog.cli.evaluate import Runtime
from catdog.imageformats import DEFAULT_MAX_PIXELS


@app.command()
@handle_errors
def serve(
    model: Annotated[Path, typer.Argument(exists=True, help="Run folder, exported SavedModel folder, .tflite, .onnx or exported .keras file.")],
    host: Annotated[str, typer.Option(help="Address to bind; the default is loopback only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port, printed).")] = 8000,
    max_bytes: Annotated[str, typer.Option(help="Largest image upload, e.g. 10MB or 512KB; larger ones get 413.")] = "10MB",
    max_megapixels: Annotated[float, typer.Option(min=0.001, help="Largest width x height, read from the header before decoding; larger get 422.")] = DEFAULT_MAX_PIXELS / 1e6,
    max_batch: Annotated[int, typer.Option(min=1, help="Largest batch of concurrent requests run on the model at once; 1 turns batching off.")] = 32,
    batch_wait_ms: Annotated[float, typer.Option(min=0.0, help="How long a request waits for others to share its batch.")] = 5.0,
    runtime: Annotated[Runtime, typer.Option(help="auto: LiteRT (XNNPACK) on a CPU, TensorFlow on a GPU; or force tensorflow | litert.")] = Runtime.auto,
    header_timeout: Annotated[float, typer.Option(min=0.001, help="Seconds a client has to send the request line and headers; then 408 and close.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(min=0.001, help="Seconds of silence allowed between two chunks of a request body; then 408 and close.")] = 30.0,
    max_connections: Annotated[int, typer.Option(min=1, help="Open connections; beyond it a connection still sending its headers is dropped (408) to make room, else the newcomer gets 503.")] = 256,
) -> None:
    """Serve MODEL over HTTP: POST /predict, POST /predict/batch, GET /health, GET /model, and a web page at /."""
    from catdog.extras import require
    from catdog.sizes import parse_size

    require("serve", "catdog serve")
    from catdog.serve import serve as run_server

    run_server(model, host=host, port=port, max_bytes=parse_size(max_bytes, "--max-bytes"),
               max_pixels=int(max_megapixels * 1e6),
               max_batch=max_batch, batch_wait_ms=batch_wait_ms, header_timeout=header_timeout,
               body_timeout=body_timeout, max_connections=max_connections, runtime=runtime.value)
