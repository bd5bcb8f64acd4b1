"""Several worker processes on one listening socket, and how many to run by default.

The parent binds the socket, spawns ``python -m modelops serve … --worker-fd FD --worker-slot I``
for each slot (each worker loads the model itself and accepts on the inherited socket), and then
only waits for signals: a worker that dies is restarted in its slot, so it reopens the same metrics
file and the counters carry on; a worker that refuses to start (exit code 1: the model cannot be
served) stops everything with exit code 1. On SIGTERM or SIGINT the parent closes its copy of the
socket, forwards the signal, waits for the workers to drain, and exits 0 when they all did.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
_RESTART_WINDOW = 10.0
_MAX_QUICK_RESTARTS = 5


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The container's CPU limit in cores (its CFS quota over period), or None without one.

    cgroup v2 says it in ``cpu.max`` (``max 100000`` when unlimited); cgroup v1, still the default on
    many nodes, in ``cpu/cpu.cfs_quota_us`` (``-1`` when unlimited) and ``cpu/cpu.cfs_period_us``.
    """
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def default_workers() -> int:
    """One worker per usable core: the CPU affinity mask, capped by the container's CPU limit."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def unblock_signals() -> None:
    """Undo the parent's signal mask, which a spawned worker inherits across exec."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


class Supervisor:
    """Runs ``workers`` copies of the worker command on ``sock``; see the module docstring."""

    def __init__(
        self, worker_args: list[str], sock: socket.socket, workers: int, metrics_dir: Path, graceful_timeout: float
    ) -> None:
        self.worker_args = worker_args
        self.sock = sock
        self.workers = workers
        self.metrics_dir = metrics_dir
        self.graceful_timeout = graceful_timeout
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.started: list[float] = [0.0] * workers
        self.quick_restarts = 0

    def _spawn(self, slot: int) -> None:
        fd = self.sock.fileno()
        command = [
            sys.executable, "-m", "modelops", "serve", *self.worker_args,
            "--worker-fd", str(fd), "--worker-slot", str(slot), "--metrics-dir", str(self.metrics_dir),
        ]  # fmt: skip
        self.procs[slot] = subprocess.Popen(command, pass_fds=(fd,))
        self.started[slot] = time.monotonic()

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        code = 1
        try:
            for slot in range(self.workers):
                self._spawn(slot)
            code = self._watch()
        finally:
            clean = self._stop()
        return code or (0 if clean else 1)

    def _watch(self) -> int:
        while True:
            info = signal.sigtimedwait(_SIGNALS, 5.0)
            if info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                return 0
            for slot, proc in enumerate(self.procs):
                if proc is None or proc.poll() is None:
                    continue
                if proc.returncode == 1:
                    print(f"modelops serve: worker {slot} refused to start; stopping", file=sys.stderr, flush=True)
                    return 1
                quick = time.monotonic() - self.started[slot] < _RESTART_WINDOW
                self.quick_restarts = self.quick_restarts + 1 if quick else 0
                if self.quick_restarts > _MAX_QUICK_RESTARTS:
                    print("modelops serve: workers keep dying; stopping", file=sys.stderr, flush=True)
                    return 1
                print(
                    f"modelops serve: worker {slot} exited with {proc.returncode}; restarting it",
                    file=sys.stderr,
                    flush=True,
                )
                self._spawn(slot)

    def _stop(self) -> bool:
        """Drain and stop every worker; True when all of them exited cleanly."""
        # Stop accepting in the parent first: once the workers close theirs, nothing accepts.
        self.sock.close()
        live = [p for p in self.procs if p is not None and p.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.graceful_timeout + 5.0
        clean = True
        for proc in live:
            try:
                clean = proc.wait(max(0.1, deadline - time.monotonic())) == 0 and clean
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                clean = False
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        return clean
