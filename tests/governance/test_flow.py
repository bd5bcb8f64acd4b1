"""The whole governance path through the emulator, which calls the operator's webhooks.

Given the webhook configurations stored in the emulator (pointing at the running
operator's TLS server with its CA) and people with tokens, when versions ask for Staging
and Production, then gates hold a weak version, approvals are recorded from the caller's
identity, one version becomes Production and the previous one is archived, with history
and Events on both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from governance.admissionkit import NAMESPACE, POLICY, Webhooks, free_port, running_operator
from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient
from modelops.logic import governance as gov

pytestmark = pytest.mark.timeout(90)
API = "modelops.io/v1alpha1"


def version(number: int, accuracy: float, stage: str = "Staging") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelVersion",
        "metadata": {"name": f"iris-v{number}", "namespace": NAMESPACE},
        "spec": {
            "model": "iris",
            "version": number,
            "stage": stage,
            "artifact": {"uri": f"s3://models/iris/v{number}/model.joblib", "sha256": f"{number:x}" * 64},
            "metrics": {"accuracy": accuracy},
        },
    }


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def at_generation(generation: int) -> Any:
    def check(obj: dict[str, Any] | None) -> bool:
        meta, status = (obj or {}).get("metadata") or {}, (obj or {}).get("status") or {}
        return meta.get("generation") == generation and status.get("observedGeneration") == generation

    return check


def stage_is(stage: str) -> Any:
    return lambda obj: ((obj or {}).get("status") or {}).get("stage") == stage


def transitions(obj: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    return [(h["from"], h["to"], h["by"]) for h in ((obj or {}).get("status") or {}).get("history") or []]


def test_none_staging_production_with_gates_approvals_and_archive(
    emulator: Emulator,
    governed: Webhooks, cluster: KubeClient, approvers: KubeClient, users: dict[str, KubeClient]
) -> None:
    governed.register_configurations(cluster)
    alice, bob, carol = users["alice"], users["bob"], users["carol"]

    # v1 passes the Staging gate but not Production's.
    alice.create(version(1, accuracy=0.85))
    v1 = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", at_generation(1), timeout=30)
    assert v1 is not None
    assert json.loads(v1["metadata"]["annotations"][gov.CREATED_BY])["user"] == "alice"
    assert v1["status"]["stage"] == "Staging"
    alice.patch(API, "ModelVersion", NAMESPACE, "iris-v1", {"spec": {"stage": "Production"}})
    v1 = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", at_generation(2), timeout=30)
    assert v1 is not None
    assert v1["status"]["stage"] == "Staging"
    assert condition(v1, "Validated")["reason"] == "GatesFailed"
    assert "accuracy 0.85 is not >= 0.9" in condition(v1, "Validated")["message"]
    assert condition(v1, "Ready")["status"] == "False"
    assert [g["passed"] for g in v1["status"]["gates"]] == [False]

    # v2 passes the gates and waits for an approval by someone other than alice.
    alice.create(version(2, accuracy=0.95))
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v2", stage_is("Staging"), timeout=30)
    alice.patch(API, "ModelVersion", NAMESPACE, "iris-v2", {"spec": {"stage": "Production"}})
    v2 = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v2", at_generation(2), timeout=30)
    assert v2 is not None
    assert v2["status"]["stage"] == "Staging"
    assert condition(v2, "Approved")["reason"] == "AwaitingApproval"
    assert "Production needs 1 approval(s), has 0" in condition(v2, "Approved")["message"]
    approve = {"metadata": {"annotations": {gov.APPROVE: "Production"}}}
    with pytest.raises(ApiError) as four_eyes:
        alice.patch(API, "ModelVersion", NAMESPACE, "iris-v2", approve)
    assert "four eyes" in four_eyes.value.body["message"]
    with pytest.raises(ApiError) as no_verb:
        carol.patch(API, "ModelVersion", NAMESPACE, "iris-v2", approve)
    assert "'approve' verb" in no_verb.value.body["message"]
    # An editor may not write status at all (RBAC); someone who may is still refused a stage by the webhook.
    with pytest.raises(ApiError) as no_rbac:
        carol.patch_status(API, "ModelVersion", NAMESPACE, "iris-v2", {"status": {"stage": "Production"}})
    assert no_rbac.value.status == 403
    assert 'cannot patch resource "modelversions/status"' in no_rbac.value.body["message"]
    emulator.grant("bob", [{"apiGroups": ["modelops.io"], "resources": ["modelversions/status"],
                            "verbs": ["patch"]}], namespace=NAMESPACE)  # fmt: skip
    with pytest.raises(ApiError) as by_hand:
        bob.patch_status(API, "ModelVersion", NAMESPACE, "iris-v2", {"status": {"stage": "Production"}})
    assert "written by the modelops operator only" in by_hand.value.body["message"]
    bob.patch(API, "ModelVersion", NAMESPACE, "iris-v2", approve)
    v2 = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v2", stage_is("Production"), timeout=30)
    assert v2 is not None
    # Staging needed no approval: the history names alice, who asked for it (recorded by the webhook).
    assert transitions(v2) == [("None", "Staging", "alice"), ("Staging", "Production", "bob")]
    assert "asked by alice" in v2["status"]["history"][1]["reason"]
    [record] = v2["status"]["approvals"]
    assert (record["user"], record["stage"]) == ("bob", "Production")
    assert condition(v2, "Ready")["status"] == "True"

    # v3 becomes Production: v2 is archived, and both say so.
    alice.create(version(3, accuracy=0.97))
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v3", stage_is("Staging"), timeout=30)
    alice.patch(API, "ModelVersion", NAMESPACE, "iris-v3", {"spec": {"stage": "Production"}})
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v3", at_generation(2), timeout=30)
    bob.patch(API, "ModelVersion", NAMESPACE, "iris-v3", approve)
    v3 = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v3", stage_is("Production"), timeout=30)
    assert v3 is not None
    assert "archived iris-v2" in v3["status"]["history"][-1]["reason"]
    v2 = cluster.get(API, "ModelVersion", NAMESPACE, "iris-v2")
    assert v2["status"]["stage"] == "Archived"
    assert transitions(v2)[-1] == ("Production", "Archived", gov.OPERATOR_IDENTITY)
    assert "superseded: iris-v3" in v2["status"]["history"][-1]["reason"]
    assert condition(v2, "Ready")["reason"] == "Superseded"

    def stage_events(name: str) -> list[str]:
        return [
            e["message"]
            for e in cluster.list("v1", "Event", NAMESPACE)
            if e["involvedObject"]["name"] == name and e["reason"] == "StageChanged"
        ]

    def all_events(_: Any) -> bool:
        return len(stage_events("iris-v2")) == 3 and len(stage_events("iris-v3")) == 2

    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v3", all_events, timeout=30)
    assert any("Production → Archived" in m for m in stage_events("iris-v2"))
    assert any("by bob" in m for m in stage_events("iris-v3"))


def test_a_restart_neither_loses_nor_duplicates_records(
    cluster: KubeClient,
    operator_env: dict[str, str],
    certs: tuple[bytes, Path, Path],
    approvers: KubeClient,
    users: dict[str, KubeClient],
) -> None:
    ca_pem, ca_path, cert_dir = certs
    port = free_port()
    with running_operator(POLICY, cert_dir, ca_pem, ca_path, port) as first:
        first.register_configurations(cluster)
        users["alice"].create(version(1, accuracy=0.95, stage="Production"))
        cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", at_generation(1), timeout=30)
        users["bob"].patch(
            API, "ModelVersion", NAMESPACE, "iris-v1", {"metadata": {"annotations": {gov.APPROVE: "Production"}}}
        )
        before = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", stage_is("Production"), timeout=30)
    assert before is not None
    # A malformed record slipped in while no webhook ran (e.g. restored from a bad backup).
    annotations = before["metadata"]["annotations"]
    broken = [*json.loads(annotations[gov.APPROVALS]), {"stage": "Production", "user": "mallory"}]
    cluster.delete("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, "modelops-operator")
    cluster.delete("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", None, "modelops-operator")
    cluster.patch(
        API, "ModelVersion", NAMESPACE, "iris-v1", {"metadata": {"annotations": {gov.APPROVALS: json.dumps(broken)}}}
    )

    with running_operator(POLICY, cert_dir, ca_pem, ca_path, port):

        def warned(_: Any) -> bool:
            return any(
                e["reason"] == "MalformedApproval" and "at is not a timestamp" in e["message"]
                for e in cluster.list("v1", "Event", NAMESPACE)
                if e["involvedObject"]["name"] == "iris-v1"
            )

        assert cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", warned, timeout=30)
        after = cluster.get(API, "ModelVersion", NAMESPACE, "iris-v1")
    assert after["status"]["stage"] == "Production"
    assert after["status"]["history"] == before["status"]["history"]
    assert after["status"]["approvals"] == before["status"]["approvals"]
    assert [a["user"] for a in after["status"]["approvals"]] == ["bob"]
