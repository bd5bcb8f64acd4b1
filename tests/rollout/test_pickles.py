"""Pickled artifacts through the real operator: the policy's allowPickle decides, per namespace.

Given a governance policy that allows pickles outside production namespaces (``nonProduction``),
when a ModelDeployment serves a joblib version in an ordinary namespace, then only its server gets
``--allow-pickle``; when the same happens in a production namespace, then the reconcile refuses
with ``Ready=False`` naming ``spec.artifact.format`` and the rule, and no server is created. (No
webhook runs here: this is the reconcile's own check, the one that holds without admission.)
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner

from kubeemu.client import KubeClient
from modelops.controller import handlers
from modelops.logic import policy, serving
from rollout.kit import API, NAMESPACE, condition, deployment, model_version, status_is

PROD = "prod"


@pytest.fixture
def operator_allowing_pickles(cluster: KubeClient, operator_env: dict[str, str]) -> Iterator[KopfRunner]:
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    registry = handlers.registry(policy=policy.parse({"allowPickle": "nonProduction"}))
    with KopfRunner(args, registry=registry, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.exception


def pickled(number: int, namespace: str = NAMESPACE) -> dict[str, Any]:
    obj = copy.deepcopy(model_version(number))
    obj["metadata"]["namespace"] = namespace
    obj["spec"]["artifact"]["uri"] = f"pvc://models/iris/v{number}/model.joblib"
    obj["spec"]["artifact"]["format"] = "joblib"
    return obj


def server_args(cluster: KubeClient, namespace: str, name: str) -> list[str]:
    obj = cluster.get("apps/v1", "Deployment", namespace, name)
    assert obj is not None
    args: list[str] = obj["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_a_pickle_is_served_with_the_flag_outside_production_only(
    cluster: KubeClient, operator_allowing_pickles: KopfRunner
) -> None:
    cluster.create(pickled(1))
    cluster.create(model_version(2))  # a skops version
    cluster.create(deployment(modelVersion="iris-v1"))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=60)
    assert "--allow-pickle" in server_args(cluster, NAMESPACE, "iris-stable")
    uid = cluster.get(API, "ModelVersion", NAMESPACE, "iris-v1")["metadata"]["uid"]
    result = cluster.get("v1", "ConfigMap", NAMESPACE, serving.model_config_name("iris", "iris-v1", uid))
    assert result is not None
    assert '"format": "joblib"' in result["data"]["result.json"]
    assert '"path": "model.joblib"' in result["data"]["result.json"]

    # The skops version rolls out; once it is the stable one, no server keeps the flag.
    cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"modelVersion": "iris-v2"}})
    cluster.wait_for(
        API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy", stableVersion="iris-v2"), timeout=90
    )
    assert "--allow-pickle" not in server_args(cluster, NAMESPACE, "iris-stable")
    assert "--allow-pickle" not in server_args(cluster, NAMESPACE, "iris-canary")


def test_a_pickle_in_a_production_namespace_is_refused_by_the_reconcile(
    cluster: KubeClient, operator_allowing_pickles: KopfRunner
) -> None:
    cluster.create(
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": PROD, "labels": {"modelops.io/environment": "production"}}}
    )  # fmt: skip
    cluster.create(pickled(1, PROD))
    md = deployment(modelVersion="iris-v1")
    md["metadata"]["namespace"] = PROD
    cluster.create(md)

    def refused(obj: dict[str, Any] | None) -> bool:
        return condition(obj, "Ready").get("reason") == "PickleNotAllowed"

    found = cluster.wait_for(API, "ModelDeployment", PROD, "iris", refused, timeout=60)
    ready = condition(found, "Ready")
    assert ready["status"] == "False"
    assert ready["message"] == (
        "spec.modelVersion: ModelVersion iris-v1's spec.artifact.format: joblib artifacts are pickles that run "
        "code when loaded, and the governance policy (allowPickle: nonProduction) does not allow them in "
        "production namespace prod; register the model as a skops artifact"
    )
    assert condition(found, "Stalled")["status"] == "True"
    assert cluster.list("apps/v1", "Deployment", PROD) == []
