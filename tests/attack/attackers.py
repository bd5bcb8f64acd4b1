"""Hostile clients for ``tests/attack``: each one a bounded attack on a loopback port, run in a thread.

Every attack is bounded in connections, bytes and time; it sets ``engaged`` once its pressure is
established (all its connections open and sending), so that a normal client is measured while
the attack is in effect, and it records what the server did to it (answers, closes) in ``seen``.
Sockets are raw on purpose: no client library would send what these send.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable


def _status(answer: bytes) -> str:
    """The status code of an answer, or ``closed`` when the server closed without one."""
    if answer.startswith(b"HTTP/1.1 ") and len(answer) >= 12:
        return answer[9:12].decode()
    return "closed"


class Attack(threading.Thread):
    """Runs :meth:`attack` once; ``seen`` counts the outcomes, ``engaged`` is set once it bites."""

    def __init__(self, port: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.seconds = seconds
        self.engaged = threading.Event()
        self.stop = threading.Event()
        self.seen: Counter[str] = Counter()
        self.answers: list[bytes] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        try:
            self.attack()
        except BaseException as exc:  # handed to the test, which fails with it
            self.error = exc
        finally:
            self.engaged.set()

    def attack(self) -> None:
        raise NotImplementedError

    def connect(self, timeout: float = 30.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def record(self, answer: bytes) -> None:
        with self._lock:
            self.seen[_status(answer)] += 1
            self.answers.append(answer[:4096])

    def over(self, started: float) -> bool:
        return self.stop.is_set() or time.monotonic() - started > self.seconds


def read_answer(s: socket.socket) -> bytes:
    """What the server sends until it closes; a reset ends it like a close."""
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class Streams(Attack):
    """``count`` connections at once, each sending ``head`` then ``filler`` until the server stops it.

    Used for oversized heads, request targets and chunked bodies: the server must answer and close
    long before ``total`` bytes. Each connection, once stopped, is replaced until ``seconds`` have
    passed; ``sent`` keeps how much each one got through.
    """

    def __init__(self, port: int, seconds: float, head: bytes, filler: bytes, total: int, count: int = 6) -> None:
        super().__init__(port, seconds)
        self.head = head
        self.filler = filler
        self.total = total
        self.count = count
        self.sent: list[int] = []

    def one(self, started: float, ready: threading.Barrier) -> None:
        ready.wait()
        self.engaged.set()
        while not self.over(started):
            s = self.connect()
            sent = 0
            try:
                try:
                    s.sendall(self.head)
                    while sent < self.total and not self.over(started):
                        s.sendall(self.filler)
                        sent += len(self.filler)
                except OSError:  # the server closed on us: the expected end
                    pass
                self.record(read_answer(s))
            finally:
                s.close()
                with self._lock:
                    self.sent.append(sent)

    def attack(self) -> None:
        started = time.monotonic()
        ready = threading.Barrier(self.count)
        threads = [threading.Thread(target=self.one, args=(started, ready)) for _ in range(self.count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class Trickle(Attack):
    """``count`` connections kept open for ``seconds``, each sending ``step`` bytes every ``every`` seconds.

    After ``opening``, a connection sends ``drip`` piece by piece, for ever (a head that never ends,
    or a body that never completes). A connection the server answers or closes is recorded and
    replaced, as a real attacker would; ``cut`` counts them.
    """

    def __init__(
        self, port: int, seconds: float, opening: bytes, drip: bytes, count: int = 200, every: float = 0.5
    ) -> None:
        super().__init__(port, seconds)
        self.opening = opening
        self.drip = drip
        self.count = count
        self.every = every
        self.cut = 0

    def _open(self) -> socket.socket | None:
        try:
            s = self.connect(timeout=5)
            s.sendall(self.opening)
        except OSError:
            return None
        s.setblocking(False)
        return s

    def attack(self) -> None:
        started = time.monotonic()
        socks: dict[socket.socket, int] = {}
        try:
            while len(socks) < self.count and not self.over(started):
                s = self._open()
                if s is not None:
                    socks[s] = 0
            self.engaged.set()
            while not self.over(started):
                # Whatever is readable was answered or closed by the server: note it, open another.
                readable, _, _ = select.select(list(socks), [], [], self.every)
                for s in readable:
                    self._retire(s, socks)
                for s in list(socks):
                    position = socks[s]
                    try:
                        s.send(self.drip[position % len(self.drip) : position % len(self.drip) + 1])
                    except BlockingIOError:
                        continue
                    except OSError:
                        self._retire(s, socks)
                        continue
                    socks[s] = position + 1
                while len(socks) < self.count and not self.over(started):
                    fresh = self._open()
                    if fresh is None:
                        break
                    socks[fresh] = 0
        finally:
            for s in socks:
                s.close()

    def _retire(self, s: socket.socket, socks: dict[socket.socket, int]) -> None:
        answer = b""
        with contextlib.suppress(OSError):
            s.setblocking(True)
            s.settimeout(5)
            answer = read_answer(s)
        self.record(answer)
        self.cut += 1
        socks.pop(s, None)
        s.close()


class Unread(Attack):
    """``count`` connections pipelining ``request`` as fast as the server takes it, never reading a byte.

    A connection the server aborts is counted in ``aborted`` and replaced until ``seconds`` pass.
    """

    def __init__(self, port: int, seconds: float, request: bytes, count: int = 6) -> None:
        super().__init__(port, seconds)
        self.request = request
        self.count = count
        self.aborted = 0

    def _open(self) -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server's answers back up soon
        s.connect(("127.0.0.1", self.port))
        s.setblocking(False)
        return s

    def _fill(self, s: socket.socket) -> bool:
        """Send until the server stops taking; False once it has aborted the connection."""
        try:
            while True:
                s.send(self.request)
        except BlockingIOError:
            return s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        except OSError:
            return False

    def attack(self) -> None:
        started = time.monotonic()
        live = [self._open() for _ in range(self.count)]
        self.engaged.set()
        try:
            while not self.over(started):
                for i, s in enumerate(live):
                    if not self._fill(s):
                        s.close()
                        self.aborted += 1
                        live[i] = self._open()
                time.sleep(0.05)  # pacing between rounds of filling, not synchronisation
        finally:
            for s in live:
                s.close()


def under_attack(attack: Attack, probe: Callable[[], None], min_probes: int = 3) -> int:
    """Run ``attack``; for as long as it lasts, call ``probe`` (a normal client's request, which asserts).

    Returns how many probes ran during the attack, and fails unless at least ``min_probes`` did.
    """
    attack.start()
    assert attack.engaged.wait(120), "the attack never got going"
    probes = 0
    try:
        while attack.is_alive():
            probe()
            probes += 1
            time.sleep(0.05)  # pacing, so the normal client stays a normal client
    finally:
        attack.stop.set()
        attack.join(120)
    if attack.error is not None:
        raise attack.error
    assert probes >= min_probes, f"only {probes} normal requests while the attack ran"
    return probes
