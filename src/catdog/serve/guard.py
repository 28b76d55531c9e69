"""Connection-level limits for `catdog serve`: read timeouts, a connection cap, rate-limited logs.

uvicorn's h11 protocol has a keep-alive timeout (idle time BETWEEN requests) but none while a request is
being received: a client that sends half a header and waits holds a connection and a file descriptor
forever, and ~20,000 such clients exhausted the descriptors so that /health stopped answering. This
subclass adds, per connection:

- a header timeout: the request line and headers must arrive within `header_timeout` seconds of the first
  byte (or of the connection being opened); trickling them byte by byte does not extend it;
- a body timeout: while the body is being received, each chunk must follow the previous one within
  `body_timeout` seconds (a large upload on a slow link still works);
- a connection cap: at most `max_connections` open connections, so the descriptors left to the process
  cannot run out. A new connection beyond the cap first evicts the connection that has waited longest for
  its headers (a slowloris client; it gets 408), so idle half-sent connections cannot lock real clients
  out; only when every open connection is busy with a real request is the newcomer answered 503 and closed.
A timed-out connection is answered 408 and closed. uvicorn's `limit_concurrency` (set to the same cap)
answers 503 to requests beyond it.

Log lines from uvicorn, asyncio and catdog.serve are rate-limited per message (`RateLimit`): a flood of bad
requests cannot fill the disk with identical warnings.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("catdog.serve")

HEADER_TIMEOUT = 10.0  # seconds for the request line + headers (a browser sends them in one packet)
BODY_TIMEOUT = 30.0  # seconds of silence allowed between two chunks of a request body
MAX_CONNECTIONS = 256  # open connections; beyond: 503 and close
LINGER = 1.0  # seconds a timed-out connection is kept half-closed so the client reads its 408

_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 16\r\n\r\nrequest timeout\n"
_503 = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\nretry-after: 1\r\n"
        b"content-length: 27\r\n\r\ntoo many open connections\r\n")


def guarded_protocol(*, header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                     max_connections: int = MAX_CONNECTIONS) -> type[H11Protocol]:
    """An H11Protocol class with these limits, to pass as uvicorn's `http=`."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {
        "header_timeout": float(header_timeout), "body_timeout": float(body_timeout),
        "max_connections": int(max_connections)})


class GuardedH11Protocol(H11Protocol):
    header_timeout = HEADER_TIMEOUT
    body_timeout = BODY_TIMEOUT
    max_connections = MAX_CONNECTIONS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading_headers = False
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            waiting = self._waiting()
            if waiting:  # the oldest connection still sending its headers makes room
                oldest = next(iter(waiting))
                oldest._timed_out("headers", self.loop.time() - waiting[oldest], evicted=True)
            else:
                log.warning("refused a connection: %d open, the limit is %d (--max-connections)",
                            len(self.connections) - 1, self.max_connections)
                self._give_up(_503)
                return
        self._watch()

    def _waiting(self) -> dict:
        """Connections of this server waiting for request headers -> since when (insertion = age order)."""
        waiting = getattr(self.server_state, "catdog_waiting", None)
        if waiting is None:
            waiting = self.server_state.catdog_waiting = {}
        return waiting

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._waiting().pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if getattr(self, "_given_up", False):  # lingering after a 408: the rest of that request is discarded
            return
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def _watch(self) -> None:
        """(Re)arm the read timer for the state h11 is in after the bytes received so far."""
        if self.transport is None or self.transport.is_closing():
            self._cancel()
            return
        state = self.conn.their_state
        if state is h11.IDLE and not (self.cycle is not None and not self.cycle.response_complete):
            # waiting for a request line + headers; uvicorn's keep-alive timer covers a silent idle connection
            # between requests, our deadline starts with its first byte (or with the connection) and is not reset
            if not self._reading_headers and (self.conn.trailing_data[0] or self.cycle is None):
                self._reading_headers = True
                self._waiting()[self] = self.loop.time()
                self._arm(self.header_timeout, "headers")
        elif state is h11.SEND_BODY:
            self._stop_reading_headers()
            self._arm(self.body_timeout, "body")  # reset by every chunk
        else:  # the request is complete: the app owns the connection until it answers
            self._stop_reading_headers()
            self._cancel()

    def _stop_reading_headers(self) -> None:
        self._reading_headers = False
        self._waiting().pop(self, None)

    def _arm(self, seconds: float, what: str) -> None:
        self._cancel()
        self._read_timer = self.loop.call_later(seconds, self._timed_out, what, seconds)

    def _cancel(self) -> None:
        timer = getattr(self, "_read_timer", None)
        if timer is not None:
            timer.cancel()
            self._read_timer = None

    def _timed_out(self, what: str, seconds: float, evicted: bool = False) -> None:
        self._cancel()
        self._waiting().pop(self, None)
        if self.transport.is_closing():
            return
        if evicted:
            log.warning("closed a connection from %s to make room: request %s still incomplete after %.1f s "
                        "(--max-connections %d reached)", self.client[0] if self.client else "?", what, seconds,
                        self.max_connections)
        else:
            log.warning("closed a connection from %s: request %s not received within %g s",
                        self.client[0] if self.client else "?", what, seconds)
        self._give_up(_408 if self.cycle is None or self.cycle.response_started is False else b"")

    def _give_up(self, response: bytes) -> None:
        """Answer `response` and close. Lingering: stop sending, but read (and drop) what the client still
        sends for a moment; closing at once with unread bytes arriving makes the kernel send a reset that can
        destroy the answer in flight."""
        self._given_up = True
        self.connections.discard(self)  # no longer counts against the cap while it lingers (at most LINGER s)
        if response:
            self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()


class RateLimit(logging.Filter):
    """At most `burst` records per message template per `period` seconds; then one 'suppressed N' line."""

    def __init__(self, burst: int = 10, period: float = 10.0):
        super().__init__()
        self.burst, self.period = burst, period
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], list] = {}  # key -> [window start, count, suppressed]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            window = self._seen.get(key)
            if window is None or now - window[0] >= self.period:
                suppressed = window[2] if window else 0
                self._seen[key] = [now, 1, 0]
                if len(self._seen) > 1000:  # many distinct templates: forget the oldest windows
                    for old in sorted(self._seen, key=lambda k: self._seen[k][0])[:500]:
                        del self._seen[old]
                if suppressed:
                    record.msg = f"{record.msg} (and {suppressed} similar lines suppressed in the last {self.period:g} s)"
                return True
            window[1] += 1
            if window[1] <= self.burst:
                return True
            window[2] += 1
            return False


def rate_limit_logs(names=("uvicorn.error", "asyncio", "catdog.serve"), **kwargs) -> RateLimit:
    """Attach one RateLimit filter to these loggers (records are filtered where they are logged)."""
    limiter = RateLimit(**kwargs)
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimit) for f in logger.filters):
            logger.addFilter(limiter)
    return limiter
