"""Real AdmissionReview requests over TLS to the running operator's webhook server.

Given the operator serving its webhooks with a throw-away CA, when an API server would ask
about a request, then the answer follows docs/governance.md: approvals are recorded from
userInfo only for holders of the RBAC verb ``approve`` (a SubjectAccessReview to the
emulator), forged records, immutable edits, four-eyes violations and a Staging version in a
production namespace are refused with a message naming what is wrong.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch  # type: ignore[import-untyped]
import pytest
import yaml

from governance.admissionkit import ARGO, NAMESPACE, OPERATOR_USER, Webhooks, user
from kubeemu.client import KubeClient
from modelops.logic import governance as gov
from operatorkit import REPO

pytestmark = pytest.mark.timeout(60)

CREATED_BY_ALICE = json.dumps({"user": "alice", "uid": "uid-alice", "groups": []})


def version(name: str = "iris-v1", *, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": dict(annotations or {})},
        "spec": {
            "model": "iris",
            "version": 1,
            "stage": "Staging",
            "artifact": {"uri": "s3://models/iris/model.joblib", "sha256": "a" * 64},
            "metrics": {"accuracy": 0.95},
            **spec,
        },
    }


API = "modelops.io/v1alpha1"


def observed(obj: dict[str, Any] | None) -> bool:
    return bool(obj) and (obj or {}).get("status", {}).get("observedGeneration") == 1


def patched(obj: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    assert response["allowed"], response
    if "patch" not in response:
        return obj
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(obj), ops)
    return result


def denial(response: dict[str, Any]) -> str:
    assert response["allowed"] is False, response
    message: str = response["status"]["message"]
    return message


def approve(obj: dict[str, Any], stage: str = "Production") -> dict[str, Any]:
    new = copy.deepcopy(obj)
    new["metadata"]["annotations"][gov.APPROVE] = stage
    return new


def test_create_records_the_authenticated_creator(governed: Webhooks) -> None:
    obj = version()
    result = patched(obj, governed.review("mutate-modelversion", "CREATE", obj, userinfo=user("alice", "ml-team")))
    creator = json.loads(result["metadata"]["annotations"][gov.CREATED_BY])
    assert creator == {"user": "alice", "uid": "uid-alice", "groups": ["ml-team", "system:authenticated"]}
    # And the validating webhook accepts what the mutating one wrote.
    assert governed.review("validate-modelversion", "CREATE", result, userinfo=user("alice"))["allowed"]


def test_an_approval_by_a_holder_of_the_verb_is_recorded_from_userinfo(
    governed: Webhooks, approvers: KubeClient
) -> None:
    old = version(annotations={gov.CREATED_BY: CREATED_BY_ALICE})
    new = approve(old)
    result = patched(new, governed.review("mutate-modelversion", "UPDATE", new, old, userinfo=user("bob")))
    [record] = json.loads(result["metadata"]["annotations"][gov.APPROVALS])
    assert record["stage"] == "Production"
    assert record["user"] == "bob"
    assert record["uid"] == "uid-bob"
    assert record["at"].endswith("Z")
    assert "reviewer" not in record
    assert governed.review("validate-modelversion", "UPDATE", result, old, userinfo=user("bob"))["allowed"]


def test_an_approval_without_the_verb_is_denied_naming_the_permission(
    governed: Webhooks, approvers: KubeClient
) -> None:
    old = version(annotations={gov.CREATED_BY: CREATED_BY_ALICE})
    message = denial(governed.review("mutate-modelversion", "UPDATE", approve(old), old, userinfo=user("carol")))
    assert "carol may not approve" in message
    assert "'approve' verb on modelversions.modelops.io in namespace ml" in message


def test_forged_records_are_denied(governed: Webhooks, approvers: KubeClient) -> None:
    old = version(annotations={gov.CREATED_BY: CREATED_BY_ALICE})
    forged = copy.deepcopy(old)
    forged["metadata"]["annotations"][gov.APPROVALS] = json.dumps(
        [{"stage": "Production", "user": "bob", "at": "2026-01-01T00:00:00Z"}]
    )
    # Through the mutating webhook: nobody writes the records by hand, not even bob himself.
    message = denial(governed.review("mutate-modelversion", "UPDATE", forged, old, userinfo=user("bob")))
    assert f"annotation {gov.APPROVALS} is written by the modelops admission webhook only" in message
    # The validating webhook alone also refuses a record in someone else's name.
    message = denial(governed.review("validate-modelversion", "UPDATE", forged, old, userinfo=user("carol")))
    assert "a record by bob cannot be written by carol" in message
    # A creator cannot be swapped either.
    swapped = copy.deepcopy(old)
    swapped["metadata"]["annotations"][gov.CREATED_BY] = json.dumps({"user": "carol"})
    message = denial(governed.review("mutate-modelversion", "UPDATE", swapped, old, userinfo=user("carol")))
    assert gov.CREATED_BY in message


def test_only_trusted_appliers_assert_a_reviewer(governed: Webhooks, approvers: KubeClient) -> None:
    obj = approve(version(annotations={gov.REVIEWER: "dave"}))
    message = denial(governed.review("mutate-modelversion", "CREATE", obj, userinfo=user("bob")))
    assert "trusted applier" in message
    argo = user(ARGO, "system:serviceaccounts")
    result = patched(obj, governed.review("mutate-modelversion", "CREATE", obj, userinfo=argo))
    [record] = json.loads(result["metadata"]["annotations"][gov.APPROVALS])
    assert (record["user"], record["reviewer"], record["assertedBy"]) == (ARGO, "dave", ARGO)


def test_an_edit_of_an_immutable_field_is_denied_with_the_cel_message(governed: Webhooks) -> None:
    old = version(annotations={gov.CREATED_BY: CREATED_BY_ALICE})
    new = copy.deepcopy(old)
    new["spec"]["metrics"]["accuracy"] = 0.99
    message = denial(governed.review("validate-modelversion", "UPDATE", new, old, userinfo=user("alice")))
    assert message == "spec.metrics is immutable once set: register a new ModelVersion instead"


def test_the_creator_cannot_approve_her_own_version(governed: Webhooks, approvers: KubeClient) -> None:
    old = version(annotations={gov.CREATED_BY: CREATED_BY_ALICE})
    message = denial(governed.review("mutate-modelversion", "UPDATE", approve(old), old, userinfo=user("alice")))
    assert "four eyes: alice created this ModelVersion" in message


def test_governed_status_is_written_by_the_operator_only(governed: Webhooks) -> None:
    old = version()
    old["status"] = {"stage": "Staging"}
    new = copy.deepcopy(old)
    new["status"]["stage"] = "Production"
    path = "validate-modelversion-status"
    message = denial(governed.review(path, "UPDATE", new, old, userinfo=user("bob"), subresource="status"))
    assert "status.stage is written by the modelops operator only" in message
    allowed = governed.review(path, "UPDATE", new, old, userinfo=user(OPERATOR_USER), subresource="status")
    assert allowed["allowed"]


def test_a_production_namespace_serves_only_production_versions(governed: Webhooks, cluster: KubeClient) -> None:
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "prod", "labels": {"modelops.io/environment": "production"}},
        }
    )
    for name, stage in (("iris-v1", "Staging"), ("iris-v2", "Production")):
        obj = version(name, stage=stage)
        obj["metadata"]["namespace"] = "prod"
        cluster.create(obj)
        # Once the operator has looked (it holds Production: no approval), grant the stage as it would.
        cluster.wait_for(API, "ModelVersion", "prod", name, observed, timeout=30)
        cluster.patch_status(API, "ModelVersion", "prod", name, {"status": {"stage": stage}})

    def deployment(namespace: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "modelops.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": namespace},
            "spec": {"model": "iris", **spec},
        }

    def review(obj: dict[str, Any]) -> dict[str, Any]:
        return governed.review(
            "validate-modeldeployment",
            "CREATE",
            obj,
            userinfo=user("bob"),
            resource="modeldeployments",
            kind="ModelDeployment",
        )

    message = denial(review(deployment("prod", modelVersion="iris-v1")))
    assert "ModelVersion iris-v1 has granted stage Staging" in message
    assert "namespace prod is labelled as production" in message
    assert review(deployment("prod", modelVersion="iris-v2"))["allowed"]
    assert "may only track Production, not Staging" in denial(review(deployment("prod", track="Staging")))
    assert review(deployment("prod", track="Production"))["allowed"]
    # Elsewhere Staging is fine, but a version never granted a stage is not.
    cluster.create(version("iris-v3", stage="None"))
    assert "granted stage None" in denial(review(deployment(NAMESPACE, modelVersion="iris-v3")))


def test_trainingrun_creators_are_recorded_and_reach_four_eyes(
    governed: Webhooks, cluster: KubeClient, approvers: KubeClient
) -> None:
    run = {
        "apiVersion": API,
        "kind": "TrainingRun",
        "metadata": {"name": "iris-train", "namespace": NAMESPACE, "annotations": {}},
        "spec": {"model": "iris"},
    }
    review = {"resource": "trainingruns", "kind": "TrainingRun"}
    created = patched(run, governed.review("mutate-trainingrun", "CREATE", run, userinfo=user("alice"), **review))
    assert json.loads(created["metadata"]["annotations"][gov.CREATED_BY])["user"] == "alice"
    forged = copy.deepcopy(created)
    forged["metadata"]["annotations"][gov.CREATED_BY] = json.dumps({"user": "bob"})
    message = denial(governed.review("mutate-trainingrun", "UPDATE", forged, created, userinfo=user("bob"), **review))
    assert gov.CREATED_BY in message

    # The run as stored (its creator recorded); the operator registers a version from it.
    stored = copy.deepcopy(created)
    stored["spec"] = yaml.safe_load((REPO / "manifests" / "examples" / "01-trainingrun.yaml").read_text())["spec"]
    stored["metadata"]["annotations"] = {gov.CREATED_BY: created["metadata"]["annotations"][gov.CREATED_BY]}
    cluster.create(stored)
    by_operator = json.dumps({"user": OPERATOR_USER})
    old = version(annotations={gov.CREATED_BY: by_operator}, lineage={"trainingRun": {"name": "iris-train"}})
    message = denial(governed.review("mutate-modelversion", "UPDATE", approve(old), old, userinfo=user("alice")))
    assert "four eyes: alice created the TrainingRun of this ModelVersion" in message
    assert governed.review("mutate-modelversion", "UPDATE", approve(old), old, userinfo=user("bob"))["allowed"]
