"""Four eyes holds when the TrainingRun is gone: who trained a version is recorded on the version.

Given alice's TrainingRun, trained for real and registered by the operator as iris-v1, when alice
deletes her run and then approves iris-v1 for Production, then the webhook denies her (four eyes,
from ``spec.trainedBy``), bob's approval grants it, and nobody can rewrite ``spec.trainedBy``. A
retrain of iris-v1 (a run the operator creates, annotated ``modelops.io/retrained-from``) carries
alice on to iris-v2, so deleting both runs does not let her approve the retrain either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from governance.admissionkit import NAMESPACE, Webhooks
from kubeemu.client import ApiError, KubeClient
from kubelet import Kubelet
from modelops.logic import governance as gov
from modelops.logic.driftloop import FROM_VERSION_ANNOTATION

pytestmark = pytest.mark.timeout(180)
API = "modelops.io/v1alpha1"
APPROVE = {"metadata": {"annotations": {gov.APPROVE: "Production"}}}


def run(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations or {}},
        "spec": {"model": "iris", "dataset": {"uri": "sklearn://iris", "target": "target"},
                 "estimator": {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}},
                 "artifactStore": {"uri": "pvc://models/registry"}},
    }  # fmt: skip


def train(cluster: KubeClient, kubelet: Kubelet, name: str) -> str:
    """Run the run's pod for real; the name of the version the operator registers."""
    job = cluster.wait_for("batch/v1", "Job", NAMESPACE, f"{name}-train", lambda o: o is not None, timeout=30)
    assert job is not None
    assert kubelet.run_pod(job, kubelet.start_pod(job, 0), 0) == 0
    kubelet.finish_job(job, succeeded=1, failed=0)
    done = cluster.wait_for(API, "TrainingRun", NAMESPACE, name,
                            lambda o: bool((o or {}).get("status", {}).get("modelVersion")), timeout=60)  # fmt: skip
    assert done is not None
    return str(done["status"]["modelVersion"])


def gone(cluster: KubeClient, kind: str, name: str) -> None:
    cluster.delete(API, kind, NAMESPACE, name)
    cluster.wait_for(API, kind, NAMESPACE, name, lambda o: o is None, timeout=30)


def production(obj: dict[str, Any] | None) -> bool:
    return ((obj or {}).get("status") or {}).get("stage") == "Production"


def test_the_trainer_cannot_approve_after_deleting_her_run_nor_a_retrain_of_it(
    governed: Webhooks, cluster: KubeClient, approvers: KubeClient, users: dict[str, KubeClient], tmp_path: Path
) -> None:
    governed.register_configurations(cluster)
    alice, bob = users["alice"], users["bob"]
    kubelet = Kubelet(cluster, tmp_path)

    alice.create(run("alice-iris"))
    first = train(cluster, kubelet, "alice-iris")
    v1 = cluster.get(API, "ModelVersion", NAMESPACE, first)
    [trainer] = v1["spec"]["trainedBy"]
    assert (trainer["user"], trainer["uid"]) == ("alice", "uid-alice")
    assert trainer["via"] == f"created TrainingRun {NAMESPACE}/alice-iris"
    gone(cluster, "TrainingRun", "alice-iris")

    alice.patch(API, "ModelVersion", NAMESPACE, first, {"spec": {"stage": "Production"}})
    with pytest.raises(ApiError) as four_eyes:
        alice.patch(API, "ModelVersion", NAMESPACE, first, APPROVE)
    assert four_eyes.value.status == 403
    assert "four eyes: alice created the TrainingRun" in four_eyes.value.body["message"]
    for forged in ([], [{"user": "mallory"}]):  # nor can the record be dropped or rewritten
        with pytest.raises(ApiError) as rewrite:
            alice.patch(API, "ModelVersion", NAMESPACE, first, {"spec": {"trainedBy": forged}})
        assert "spec.trainedBy is recorded when the version is registered" in rewrite.value.body["message"]
    bob.patch(API, "ModelVersion", NAMESPACE, first, APPROVE)
    assert cluster.wait_for(API, "ModelVersion", NAMESPACE, first, production, timeout=30)

    # A retrain (as a DriftPolicy makes one: by the operator, annotated with the version it retrains).
    cluster.create(run("iris-retrain", {FROM_VERSION_ANNOTATION: first}))
    second = train(cluster, kubelet, "iris-retrain")
    v2 = cluster.get(API, "ModelVersion", NAMESPACE, second)
    recorded = {t["user"]: t["via"] for t in v2["spec"]["trainedBy"]}
    assert recorded["alice"] == f"created TrainingRun {NAMESPACE}/alice-iris"  # carried on from iris-v1
    assert recorded["system:admin"] == f"created TrainingRun {NAMESPACE}/iris-retrain"
    gone(cluster, "TrainingRun", "iris-retrain")
    alice.patch(API, "ModelVersion", NAMESPACE, second, {"spec": {"stage": "Production"}})
    with pytest.raises(ApiError) as retrained:
        alice.patch(API, "ModelVersion", NAMESPACE, second, APPROVE)
    assert "four eyes: alice" in retrained.value.body["message"]

    # The reconcile does not count her either, should a record of hers exist (written while no webhook ran).
    records = [{"stage": "Production", "user": "alice", "at": "2030-01-01T00:00:00Z"}]
    cluster.delete("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, "modelops-operator")
    cluster.delete("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", None, "modelops-operator")
    cluster.patch(API, "ModelVersion", NAMESPACE, second,
                  {"metadata": {"annotations": {gov.APPROVALS: json.dumps(records)}}})  # fmt: skip

    def judged(obj: dict[str, Any] | None) -> bool:
        approved = [c for c in (obj or {}).get("status", {}).get("conditions") or [] if c["type"] == "Approved"]
        return bool(approved) and "alice (four eyes: created or trained the version)" in approved[0]["message"]

    assert cluster.wait_for(API, "ModelVersion", NAMESPACE, second, judged, timeout=30)
    assert cluster.get(API, "ModelVersion", NAMESPACE, second)["status"]["stage"] != "Production"


def test_a_hand_made_version_cannot_claim_its_trainers(
    governed: Webhooks, cluster: KubeClient, users: dict[str, KubeClient]
) -> None:
    governed.register_configurations(cluster)
    body = {
        "apiVersion": API, "kind": "ModelVersion", "metadata": {"name": "iris-v9", "namespace": NAMESPACE},
        "spec": {"model": "iris", "version": 9, "artifact": {"uri": "s3://m/iris.joblib", "sha256": "9" * 64},
                 "trainedBy": [{"user": "bob"}]},
    }  # fmt: skip
    with pytest.raises(ApiError) as denied:
        users["carol"].create(body)
    assert denied.value.status == 403
    assert "carol is neither: remove it" in denied.value.body["message"]
