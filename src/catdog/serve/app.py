"""The HTTP API and web page over one predictor: upload limits -> header check -> shared decode ->
dynamic batching -> JSON. It holds no model and no preprocessing of its own: the predictor
(`catdog.predictors.load_predictor`) owns the model, `catdog.data.decode` owns decoding.

Routes:
    POST /predict        one image, multipart field `file` or the raw request body; `?preview=1` adds
                         `input_preview`, the model input as a data: URL (JPEG), for the web page
    POST /predict/batch  several multipart files -> one result (or error) each, in upload order
    GET  /health         liveness, queue length and the batch sizes run so far
    GET  /model          classes, backbone, input size, training metrics, limits
    GET  /               the drag-and-drop page
    GET  /docs           interactive API docs with upload forms (Swagger UI served locally, see serve/docs.py)
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from catdog.imageformats import DEFAULT_MAX_PIXELS
from catdog.errors import ConfigError, ModelError
from catdog.predictors import Predictor
from catdog.serve.batcher import BatcherStopped, DynamicBatcher
from catdog.serve.docs import BATCH_BODY, PREDICT_BODY, add_offline_docs
from catdog.serve.images import Decoder, RejectedImage, check_header, preview_jpeg

log = logging.getLogger("catdog.serve")

_MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file bytes
# Images above LARGE_PIXELS are decoded in their own small pool: a burst of big-but-legal uploads (16 clients
# with 6000x6000 PNGs) then queues behind itself, while small photos keep every other decode thread. It also
# bounds decode memory: a 36 MP PNG takes ~0.5 GB while being decoded and resized.
LARGE_PIXELS = 4_000_000
LARGE_QUEUE = 8  # large images waiting per large-decode thread; beyond it 503 (retry later)


class ModelFailed(ModelError):
    """The model raised or returned the wrong shape on a batch; the request gets a 500, the server goes on."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status


def create_app(
    predictor: Predictor,
    *,
    max_bytes: int = 10 * 2**20,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_batch: int = 32,
    batch_wait_ms: float = 5.0,
    max_files: int = 32,
    decode_workers: int | None = None,
    large_pixels: int | None = LARGE_PIXELS,
) -> FastAPI:
    """Build the app. Nothing runs until it is served (or entered with TestClient).

    Args:
        predictor: see `Predictor`; its `predict_images` runs in one worker thread.
        max_bytes: largest accepted image file; larger uploads get 413. Defaults to 10 MiB.
        max_pixels: largest width x height, checked on the header before decoding; larger get 422.
            Defaults to 50 megapixels.
        max_batch: largest batch run on the model; 1 turns dynamic batching off. Defaults to `32`.
        batch_wait_ms: how long a request waits for others to share its batch. Defaults to `5`.
        max_files: most files in one /predict/batch request. Defaults to `32`.
        decode_workers: threads decoding uploads at once (bounds decode memory). Defaults to the CPU count.
        large_pixels: images above this many pixels decode in a separate pool of decode_workers // 4 threads
            (at least 1), so big uploads cannot starve small ones. None: one pool for all. Defaults to 4 MP.
    """
    for name, value, low in (("max_bytes", max_bytes, 1), ("max_pixels", max_pixels, 1),
                             ("max_batch", max_batch, 1), ("max_files", max_files, 1),
                             ("batch_wait_ms", batch_wait_ms, 0)):
        if value < low:
            raise ConfigError(f"serve: {name} must be >= {low}, got {value}")
    classes = [str(c) for c in predictor.classes]
    info = _jsonable(dict(getattr(predictor, "info", None) or {}))
    model_ref = {"name": str(predictor.name), "version": model_version(predictor, info)}
    decoder = Decoder(predictor.image_size, predictor.resize, max_pixels=max_pixels)
    page = (resources.files("catdog.serve") / "static" / "index.html").read_text(encoding="utf-8")

    def run_model(images: np.ndarray) -> np.ndarray:
        probs = np.asarray(predictor.predict_images(images), dtype=np.float64)
        if probs.shape != (len(images), len(classes)):
            raise ModelFailed(f"the model returned shape {probs.shape} for {len(images)} images and {len(classes)} classes")
        return probs

    batcher = DynamicBatcher(run_model, max_batch=max_batch, wait_ms=batch_wait_ms)
    workers = decode_workers or os.cpu_count() or 1
    large_workers = max(1, workers // 4)
    large_waiting = 0

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.decode_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="catdog-decode")
        app.state.large_pool = ThreadPoolExecutor(max_workers=large_workers, thread_name_prefix="catdog-decode-large")
        loop = asyncio.get_running_loop()
        # Trace the decoder and the model before the first client arrives; a broken model stops start-up here.
        await loop.run_in_executor(app.state.decode_pool, decoder.warm_up)
        await loop.run_in_executor(app.state.decode_pool, run_model, np.zeros((1, *decoder.image_size, 3), np.float32))
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            app.state.decode_pool.shutdown(wait=True)
            app.state.large_pool.shutdown(wait=True)

    app = FastAPI(title="catdog", summary=f"Classify photos with {predictor.name}", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # both load scripts from a CDN; /docs is served locally instead
    add_offline_docs(app, "catdog")
    app.state.predictor = predictor
    app.state.batcher = batcher

    @app.exception_handler(RejectedImage)
    @app.exception_handler(ModelFailed)
    async def _refused(request: Request, exc: RejectedImage | ModelFailed) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:  # e.g. closed by the body timeout
        return Response(status_code=400)

    async def classify(data: bytes, preview: bool = False) -> dict[str, Any]:
        nonlocal large_waiting
        loop = asyncio.get_running_loop()
        # header fields only (cheap, on the event loop): where to queue it; the decoder checks the whole file
        _, width, height = check_header(data, max_pixels, structure=False)
        if large_pixels is None or width * height <= large_pixels:
            image, warning = await loop.run_in_executor(app.state.decode_pool, decoder.decode, data)  # RejectedImage on bad input
        else:
            if large_waiting >= LARGE_QUEUE * large_workers:
                raise RejectedImage(503, f"busy decoding other large images ({large_waiting} waiting); retry shortly")
            large_waiting += 1
            try:
                image, warning = await loop.run_in_executor(app.state.large_pool, decoder.decode, data)
            finally:
                large_waiting -= 1
        try:
            probs = await batcher.submit(image)
        except ModelFailed:
            raise
        except BatcherStopped as e:
            raise ModelFailed(str(e), status=503) from e
        except Exception as e:  # the model itself broke: logged by the batcher, reported to this client as a 500
            raise ModelFailed(f"the model failed: {type(e).__name__}: {e}") from e
        result = {
            "label": classes[int(np.argmax(probs))],
            "probabilities": {c: float(p) for c, p in zip(classes, probs)},
        }
        if warning:
            result["warning"] = warning
        if preview:
            jpeg = await loop.run_in_executor(app.state.decode_pool, preview_jpeg, image)
            result["input_preview"] = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        return result

    @app.post("/predict", openapi_extra=PREDICT_BODY)
    async def predict(request: Request) -> JSONResponse:
        """Classify one image: multipart field `file`, or the raw image as the request body."""
        start = time.perf_counter()
        if _is_multipart(request):
            form = await _read_form(request, max_bytes + _MULTIPART_SLACK, max_files=2)
            try:
                uploads = _uploads(form)
                if len(uploads) != 1 or uploads[0][0] != "file":
                    raise RejectedImage(400, "send one image in the multipart field 'file' (or as the raw body); "
                                             f"got {len(uploads)} file(s); use /predict/batch for several")
                filename, data = uploads[0][1].filename, await uploads[0][1].read()
            finally:
                await form.close()
        else:
            filename, data = None, await _read_body(request, max_bytes)
        _check_size(data, max_bytes, filename)
        result = await classify(data, preview=request.query_params.get("preview") in ("1", "true"))
        body = {**result, "model": model_ref, "latency_ms": _ms(start)}
        if filename is not None:
            body["filename"] = filename
        return JSONResponse(body)

    @app.post("/predict/batch", openapi_extra=BATCH_BODY)
    async def predict_batch(request: Request) -> JSONResponse:
        """Classify several images (multipart fields `files`): one result or error each, in upload order."""
        start = time.perf_counter()
        if not _is_multipart(request):
            raise RejectedImage(415, "send the images as multipart/form-data files (e.g. curl -F files=@a.jpg -F files=@b.jpg)")
        form = await _read_form(request, max_files * (max_bytes + _MULTIPART_SLACK), max_files=max_files)
        try:
            uploads = [upload for _, upload in _uploads(form)]
            if not uploads:
                raise RejectedImage(400, "the multipart upload holds no files")

            async def one(upload: UploadFile) -> dict[str, Any]:
                try:
                    data = await upload.read()
                    _check_size(data, max_bytes, upload.filename)
                    return {"filename": upload.filename, **await classify(data)}
                except (RejectedImage, ModelFailed) as e:
                    return {"filename": upload.filename, "error": str(e), "status": e.status}

            results = await asyncio.gather(*(one(u) for u in uploads))
        finally:
            await form.close()
        return JSONResponse({"results": results, "model": model_ref, "latency_ms": _ms(start)})

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok" if batcher.running else "starting",
            "model": model_ref,
            "queued": batcher.queued,
            "batches": {str(size): count for size, count in sorted(batcher.batch_sizes.items())},
        }

    public = _without_server_paths(info)

    @app.get("/model")
    async def model() -> dict[str, Any]:
        return {
            **public,
            **model_ref,
            "classes": classes,
            "backbone": public.get("backbone"),
            "image_size": list(decoder.image_size),
            "resize": decoder.resize,
            "metrics": public.get("metrics"),
            "limits": {"max_bytes": max_bytes, "max_pixels": max_pixels, "max_batch": max_batch,
                       "batch_wait_ms": batch_wait_ms, "max_files": max_files},
        }

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app


def model_version(predictor: Predictor, info: dict) -> str | None:
    """The predictor's own version if it has one, else the first 12 hex digits of the sha256 of the model's
    files (a run's best.keras + calibration.json, every file of a SavedModel, or the one .tflite/.keras),
    so a client can tell when the model behind the same name changed."""
    version = info.get("version") or getattr(predictor, "version", None)
    if version is not None:
        return str(version)
    source = getattr(predictor, "source", None) or info.get("source")
    if not source:
        return None
    path = Path(source)
    if path.is_file():
        files = [path]
    elif (path / "best.keras").is_file():
        files = [f for f in (path / "best.keras", path / "calibration.json") if f.is_file()]
    elif path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file())
    else:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else file.name.encode())
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def _check_size(data: bytes, max_bytes: int, filename: str | None) -> None:
    if len(data) > max_bytes:
        name = f"{filename!r} " if filename else ""
        raise RejectedImage(413, f"the file {name}is {len(data):,} bytes; the limit is {max_bytes:,} bytes (--max-bytes)")


def _check_content_length(request: Request, limit: int) -> None:
    """Refuse before reading a byte when the client announces too much."""
    header = request.headers.get("content-length")
    if header is None:
        return
    try:
        length = int(header)
    except ValueError:
        raise RejectedImage(400, f"invalid Content-Length header {header!r}") from None
    if length > limit:
        raise RejectedImage(413, f"the request body is {length:,} bytes; the limit is {limit:,} bytes (--max-bytes)")


class _BodyTooLarge(Exception):
    pass


def _counting_receive(receive, limit: int):
    """Wrap the ASGI receive channel so a body longer than `limit` stops being read (no Content-Length trust)."""
    seen = 0

    async def wrapped():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
        return message

    return wrapped


async def _read_body(request: Request, limit: int) -> bytes:
    _check_content_length(request, limit)
    chunks, seen = [], 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise RejectedImage(413, f"the request body exceeds the limit of {limit:,} bytes (--max-bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_form(request: Request, limit: int, *, max_files: int) -> FormData:
    _check_content_length(request, limit)
    limited = Request(request.scope, receive=_counting_receive(request.receive, limit))
    try:
        return await limited.form(max_files=max_files, max_fields=16)
    except _BodyTooLarge:
        raise RejectedImage(413, f"the request body exceeds the limit of {limit:,} bytes (--max-bytes)") from None
    except HTTPException as e:  # starlette's MultiPartException, already turned into a 400
        raise RejectedImage(e.status_code, f"malformed multipart upload: {e.detail}") from e


def _uploads(form: FormData) -> list[tuple[str, UploadFile]]:
    return [(key, value) for key, value in form.multi_items() if isinstance(value, UploadFile)]


def _without_server_paths(value: Any) -> Any:
    """GET /model is public: absolute paths of the server's files become their last component."""
    if isinstance(value, dict):
        return {k: _without_server_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_server_paths(v) for v in value]
    if isinstance(value, str) and (os.path.isabs(value) or value.startswith("~") or value.startswith("file:")):
        return Path(value.rstrip("/")).name
    return value


def _jsonable(value: Any) -> Any:
    """Predictor info may hold Paths or numpy scalars; make it plain JSON once, at start-up."""

    def default(obj):
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        return str(obj)

    return json.loads(json.dumps(value, default=default))
