"""The labels a pod has counted, remembered in bounded memory so that a repeat counts once.

A set-associative table of ``capacity`` entries in buckets of :data:`WAYS`: an entry is a 64-bit
digest of (id, row) and the time its id was issued. An entry lives until its id expires (after that
a repeat is refused as expired anyway). A new entry takes a free or dead slot in its bucket, else
the slot whose id is oldest, which is then forgotten (:attr:`Table.forgotten`): the memory never
grows, and under a flood of distinct labels the window shrinks, oldest first, and says so.

With several workers the table is one file in the supervisor's metrics directory, mapped by every
worker, and a worker holds an exclusive ``flock`` on it while it checks and records one request's
labels; so a pod counts a label once whichever worker gets it. Without a directory (one worker) it
is plain memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

WAYS = 8
#: Bytes per entry: the 64-bit digest and the 32-bit issue time.
ENTRY_BYTES = 12
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def digest(tag: bytes, row: int) -> int:
    """The 64-bit entry of one label: the id's tag (random-looking) mixed with the row."""
    return (int.from_bytes(tag[:8], "big") ^ (row * _GOLDEN)) & _MASK64


class Table:
    """See the module docstring. ``lifetime`` is the ids' lifetime in seconds."""

    def __init__(self, capacity: int, lifetime: int, directory: Path | None = None) -> None:
        self.buckets = max(1, -(-capacity // WAYS))
        slots = self.buckets * WAYS
        self.lifetime = lifetime
        self.forgotten = 0
        nbytes = slots * ENTRY_BYTES
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        buffer: bytearray | mmap.mmap
        if directory is None:
            buffer = bytearray(nbytes)
        else:
            fd = os.open(directory / f"feedback-dedup-{slots}.bin", os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(fd).st_size < nbytes:
                os.ftruncate(fd, nbytes)  # zeros: every slot free; never shrinks what another worker wrote
            self._fd = fd
            self._map = buffer = mmap.mmap(fd, nbytes)
        view = memoryview(buffer)
        self._keys = view[: slots * 8].cast("Q")
        self._issued = view[slots * 8 :].cast("I")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the table for one request's labels (a no-op in plain memory)."""
        if self._fd is None:
            yield
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def seen(self, key: int, issued: int, now: int) -> bool:
        """Whether the label was counted already; if not, remember it (hold :meth:`locked`)."""
        keys, times = self._keys, self._issued
        start = ((key >> 17) % self.buckets) * WAYS
        dead = now - self.lifetime
        free = -1
        oldest = start
        for slot in range(start, start + WAYS):
            stamp = times[slot]
            if stamp > dead and stamp != 0:
                if keys[slot] == key:
                    return True
                if stamp < times[oldest]:
                    oldest = slot
            elif free < 0:
                free = slot
        if free < 0:
            free = oldest
            self.forgotten += 1
        keys[free] = key
        times[free] = issued if issued > 0 else 1
        return False
