"""Process life of ``modelops serve``: graceful SIGTERM, and several workers sharing metrics and a socket."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from modelops.serve import supervisor
from serve import modelkit
from serve.conftest import Server
from serve.test_server import matrix_request, sample, scrape


def _refused(port: int, deadline_s: float = 10.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            return True
        time.sleep(0.02)
    return False


def _read_response(s: socket.socket) -> bytes:
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_sigterm_finishes_in_flight_requests_then_exits_0(models: dict[str, modelkit.ModelDir]) -> None:
    m = models["iris"]
    server = Server(m.path).wait_ready()
    try:
        body = json.dumps(matrix_request(m.test_x.to_numpy()[:3])).encode()
        busy = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        idle.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.recv(65536).startswith(b"HTTP/1.1 200 OK")
        head = b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        busy.sendall(head + body[:10])  # a request in flight: half of its body sent
        server.proc.send_signal(signal.SIGTERM)
        assert _refused(server.port), "the listener should close on SIGTERM"
        assert idle.recv(65536) == b"", "an idle keep-alive connection is closed"
        assert server.proc.poll() is None, "the server waits for the request in flight"
        busy.sendall(body[10:])
        answer = _read_response(busy)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"connection: close\r\n" in answer
        payload = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        assert payload["outputs"][0]["data"] == m.pipeline.predict(m.test_x.to_numpy()[:3]).tolist()
        assert server.wait_exit() == 0
        busy.close()
        idle.close()
    finally:
        server.close()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()]


def _wait_for(predicate: object, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")


def _request_counts(metrics_dir: Path) -> dict[str, float]:
    """Each worker's own count of 200s, from its metrics file (slot 0 of the layout)."""
    return {f.name: float(np.fromfile(f)[0]) for f in sorted(metrics_dir.glob("worker-*.f64"))}


@pytest.mark.slow
def test_two_workers_share_the_port_and_aggregate_metrics(models: dict[str, modelkit.ModelDir]) -> None:
    """Which worker accepts a connection is the kernel's choice: nothing here depends on it.

    Where a check needs one worker in particular, the other one is stopped (SIGSTOP), so that it
    cannot accept; it is continued before anything else.
    """
    m = models["breast_cancer"]
    server = Server(m.path, "--workers", "2").wait_ready()
    try:
        _wait_for(lambda: len(_children(server.proc.pid)) == 2)
        workers = _children(server.proc.pid)
        cmdline = Path(f"/proc/{workers[0]}/cmdline").read_bytes().split(b"\0")
        metrics_dir = Path(cmdline[cmdline.index(b"--metrics-dir") + 1].decode())
        # A worker makes its metrics file once its model is loaded: send traffic when both can take it.
        _wait_for(lambda: len(list(metrics_dir.glob("worker-*.f64"))) == 2, deadline_s=60)
        x = m.test_x.to_numpy()

        def one(i: int) -> int:
            row = x[i % len(x) : i % len(x) + 1]
            with requests.Session() as s:  # a fresh connection each time
                return s.post(f"{server.url}/v2/models/{m.name}/infer", json=matrix_request(row)).status_code

        def scraped_200() -> float:
            with requests.Session() as s:
                return sample(scrape(_Scraper(server.url, s)), "modelops_requests_total", code="200")  # type: ignore[arg-type]

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(one, range(120))) == {200}

        # Each worker counts its own share in its own file (within about a second: its flush tick),
        # however the 120 were spread.
        _wait_for(lambda: sum(_request_counts(metrics_dir).values()) == 120, deadline_s=10)
        assert len(_request_counts(metrics_dir)) == 2
        with requests.Session() as session:
            samples = scrape(_Scraper(server.url, session))  # type: ignore[arg-type]
        assert sample(samples, "modelops_requests_total", code="200") == 120
        assert (
            sample(samples, "modelops_predictions_total", **{"class": "0"})
            + sample(samples, "modelops_predictions_total", **{"class": "1"})
            == 120
        )
        assert sample(samples, "modelops_feature_count", feature="mean radius") == 120

        # A scrape answered by one worker sums the other's file: with A stopped, B serves 10 more;
        # then with B stopped, A answers the scrape, and must count B's 10.
        a, b = workers
        os.kill(a, signal.SIGSTOP)
        _wait_for(lambda: _stopped(a))
        try:
            before = _request_counts(metrics_dir)
            assert {one(i) for i in range(10)} == {200}
            _wait_for(lambda: sum(_request_counts(metrics_dir).values()) == 130, deadline_s=10)
            after = _request_counts(metrics_dir)
            assert sum(after[k] - before[k] for k in after) == 10
            os.kill(b, signal.SIGSTOP)
            _wait_for(lambda: _stopped(b))
            os.kill(a, signal.SIGCONT)
            assert scraped_200() == 130
        finally:
            os.kill(a, signal.SIGCONT)
            os.kill(b, signal.SIGCONT)

        # A worker that dies is replaced in its slot, and the counters carry on.
        os.kill(a, signal.SIGKILL)
        _wait_for(lambda: len(_children(server.proc.pid)) == 2 and a not in _children(server.proc.pid))
        _wait_for(lambda: all(one(i) == 200 for i in range(4)))
        assert scraped_200() >= 134
        assert server.terminate() == 0, server.stderr
        assert not metrics_dir.exists(), "the supervisor removes its metrics dir"
    finally:
        server.close()


class _Scraper:
    """Just enough of :class:`Server` for :func:`scrape`, on a given session (a fresh connection)."""

    def __init__(self, url: str, session: requests.Session) -> None:
        self.url = url
        self.session = session

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.url + path, timeout=10)


@pytest.mark.parametrize(
    ("files", "cores"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2 with a limit
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # no cgroup filesystem at all
    ],
)
def test_cpu_limit_from_cgroup_v2_and_v1(tmp_path: Path, files: dict[str, str], cores: float | None) -> None:
    """A model server sizes its workers by the container's CPU limit, on either cgroup version (a v1
    node's limit was ignored, so a pod limited to one core started one worker per node core)."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert supervisor.cpu_quota(tmp_path) == cores
