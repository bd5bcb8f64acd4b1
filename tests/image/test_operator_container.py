"""The operator runs as a container from the chart's rendered Deployment, authorized by the chart's RBAC.

Given the chart installed into the emulator as ``helm install`` would (its CRDs, ServiceAccount,
ClusterRoles/Roles and bindings, policy ConfigMap, webhook certificate Secret, Service,
Deployment, peering object and webhook configurations) and a node running the Deployment's pods
as containers (the chart's securityContext, volumes, env, args and probes honoured): the
operator's replicas authenticate as the chart's ServiceAccount — every request of theirs is
authorized by RBAC, so a verb or resource the chart forgot fails here — serve the admission
webhooks the emulator calls over TLS through the Service, and reconcile a TrainingRun whose
Job pod trains in a container, into a registered ModelVersion. Cluster-wide, and namespaced
(``watchNamespaces``) with the user ids OpenShift's restricted policy assigns (``runAsUser: null``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import helmchart
from containerkubelet import Node
from image.conftest import (
    NAMESPACE,
    OPERATOR_NAMESPACE,
    OPERATOR_USER,
    chart_values,
    install_chart,
    openshift_restricted,
)
from kubeemu import Emulator
from kubeemu.client import KubeClient
from kubeemu.cluster import Identity
from kubeemu.errors import StatusError
from kubeemu.resources import ResourceInfo
from promkit import Prometheus

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
    # (Watches are audited when they end: the ones still open are not in the trail yet.)
    assert {("create", "jobs"), ("list", "trainingruns"), ("create", "modelversions")} <= audited, audited
    assert installed.failed_calls() == []


def test_openshift_s_restricted_policy_refuses_the_default_chart_and_assigns_ids_without_it(image: str) -> None:
    """The chart's default pins the image's user 10001, which OpenShift's restricted policy refuses; with
    ``runAsUser: null`` the pod names none and the policy assigns its own (the namespaced loop in
    tests/image/test_loop_in_containers.py runs every pod that way)."""
    admit = openshift_restricted({OPERATOR_NAMESPACE: 1000680000})
    info = ResourceInfo("", ["v1"], "pods", "Pod", True)

    def operator_pod(**values: Any) -> Obj:
        [deployment] = [o for o in helmchart.render(chart_values(image, **values)) if o["kind"] == "Deployment"]
        return {"metadata": {"namespace": OPERATOR_NAMESPACE}, "spec": deployment["spec"]["template"]["spec"]}

    with pytest.raises(StatusError, match=r"spec.securityContext.runAsUser: Invalid value: 10001: must be in the "):
        admit("CREATE", info, operator_pod(), None, Identity("system:admin"), None, False)
    admitted = admit("CREATE", info, operator_pod(runAsUser=None), None, Identity("system:admin"), None, False)
    assert (admitted["spec"]["securityContext"]["runAsUser"], admitted["spec"]["securityContext"]["fsGroup"]) == (
        1000680000, 1000680000)  # fmt: skip


def test_a_rule_missing_from_the_chart_is_refused_as_on_a_cluster(
    image: str, emulator: Emulator, cluster: KubeClient, cluster_node: Node
) -> None:
    """What the other tests rely on: take the rule for Jobs out of the chart's ClusterRole, and the
    operator's container is refused (403) — its watch of Jobs first, the training Job after — and
    the tier names what was refused."""

    def without_jobs(objects: list[Obj]) -> None:
        for obj in objects:
            if obj["kind"] == "ClusterRole" and obj["metadata"]["name"] == "modelops-operator":
                obj["rules"] = [r for r in obj["rules"] if "jobs" not in r.get("resources", [])]

    installed = install_chart(cluster_node, emulator, chart_values(image, replicaCount=1), edit=without_jobs)
    installed.wait_ready()
    alice = people(emulator, cluster)
    alice.create(training_run("iris-tree"))
    Prometheus.wait(installed.refused, timeout=120, what="the operator refused by RBAC")
    assert all("/apis/batch/v1/" in r and "jobs" in r for r in installed.refused()), installed.refused()
    assert cluster.list("batch/v1", "Job", NAMESPACE) == []
    assert installed.failed_calls(), "the operator's log shows the refused calls too"

