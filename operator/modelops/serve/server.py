"""The HTTP/1.1 layer: an asyncio protocol on httptools' parser, run on uvloop.

Lean on purpose (measured against uvicorn in ``bench/serve``): a connection feeds bytes to
httptools; a complete request goes straight to :meth:`App.handle` inside the same callback, and
the response is written with one ``transport.write``. There is no task, no thread hop and no
ASGI message dict per request; inference is CPU-bound and a worker process owns one core.

Handled here: keep-alive and pipelining (responses in request order), ``Expect: 100-continue``,
malformed HTTP (400, then close), write back-pressure, and graceful shutdown: on SIGTERM or
SIGINT the listener closes, readiness turns false, idle connections close, requests in flight
are answered, and the process exits once every connection is gone (or at a deadline).

What a client may cost a worker is bounded (:class:`Limits`, ``docs/serve-limits.md``):

- sizes: the request head (431 past ``max_header`` bytes; counted as bytes arrive, so httptools
  never buffers more), the request target (414), the body (413, on ``Content-Length`` before the
  body arrives and on a chunked body's bytes as they come). A refused request is answered once,
  the write side is shut, and what the client still sends is read and dropped for a short
  linger (so that it reads the answer instead of a reset), then the connection closes;
- time: a deadline for the request head from the connection's first moment or the request's
  first byte (408), one for the body from the end of the head (408), one for a response the
  client does not read (the connection is aborted), and the keep-alive idle time;
- connections: at ``max_connections`` the worker first reclaims connections that are idle,
  still sending a head, or lingering (oldest first), so a client that completes its request
  quickly is always let in; only when every connection is busy with a body is a new one refused
  with 503. A few connections past the limit are still read so that liveness probes are
  answered (the process is alive; restarting it would not help) while everything else,
  readiness included, gets the 503: readiness fails exactly while the worker refuses traffic.

Deadlines are checked by a once-a-second tick from timestamps the hot path already takes, so a
request pays no timer handles. Every connection the server drops is counted by reason in
``modelops_connections_dropped_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
import resource
import signal
import socket
import sys
import time
from dataclasses import dataclass, replace
from email.utils import formatdate
from http import HTTPStatus
from typing import cast

import httptools

from modelops.serve.app import JSON, App
from modelops.serve.codec import encode_error

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}

# Where a connection is in its current request.
_IDLE, _HEAD, _BODY = 0, 1, 2
#: The head budget while no head is being read: larger than any read, so the check is one comparison.
_UNBOUNDED = 1 << 62
#: How long, and for how many bytes, a refused request's input is still read and dropped.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20
#: Connections past ``max_connections`` that are still read (to answer a probe or a 503).
OVERFLOW = 16
#: Descriptors kept free besides the connections: a scrape reads every worker's metrics file.
_SPARE_FDS = 24
#: Seconds a new connection may stay silent before it ranks with slow heads for reclaiming.
_GRACE = 1.0
#: Liveness is answered past the connection limit; see the module docstring.
_LIVE = b"/v2/health/live"


@dataclass(frozen=True)
class Limits:
    """What one worker accepts from its clients (``modelops serve`` flags of the same names)."""

    max_body: int
    max_header: int
    max_url: int
    max_connections: int
    keepalive: float
    header_timeout: float
    body_timeout: float
    send_timeout: float


class _StopParsingError(Exception):
    """Raised from a parser callback after the request was answered, so that httptools stops parsing."""


class _State:
    """What all connections of one worker share."""

    def __init__(self, app: App, limits: Limits) -> None:
        self.app = app
        self.limits = limits
        # Read on every request: plain attributes rather than a lookup through ``limits``.
        self.max_body = limits.max_body
        self.max_header = limits.max_header
        self.max_url = limits.max_url
        self.max_connections = limits.max_connections
        self.connections: set[HttpProtocol] = set()
        self.overflow = 0  # how many of ``connections`` were accepted past the limit
        self.draining = False
        self.drained = asyncio.Event()
        self.date = b""
        self.refresh_date()

    def refresh_date(self) -> None:
        self.date = b"date: " + formatdate(usegmt=True).encode() + b"\r\n"

    def at_limit(self) -> bool:
        return len(self.connections) - self.overflow >= self.max_connections

    def reclaim(self) -> None:
        """Make room at the limit: drop the connections least likely to be a client's request in progress.

        First those already closing or lingering; then those sending a head that has not ended, or
        silent since they connected more than ``_GRACE`` ago, or not reading their answers (a
        client sends its head as soon as it connects: a slow one is an attacker's or dead); then
        idle keep-alive ones; last, connections too young to have sent anything yet (the server
        reads a new connection only after accepting the others that arrived with it). Oldest
        first within each, a batch at a time, so that a stream of new connections does not scan
        all of them each.
        """
        now = time.monotonic()
        ranked: list[tuple[int, float, int, HttpProtocol]] = []
        for conn in self.connections:
            if conn.limited:
                continue
            if conn.discard or conn.closing_since:
                rank, since = 0, conn.connected
            elif conn.write_paused:
                rank, since = 1, conn.paused_since
            elif conn.phase == _BODY:
                continue  # a request whose body is arriving: never cut to make room
            elif conn.phase == _HEAD:
                rank, since = 1, conn.phase_since
            elif conn.served:
                rank, since = 2, conn.phase_since
            else:
                rank, since = (1 if now - conn.connected > _GRACE else 3), conn.connected
            ranked.append((rank, since, id(conn), conn))
        for *_, conn in heapq.nsmallest(max(1, self.max_connections // 16), ranked):
            conn.drop("reclaimed")


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    __slots__ = (
        "body",
        "body_size",
        "chunked",
        "closing_since",
        "connected",
        "content_length",
        "discard",
        "discarded",
        "head_room",
        "header_length",
        "headers_expect",
        "last_active",
        "limited",
        "linger_until",
        "parser",
        "paused_since",
        "phase",
        "phase_since",
        "served",
        "started",
        "state",
        "transport",
        "upgrade",
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
        self.chunked = False
        self.headers_expect = False
        self.header_length: bytes | None = None
        self.upgrade = False
        self.phase = _IDLE
        self.served = False  # answered a request: idle now means keep-alive, not a silent client
        self.limited = False  # accepted past the connection limit
        self.head_room = state.max_header
        self.discard = False  # answered and refused: input is dropped until the connection closes
        self.discarded = 0
        self.started = 0.0
        now = time.monotonic()
        self.connected = now
        self.last_active = now
        self.phase_since = now
        self.linger_until = 0.0
        self.closing_since = 0.0
        self.write_paused = False
        self.paused_since = 0.0

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # not TCP (a Unix socket): nothing to tune
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        state = self.state
        if state.at_limit():
            state.reclaim()
            if state.at_limit():
                if state.overflow >= OVERFLOW:
                    state.app.recorder.dropped("over_limit")
                    self.transport.abort()
                    return
                self.limited = True
                state.overflow += 1
        state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self.discard:
            self.discarded += len(data)
            if self.discarded > LINGER_BYTES:
                self._close()
            return
        room = self.head_room
        size = len(data)
        if size > room:
            if data[0] in (10, 13) or data.find(b"\r\n\r\n", 0, room) < 0:
                self._feed_head(data, room)
                return
            # The head ends within its budget (at its first blank line; blank lines before a request
            # went the exact way above): a head and its body in one read are parsed in one go.
            room = size
        self.head_room = room - size
        self._feed(data)

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()
        self.write_paused = True
        self.paused_since = time.monotonic()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None:
            self.transport.resume_reading()

    # -- feeding the parser ---------------------------------------------------------------------------

    def _feed(self, data: bytes | memoryview) -> bool:
        """Parse ``data``; False once the connection has no more use for input."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # on_message_complete answered the request and closed; the rest is another protocol's.
            return False
        except httptools.HttpParserError as exc:
            # Raised on our own _StopParsingError too, after the answer went out: then nothing more to say.
            if self.transport is not None and not self.discard:
                self._fail(400, f"malformed HTTP request: {exc}")
            return False
        return self.transport is not None and not self.discard

    def _feed_head(self, data: bytes, room: int) -> None:
        """Feed no more of a head than its budget allows: 431 when it does not end within it.

        The budget is counted on the bytes fed, before httptools sees (and buffers) them; a head that
        starts in the same read as the end of the request before it is counted from the next read.
        """
        view = memoryview(data)
        while True:
            self.head_room = 0  # a callback resets it when the head completes
            if not self._feed(view[:room]):
                return
            if self.head_room == 0:
                self._reject(431, f"request head over the limit of {self.state.max_header} bytes")
                return
            view = view[room:]
            room = self.head_room
            if len(view) <= room:
                self.head_room = room - len(view)
                self._feed(view)
                return

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.started = time.perf_counter()
        self.phase = _HEAD
        if self.served:  # the first head's deadline runs from the connection's first moment
            self.phase_since = self.last_active
        self.url = b""
        self.body = []
        self.body_size = 0
        self.content_length = None
        self.chunked = False
        self.headers_expect = False
        self.header_length = None

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.state.max_url:
            self._reject(414, f"request target over the limit of {self.state.max_url} bytes")
            raise _StopParsingError

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name)  # cheap filter: most headers are none of these
        if size == 14 and name.lower() == b"content-length":
            try:
                self.content_length = int(value)
            except ValueError:
                self.content_length = None
        elif size == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self.headers_expect = True
        elif size == 17 and name.lower() == b"transfer-encoding":
            self.chunked = True
        elif size == 31 and name.lower() == b"inference-header-content-length":
            self.header_length = value  # the binary tensor data extension: the app splits the body

    def on_headers_complete(self) -> None:
        if self.discard:
            return
        self.phase = _BODY
        self.phase_since = self.last_active
        self.head_room = _UNBOUNDED
        state = self.state
        if self.limited and self.url.split(b"?", 1)[0] != _LIVE:
            state.app.recorder.dropped("over_limit")
            self._reject(503, f"this worker is at its limit of {state.max_connections} connections", counted=False)
            raise _StopParsingError
        length = self.content_length
        # httptools never parses the body of a request asking for an upgrade: one with a body is
        # refused; one without is answered as if it had not asked (RFC 9110 lets a server ignore it).
        self.upgrade = self.parser.should_upgrade()
        if self.upgrade and (length or self.chunked):
            self._reject(400, "protocol upgrades are not supported; send the request without Upgrade")
            raise _StopParsingError
        if length is not None and length > state.max_body:
            self._too_large(length)
            raise _StopParsingError
        if self.headers_expect and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.discard:
            return
        self.body_size += len(body)
        if self.body_size > self.state.max_body:
            self._too_large(self.body_size)
            raise _StopParsingError
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.discard:
            # A refused request was answered already and has now been read whole: close.
            self._close()
            return
        transport = self.transport
        if transport is None:
            return
        method = self.parser.get_method()
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        status, headers, payload = self.state.app.handle(method, self.url, body, self.started, self.header_length)
        keep_alive = (
            self.parser.should_keep_alive() and not self.state.draining and not self.limited and not self.upgrade
        )
        self._write(status, headers, payload, keep_alive, head=method == b"HEAD")
        self.phase = _IDLE
        self.phase_since = self.last_active
        self.served = True
        self.head_room = self.state.max_header
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

    def _reject(self, status: int, message: str, counted: bool = True) -> None:
        """Answer now and close, dropping what the client still sends for a short linger.

        The write side is shut at once, so the client sees the answer and the end of the stream;
        a client that keeps sending is read (and ignored) for up to ``LINGER_SECONDS`` and
        ``LINGER_BYTES``, because closing with unread input would reset the connection and could
        destroy the answer before the client reads it.
        """
        self.discard = True
        self._write(status, JSON, encode_error(message), keep_alive=False)
        if counted:
            # Before a request's first byte (blank lines only) there is no start time: it took no time.
            self.state.app.count_rejected(status, self.started if self.phase != _IDLE else time.perf_counter())
        self.linger_until = time.monotonic() + LINGER_SECONDS
        transport = self.transport
        if transport is not None and transport.can_write_eof():
            transport.write_eof()

    def _too_large(self, size: int) -> None:
        self._reject(413, f"request body of {size} bytes is over the limit of {self.state.max_body} bytes")

    def _timeout(self, reason: str, message: str) -> None:
        self.state.app.recorder.dropped(reason)
        self._write(408, JSON, encode_error(message), keep_alive=False)
        self._close()

    def _close(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()
            self.closing_since = time.monotonic()

    def _forget(self) -> None:
        state = self.state
        if self in state.connections:
            state.connections.discard(self)
            if self.limited:
                state.overflow -= 1
            if state.draining and not state.connections:
                state.drained.set()

    def drop(self, reason: str) -> None:
        """Abort the connection now (its descriptor is free at once) and count why."""
        self.state.app.recorder.dropped(reason)
        if self.transport is not None:
            self.transport.abort()
        self._forget()

    def drain(self) -> None:
        """Shutdown: close now if idle; otherwise the response in flight goes out with ``connection: close``."""
        if self.phase == _IDLE or self.discard:
            self._close()

    def check(self, now: float) -> None:
        """The deadlines of the module docstring, once a second."""
        if self.transport is None:
            return
        limits = self.state.limits
        if self.closing_since:
            # Closed by us with output the client does not read: close() would wait for ever.
            if now - self.closing_since > limits.send_timeout:
                self.drop("send_timeout")
        elif self.write_paused:
            if now - self.paused_since > limits.send_timeout:
                self.drop("send_timeout")
        elif self.discard:
            if now >= self.linger_until:
                self._close()
        elif self.phase == _IDLE:
            if self.served:
                if now - self.phase_since > limits.keepalive:
                    self._close()
            elif now - self.phase_since > limits.header_timeout:
                self.drop("header_timeout")  # connected and never sent a byte: nobody to answer
        elif self.phase == _HEAD:
            if now - self.phase_since > limits.header_timeout:
                self._timeout("header_timeout", f"no complete request head within {limits.header_timeout:g} s")
        elif now - self.phase_since > limits.body_timeout:
            self._timeout("body_timeout", f"the request body did not arrive within {limits.body_timeout:g} s")


def fit_to_descriptors(limits: Limits) -> Limits:
    """Make ``max_connections`` fit this process's descriptor limit, raising its soft limit if it may.

    Past the descriptor limit, accept fails and every client is refused without an answer; under
    the connection limit, the worker reclaims or answers 503 instead. Says so on stderr when the
    limit had to come down.
    """
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 32
    need = limits.max_connections + OVERFLOW + in_use + _SPARE_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(hard, need)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY or soft >= need:
        return limits
    fitted = max(1, soft - OVERFLOW - in_use - _SPARE_FDS)
    print(
        f"modelops serve: --max-connections {limits.max_connections} lowered to {fitted} "
        f"to fit the descriptor limit (RLIMIT_NOFILE {soft})",
        file=sys.stderr,
        flush=True,
    )
    return replace(limits, max_connections=fitted)


async def _tick(state: _State) -> None:
    """Once a second: refresh the cached Date header, enforce the deadlines, flush metrics, re-read rotated keys."""
    while True:
        await asyncio.sleep(1.0)
        state.refresh_date()
        now = time.monotonic()
        for conn in list(state.connections):
            conn.check(now)
        state.app.tick()


async def serve(app: App, sock: socket.socket, *, limits: Limits, graceful_timeout: float) -> None:
    """Serve on an already bound, listening socket until SIGTERM or SIGINT, then drain and return."""
    loop = asyncio.get_running_loop()
    state = _State(app, limits)
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


def run(app: App, sock: socket.socket, *, limits: Limits, graceful_timeout: float) -> None:
    """Run :func:`serve` on uvloop."""
    import gc

    import uvloop

    limits = fit_to_descriptors(limits)
    # Everything loaded so far (scikit-learn, the model) lives as long as the process: move it out
    # of the collector's sight, so that no collection pass over it lands on a request.
    gc.collect()
    gc.freeze()
    uvloop.run(serve(app, sock, limits=limits, graceful_timeout=graceful_timeout))
