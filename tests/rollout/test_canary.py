"""Canary rollouts through the real operator and the emulator: steps, weights, status, verdicts.

Given a stable version, when a new version is wanted, then the canary walks its steps with the
weights and status each step says, and is promoted when the analysis passes, rolled back (and
the version marked rejected) when it fails, and obeys abort/promote/retry by annotation.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from kopf.testing import KopfRunner
from prometheus_client import REGISTRY, generate_latest

from kubeemu.client import KubeClient
from rollout.kit import API, NAMESPACE, available, condition, deployment, events_for, model_version, replicas, status_is


def template_version(kube: KubeClient, name: str) -> str:
    found = kube.get("apps/v1", "Deployment", NAMESPACE, name)
    return str(found["spec"]["template"]["metadata"]["labels"]["modelops.io/version"])


def start(kube: KubeClient, **spec: Any) -> None:
    kube.create(model_version(1))
    kube.create(model_version(2))
    kube.create(deployment(modelVersion="iris-v1", **spec))
    kube.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy", stableVersion="iris-v1"),
                  timeout=30)


def want(kube: KubeClient, version: str) -> None:
    kube.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"modelVersion": version}})


def act(kube: KubeClient, value: str) -> None:
    kube.patch(API, "ModelDeployment", NAMESPACE, "iris", {"metadata": {"annotations": {"modelops.io/action": value}}})


def test_weights_and_status_per_step_then_promote_by_annotation(cluster: KubeClient, operator: KopfRunner) -> None:
    start(cluster, rollout={"steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}]})
    want(cluster, "iris-v2")
    paused = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Paused"), timeout=30)
    assert paused is not None
    status = paused["status"]
    assert (status["step"], status["canaryWeight"]) == (1, 25)
    assert (status["stableVersion"], status["canaryVersion"], status["servingVersion"]) == (
        "iris-v1", "iris-v2", "iris-v1")
    assert status["desiredVersion"] == "iris-v2"
    assert condition(paused, "Progressing")["status"] == "True"
    assert condition(paused, "Reconciling")["status"] == "True"
    # Replica ratio: canary ceil(4 * 25%) = 1, stable ceil(4 * 75%) = 3.
    cluster.wait_for("apps/v1", "Deployment", NAMESPACE, "iris-canary",
                     lambda o: o is not None and o["spec"]["replicas"] == 1, timeout=30)
    assert replicas(cluster, "iris-stable") == 3
    assert template_version(cluster, "iris-canary") == "iris-v2"
    assert template_version(cluster, "iris-stable") == "iris-v1"
    # The operator's /metrics says the same (the operator runs in this process: its default registry).
    exported = generate_latest(REGISTRY).decode()
    where = f'deployment="iris",namespace="{NAMESPACE}"'
    assert f'modelops_rollout_traffic_weight{{{where},role="canary",version="iris-v2"}} 25.0' in exported
    assert f'modelops_rollout_traffic_weight{{{where},role="stable",version="iris-v1"}} 75.0' in exported
    assert f"modelops_rollout_step{{{where}}} 1.0" in exported

    # A promote needs an available canary (else it is refused with PromoteRefused): as a person would, wait for it.
    cluster.wait_for("apps/v1", "Deployment", NAMESPACE, "iris-canary", available, timeout=30)
    act(cluster, "promote/1")
    done = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                            status_is(phase="Healthy", stableVersion="iris-v2"), timeout=30)
    assert done is not None
    assert done["status"]["lastAction"] == "promote/1"
    assert done["status"].get("canaryVersion") is None
    assert done["status"]["previousStableVersions"] == ["iris-v1"]
    assert done["status"]["history"][0]["result"] == "Promoted"
    cluster.wait_for("apps/v1", "Deployment", NAMESPACE, "iris-stable",
                     lambda o: o is not None and o["spec"]["template"]["metadata"]["labels"]["modelops.io/version"]
                     == "iris-v2" and o["spec"]["replicas"] == 4, timeout=30)
    assert replicas(cluster, "iris-canary") == 0
    assert condition(done, "Ready")["status"] == "True"

    # Back to the version that was stable a moment ago: no canary, no analysis.
    want(cluster, "iris-v1")
    back = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                            status_is(phase="Healthy", stableVersion="iris-v1"), timeout=30)
    assert back is not None
    assert back["status"]["history"][0]["result"] == "Replaced"
    assert "rollbackWindow" in back["status"]["history"][0]["message"]


def test_passing_analysis_promotes_step_by_step(cluster: KubeClient, operator: KopfRunner) -> None:
    start(cluster)  # default steps: 20% → analysis → 50% → analysis → 100%, interval 1s, inconclusive = pass
    want(cluster, "iris-v2")
    seen: set[tuple[int, int]] = set()

    def record(obj: dict[str, Any] | None) -> bool:
        status = (obj or {}).get("status") or {}
        if status.get("canaryVersion") == "iris-v2":
            seen.add((int(status.get("step") or 0), int(status.get("canaryWeight") or 0)))
        return status_is(phase="Healthy", stableVersion="iris-v2")(obj)

    done = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", record, timeout=60, interval=0.02)
    assert done is not None
    assert (1, 20) in seen
    assert (3, 50) in seen
    analysis = done["status"]["analysis"]
    assert analysis
    assert all(r["phase"] == "Inconclusive" and "Pass" in r["message"] for r in analysis)
    # The verdicts on the operator's /metrics: each check's latest phase, labelled by the version judged.
    exported = generate_latest(REGISTRY).decode()
    for result in analysis:
        where = f'check="{result["name"]}",deployment="iris",namespace="{NAMESPACE}"'
        assert f'modelops_rollout_analysis{{{where},phase="Inconclusive",version="iris-v2"}} 1.0' in exported
        assert f'modelops_rollout_analysis{{{where},phase="Failed",version="iris-v2"}} 0.0' in exported
    assert done["status"]["history"][0]["result"] == "Promoted"
    reasons = [e["reason"] for e in events_for(cluster, "iris")]
    assert "RolloutStarted" in reasons
    assert "Promoted" in reasons


def test_failing_analysis_rolls_back_and_stays_until_retry(
    cluster: KubeClient, operator: KopfRunner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelops.audit")
    start(cluster, analysis={"interval": "1s", "inconclusivePolicy": "Fail", "failureLimit": 1})
    want(cluster, "iris-v2")
    failed = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="RolledBack"), timeout=30)
    assert failed is not None
    status = failed["status"]
    assert (status["stableVersion"], status["servingVersion"], status["failedVersion"]) == (
        "iris-v1", "iris-v1", "iris-v2")
    assert status.get("canaryVersion") is None
    assert status["canaryWeight"] == 0
    stalled, degraded = condition(failed, "Stalled"), condition(failed, "Degraded")
    assert (stalled["status"], stalled["reason"]) == ("True", "RolledBack")
    assert (degraded["status"], degraded["reason"]) == ("True", "AnalysisFailed")
    assert "error-rate" in degraded["message"] or "analysis failed" in degraded["message"]
    assert condition(failed, "Ready")["status"] == "False"
    assert replicas(cluster, "iris-canary") == 0
    assert replicas(cluster, "iris-stable") == 4
    assert template_version(cluster, "iris-stable") == "iris-v1"
    warning = [e for e in events_for(cluster, "iris") if e["reason"] == "RolledBack"]
    assert warning
    assert "iris-v2" in warning[0]["message"]
    assert "Revert the commit that set spec.modelVersion to iris-v2" in warning[0]["message"]
    rejected = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v2",
                                lambda o: bool((o or {}).get("status", {}).get("rejected")), timeout=30)
    assert rejected is not None
    evidence = rejected["status"]["rejected"]
    assert evidence["deployment"] == "ml/iris"
    assert evidence["metric"]
    # The rollback is in the audit log too, once, with the same evidence (logic/audit.py).
    audited = [json.loads(r.getMessage()) for r in caplog.records if r.name == "modelops.audit"]
    [rollback] = [r for r in audited if r["event"] == "rolledBack"]
    assert (rollback["name"], rollback["deployment"], rollback["at"]) == ("iris-v2", "ml/iris", evidence["at"])
    assert rollback["evidence"]["metric"] == evidence["metric"]
    assert rollback["uid"] == rejected["metadata"]["uid"]

    # Still the wanted version: it stays rolled back (no retry loop) through further reconciles.
    cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"replicas": 3}})
    again = cluster.wait_for(
        API, "ModelDeployment", NAMESPACE, "iris",
        lambda o: bool(o) and o["status"].get("observedGeneration") == o["metadata"]["generation"]
        and status_is(phase="RolledBack")(o), timeout=30,
    )
    assert again is not None
    assert len([h for h in again["status"]["history"] if h["result"] == "RolledBack"]) == 1
    cluster.wait_for("apps/v1", "Deployment", NAMESPACE, "iris-stable",
                     lambda o: o is not None and o["spec"]["replicas"] == 3, timeout=30)

    # A retry with a passing analysis starts over from step 0 and promotes.
    cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"analysis": {"inconclusivePolicy": "Pass"}}})
    act(cluster, "retry/1")
    done = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                            status_is(phase="Healthy", stableVersion="iris-v2"), timeout=60)
    assert done is not None
    assert done["status"]["lastAction"] == "retry/1"
    assert condition(done, "Stalled") == {}
    assert condition(done, "Degraded")["status"] == "False"


def test_abort_rolls_back_without_rejecting_the_version(cluster: KubeClient, operator: KopfRunner) -> None:
    start(cluster, rollout={"steps": [{"setWeight": 50}, {"pause": {}}]})
    want(cluster, "iris-v2")
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Paused", canaryWeight=50),
                     timeout=30)
    act(cluster, "abort")
    aborted = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="RolledBack"),
                               timeout=30)
    assert aborted is not None
    assert condition(aborted, "Degraded")["reason"] == "Aborted"
    assert condition(aborted, "Stalled")["reason"] == "RolledBack"
    assert aborted["status"]["history"][0]["result"] == "Aborted"
    assert not (cluster.get(API, "ModelVersion", NAMESPACE, "iris-v2").get("status") or {}).get("rejected")
    cluster.wait_for("apps/v1", "Deployment", NAMESPACE, "iris-canary",
                     lambda o: o is not None and o["spec"]["replicas"] == 0, timeout=30)


def test_track_production_rolls_out_the_granted_version(cluster: KubeClient, operator: KopfRunner) -> None:
    cluster.create(model_version(1, stage="Production"))
    cluster.create(model_version(2))
    cluster.patch_status(API, "ModelVersion", NAMESPACE, "iris-v1", {"status": {"stage": "Production"}})
    cluster.create(deployment(track="Production", rollout={"steps": [{"setWeight": 50}, {"pause": {}}]}))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy", stableVersion="iris-v1"),
                     timeout=30)
    # The registry grants v2 Production (as governance does, through the status subresource).
    cluster.patch_status(API, "ModelVersion", NAMESPACE, "iris-v2", {"status": {"stage": "Production"}})
    rolling = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                               status_is(phase="Paused", canaryVersion="iris-v2", desiredVersion="iris-v2"),
                               timeout=30)
    assert rolling is not None
    assert rolling["status"]["canaryWeight"] == 50


def test_deleted_objects_leave_the_operators_metrics(cluster: KubeClient, operator: KopfRunner) -> None:
    """The rollout and training series of objects that are gone are dropped: dashboards list what exists."""
    start(cluster)
    trained = model_version(3)
    trained["spec"]["metrics"] = {"accuracy": 0.93}
    cluster.create(trained)
    rollout = f'modelops_rollout_traffic_weight{{deployment="iris",namespace="{NAMESPACE}",role="stable"'
    training = (f'modelops_version_training_metric{{metric="accuracy",model="iris",namespace="{NAMESPACE}",'
                'version="iris-v3"}')

    def exported(text: str, present: bool) -> bool:
        deadline = time.monotonic() + 30
        while (text in generate_latest(REGISTRY).decode()) != present:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)  # polling interval; the deadline bounds the wait
        return True

    assert exported(rollout, present=True)
    assert exported(f"{training} 0.93", present=True)
    cluster.delete(API, "ModelDeployment", NAMESPACE, "iris")
    cluster.delete(API, "ModelVersion", NAMESPACE, "iris-v3")
    assert exported(rollout, present=False)
    assert exported(training, present=False)
