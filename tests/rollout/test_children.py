"""ModelDeployment → children, through the real operator and the emulator.

Given a registered version, when a ModelDeployment pins it, then the operator creates the
model-server Deployments, the Service, the ServiceMonitor, the PrometheusRule, the HPA and
the PDB — valid against the real Kubernetes schemas, owned by the ModelDeployment — and puts
back a child that someone deletes or edits.
"""

from __future__ import annotations

import json
import time
from typing import Any

from kopf.testing import KopfRunner

from k8sschemas import problems
from kubeemu.client import KubeClient
from rollout.kit import (
    API,
    IMAGE,
    NAMESPACE,
    SHA,
    condition,
    deployment,
    events_for,
    model_version,
    stable_goes_and_comes_back,
    status_is,
)


def test_first_version_goes_straight_to_stable_with_every_child(cluster: KubeClient, operator: KopfRunner) -> None:
    cluster.create(model_version(1))
    cluster.create(deployment(modelVersion="iris-v1", autoscaling={"maxReplicas": 6, "minReplicas": 2},
                              minAvailable=1, pod={"resources": {"requests": {"cpu": "100m"}}}))
    md = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=30)
    assert md is not None
    status = md["status"]
    assert (status["stableVersion"], status["servingVersion"], status["desiredVersion"]) == ("iris-v1",) * 3
    assert status.get("canaryVersion") is None
    assert status["url"] == "http://iris.ml.svc:80/v2/models/iris"
    assert condition(md, "Ready")["status"] == "True"
    assert condition(md, "Degraded")["status"] == "False"
    assert [h["result"] for h in status["history"]] == ["Deployed"]

    stable = cluster.get("apps/v1", "Deployment", NAMESPACE, "iris-stable")
    canary = cluster.get("apps/v1", "Deployment", NAMESPACE, "iris-canary")
    service = cluster.get("v1", "Service", NAMESPACE, "iris")
    v1 = cluster.get(API, "ModelVersion", NAMESPACE, "iris-v1")
    # One ConfigMap per version object: its name and its uid's start, so another iris-v1 gets another one.
    configmap = cluster.get("v1", "ConfigMap", NAMESPACE, f"iris-model-iris-v1-{v1['metadata']['uid'][:8]}")
    assert status["stableBinding"] == {"name": "iris-v1", "uid": v1["metadata"]["uid"], "sha256": SHA}
    monitor = cluster.get("monitoring.coreos.com/v1", "ServiceMonitor", NAMESPACE, "iris")
    rule = cluster.get("monitoring.coreos.com/v1", "PrometheusRule", NAMESPACE, "iris")
    hpa = cluster.get("autoscaling/v2", "HorizontalPodAutoscaler", NAMESPACE, "iris")
    pdb = cluster.get("policy/v1", "PodDisruptionBudget", NAMESPACE, "iris")
    for child in (stable, canary, service, configmap, hpa, pdb):
        assert problems(child) == []
    for child in (stable, canary, service, configmap, monitor, rule, hpa, pdb):
        owner = child["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", "iris", True)
        assert owner["uid"] == md["metadata"]["uid"]

    # The HPA owns the stable's replica count; the canary idles at zero.
    assert "replicas" not in stable["spec"] or stable["spec"]["replicas"] is None
    assert canary["spec"]["replicas"] == 0
    assert hpa["spec"]["scaleTargetRef"]["name"] == "iris-stable"
    assert pdb["spec"]["minAvailable"] == 1
    pod = stable["spec"]["template"]
    assert pod["metadata"]["labels"]["modelops.io/role"] == "stable"
    assert pod["metadata"]["labels"]["modelops.io/version"] == "iris-v1"
    assert pod["metadata"]["labels"]["modelops.io/deployment"] == "iris"
    container = pod["spec"]["containers"][0]
    assert container["image"] == IMAGE
    args = container["args"]
    assert args[0] == "serve"
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--name"] == "iris"
    assert flags["--version"] == "iris-v1"
    assert flags["--artifact-uri"] == "pvc://models/iris/v1/model.skops"
    assert flags["--sha256"] == SHA
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"] == {"requests": {"cpu": "100m"}}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["terminationGracePeriodSeconds"] > float(flags["--graceful-timeout"])
    claims = [v["persistentVolumeClaim"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"claimName": "models", "readOnly": True}]
    assert service["spec"]["selector"] == {"modelops.io/deployment": "iris"}
    result = json.loads(configmap["data"]["result.json"])
    assert result["artifact"]["sha256"] == SHA
    assert result["signature"]["inputs"][0]["name"] == "sepal length (cm)"
    assert result["referenceStats"]["sampleSize"] == 10
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["metadata"]["labels"]["team"] == "ml"
    alerts = {r["alert"] for r in rule["spec"]["groups"][0]["rules"]}
    assert alerts == {"ModelServerErrorRateHigh", "ModelServerLatencyHigh"}
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert "Deployed" in {e["reason"] for e in events_for(cluster, "iris")}


def test_a_child_deleted_or_edited_by_hand_is_put_back(cluster: KubeClient, operator: KopfRunner) -> None:
    cluster.create(model_version(1))
    cluster.create(deployment(modelVersion="iris-v1"))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=30)
    cluster.wait_for("apps/v1", "Deployment", NAMESPACE, "iris-stable", lambda o: o is not None, timeout=30)
    original_uid = cluster.get("apps/v1", "Deployment", NAMESPACE, "iris-stable")["metadata"]["uid"]

    cluster.delete("apps/v1", "Deployment", NAMESPACE, "iris-stable")
    back = cluster.wait_for(
        "apps/v1", "Deployment", NAMESPACE, "iris-stable",
        lambda o: o is not None and o["metadata"]["uid"] != original_uid, timeout=30,
    )
    assert back is not None
    assert back["spec"]["replicas"] == 4

    cluster.patch("apps/v1", "Deployment", NAMESPACE, "iris-stable", {"spec": {"replicas": 9}})
    cluster.wait_for("apps/v1", "Deployment", NAMESPACE, "iris-stable",
                     lambda o: o is not None and o["spec"]["replicas"] == 4, timeout=30)
    cluster.patch("v1", "Service", NAMESPACE, "iris", {"spec": {"selector": {"app": "other"}}})
    fixed = cluster.wait_for("v1", "Service", NAMESPACE, "iris",
                             lambda o: o is not None and o["spec"]["selector"].get("app") is None, timeout=30)
    assert fixed is not None
    assert fixed["spec"]["selector"]["modelops.io/deployment"] == "iris"
    cluster.delete("monitoring.coreos.com/v1", "PrometheusRule", NAMESPACE, "iris")
    assert cluster.wait_for("monitoring.coreos.com/v1", "PrometheusRule", NAMESPACE, "iris",
                            lambda o: o is not None, timeout=30)
    # Events are posted asynchronously: wait for it, with a deadline.
    deadline = time.monotonic() + 15
    while "ChildRepaired" not in {e["reason"] for e in events_for(cluster, "iris")}:
        assert time.monotonic() < deadline, f"no ChildRepaired event: {events_for(cluster, 'iris')}"
        time.sleep(0.1)


CHILD_RESOURCES = {"deployments", "services", "configmaps", "horizontalpodautoscalers", "poddisruptionbudgets",
                   "servicemonitors", "prometheusrules", "httproutes", "modelversions", "secrets",
                   "driftpolicies"}  # fmt: skip


def _operators(records: list[Any]) -> list[tuple[str, str]]:
    """(verb, resource) of the operator's requests (the tests' client and the deployment stand-in use requests)."""
    return [(r.verb, r.resource) for r in records if "python-requests" not in r.user_agent and r.verb != "watch"]


def _settled(emulator: Any, timeout: float = 30) -> int:
    """Wait until the operator has made no request for two seconds; the audit's length then."""
    deadline = time.monotonic() + timeout
    seen = len(emulator.audit)
    while time.monotonic() < deadline:
        time.sleep(2)
        now = len(emulator.audit)
        if not _operators(emulator.audit[seen:now]):
            return now
        seen = now
    raise AssertionError(f"the operator never went quiet: {_operators(emulator.audit[seen:])[-20:]}")


def test_a_reconcile_whose_children_are_as_desired_reads_none_of_them(
    cluster: KubeClient, emulator: Any, deployments: Any, operator: KopfRunner
) -> None:
    """Children, versions and the Deployments' availability come from what the watches delivered (bench/operator
    measured 119 requests per deployment to Ready when every reconcile read and patched its eight children)."""
    cluster.create(model_version(1))
    cluster.create(deployment(modelVersion="iris-v1"))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                     lambda o: status_is(phase="Healthy")(o) and condition(o, "Ready").get("status") == "True",
                     timeout=30)  # fmt: skip
    start = _settled(emulator)

    # The stable's pods go and come back: two status changes, each a nudge and a reconcile of the owner.
    stable_goes_and_comes_back(cluster, deployments)
    asked = _operators(emulator.audit[start:_settled(emulator)])
    assert ("patch", "modeldeployments") in asked  # the reconciles did run
    assert [a for a in asked if a[1] in CHILD_RESOURCES] == []
    assert asked.count(("get", "namespaces")) <= 2  # its labels are read again after ten seconds at most
    assert asked.count(("get", "modeldeployments")) <= 4  # the reconcile reads its own status fresh, once each

    # A child edited by hand is still put back: the watch delivers the edit, and the repair patches it.
    cluster.patch("v1", "Service", NAMESPACE, "iris", {"spec": {"selector": {"app": "other"}}})
    cluster.wait_for("v1", "Service", NAMESPACE, "iris",
                     lambda o: o is not None and o["spec"]["selector"].get("app") is None, timeout=30)  # fmt: skip
    # So is a child whose label, by which the watch knows it, is taken away by hand.
    cluster.patch("apps/v1", "Deployment", NAMESPACE, "iris-canary", {"metadata": {"labels": {
        "modelops.io/deployment": None}}})  # fmt: skip
    relabelled = cluster.wait_for(
        "apps/v1", "Deployment", NAMESPACE, "iris-canary",
        lambda o: o is not None and o["metadata"].get("labels", {}).get("modelops.io/deployment") == "iris", timeout=30,
    )
    assert relabelled is not None
