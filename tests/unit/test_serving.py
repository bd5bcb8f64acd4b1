"""A ModelDeployment's children as pure functions: replica maths, schemas, gateway routing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from k8sschemas import problems
from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.logic import serving

OWNER = serving.Owner(name="iris", namespace="ml", uid="u-1")


def version(name: str, uri: str = "s3://bucket/iris/model.joblib", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {
        "model": "iris", "version": 1, "task": "classification",
        "artifact": {"uri": uri, "sha256": "c" * 64},
        "signature": {"inputs": [{"name": "x", "datatype": "FP64"}], "classes": [0, 1]}, **spec}}


VERSIONS = {"iris-v1": version("iris-v1"), "iris-v2": version("iris-v2", uri="pvc://models/iris/v2/model.joblib")}


@pytest.mark.parametrize(
    ("replicas", "weight", "gateway", "active", "expected"),
    [
        (4, 20, False, True, (4, 1)),     # ceil(3.2)=4 stable, ceil(0.8)=1 canary
        (4, 50, False, True, (2, 2)),
        (4, 100, False, True, (0, 4)),
        (1, 10, False, True, (1, 1)),     # at least one canary while its weight is above zero
        (4, 0, False, True, (4, 0)),
        (4, 30, True, True, (4, 2)),      # with an HTTPRoute the stable keeps all its replicas
        (4, 0, True, True, (4, 1)),       # a shadowed canary needs a pod
        (4, 60, False, False, (4, 0)),    # no canary running
        (0, 50, False, True, (0, 0)),
    ],
)
def test_replica_counts(replicas: int, weight: int, gateway: bool, active: bool, expected: tuple[int, int]) -> None:
    assert serving.replica_counts(replicas, weight, gateway=gateway, canary_active=active) == expected


def test_children_with_gateway_routing_and_shadow_are_valid() -> None:
    spec = ModelDeploymentSpec.model_validate({
        "model": "iris", "modelVersion": "iris-v2", "replicas": 3,
        "trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
                                          "hostnames": ["iris.example.com"]}},
        "server": {"workers": 2, "image": "example/serve:1"},
    })
    traffic = serving.Traffic("iris-v1", "iris-v2", canary_weight=30, canary_active=True, mirror_percent=20)
    children = serving.desired_children(spec, OWNER, traffic, VERSIONS, image="default:1", rule_label_text="a=b")
    kinds = sorted((c["kind"], c["metadata"]["name"]) for c in children.keep)
    assert ("HTTPRoute", "iris") in kinds
    assert ("Service", "iris-stable") in kinds
    assert ("Service", "iris-canary") in kinds
    assert children.remove == [("autoscaling/v2", "HorizontalPodAutoscaler", "iris"),
                                ("policy/v1", "PodDisruptionBudget", "iris")]
    for child in children.keep:
        if child["apiVersion"].startswith(("v1", "apps/", "autoscaling/", "policy/")):
            assert problems(child) == [], child["metadata"]["name"]
    route = next(c for c in children.keep if c["kind"] == "HTTPRoute")
    rule = route["spec"]["rules"][0]
    assert [(b["name"], b["weight"]) for b in rule["backendRefs"]] == [("iris-stable", 70), ("iris-canary", 30)]
    assert rule["filters"][0]["requestMirror"] == {"backendRef": {"name": "iris-canary", "port": 80}, "percent": 20}
    deployments = {c["metadata"]["name"]: c for c in children.keep if c["kind"] == "Deployment"}
    assert deployments["iris-stable"]["spec"]["replicas"] == 3
    assert deployments["iris-canary"]["spec"]["replicas"] == 1
    canary = deployments["iris-canary"]["spec"]["template"]["spec"]
    assert canary["containers"][0]["image"] == "example/serve:1"
    assert "--workers" in canary["containers"][0]["args"]
    assert any(v.get("persistentVolumeClaim", {}).get("claimName") == "models" for v in canary["volumes"])
    stable = deployments["iris-stable"]["spec"]["template"]["spec"]
    assert not any("persistentVolumeClaim" in v for v in stable["volumes"])  # s3: fetched into the cache
    config = next(c for c in children.keep if c["metadata"]["name"] == "iris-model-iris-v2")
    assert json.loads(config["data"]["result.json"])["artifact"]["path"] == "model.joblib"


def test_a_version_without_signature_cannot_be_served() -> None:
    bad = version("iris-v3")
    del bad["spec"]["signature"]
    with pytest.raises(serving.InvalidVersionError, match=r"spec\.signature"):
        serving.model_result(bad)


def test_repair_detects_hand_edits_but_not_server_defaults() -> None:
    desired = {"kind": "Service", "spec": {"selector": {"a": "1"}, "ports": [{"port": 80}]}}
    defaulted = {"kind": "Service", "spec": {"selector": {"a": "1"}, "ports": [{"port": 80, "protocol": "TCP"}],
                                             "clusterIP": "10.0.0.1"}}
    assert not serving.needs_repair(desired, defaulted)
    edited = {"kind": "Service", "spec": {"selector": {"a": "1", "b": "2"}, "ports": [{"port": 80}]}}
    assert serving.needs_repair(desired, edited)
    assert serving.repair_patch(desired, edited)["spec"]["selector"] == {"a": "1", "b": None}
    assert serving.needs_repair(desired, {"kind": "Service", "spec": {"selector": {"a": "2"}, "ports": []}})


def test_rule_labels() -> None:
    assert serving.rule_labels(" release = prom , bad, team=ml,") == {"release": "prom", "team": "ml"}
    assert serving.rule_labels(None) == {}


def test_long_names_stay_dns_labels() -> None:
    name = serving.model_config_name("a" * 60, "a" * 60 + "-v12")
    assert len(name) <= 63
