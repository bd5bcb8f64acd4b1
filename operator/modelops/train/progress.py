"""Progress lines for long fits: a start line, a heartbeat while it runs, an end line with the time.

scikit-learn's ``fit`` says nothing while it works, and a pod that prints nothing for ten
minutes looks hung. :class:`Heartbeat` prints ``<what>`` when the fit starts, ``still <what>:
<elapsed>`` every ``MODELOPS_PROGRESS_SECONDS`` (default 30) from a daemon thread while it runs,
and ``<what>: done in <elapsed>`` at the end; :func:`elapsed` is the one way durations are
written (also in the TrainingRun's status message).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from types import TracebackType

DEFAULT_INTERVAL = 30.0


def elapsed(seconds: float) -> str:
    """``0.4s``, ``12.3s``, ``4m05s``, ``2h03m``: short, and exact enough to follow."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def interval() -> float:
    """Seconds between heartbeats: ``MODELOPS_PROGRESS_SECONDS`` (at least 0.1), default 30."""
    try:
        return max(0.1, float(os.environ.get("MODELOPS_PROGRESS_SECONDS", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


class Heartbeat:
    """``with Heartbeat(log, "fitting X"):`` -- see the module doc."""

    def __init__(self, log: Callable[[str], None], what: str, every: float | None = None) -> None:
        self.log = log
        self.what = what
        self.every = interval() if every is None else every
        self.started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        # Event.wait is the timer here, not a synchronisation: the fit never waits on it.
        while not self._stop.wait(self.every):
            self.log(f"still {self.what}: {elapsed(time.monotonic() - self.started)} elapsed")

    def __enter__(self) -> Heartbeat:
        self.started = time.monotonic()
        self.log(self.what)
        self._thread = threading.Thread(target=self._beat, name="modelops-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if exc_type is None:
            self.log(f"{self.what}: done in {elapsed(time.monotonic() - self.started)}")
