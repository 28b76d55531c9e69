"""`catdog serve`: an HTTP API and a drag-and-drop page over a run folder or an exported model.

    from catdog.serve import create_app, serve
    serve("runs/lite0-20250101-120000", port=8000)        # blocks; Ctrl-C stops it
    app = create_app(predictor)                           # any object with the Predictor interface
"""

from __future__ import annotations

from pathlib import Path

from catdog.imageformats import DEFAULT_MAX_PIXELS
from catdog.serve.app import Predictor, create_app
from catdog.serve.batcher import DynamicBatcher

__all__ = ["DynamicBatcher", "Predictor", "create_app", "serve"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def serve(model: str | Path, *, host: str = "127.0.0.1", port: int = 8000, max_bytes: int = 10 * 2**20,
          max_pixels: int = DEFAULT_MAX_PIXELS, max_batch: int = 32, batch_wait_ms: float = 5.0,
          log_level: str = "info") -> None:
    """Load MODEL (run folder, SavedModel folder, .tflite, .onnx or exported .keras) and serve it until interrupted."""
    import uvicorn

    from catdog.predictors import load_predictor

    predictor = load_predictor(model)
    app = create_app(predictor, max_bytes=max_bytes, max_pixels=max_pixels, max_batch=max_batch,
                     batch_wait_ms=batch_wait_ms)
    print(f"serving {predictor.name} ({len(predictor.classes)} classes: {', '.join(predictor.classes)}) "
          f"on http://{_url_host(host)}:{port}/")
    if host not in _LOOPBACK:
        print(f"warning: listening on {host}, reachable from other machines; the API has no authentication")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
