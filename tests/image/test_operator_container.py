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
from image.conftest import NAMESPACE, OPERATOR_NAMESPACE, OPERATOR_USER, chart_values, install_chart
from kubeemu import Emulator
from kubeemu.client import KubeClient
from kubeemu.cluster import Identity
from kubeemu.errors import StatusError
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
    # (Watches are audited when they end: the ones still open are not in the trail yet.)
    assert {("create", "jobs"), ("list", "trainingruns"), ("create", "modelversions")} <= audited, audited
    assert installed.failed_calls() == []


def openshift_restricted(ranges: dict[str, int]) -> Any:
    """OpenShift's restricted security context constraint, as an admission step for pods: each namespace
    has its own range of user ids; a pod naming a user or fsGroup outside it is refused, a pod naming
    none is given the range's first."""
    size = 10000

    def admit(op: str, info: ResourceInfo, new: Any, old: Any, user: Identity, sub: str | None, dry: bool) -> Any:
        namespace = (new or {}).get("metadata", {}).get("namespace")
        if op != "CREATE" or info.plural != "pods" or namespace not in ranges:
            return new
        first = ranges[namespace]
        context = new["spec"].setdefault("securityContext", {})
        named = [(f"spec.securityContext.{key}", context.get(key)) for key in ("runAsUser", "fsGroup")]
        named += [(f"spec.containers[{i}].securityContext.runAsUser", (c.get("securityContext") or {}).get("runAsUser"))
                  for i, c in enumerate(new["spec"]["containers"])]  # fmt: skip
        for field, value in named:
            if value is not None and not first <= int(value) < first + size:
                name = new["metadata"].get("name") or ""
                raise StatusError(403, "Forbidden", f'pods "{name}" is forbidden: unable to validate against any '
                                  f"security context constraint: [{field}: Invalid value: {value}: must be in the "
                                  f"ranges: [{first}, {first + size - 1}]]")  # fmt: skip
        context.setdefault("runAsUser", first)
        context.setdefault("fsGroup", first)
        return new

    return admit


def test_the_chart_s_operator_namespaced_under_the_user_id_openshift_assigns(
    image: str, emulator: Emulator, cluster: KubeClient, cluster_node: Node
) -> None:
    """As on OpenShift: with ``runAsUser: null`` neither the operator's pod nor the pods it writes name a
    user id, and the restricted policy gives each one from its namespace's range — ids the image's
    /etc/passwd does not know."""
    ranges = {OPERATOR_NAMESPACE: 1000680000, NAMESPACE: 1000700000}
    admit = openshift_restricted(ranges)
    # The chart's default pins the image's user 10001: the policy refuses such a pod.
    [default] = [o for o in helmchart.render(chart_values(image)) if o["kind"] == "Deployment"]
    pod = {"metadata": {"namespace": OPERATOR_NAMESPACE}, "spec": default["spec"]["template"]["spec"]}
    with pytest.raises(StatusError, match=r"spec.securityContext.runAsUser: Invalid value: 10001"):
        admit("CREATE", emulator.cluster.by_kind("v1", "Pod"), pod, None, Identity("system:admin"), None, False)
    emulator.cluster.admission = admit
    values = chart_values(image, watchNamespaces=[NAMESPACE], replicaCount=1, runAsUser=None)
    installed = install_chart(cluster_node, emulator, values)
    installed.wait_ready()
    alice = people(emulator, cluster)

    train_and_register(cluster, alice, cluster_node, "iris-tree", "iris-v1")
    [pod] = installed.operator_pods()
    assert pod["spec"]["securityContext"]["runAsUser"] == ranges[OPERATOR_NAMESPACE]
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    [trainer] = cluster_node.pods(NAMESPACE, {"modelops.io/training-run": "iris-tree"})
    assert trainer["spec"]["securityContext"]["runAsUser"] == ranges[NAMESPACE]
    written = cluster_node.pvc_root / NAMESPACE / "models" / "registry" / NAMESPACE / "iris-tree" / "model.joblib"
    assert written.stat().st_uid == ranges[NAMESPACE]
    kinds = {o["kind"] for o in installed.objects}
    assert {"Role", "RoleBinding", "KopfPeering"} <= kinds  # the namespaced install's RBAC and peering
    assert "ClusterKopfPeering" not in kinds
    assert installed.refused() == [], "RBAC refused the operator (a rule missing from the chart)"
    assert installed.failed_calls() == []
