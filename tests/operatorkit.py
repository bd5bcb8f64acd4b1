"""Fixtures for every tier that runs the real operator against the emulator.

``cluster``: the emulator with our CRDs and the tests' namespace; ``operator_env``: the
environment an operator needs to find it; ``operator``: Kopf with our registry, in a thread.
:func:`operator_command` is ``modelops operator`` as a process: never on the default ports
(8080, 8081, 9443), which other operators and servers on a shared machine may hold.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from kubeemu import Emulator
from kubeemu.client import KubeClient

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "ml"  # the tests' namespace; test modules repeat the name


def until(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether ``condition`` holds within ``timeout`` seconds (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def operator_command(*args: str, health_port: int | None = None, metrics_port: int | None = None) -> list[str]:
    """``python -m modelops operator`` with its liveness and metrics on free ports and no webhook server."""
    health = health_port if health_port is not None else free_port()
    metrics = metrics_port if metrics_port is not None else free_port()
    return [
        sys.executable, "-m", "modelops", "operator",
        "--liveness", f"http://127.0.0.1:{health}/healthz", "--metrics-port", str(metrics), "--webhook-port", "0",
        *args,
    ]  # fmt: skip


@pytest.fixture
def cluster(emulator: Emulator, kube: KubeClient) -> KubeClient:
    """The emulator with the generated CRDs registered and a namespace for the tests."""
    emulator.register_crds(sorted((REPO / "crds").glob("*.yaml")))
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    return kube


@pytest.fixture
def operator_env(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment an operator process needs to find the emulator."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("MODELOPS_WAIT_RETRY_SECONDS", "1")
    monkeypatch.setenv("MODELOPS_POLL_SECONDS", "0.5")
    return {"KUBECONFIG": str(kubeconfig), "MODELOPS_WAIT_RETRY_SECONDS": "1", "MODELOPS_POLL_SECONDS": "0.5"}


@pytest.fixture
def operator(cluster: KubeClient, operator_env: dict[str, str]) -> Iterator[KopfRunner]:
    """The real Kopf operator with our handlers and settings, in a thread of this process."""
    from modelops.controller import handlers

    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with KopfRunner(args, registry=handlers.registry(), timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.exception
    assert runner.exit_code == 0, runner.output
    # Kopf logs every failed API call; none is expected against a faithful emulator.
    for line in runner.output.splitlines():
        assert "Patching failed" not in line, line
        assert "APIClientError" not in line, line
        assert "APIServerError" not in line, line
