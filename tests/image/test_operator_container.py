"""The operator runs as a container from the chart's rendered Deployment, authorized by the chart's RBAC.

Given the chart installed into the emulator as ``helm install`` would (its CRDs, ServiceAccount,
ClusterRoles/Roles and bindings, policy ConfigMap, webhook certificate Secret, Service,
Deployment, peering object and webhook configurations) and a node running the Deployment's pods
as containers (the chart's securityContext, volumes, env, args and probes honoured): the
operator's replicas authenticate as the chart's ServiceAccount — every request of theirs is
authorized by RBAC, so a verb or resource the chart forgot fails here — serve the admission
webhooks the emulator calls over TLS through the Service, and reconcile a TrainingRun whose
Job pod trains in a container, into a registered ModelVersion. Cluster-wide, and namespaced
(``watchNamespaces``) with the arbitrary user id OpenShift's restricted policy assigns.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import helmchart
from containerkubelet import Node
from image.conftest import NAMESPACE, OPERATOR_NAMESPACE, OPERATOR_USER, chart_values, install_chart
from kubeemu import Emulator
from kubeemu.client import KubeClient
from kubeemu.cluster import Identity
from kubeemu.resources import ResourceInfo

API = "modelops.io/v1alpha1"
Obj = dict[str, Any]

pytestmark = pytest.mark.timeout(600)


def training_run(name: str) -> Obj:
    return {
        "apiVersion": API, "kind": "TrainingRun", "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": "iris", "dataset": {"uri": "sklearn://iris", "target": "target"},
            "estimator": {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}},
            "artifactStore": {"uri": "pvc://models/registry"},
        },
    }  # fmt: skip


def people(emulator: Emulator, kube: KubeClient) -> KubeClient:
    """alice, an editor of the modelops kinds in the namespace (the chart's modelops-editor role)."""
    emulator.add_user("token-alice", "alice", uid="uid-alice")
    helmchart.bind_user_role(kube, "modelops-editor", ["alice"], NAMESPACE)
    kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "models", "namespace": NAMESPACE}, "spec": {"accessModes": ["ReadWriteMany"]}})
    return emulator.client("token-alice")


def train_and_register(kube: KubeClient, alice: KubeClient, node: Node, name: str, version: str) -> Obj:
    alice.create(training_run(name))
    try:
        run = kube.wait_for(API, "TrainingRun", NAMESPACE, name,
                            lambda o: (o or {}).get("status", {}).get("phase") in ("Succeeded", "Failed"), timeout=300)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{node.describe(NAMESPACE)}\n{node.describe(OPERATOR_NAMESPACE)}") from None
    assert run is not None
    assert run["status"]["phase"] == "Succeeded", run["status"]
    # The mutating webhook (called over TLS through the chart's Service) recorded who created it.
    assert json.loads(run["metadata"]["annotations"]["modelops.io/created-by"])["user"] == "alice"
    registered = kube.wait_for(API, "ModelVersion", NAMESPACE, version,
                               lambda o: bool(o) and (o.get("status") or {}).get("stage") == "None", timeout=60)
    assert registered is not None
    return registered


def test_the_chart_s_operator_in_containers_cluster_wide(
    image: str, emulator: Emulator, cluster: KubeClient, cluster_node: Node
) -> None:
    installed = install_chart(cluster_node, emulator, chart_values(image))
    installed.wait_ready()
    alice = people(emulator, cluster)

    version = train_and_register(cluster, alice, cluster_node, "iris-tree", "iris-v1")
    # Registered by the operator's own identity, which the policy lists as an operator user.
    assert json.loads(version["metadata"]["annotations"]["modelops.io/created-by"])["user"] == OPERATOR_USER
    calls = [c for c in emulator.webhook_calls if c.resource == "trainingruns"]
    assert calls, "the emulator called the operator's webhooks"
    assert {c.outcome for c in calls} <= {"allowed", "patched"}

    pods = installed.operator_pods()
    assert len(pods) == 2  # the chart's two replicas, one active through peering
    for pod in pods:
        [status] = pod["status"]["containerStatuses"]
        assert (status["ready"], status["restartCount"]) == (True, 0), status
    assert installed.refused() == [], "RBAC refused the operator (a rule missing from the chart)"
    audited = {(r.verb, r.resource) for r in emulator.audit if r.user == OPERATOR_USER and r.code < 400}
    # ... and it did its work as that service account, not as an administrator.
    assert {("create", "jobs"), ("watch", "trainingruns"), ("create", "modelversions")} <= audited, audited
    assert installed.failed_calls() == []


def test_the_chart_s_operator_namespaced_under_an_arbitrary_user_id(
    image: str, emulator: Emulator, cluster: KubeClient, cluster_node: Node
) -> None:
    """As on OpenShift: its restricted policy gives the pod a user id from the namespace's range (not in the
    image's /etc/passwd) and an fsGroup, whatever the chart says."""
    assigned = 1000680000

    def restricted(op: str, info: ResourceInfo, new: Any, old: Any, user: Identity, sub: str | None, dry: bool) -> Any:
        if op == "CREATE" and info.plural == "pods" and new and new["metadata"].get("namespace") == OPERATOR_NAMESPACE:
            context = new["spec"].setdefault("securityContext", {})
            context.update(runAsUser=assigned, fsGroup=assigned, runAsGroup=0)
            for container in new["spec"]["containers"]:
                (container.get("securityContext") or {}).pop("runAsUser", None)
        return new

    emulator.cluster.admission = restricted
    installed = install_chart(cluster_node, emulator, chart_values(image, watchNamespaces=[NAMESPACE], replicaCount=1))
    installed.wait_ready()
    alice = people(emulator, cluster)

    train_and_register(cluster, alice, cluster_node, "iris-tree", "iris-v1")
    [pod] = installed.operator_pods()
    assert pod["spec"]["securityContext"]["runAsUser"] == assigned
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    kinds = {o["kind"] for o in installed.objects}
    assert {"Role", "RoleBinding", "KopfPeering"} <= kinds  # the namespaced install's RBAC and peering
    assert "ClusterKopfPeering" not in kinds
    assert installed.refused() == [], "RBAC refused the operator (a rule missing from the chart)"
    assert installed.failed_calls() == []
