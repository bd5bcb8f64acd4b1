"""The whole loop with every part in a container: the scenario of tests/loop/scenario.py, unchanged.

Twice: installed cluster-wide (two replicas), and namespaced (``watchNamespaces``) on an
"OpenShift" whose restricted policy gives every pod of a namespace a user id from the namespace's
range (``runAsUser: null``). The operator runs from the chart (its ServiceAccount authorized by
the chart's ClusterRoles or Roles on every request, its webhooks called over TLS through the
Service, Prometheus named in the chart's values); the
TrainingRuns' Job pods train in containers and write to the claim's directory; the
ModelDeployment's stable and canary Deployments run ``modelops serve`` containers, which the real
Prometheus scrapes as the ServiceMonitor the operator wrote selects them; canary analysis and
drift evaluation query that Prometheus from inside the operator's container; retraining starts
a Job whose pod trains in a container again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import helmchart
from containerkubelet import Node
from image.conftest import (
    NAMESPACE,
    OPERATOR_NAMESPACE,
    OPERATOR_USER,
    Installed,
    chart_values,
    install_chart,
    openshift_restricted,
)
from kubeemu import Emulator
from kubeemu.client import KubeClient
from loop.scenario import DEPLOYMENT, whole_loop
from promkit import BINARY, Prometheus

pytestmark = pytest.mark.timeout(900)

SERVER = {"modelops.io/deployment": DEPLOYMENT, "app.kubernetes.io/component": "model-server"}


@dataclass
class ContainerLoop:
    """The scenario's parts (:class:`loop.scenario.Parts`) on a node of containers."""

    kube: KubeClient
    alice: KubeClient
    bob: KubeClient
    prometheus: Prometheus
    node: Node
    installed: Installed
    operator: str = OPERATOR_USER
    patience: float = 4.0  # a container starts in seconds, and probes pace readiness

    def run_training_pods(self, run: str) -> None:
        """Nothing: the job controller and the kubelet run the Job's pods on their own."""

    def server_versions(self) -> dict[str, str]:
        versions: dict[str, set[str]] = {}
        for pod in self.node.pods(NAMESPACE, SERVER):
            if (pod.get("status") or {}).get("phase") not in ("Pending", "Running"):
                continue
            owner = pod["metadata"]["ownerReferences"][0]["name"]
            versions.setdefault(owner, set()).add(pod["metadata"]["labels"]["modelops.io/version"])
        return {owner: ",".join(sorted(found)) for owner, found in versions.items()}

    def server_urls(self) -> list[str]:
        return self.node.ready_urls(NAMESPACE, SERVER, 8080)


INSTALLS = {
    "cluster-wide": {},
    "namespaced-openshift": {"watchNamespaces": [NAMESPACE], "replicaCount": 1, "runAsUser": None},
}
RANGES = {OPERATOR_NAMESPACE: 1000680000, NAMESPACE: 1000700000}  # each namespace's user ids (OpenShift)


@pytest.fixture(params=sorted(INSTALLS))
def container_loop(
    request: pytest.FixtureRequest, image: str, emulator: Emulator, cluster: KubeClient, tmp_path: Path
) -> Iterator[ContainerLoop]:
    install = INSTALLS[request.param]
    if "runAsUser" in install:
        emulator.cluster.admission = openshift_restricted(RANGES)
    if not Path(BINARY).exists():
        pytest.skip("Debian's prometheus is not installed (.ci/run installs it: apt-get install prometheus)")
    node: Node | None = None
    prometheus: Prometheus | None = None
    try:
        from containerkubelet import docker

        # Prometheus listens where the operator's container reaches it: the bridge's gateway.
        prometheus = Prometheus(tmp_path / "prometheus", host=docker.bridge_gateway())
        prometheus.start()
        node = Node(emulator, image=image, namespaces=[NAMESPACE, OPERATOR_NAMESPACE], workdir=tmp_path / "node",
                    prometheus=prometheus).start()  # fmt: skip
        values = chart_values(image, prometheus={"url": prometheus.url}, **install)
        installed = install_chart(node, emulator, values)
        cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": "models", "namespace": NAMESPACE},
                        "spec": {"accessModes": ["ReadWriteMany"]}})  # fmt: skip
        clients = {}
        for name in ("alice", "bob"):
            emulator.add_user(f"token-{name}", name, uid=f"uid-{name}")
            clients[name] = emulator.client(f"token-{name}")
        for role in ("modelops-editor", "modelops-approver"):
            helmchart.bind_user_role(cluster, role, ["alice", "bob"], NAMESPACE)
        installed.wait_ready()
        yield ContainerLoop(cluster, clients["alice"], clients["bob"], prometheus, node, installed)
        assert installed.refused() == [], "RBAC refused the operator (a rule missing from the chart)"
        assert installed.failed_calls() == []
    finally:
        if node is not None:
            node.close()
        if prometheus is not None:
            prometheus.stop()
    assert node.errors == [], node.errors


def test_the_whole_loop_in_containers(container_loop: ContainerLoop) -> None:
    try:
        whole_loop(container_loop)
        # The chart's ServiceMonitor: Prometheus scrapes every operator replica's own /metrics.
        replicas = int(container_loop.installed.values.get("replicaCount", 2))
        up = container_loop.prometheus.query(f'up{{namespace="{OPERATOR_NAMESPACE}", service="modelops-operator"}}')
        assert sorted(float(item["value"][1]) for item in up) == [1.0] * replicas, up
        if container_loop.installed.values.get("runAsUser", 10001) is None:
            # Every pod ran as the user id its namespace's policy gave it.
            for namespace, first in RANGES.items():
                users = {p["spec"]["securityContext"].get("runAsUser") for p in container_loop.node.pods(namespace)}
                assert users == {first}, (namespace, users)
    except AssertionError as error:
        node = container_loop.node
        raise AssertionError(f"{error}\n--- pods of {NAMESPACE}:\n{node.describe(NAMESPACE)}\n--- the operator:\n"
                             f"{container_loop.installed.logs()[-6000:]}") from None  # fmt: skip
