"""The real Kopf operator reacting to each kind through the emulator.

Given a cluster with the CRDs and the operator running, when a user applies resources,
then their status tells the truth: observedGeneration, standard conditions, Events; and a
malformed resource is refused by the schema or marked Ready=False while a valid one
beside it is served.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from kubeemu.client import ApiError, KubeClient
from rollout.kit import DeploymentController

NAMESPACE = "ml"
REPO = Path(__file__).resolve().parents[2]

API = "modelops.io/v1alpha1"
EXAMPLES = {
    doc["kind"]: doc
    for path in sorted((REPO / "manifests" / "examples").glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc
}


def example(kind: str, name: str | None = None, **spec_changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(EXAMPLES[kind])
    obj["metadata"]["namespace"] = NAMESPACE
    if name:
        obj["metadata"]["name"] = name
    obj["spec"].update(spec_changes)
    return obj


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return None


def observed(obj: dict[str, Any] | None) -> bool:
    """The operator has reconciled the object's current generation."""
    return bool(obj) and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]


def events_for(kube: KubeClient, name: str) -> list[dict[str, Any]]:
    return [e for e in kube.list("v1", "Event", NAMESPACE) if e["involvedObject"]["name"] == name]


def test_modelversion_is_validated_and_granted_its_stage(cluster: KubeClient, operator: KopfRunner) -> None:
    cluster.create(example("ModelVersion"))
    mv = cluster.wait_for(API, "ModelVersion", NAMESPACE, "breast-cancer-v1", observed, timeout=30)
    assert mv is not None
    status = mv["status"]
    assert status["observedGeneration"] == 1
    assert status["stage"] == "Staging"
    assert [(h["from"], h["to"]) for h in status["history"]] == [("None", "Staging")]
    ready = condition(mv, "Ready")
    assert ready is not None
    assert ready["status"] == "True"
    assert ready["reason"] == "Reconciled"
    assert ready["observedGeneration"] == 1
    assert set(ready) == {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
    assert condition(mv, "Validated") is not None
    # Reconciling and Stalled appear only while true.
    assert condition(mv, "Reconciling") is None
    assert condition(mv, "Stalled") is None
    # Kopf's bookkeeping is ours: status.kopf, no kopf.zalando.org annotations or finalizers.
    annotations = mv["metadata"].get("annotations") or {}
    assert not [key for key in annotations if "kopf.zalando.org" in key]
    assert all(f.startswith("modelops.io/") for f in mv["metadata"].get("finalizers") or [])
    assert "kopf" in status

    def has_events(_: Any) -> bool:
        reasons = {e["reason"] for e in events_for(cluster, "breast-cancer-v1")}
        return {"Reconciled", "StageChanged"} <= reasons

    cluster.wait_for(API, "ModelVersion", NAMESPACE, "breast-cancer-v1", has_events, timeout=30)


def test_a_spec_change_is_observed_and_transition_times_hold(cluster: KubeClient, operator: KopfRunner) -> None:
    cluster.create(example("ModelVersion"))
    first = cluster.wait_for(API, "ModelVersion", NAMESPACE, "breast-cancer-v1", observed, timeout=30)
    ready_before = condition(first, "Ready")
    assert ready_before is not None

    # Leaving a governed stage needs no gates or approvals under the default policy.
    cluster.patch(API, "ModelVersion", NAMESPACE, "breast-cancer-v1", {"spec": {"stage": "Archived"}})
    second = cluster.wait_for(
        API, "ModelVersion", NAMESPACE, "breast-cancer-v1",
        lambda o: observed(o) and o["metadata"]["generation"] == 2, timeout=30,
    )
    assert second is not None
    assert second["status"]["stage"] == "Archived"
    assert [(h["from"], h["to"]) for h in second["status"]["history"]] == [
        ("None", "Staging"), ("Staging", "Archived"),
    ]
    ready_after = condition(second, "Ready")
    assert ready_after is not None
    assert ready_after["observedGeneration"] == 2
    # Ready stayed True, so its transition time did not move.
    assert ready_after["lastTransitionTime"] == ready_before["lastTransitionTime"]


def test_production_is_held_until_approved_under_the_default_policy(
    cluster: KubeClient, operator: KopfRunner
) -> None:
    cluster.create(example("ModelVersion", stage="Production"))
    mv = cluster.wait_for(API, "ModelVersion", NAMESPACE, "breast-cancer-v1", observed, timeout=30)
    assert mv is not None
    assert mv["status"]["stage"] == "None"
    assert "history" not in mv["status"] or mv["status"]["history"] == []
    approved, ready = condition(mv, "Approved"), condition(mv, "Ready")
    assert approved is not None
    assert ready is not None
    assert (approved["status"], approved["reason"]) == ("False", "AwaitingApproval")
    assert "Production needs 1 approval(s), has 0" in approved["message"]
    assert (ready["status"], ready["reason"]) == ("False", "AwaitingApproval")
    # The example's own gate (f1 >= 0.95) passes and is shown with its value.
    assert mv["status"]["gates"] == [
        {"stage": "Production", "metric": "f1", "op": ">=", "threshold": 0.95, "value": 0.986,
         "passed": True, "source": "version"},
    ]
    integrity = condition(mv, "IntegrityVerified")
    assert integrity is not None
    assert integrity["status"] == "True"


def test_status_only_writes_do_not_bump_generation(cluster: KubeClient, operator: KopfRunner) -> None:
    cluster.create(example("DriftPolicy"))
    dp = cluster.wait_for(API, "DriftPolicy", NAMESPACE, "breast-cancer-inputs", observed, timeout=30)
    assert dp is not None
    assert dp["metadata"]["generation"] == 1


def test_deployment_waits_for_its_version_then_resolves_it(cluster: KubeClient, operator: KopfRunner) -> None:
    cluster.create(example("ModelDeployment", name="pinned", track=None, modelVersion="breast-cancer-v1"))
    waiting = cluster.wait_for(
        API, "ModelDeployment", NAMESPACE, "pinned",
        lambda o: observed(o) and (condition(o, "Ready") or {}).get("reason") == "NotFound", timeout=30,
    )
    ready = condition(waiting, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["message"] == f"spec.modelVersion: ModelVersion {NAMESPACE}/breast-cancer-v1 does not exist"
    assert condition(waiting, "Reconciling") is not None

    cluster.create(example("ModelVersion"))
    # Resolved and deployed, but not Ready while no pod of the stable Deployment is available.
    unavailable = cluster.wait_for(
        API, "ModelDeployment", NAMESPACE, "pinned",
        lambda o: (condition(o, "Ready") or {}).get("reason") == "Unavailable", timeout=30,
    )
    assert unavailable is not None
    assert "not serving yet" in condition(unavailable, "Ready")["message"]
    assert unavailable["status"]["phase"] == "Progressing"
    controller = DeploymentController(cluster).start()  # the pods come up
    try:
        resolved = cluster.wait_for(
            API, "ModelDeployment", NAMESPACE, "pinned",
            lambda o: (condition(o, "Ready") or {}).get("status") == "True", timeout=30,
        )
    finally:
        controller.close()
    assert controller.errors == []
    assert resolved is not None
    # The first version goes straight to stable: the model server Deployments serve it.
    assert resolved["status"]["desiredVersion"] == "breast-cancer-v1"
    assert resolved["status"]["stableVersion"] == "breast-cancer-v1"
    assert resolved["status"]["phase"] == "Healthy"
    stable = cluster.get("apps/v1", "Deployment", NAMESPACE, "pinned-stable")
    assert stable["spec"]["template"]["metadata"]["labels"]["modelops.io/version"] == "breast-cancer-v1"


def test_driftpolicy_names_a_missing_deployment(cluster: KubeClient, operator: KopfRunner) -> None:
    cluster.create(example("DriftPolicy", deployment="nowhere"))
    dp = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "breast-cancer-inputs",
        lambda o: observed(o) and condition(o, "Ready") is not None, timeout=30,
    )
    ready = condition(dp, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "NotFound")
    assert ready["message"].startswith("spec.deployment: ModelDeployment ml/nowhere")


@pytest.mark.parametrize(
    ("kind", "bad_changes", "field"),
    [
        ("TrainingRun", {"image": "example.com/own-trainer:1"}, "exactly one of spec.estimator and spec.image"),
        ("ModelDeployment", {"modelVersion": "breast-cancer-v1"}, "exactly one of spec.modelVersion and spec.track"),
        ("ModelDeployment", {"rollout": {"steps": [{"setWeight": 10, "pause": {}}]}}, "spec.rollout.steps[0]"),
    ],
)
def test_invalid_resource_is_marked_while_a_valid_one_beside_it_reconciles(
    cluster: KubeClient, operator: KopfRunner, kind: str, bad_changes: dict[str, Any], field: str
) -> None:
    # Rules the CRD states in CEL, which the emulator does not run: the operator must catch them.
    cluster.create(example(kind, name="bad", **bad_changes))
    cluster.create(example(kind, name="good"))
    bad = cluster.wait_for(API, kind, NAMESPACE, "bad", observed, timeout=30)
    ready = condition(bad, "Ready")
    stalled = condition(bad, "Stalled")
    assert ready is not None
    assert stalled is not None
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert field in ready["message"]
    assert stalled["status"] == "True"
    good = cluster.wait_for(API, kind, NAMESPACE, "good", observed, timeout=30)
    assert (condition(good, "Ready") or {}).get("reason") != "InvalidSpec"
    warnings = [e for e in events_for(cluster, "bad") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["InvalidSpec"]


@pytest.mark.parametrize(
    ("kind", "bad_changes", "field"),
    [
        ("TrainingRun", {"model": "Not_A_Label"}, "spec.model"),
        ("ModelVersion", {"stage": "Prod"}, "spec.stage"),
        ("ModelDeployment", {"replicas": -1}, "spec.replicas"),
        ("DriftPolicy", {"method": "kl"}, "spec.method"),
    ],
)
def test_schema_rejects_malformed_resources_naming_the_field(
    cluster: KubeClient, operator: KopfRunner, kind: str, bad_changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiError) as caught:
        cluster.create(example(kind, name="bad", **bad_changes))
    assert caught.value.status == 422
    causes = caught.value.body["details"]["causes"]
    assert any(cause["field"] == field for cause in causes), causes
    cluster.create(example(kind, name="good"))
    assert cluster.wait_for(API, kind, NAMESPACE, "good", observed, timeout=30)


def test_trainingrun_is_accepted_and_says_it_waits(cluster: KubeClient, operator: KopfRunner) -> None:
    cluster.create(example("TrainingRun"))
    run = cluster.wait_for(API, "TrainingRun", NAMESPACE, "breast-cancer-logreg", observed, timeout=30)
    assert run is not None
    assert run["status"]["phase"] == "Pending"
    assert condition(run, "Reconciling") is not None


def test_hand_edited_status_never_stops_the_operator(cluster: KubeClient, operator: KopfRunner) -> None:
    """Garbage in status is refused by the schema; odd-but-valid status is reconciled from."""
    cluster.create(example("ModelVersion", name="edited"))
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "edited", observed, timeout=30)
    with pytest.raises(ApiError) as caught:
        cluster.patch_status(API, "ModelVersion", NAMESPACE, "edited", {"status": {"history": [{"odd": True}]}})
    assert caught.value.status == 422
    cluster.patch_status(API, "ModelVersion", NAMESPACE, "edited", {"status": {"stage": "Production"}})
    cluster.patch(API, "ModelVersion", NAMESPACE, "edited", {"spec": {"stage": "Archived"}})
    cluster.create(example("ModelVersion", name="fine"))
    assert cluster.wait_for(API, "ModelVersion", NAMESPACE, "fine", observed, timeout=30)
    edited = cluster.wait_for(
        API, "ModelVersion", NAMESPACE, "edited", lambda o: o["status"].get("observedGeneration") == 2, timeout=30
    )
    assert edited is not None
    assert edited["status"]["stage"] == "Archived"
    assert edited["status"]["history"][-1]["from"] == "Production"


def test_example_pipeline_reconciles_every_kind(cluster: KubeClient, operator: KopfRunner, tmp_path: Path) -> None:
    for obj in EXAMPLES.values():
        cluster.create(example(obj["kind"]))
    for kind, obj in EXAMPLES.items():
        done = cluster.wait_for(API, kind, NAMESPACE, obj["metadata"]["name"], observed, timeout=30)
        assert condition(done, "Ready") is not None, kind
