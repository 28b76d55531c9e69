"""`catdog serve`: an HTTP API and a drag-and-drop page over a run folder or an exported model.

    from catdog.serve import create_app, serve
    serve("runs/lite0-20250101-120000", port=8000)        # blocks; Ctrl-C stops it
    app = create_app(predictor)                           # any object with the Predictor interface

The port is bound FIRST (a port in use is a one-line error before the model loads), and "serving ... on
http://..." is printed only once the server is listening and the model is warmed up.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from catdog.errors import ConfigError
from catdog.imageformats import DEFAULT_MAX_PIXELS
from catdog.serve.app import Predictor, create_app
from catdog.serve.batcher import DynamicBatcher
from catdog.serve.guard import BODY_TIMEOUT, HEADER_TIMEOUT, MAX_CONNECTIONS, guarded_protocol, rate_limit_logs

__all__ = ["DynamicBatcher", "Predictor", "create_app", "serve"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def serve(model: str | Path, *, host: str = "127.0.0.1", port: int = 8000, max_bytes: int = 10 * 2**20,
          max_pixels: int = DEFAULT_MAX_PIXELS, max_batch: int = 32, batch_wait_ms: float = 5.0,
          header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
          max_connections: int = MAX_CONNECTIONS, log_level: str = "info", runtime: str = "auto") -> None:
    """Load MODEL (run folder, SavedModel folder, .tflite, .onnx or exported .keras) on `runtime` (catdog.runtime:
    auto = LiteRT on a CPU, TensorFlow on a GPU; for run folders and .keras) and serve it until interrupted."""
    from catdog.predictors import load_predictor

    for name, value in (("--header-timeout", header_timeout), ("--body-timeout", body_timeout),
                        ("--max-connections", max_connections)):
        if not value > 0:
            raise ConfigError(f"{name} must be > 0, got {value}")
    sock = bind(host, port)  # before the model loads: a port in use costs a second, not a model load
    try:
        predictor = load_predictor(model, runtime=runtime)
        app = create_app(predictor, max_bytes=max_bytes, max_pixels=max_pixels, max_batch=max_batch,
                         batch_wait_ms=batch_wait_ms)
        bound = sock.getsockname()[1]

        def ready() -> None:
            print(f"serving {predictor.name} ({len(predictor.classes)} classes: {', '.join(predictor.classes)}; "
                  f"runtime {predictor.info.get('runtime', 'tensorflow')}) on http://{_url_host(host)}:{bound}/",
                  flush=True)
            if host not in _LOOPBACK:
                print(f"warning: listening on {host}, reachable from other machines; the API has no authentication",
                      flush=True)

        run_app(app, sock, ready=ready, header_timeout=header_timeout, body_timeout=body_timeout,
                max_connections=max_connections, log_level=log_level)
    finally:
        sock.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port; ConfigError (one line) when the port is taken or not ours."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart right after a stop may rebind
        sock.bind(address)
        sock.set_inheritable(True)
    except OSError as e:
        sock.close()
        why = "address already in use (another server is listening there)" if e.errno == errno.EADDRINUSE else e.strerror
        raise ConfigError(f"cannot listen on {_url_host(host)}:{port}: {why}") from None
    return sock


def run_app(app, sock: socket.socket, *, ready=None, header_timeout: float = HEADER_TIMEOUT,
            body_timeout: float = BODY_TIMEOUT, max_connections: int = MAX_CONNECTIONS, log_level: str = "info") -> None:
    """Serve `app` on an already bound socket with catdog's connection limits; `ready()` once listening."""
    make_server(app, ready=ready, header_timeout=header_timeout, body_timeout=body_timeout,
                max_connections=max_connections, log_level=log_level).run(sockets=[sock])


def make_server(app, *, ready=None, header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                max_connections: int = MAX_CONNECTIONS, log_level: str = "info"):
    """A uvicorn.Server for `app` with the read timeouts, the connection cap and rate-limited logs.

    Run it with `.run(sockets=[sock])`; setting `.should_exit = True` stops it (tests, benchmarks).
    """
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if not self.should_exit and ready is not None:
                ready()

    config = uvicorn.Config(app, log_level=log_level,  # the connection cap is the protocol's (idle ones make room)
                            http=guarded_protocol(header_timeout=header_timeout, body_timeout=body_timeout,
                                                  max_connections=max_connections))
    rate_limit_logs()
    return Server(config)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
