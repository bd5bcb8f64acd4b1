"""The delete webhook over TLS: a version that was in Production goes only with the acknowledgement, or
with its namespace (a namespace being deleted must not stay Terminating for ever)."""

from __future__ import annotations

from typing import Any

from governance.admissionkit import NAMESPACE, Webhooks, user
from kubeemu.client import KubeClient
from modelops.logic import governance as gov

HISTORY = [{"from": "Staging", "to": "Production", "by": "bob", "at": "2026-11-20T10:00:00Z"}]


def version(namespace: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1", "kind": "ModelVersion",
        "metadata": {"name": "iris-v1", "namespace": namespace, "annotations": annotations or {}},
        "spec": {"model": "iris", "version": 1, "artifact": {"uri": "s3://m/iris/model.skops", "sha256": "a" * 64}},
        "status": {"stage": "Archived", "history": HISTORY},
    }  # fmt: skip


def delete(governed: Webhooks, obj: dict[str, Any]) -> dict[str, Any]:
    return governed.review("validate-modelversion-delete", "DELETE", None, obj, userinfo=user("alice"))


def test_a_version_once_in_production_is_deleted_only_when_acknowledged(governed: Webhooks) -> None:
    refused = delete(governed, version(NAMESPACE))
    assert refused["allowed"] is False
    assert f"{gov.ACKNOWLEDGE_DELETE}=iris-v1" in refused["status"]["message"]
    assert delete(governed, version(NAMESPACE, {gov.ACKNOWLEDGE_DELETE: "iris-v1"}))["allowed"] is True
    never = version(NAMESPACE)
    never["status"] = {"stage": "Staging"}
    assert delete(governed, never)["allowed"] is True


def test_a_namespace_being_deleted_takes_its_versions(governed: Webhooks, cluster: KubeClient) -> None:
    # A finalizer keeps the namespace Terminating, as the namespace controller does while it empties it.
    cluster.create({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "leaving", "finalizers": ["example.com/hold"]}})  # fmt: skip
    assert delete(governed, version("leaving"))["allowed"] is False
    cluster.delete("v1", "Namespace", None, "leaving")
    terminating = cluster.get("v1", "Namespace", None, "leaving")
    assert terminating["metadata"].get("deletionTimestamp")
    assert delete(governed, version("leaving"))["allowed"] is True
