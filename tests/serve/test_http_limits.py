"""The HTTP layer's limits, deadlines and connection bookkeeping, on a real ``modelops serve`` process.

Each behaviour is checked on raw sockets (what a hostile or broken client sends) and through the
metrics it leaves; the server runs with its limits lowered by flags so that every case is small.
Waits are conditions with generous deadlines, never fixed sleeps; the attacks at scale, with a
normal client alongside, are in ``tests/attack``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from serve import modelkit
from serve.conftest import Server
from serve.test_server import matrix_request, raw, sample, scrape

LIMIT_FLAGS = (
    "--max-body-bytes", "4096", "--max-header-bytes", "2048", "--max-url-bytes", "512",
    "--header-timeout", "3", "--body-timeout", "3", "--send-timeout", "2", "--max-connections", "4",
)  # fmt: skip


@pytest.fixture(scope="module")
def small(models: dict[str, modelkit.ModelDir]) -> Iterator[Server]:
    server = Server(models["iris"].path, *LIMIT_FLAGS).wait_ready()
    yield server
    server.close()


@pytest.fixture
def four(models: dict[str, modelkit.ModelDir]) -> Iterator[Server]:
    """Four connections at most, and deadlines far away: only the connection limit acts."""
    flags = ("--max-connections", "4", "--header-timeout", "120", "--body-timeout", "120")
    server = Server(models["iris"].path, *flags).wait_ready()
    yield server
    server.close()


def wait_for(predicate: Callable[[], bool], deadline_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except requests.RequestException:  # a pooled connection the server closed meanwhile
            pass
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {deadline_s} s")


def read_all(s: socket.socket) -> bytes:
    """Everything until the server closes (a reset after its answer counts as closed)."""
    chunks = []
    try:
        while chunk := s.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def dropped(server: Server, reason: str) -> float:
    return sample(scrape(server), "modelops_connections_dropped_total", reason=reason)


def infer_ok(server: Server, m: modelkit.ModelDir) -> bool:
    with requests.Session() as s:  # a fresh connection: through accept, not a pooled one
        r = s.post(f"{server.url}/v2/models/{m.name}/infer", json=matrix_request(m.test_x.to_numpy()[:2]), timeout=30)
    return r.status_code == 200


# -- sizes ---------------------------------------------------------------------------------------------


def test_request_target_over_the_limit_is_414_and_not_echoed(small: Server) -> None:
    answer = raw(small, b"GET /v2/models/" + b"x" * 600 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 414 ")
    assert b"connection: close\r\n" in answer
    assert b"xxxxxxxx" not in answer
    assert b"over the limit of 512 bytes" in answer
    # Within the limit, the target reaches the router (a 404 naming it, bounded by the limit).
    answer = raw(small, b"GET /v2/" + b"y" * 400 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ")


def test_request_head_limit_is_exact_and_431_past_it(small: Server) -> None:
    def head_of(size: int, start: bytes = b"GET /v2/health/live HTTP/1.1\r\nConnection: close\r\nX-Pad: ") -> bytes:
        return start + b"p" * (size - len(start) - 4) + b"\r\n\r\n"

    assert len(head_of(2048)) == 2048
    assert raw(small, head_of(2048)).startswith(b"HTTP/1.1 200 ")
    answer = raw(small, head_of(2049))
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"request head over the limit of 2048 bytes" in answer
    # The same with a body in the same write, and after blank lines (which count as head bytes).
    assert raw(small, head_of(2049) + b"x" * 3000).startswith(b"HTTP/1.1 431 ")
    assert raw(small, b"\r\n\r\n" + head_of(2046) + b"x" * 3000).startswith(b"HTTP/1.1 431 ")
    post = head_of(2048, b"POST /v2/models/iris/infer HTTP/1.1\r\nContent-Length: 3000\r\nConnection: close\r\nX: ")
    assert len(post) == 2048
    assert raw(small, post + b"[" * 3000).startswith(b"HTTP/1.1 400 "), "a head within the limit, its body read"
    # Many small headers count the same as one large one; so do bytes that trickle in.
    many = b"GET /v2/health/live HTTP/1.1\r\n" + b"X-A: b\r\n" * 400 + b"\r\n"
    assert raw(small, many).startswith(b"HTTP/1.1 431 ")
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
        for _ in range(3):
            s.sendall(b"X-Pad: " + b"q" * 700 + b"\r\n")
        assert read_all(s).startswith(b"HTTP/1.1 431 ")


def test_pipelined_requests_each_get_the_whole_head_budget(small: Server) -> None:
    # Three requests in one write, each head close to the limit: none is refused.
    one = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 1900 + b"\r\n\r\n"
    last = b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw(small, one * 3 + last)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 4, answer[:400]


def test_chunked_body_over_the_limit_is_413_and_the_connection_closes(small: Server) -> None:
    """The client keeps sending (an endless chunked body): it reads the 413, then the server closes."""
    stop = threading.Event()
    s = socket.create_connection(("127.0.0.1", small.port), timeout=30)

    def keep_sending() -> None:
        chunk = b"%x\r\n%s\r\n" % (1000, b" " * 1000)
        try:
            s.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            while not stop.is_set():
                s.sendall(chunk)
        except OSError:  # the server closed: what this test waits for
            pass

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        answer = read_all(s)  # returns once the server has closed, or raises on the 30 s timeout
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"over the limit of 4096 bytes" in answer
        assert b"connection: close\r\n" in answer
        sender.join(30)
        assert not sender.is_alive(), "the server should close a connection that keeps sending past the limit"
    finally:
        stop.set()
        s.close()


def test_content_length_over_the_limit_is_answered_before_the_body(small: Server) -> None:
    with socket.create_connection(("127.0.0.1", small.port), timeout=30) as s:
        s.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        answer = read_all(s)  # no body sent: the answer and the close come anyway
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"request body of 100000 bytes" in answer


# -- Upgrade -----------------------------------------------------------------------------------------


def test_an_upgrade_request_gets_exactly_one_response(small: Server) -> None:
    # Without a body: answered as if Upgrade were absent (RFC 9110 allows ignoring it), then closed;
    # what follows on the connection belongs to the protocol asked for, so nothing more is answered.
    upgrade = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    answer = raw(small, upgrade + b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b'{"live":true}')
    assert b"connection: close\r\n" in answer
    # With a body, which httptools does not parse for an upgrade: one 400, not a guess.
    h2c = b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    for framing in (b"Content-Length: 2\r\n\r\n{}", b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"):
        answer = raw(small, h2c + framing)
        assert answer.count(b"HTTP/1.1 ") == 1, answer
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"protocol upgrades are not supported" in answer


# -- deadlines ---------------------------------------------------------------------------------------


def test_deadlines_for_head_body_and_silence(small: Server) -> None:
    before = {r: dropped(small, r) for r in ("header_timeout", "body_timeout")}
    with socket.create_connection(("127.0.0.1", small.port), timeout=30) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"no complete request head within 3 s" in answer
    with socket.create_connection(("127.0.0.1", small.port), timeout=30) as s:
        s.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"the request body did not arrive within 3 s" in answer
    with socket.create_connection(("127.0.0.1", small.port), timeout=30) as s:
        assert read_all(s) == b"", "a connection that never sends a byte is closed without an answer"
    wait_for(lambda: dropped(small, "header_timeout") >= before["header_timeout"] + 2, what="header_timeout counted")
    assert dropped(small, "body_timeout") >= before["body_timeout"] + 1


def test_a_client_that_does_not_read_is_cut_at_the_send_deadline(
    small: Server, models: dict[str, modelkit.ModelDir]
) -> None:
    m = models["iris"]
    body = json.dumps(matrix_request(m.test_x.to_numpy(), outputs=[{"name": "predict_proba"}])).encode()
    request = b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    before = dropped(small, "send_timeout")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's output backs up soon
    s.connect(("127.0.0.1", small.port))
    s.setblocking(False)
    try:
        # Pipelined requests as fast as the server takes them, answers never read, until it stops
        # reading (back-pressure) and then, at the send deadline, aborts the connection.
        def cut() -> bool:
            try:
                while True:
                    s.send(request)
            except BlockingIOError:
                return s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
            except OSError:
                return True

        wait_for(cut, deadline_s=60, what="the connection aborted")
    finally:
        s.close()
    wait_for(lambda: dropped(small, "send_timeout") >= before + 1, what="send_timeout counted")
    assert infer_ok(small, m)


# -- connections ---------------------------------------------------------------------------------------


def _closed(s: socket.socket) -> bool:
    s.settimeout(0)
    try:
        return s.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _held_bodies(server: Server, count: int) -> list[socket.socket]:
    """Connections each in the middle of a request body: busy, never reclaimed."""
    held = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        s.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
        held.append(s)
    return held


def test_at_the_limit_idle_and_slow_connections_make_room(four: Server, models: dict[str, modelkit.ModelDir]) -> None:
    silent = [socket.create_connection(("127.0.0.1", four.port), timeout=30) for _ in range(4)]
    slow = [socket.create_connection(("127.0.0.1", four.port), timeout=30) for _ in range(4)]
    try:
        for s in slow:
            s.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
        # Eight connections against a limit of four, none complete: a client's request still gets in.
        assert infer_ok(four, models["iris"])
        assert four.get("/v2/health/ready").status_code == 200
        wait_for(lambda: dropped(four, "reclaimed") >= 4, what="reclaimed counted")
        # Whichever went (silence is forgiven for a moment, a head that does not end is not), at
        # least four of the eight were closed by the server to make room.
        assert sum(_closed(s) for s in silent + slow) >= 4
    finally:
        for s in silent + slow:
            s.close()


def test_past_the_limit_busy_connections_mean_503_except_liveness(four: Server) -> None:
    held = _held_bodies(four, 4)
    try:
        answer = raw(four, b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"at its limit of 4 connections" in answer
        answer = raw(four, b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert answer.startswith(b"HTTP/1.1 503 ")
        # The process is alive, and restarting it would not help: liveness is still answered.
        answer = raw(four, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert b"connection: close\r\n" in answer
        # The requests whose bodies were waited for are served when they complete.
        held[0].sendall(b" " * 49)
        assert b"HTTP/1.1 400 " in held[0].recv(65536)  # a body of "{" and blanks: malformed JSON, but answered
    finally:
        for s in held:
            s.close()
    wait_for(lambda: four.get("/v2/health/ready").status_code == 200, what="ready again")
    assert dropped(four, "over_limit") == 2
    # The refusals are not requests to the model: no 503 in the error rate the canary analysis reads.
    assert sample(scrape(four), "modelops_requests_total", code="503") == 0


def test_refusals_of_sizes_are_counted_as_requests(models: dict[str, modelkit.ModelDir]) -> None:
    server = Server(models["iris"].path, *LIMIT_FLAGS).wait_ready()
    try:
        raw(server, b"GET /" + b"u" * 600 + b" HTTP/1.1\r\n\r\n")
        raw(server, b"GET / HTTP/1.1\r\nX-Pad: " + b"p" * 3000 + b"\r\n\r\n")
        raw(server, b"POST /v2/models/iris/infer HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")
        samples = scrape(server)
        for code in ("414", "431", "413"):
            assert sample(samples, "modelops_requests_total", code=code) == 1, code
        for reason in ("over_limit", "reclaimed", "header_timeout", "body_timeout", "send_timeout"):
            assert sample(samples, "modelops_connections_dropped_total", reason=reason) == 0, reason
    finally:
        server.close()
