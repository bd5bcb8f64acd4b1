"""A cluster without the Prometheus Operator and without the Gateway API: a ModelDeployment is served all
the same, and the operator stops asking for the kinds the cluster does not serve."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner

from kubeemu import Emulator
from kubeemu.client import KubeClient
from rollout.kit import API, NAMESPACE, condition, deployment, model_version, stable_goes_and_comes_back, status_is

OPTIONAL = {"servicemonitors", "prometheusrules", "httproutes"}


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """The emulator with the project's CRDs only (the cluster fixture adds them): no monitoring.coreos.com,
    no gateway.networking.k8s.io."""
    emu = Emulator()
    emu.start()
    try:
        yield emu
        assert not emu.internal_errors, f"the emulator failed internally: {emu.internal_errors!r}"
    finally:
        emu.stop()


def test_a_deployment_is_served_without_the_optional_apis(
    cluster: KubeClient, emulator: Any, deployments: Any, operator: KopfRunner
) -> None:
    cluster.create(model_version(1))
    cluster.create(deployment(modelVersion="iris-v1"))
    ready = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                             lambda o: status_is(phase="Healthy")(o) and condition(o, "Ready").get("status") == "True",
                             timeout=30)  # fmt: skip
    assert ready is not None
    assert cluster.get("apps/v1", "Deployment", NAMESPACE, "iris-stable") is not None
    assert cluster.get("v1", "Service", NAMESPACE, "iris") is not None
    tried = [r for r in emulator.audit if any(f"/{p}" in r.path for p in OPTIONAL) and r.verb != "watch"]
    assert tried, "the operator never tried the optional kinds: the test proves nothing"
    # Each kind is found missing once, then remembered: more reconciles do not ask again.
    before = len(emulator.audit)
    stable_goes_and_comes_back(cluster, deployments)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(r.resource == "modeldeployments" for r in emulator.audit[before:]):
        time.sleep(0.1)
    again = [(r.method, r.path) for r in emulator.audit[before:] if any(f"/{p}" in r.path for p in OPTIONAL)]
    assert again == []
