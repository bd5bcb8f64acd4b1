"""Fixtures of the e2e tier: the cluster prepared by ``make kind-up`` (or the reason to skip), and a
Prometheus for the drift step.

Environment:

- ``MODELOPS_E2E_REQUIRE=1``: fail instead of skipping when there is no cluster or no Prometheus
  (for CI, where a skip would hide a broken ``make kind-up``);
- ``MODELOPS_E2E_ANY_CLUSTER=1``: run on a current context that is not a kind cluster;
- ``MODELOPS_E2E_NAMESPACE`` (default ``ml``), ``MODELOPS_E2E_OPERATOR_NAMESPACE`` (default
  ``modelops-system``);
- ``MODELOPS_E2E_PROMETHEUS``: empty (default) uses the chart's ``prometheus.url`` when set, else
  applies ``tests/e2e/prometheus.yaml``; ``off`` never applies it; a URL uses that Prometheus;
- ``MODELOPS_E2E_KEEP=1``: keep the objects the tests created even when every step passed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from e2e.kube import Kubectl, KubectlError, Prometheus, find_cluster, wait_for

HERE = Path(__file__).resolve().parent
PROMETHEUS_MANIFEST = HERE / "prometheus.yaml"
OPERATOR_DEPLOYMENT = "modelops-operator"
PROMETHEUS_READY_TIMEOUT = 240.0
# http://<service>.<namespace>[.svc[.cluster.local]]:<port>: a Prometheus the API server can proxy to.
_IN_CLUSTER = re.compile(r"^https?://([a-z0-9-]+)\.([a-z0-9-]+)(?:\.svc(?:\.cluster\.local)?)?:(\d+)/?$")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def operator_namespace() -> str:
    return os.environ.get("MODELOPS_E2E_OPERATOR_NAMESPACE") or "modelops-system"


def give_up(reason: str) -> NoReturn:
    """Skip with the reason, or fail with it under MODELOPS_E2E_REQUIRE=1."""
    if _flag("MODELOPS_E2E_REQUIRE"):
        pytest.fail(f"MODELOPS_E2E_REQUIRE is set, and: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kubectl() -> Kubectl:
    found = find_cluster(
        any_cluster=_flag("MODELOPS_E2E_ANY_CLUSTER"), operator_namespace=operator_namespace(),
        operator=OPERATOR_DEPLOYMENT,
    )  # fmt: skip
    if isinstance(found, str):
        give_up(found)
    return found


def chart_prometheus_url(kubectl: Kubectl) -> str | None:
    """The operator's MODELOPS_PROMETHEUS_URL (the chart's prometheus.url), if set."""
    deployment = kubectl.get("deployment", OPERATOR_DEPLOYMENT, operator_namespace()) or {}
    for container in deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == "MODELOPS_PROMETHEUS_URL" and env.get("value"):
                return str(env["value"])
    return None


def _prometheus_pods(kubectl: Kubectl) -> str:
    try:
        pods = kubectl.list_items("pods", "monitoring", "app.kubernetes.io/name=prometheus")
    except KubectlError as error:
        return f"  (cannot list its pods: {error.stderr.strip()})"
    lines = []
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            state = status.get("state") or {}
            lines.append(f"  pod {pod['metadata']['name']}: ready={status.get('ready')} state={json.dumps(state)}")
    return "\n".join(lines) or "  (no pods)"


@pytest.fixture(scope="session")
def prometheus(kubectl: Kubectl) -> Iterator[Prometheus]:
    """A Prometheus that scrapes the model servers, or a skip (a failure under MODELOPS_E2E_REQUIRE) saying why."""
    wanted = os.environ.get("MODELOPS_E2E_PROMETHEUS", "").strip()
    chart_url = chart_prometheus_url(kubectl)
    if wanted.lower() == "off":
        if chart_url is None:
            give_up(
                "no Prometheus for the drift step: the chart's prometheus.url is unset and MODELOPS_E2E_PROMETHEUS=off "
                "forbids applying tests/e2e/prometheus.yaml"
            )
        url, source = str(chart_url), "the chart's prometheus.url"
    elif wanted:
        url, source = wanted, "MODELOPS_E2E_PROMETHEUS"
    elif chart_url:
        url, source = chart_url, "the chart's prometheus.url"
    else:
        kubectl.apply_file(PROMETHEUS_MANIFEST)
        url, source = "http://prometheus-operated.monitoring.svc:9090", "tests/e2e/prometheus.yaml"
    match = _IN_CLUSTER.match(url)
    if match is None:
        # Not a Service the API server can proxy to: trust it; the DriftPolicy's conditions will tell.
        yield Prometheus(url=url, source=source)
        return
    found = Prometheus(url=url, source=source, service=match.group(1), namespace=match.group(2), port=match.group(3))

    def answers() -> bool:
        return found.query(kubectl, "vector(1)") is not None

    try:
        wait_for(f"Prometheus at {url} ({source}) to answer a query", answers, timeout=PROMETHEUS_READY_TIMEOUT,
                 interval=3.0)  # fmt: skip
    except AssertionError as error:
        detail = _prometheus_pods(kubectl) if source == "tests/e2e/prometheus.yaml" else ""
        give_up(f"no Prometheus reachable for the drift step: {error}\n{detail}".rstrip())
    yield found
