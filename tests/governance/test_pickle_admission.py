"""The ModelVersion webhook and pickles: a joblib artifact is registered only where it may be served.

Given the operator's webhooks over TLS with a policy allowing pickles outside production
(``allowPickle: nonProduction``), a joblib ModelVersion is admitted in an ordinary namespace and
denied in a production one (or one whose labels cannot be read), naming the field and the rule;
a skops version is admitted everywhere; an update of an existing pickle (an approval, a stage)
is never blocked by it — the reconcile keeps refusing to serve it instead.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from governance.admissionkit import NAMESPACE, POLICY, Webhooks, user
from kubeemu.client import KubeClient
from modelops.logic.policy import Policy

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def policy() -> Policy:
    return POLICY.model_copy(update={"allow_pickle": "nonProduction"})


def version(namespace: str, artifact_format: str | None) -> dict[str, Any]:
    artifact: dict[str, Any] = {"uri": "s3://models/iris/model.bin", "sha256": "a" * 64}
    if artifact_format is not None:
        artifact["format"] = artifact_format
    return {
        "apiVersion": "modelops.io/v1alpha1", "kind": "ModelVersion",
        "metadata": {"name": "iris-v1", "namespace": namespace, "annotations": {}},
        "spec": {"model": "iris", "version": 1, "stage": "None", "artifact": artifact},
    }  # fmt: skip


def test_pickles_are_admitted_only_where_the_policy_allows_them(governed: Webhooks, cluster: KubeClient) -> None:
    cluster.create(
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "prod", "labels": {"modelops.io/environment": "production"}}}
    )  # fmt: skip
    alice = user("alice")
    assert governed.review("validate-modelversion", "CREATE", version(NAMESPACE, "joblib"), userinfo=alice)["allowed"]
    for namespace in ("prod", "unknown-namespace"):  # unreadable labels count as production
        response = governed.review("validate-modelversion", "CREATE", version(namespace, "joblib"), userinfo=alice)
        assert response["allowed"] is False
        assert response["status"]["message"] == (
            "spec.artifact.format: joblib artifacts are pickles that run code when loaded, and the governance "
            f"policy (allowPickle: nonProduction) does not allow them in production namespace {namespace}; "
            "register the model as a skops artifact"
        )
        for fmt in ("skops", None):  # explicit, and the CRD's default
            assert governed.review("validate-modelversion", "CREATE", version(namespace, fmt), userinfo=alice)[
                "allowed"
            ]
    old = version("prod", "joblib")
    new = copy.deepcopy(old)
    new["spec"]["stage"] = "Archived"
    assert governed.review("validate-modelversion", "UPDATE", new, old, userinfo=alice)["allowed"]
