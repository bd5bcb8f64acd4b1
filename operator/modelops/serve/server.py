"""The HTTP/1.1 layer: an asyncio protocol on httptools' parser, run on uvloop.

Lean on purpose (measured against uvicorn in ``bench/serve``): a connection feeds bytes to
httptools; a complete request goes straight to :meth:`App.handle` inside the same callback, and
the response is written with one ``transport.write``. There is no task, no thread hop and no
ASGI message dict per request; inference is CPU-bound and a worker process owns one core.

Handled here: keep-alive and pipelining (responses in request order), ``Expect: 100-continue``,
the body size limit (413, checked on ``Content-Length`` before the body arrives and on the bytes
of a chunked body as they come), malformed HTTP (400, then close), write back-pressure, idle
keep-alive connections (closed after ``keepalive`` seconds), and graceful shutdown: on SIGTERM
or SIGINT the listener closes, readiness turns false, idle connections close, requests in
flight are answered, and the process exits once every connection is gone (or at a deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, cast

import httptools

from modelops.serve.app import JSON, App
from modelops.serve.codec import encode_error

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class _State:
    """What all connections of one worker share."""

    def __init__(self, app: App, max_body: int, keepalive: float) -> None:
        self.app = app
        self.max_body = max_body
        self.keepalive = keepalive
        self.connections: set[HttpProtocol] = set()
        self.draining = False
        self.drained = asyncio.Event()
        self.date = b""
        self.refresh_date()

    def refresh_date(self) -> None:
        self.date = b"date: " + formatdate(usegmt=True).encode() + b"\r\n"


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    __slots__ = (
        "body",
        "body_size",
        "content_length",
        "discard",
        "headers_expect",
        "idle",
        "last_active",
        "parser",
        "started",
        "state",
        "transport",
        "url",
        "write_paused",
    )

    def __init__(self, state: _State) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.body_size = 0
        self.content_length: int | None = None
        self.discard = False
        self.headers_expect = False
        self.idle = True
        self.started = 0.0
        self.last_active = time.monotonic()
        self.write_paused = False

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # not TCP (a Unix socket): nothing to tune
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.transport = None
        if self.state.draining and not self.state.connections:
            self.state.drained.set()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if self.transport is not None and not self.discard:
                self._fail(400, f"malformed HTTP request: {exc}")

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None:
            self.transport.resume_reading()

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.started = time.perf_counter()
        self.idle = False
        self.url = b""
        self.body = []
        self.body_size = 0
        self.content_length = None
        self.discard = False
        self.headers_expect = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)  # cheap filter: most headers are none of these three
        if size == 14 and name.lower() == b"content-length":
            try:
                self.content_length = int(value)
            except ValueError:
                self.content_length = None
        elif size == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self.headers_expect = True
        elif size == 31 and name.lower() == b"inference-header-content-length":
            self._reject(400, "the binary tensor extension is not supported; send JSON tensors")

    def on_headers_complete(self) -> None:
        if self.discard:
            return
        length = self.content_length
        if length is not None and length > self.state.max_body:
            self._too_large(length)
        elif self.headers_expect and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.discard:
            return
        self.body_size += len(body)
        if self.body_size > self.state.max_body:
            self._too_large(self.body_size)
            return
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.discard:
            # A refused request was answered already; its connection closes now.
            self._close()
            return
        transport = self.transport
        if transport is None:
            return
        method = self.parser.get_method()
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        status, headers, payload = self.state.app.handle(method, self.url, body, self.started)
        keep_alive = self.parser.should_keep_alive() and not self.state.draining
        self._write(status, headers, payload, keep_alive, head=method == b"HEAD")
        self.idle = True
        self.last_active = time.monotonic()
        if not keep_alive:
            self._close()

    # -- helpers ------------------------------------------------------------------------------------

    def _write(self, status: int, headers: bytes, payload: bytes, keep_alive: bool, head: bool = False) -> None:
        transport = self.transport
        if transport is None:
            return
        parts = [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"")),
            headers,
            self.state.date,
            b"content-length: %d\r\n" % len(payload),
            b"" if keep_alive else b"connection: close\r\n",
            b"\r\n",
        ]
        if not head:
            parts.append(payload)
        transport.write(b"".join(parts))

    def _fail(self, status: int, message: str) -> None:
        self._write(status, JSON, encode_error(message), keep_alive=False)
        self._close()

    def _reject(self, status: int, message: str) -> None:
        """Answer now, ignore the rest of this request, and close once it has been read."""
        self.discard = True
        self._write(status, JSON, encode_error(message), keep_alive=False)
        self.state.app.count_rejected(status, self.started)

    def _too_large(self, size: int) -> None:
        self._reject(413, f"request body of {size} bytes is over the limit of {self.state.max_body} bytes")
        if self.headers_expect or size > 4 * self.state.max_body:
            # The client waits for 100-continue (or sends far too much): no point reading on.
            self._close()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def drain(self) -> None:
        """Shutdown: close now if idle; otherwise the response in flight goes out with ``connection: close``."""
        if self.idle:
            self._close()


async def _tick(state: _State) -> None:
    """Once a second: refresh the cached Date header, flush metrics, close idle keep-alive connections."""
    while True:
        await asyncio.sleep(1.0)
        state.refresh_date()
        state.app.flush_metrics()
        deadline = time.monotonic() - state.keepalive
        for conn in list(state.connections):
            if conn.idle and conn.last_active < deadline:
                conn.drain()


async def serve(app: App, sock: socket.socket, *, max_body: int, keepalive: float, graceful_timeout: float) -> None:
    """Serve on an already bound, listening socket until SIGTERM or SIGINT, then drain and return."""
    loop = asyncio.get_running_loop()
    state = _State(app, max_body, keepalive)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(lambda: HttpProtocol(state), sock=sock, backlog=2048)
    ticker = asyncio.create_task(_tick(state))
    try:
        await stop.wait()
        state.draining = True
        app.ready = False
        server.close()
        for conn in list(state.connections):
            conn.drain()
        if state.connections:
            try:
                await asyncio.wait_for(state.drained.wait(), graceful_timeout)
            except TimeoutError:
                for conn in list(state.connections):
                    if conn.transport is not None:
                        conn.transport.abort()
        await server.wait_closed()
    finally:
        ticker.cancel()
        app.flush_metrics()


def run(app: App, sock: socket.socket, **options: Any) -> None:
    """Run :func:`serve` on uvloop."""
    import gc

    import uvloop

    # Everything loaded so far (scikit-learn, the model) lives as long as the process: move it out
    # of the collector's sight, so that no collection pass over it lands on a request.
    gc.collect()
    gc.freeze()
    uvloop.run(serve(app, sock, **options))
