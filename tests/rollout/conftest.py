"""The rollout tier: the real operator against the emulator, driving ModelDeployment rollouts.

No Prometheus runs here: ``MODELOPS_PROMETHEUS_URL`` points at a closed port, so every
measurement is inconclusive and ``spec.analysis.inconclusivePolicy`` (Pass or Fail) decides
deterministically. Intervals are a second, so a rollout takes seconds.

No deployment controller runs in the emulator either: ``deployments`` (used by every test here)
plays it, writing each Deployment's status as the real one would once its pods are ready,
so a ModelDeployment becomes Ready only through the same signal as on a cluster.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from kubeemu.client import KubeClient
from rollout.kit import IMAGE, DeploymentController


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def rollout_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "MODELOPS_PROMETHEUS_URL": f"http://127.0.0.1:{closed_port()}",
        "MODELOPS_IMAGE": IMAGE,
        "MODELOPS_RULE_LABELS": "release=kube-prometheus-stack, team=ml",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture(autouse=True)
def deployments(cluster: KubeClient) -> Iterator[DeploymentController]:
    """The deployment controller stand-in (see ``rollout.kit.DeploymentController``)."""
    controller = DeploymentController(cluster).start()
    try:
        yield controller
    finally:
        controller.close()
    assert controller.errors == []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "rollout" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(120))
