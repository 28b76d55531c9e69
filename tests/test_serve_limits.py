"""catdog serve under abuse (issue 13): half-sent requests are closed by the read timeouts, connections beyond
the cap get 503, a port in use is one line before anything loads, big images decode in their own pool,
/model shows no server paths, and repeated log lines are rate-limited. A real server on 127.0.0.1, port 0."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from catdog.errors import ConfigError
from catdog.serve import bind, create_app, make_server
from catdog.serve.guard import RateLimit


class FakePredictor:
    """P(dog) = blue / (red + blue) of the mean colour: enough model to answer, none to load."""

    classes, image_size, resize, name = ["cat", "dog"], (32, 32), "squash", "fake"
    info = {"backbone": "fake-net", "source": "runs/fake"}

    def predict_images(self, images):
        red, blue = images[..., 0].mean(axis=(1, 2)), images[..., 2].mean(axis=(1, 2))
        p = blue / (red + blue + 1e-9)
        return np.stack([1 - p, p], axis=1)


def encode(color=(40, 60, 200), size=(48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()

WAIT = 20.0  # upper bound for anything the server must do by itself; the timeouts used are far shorter


@contextmanager
def running(app, **limits):
    """Serve `app` in a thread on a free loopback port; yields the port; stops the server on exit."""
    sock = bind("127.0.0.1", 0)
    ready = threading.Event()
    server = make_server(app, ready=ready.set, log_level="warning", **limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert ready.wait(WAIT), "server did not start"
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()


def connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    conn.settimeout(WAIT)
    return conn


def read_all(conn: socket.socket) -> bytes:
    """Everything until the server closes the connection (socket.timeout fails the test)."""
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def get(port: int, path: str) -> tuple[int, bytes]:
    with connect(port) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        raw = read_all(conn)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_half_sent_requests_are_closed_by_the_read_timeouts_and_health_still_answers():
    with running(create_app(FakePredictor()), header_timeout=0.5, body_timeout=0.5) as port:
        header_half = connect(port)
        header_half.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: ima")  # no end of headers
        body_half = connect(port)
        body_half.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        silent = connect(port)  # sends nothing at all
        for conn in (header_half, body_half, silent):
            answer = read_all(conn)  # returns only because the server closed the connection
            assert answer.startswith(b"HTTP/1.1 408 ")
            conn.close()
        status, body = get(port, "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"


def test_beyond_the_connection_cap_idle_connections_make_room_and_busy_ones_get_503():
    with running(create_app(FakePredictor()), header_timeout=60, body_timeout=60, max_connections=2) as port:
        idle = [connect(port), connect(port)]
        for conn in idle:  # half a request each: slowloris clients, accepted before anyone else connects
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        assert get(port, "/health")[0] == 200  # a real client evicts the oldest idle connection ...
        assert read_all(idle[0]).startswith(b"HTTP/1.1 408 ")  # ... which is told why and closed
        busy = []
        for _ in range(2):  # requests whose body is still coming: real work in progress, never evicted
            conn = connect(port)
            conn.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                         b"Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n")
            assert conn.recv(1024).startswith(b"HTTP/1.1 100 ")  # the server is reading this body now
            busy.append(conn)
        assert read_all(idle[1]).startswith(b"HTTP/1.1 408 ")  # made room for the second one
        assert get(port, "/health")[0] == 503  # nobody left to evict: the newcomer is refused
        for conn in idle + busy:
            conn.close()


def test_a_good_request_is_answered_normally_through_the_guarded_protocol():
    data = encode((40, 60, 200))
    with running(create_app(FakePredictor()), header_timeout=5) as port, connect(port) as conn:
        conn.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nConnection: close\r\n"
                     + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head, _, body = read_all(conn).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and json.loads(body)["label"] == "dog"


def test_port_in_use_is_one_line_before_the_model_loads(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import catdog.cli

    catdog.cli._register_commands()
    loaded = []
    import catdog.predictors

    monkeypatch.setattr(catdog.predictors, "load_predictor", lambda path: loaded.append(path) or FakePredictor())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"^cannot listen on 127.0.0.1:{port}: address already in use"):
            bind("127.0.0.1", port)
        serve = ["serve"] if len(catdog.cli.app.registered_commands) > 1 else []
        result = CliRunner().invoke(catdog.cli.app, [*serve, str(tmp_path), "--port", str(port)])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot listen on") and result.output.count("\n") == 1
    assert "serving" not in result.output and "Traceback" not in result.output
    assert loaded == []  # refused before the model was loaded


def test_large_images_decode_in_their_own_pool(monkeypatch):
    from fastapi.testclient import TestClient

    from catdog.serve.images import Decoder

    threads = []
    real_decode = Decoder.decode
    monkeypatch.setattr(Decoder, "decode", lambda self, data: threads.append(threading.current_thread().name)
                        or real_decode(self, data))
    with TestClient(create_app(FakePredictor(), large_pixels=50 * 50)) as client:
        threads.clear()  # warm-up decodes
        assert client.post("/predict", content=encode(size=(40, 40))).status_code == 200
        assert client.post("/predict", content=encode(size=(80, 80))).status_code == 200
    assert threads[0].startswith("catdog-decode_") and threads[1].startswith("catdog-decode-large_")


def test_model_info_shows_no_absolute_server_paths(tmp_path):
    from fastapi.testclient import TestClient

    predictor = FakePredictor()
    predictor.info = {"backbone": "/srv/models/backbone.keras", "source": str(tmp_path / "runs" / "fake"),
                      "metrics": {"val_accuracy": 0.9, "data": "/home/someone/packed", "runs": ["~/runs/a"]}}
    with TestClient(create_app(predictor)) as client:
        text = client.get("/model").text
    info = json.loads(text)
    assert info["backbone"] == "backbone.keras" and info["source"] == "fake"
    assert info["metrics"] == {"val_accuracy": 0.9, "data": "packed", "runs": ["a"]}
    assert str(tmp_path) not in text and "/home" not in text and "/srv" not in text


def test_repeated_log_lines_are_rate_limited():
    logger = logging.getLogger("catdog.test-ratelimit")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.addFilter(RateLimit(burst=10, period=3600))
    try:
        for i in range(10_000):
            logger.warning("Invalid HTTP request received from %s", i)
        logger.warning("a different message")
    finally:
        logger.removeHandler(handler)
    assert len(records) == 11
