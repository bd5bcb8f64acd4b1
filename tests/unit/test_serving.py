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
    children = serving.desired_children(spec, OWNER, traffic, stable=VERSIONS["iris-v1"], canary=VERSIONS["iris-v2"],
                                        image="default:1", rule_labels={"a": "b"})
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
    # No spec.artifact.format: the CRD's default, a skops archive.
    assert json.loads(config["data"]["result.json"])["artifact"] == {
        "uri": "pvc://models/iris/v2/model.joblib", "path": "model.skops", "sha256": "c" * 64, "format": "skops",
    }
    assert "--allow-pickle" not in canary["containers"][0]["args"]


@pytest.mark.parametrize(
    ("formats", "allow", "flagged"),
    [
        (("skops", "skops"), True, set()),             # allowed, but nothing to unpickle
        (("joblib", "skops"), False, set()),           # a pickle where the policy allows none: no flag
        (("joblib", "skops"), True, {"iris-stable"}),  # only the pickle's server gets the flag
        (("joblib", "joblib"), True, {"iris-stable", "iris-canary"}),
    ],
)
def test_allow_pickle_reaches_only_a_pickle_s_server_and_only_when_allowed(
    formats: tuple[str, str], allow: bool, flagged: set[str]
) -> None:
    versions = {
        name: version(name, uri=f"s3://bucket/{name}/model.{fmt}", artifact={
            "uri": f"s3://bucket/{name}/model.{fmt}", "sha256": "c" * 64, "format": fmt})
        for name, fmt in zip(("iris-v1", "iris-v2"), formats, strict=True)
    }  # fmt: skip
    spec = ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v2", "replicas": 2})
    traffic = serving.Traffic("iris-v1", "iris-v2", canary_weight=50, canary_active=True)
    children = serving.desired_children(
        spec, OWNER, traffic, stable=versions["iris-v1"], canary=versions["iris-v2"], image="i:1", allow_pickle=allow
    )
    args = {
        c["metadata"]["name"]: c["spec"]["template"]["spec"]["containers"][0]["args"]
        for c in children.keep
        if c["kind"] == "Deployment"
    }
    assert {name for name, a in args.items() if "--allow-pickle" in a} == flagged
    results = {
        c["metadata"]["name"]: json.loads(c["data"]["result.json"])["artifact"]
        for c in children.keep
        if c["kind"] == "ConfigMap"
    }
    assert results["iris-model-iris-v1"]["path"] == f"model.{formats[0]}"
    assert results["iris-model-iris-v1"]["format"] == formats[0]


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


def test_rule_labels_are_parsed_once_for_every_kind() -> None:
    from modelops.logic.rules import rule_labels

    assert rule_labels(" release = prom , team=ml,") == {"release": "prom", "team": "ml"}
    assert rule_labels(None) == {}
    with pytest.raises(ValueError, match="'bad' is not a label key=value pair"):
        rule_labels("release=prom, bad")


def test_long_names_stay_dns_labels() -> None:
    name = serving.model_config_name("a" * 60, "a" * 60 + "-v12")
    assert len(name) <= 63


def server(status: dict[str, Any], replicas: int | None = 4, version: str = "iris-v1",
           generation: int = 2) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"metadata": {"labels": {"modelops.io/version": version}}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"name": "iris-stable", "generation": generation}, "spec": spec, "status": status}


DONE = {"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4}


@pytest.mark.parametrize(
    ("deployment", "replicas", "available", "ready", "words"),
    [
        (None, 4, False, 0, "does not exist"),
        (server(DONE), 4, True, 4, "4/4 replicas of iris-v1"),
        (server({**DONE, "observedGeneration": 1}), 4, False, 0, "generation 2 not yet observed"),
        (server({**DONE, "availableReplicas": 3}), 4, False, 3, "3/4"),
        # a rolling update: 2 old pods still counted as available, only 3 of the new template are
        (server({**DONE, "replicas": 6, "availableReplicas": 5}), 4, False, 3, "3/4"),
        (server(DONE, version="iris-v0"), 4, False, 0, "runs iris-v0, not iris-v1"),
        (server(DONE, replicas=3), 4, False, 0, "scaled to 3, not 4"),
        (server({"observedGeneration": 1}, replicas=0), 0, True, 0, "scaled to zero"),
        # an HPA owns the count: one available replica of the current template serves
        (server({**DONE, "replicas": 5, "updatedReplicas": 5, "availableReplicas": 1}, replicas=5), None, True, 1,
         "autoscaled"),
        (server({**DONE, "replicas": 5, "updatedReplicas": 5, "availableReplicas": 0}, replicas=5), None, False, 0,
         "0/5"),
        (server({**DONE, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}, replicas=None), None, True,
         1, "1/1"),
    ],
)
def test_availability(deployment: dict[str, Any] | None, replicas: int | None, available: bool, ready: int,
                      words: str) -> None:
    found = serving.availability(deployment, name="iris-stable", version="iris-v1", replicas=replicas)
    assert (found.available, found.ready) == (available, ready)
    assert words in found.message
    assert found.message.startswith("Deployment iris-stable")


def test_availability_reports_the_progress_deadline() -> None:
    stuck = server({**DONE, "availableReplicas": 0, "conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]})
    found = serving.availability(stuck, name="iris-stable", version="iris-v1", replicas=4)
    assert (found.available, found.stalled) == (False, True)
    assert "ProgressDeadlineExceeded" in found.message


def test_expected_replicas_match_the_children() -> None:
    traffic = serving.Traffic("iris-v1", "iris-v2", canary_weight=25, canary_active=True)
    s = ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v2", "replicas": 4})
    assert serving.expected_replicas(s, traffic) == (3, 1)
    children = serving.desired_children(s, OWNER, traffic, stable=VERSIONS[traffic.stable_version],
                                        canary=VERSIONS[traffic.canary_version or traffic.stable_version], image="img")
    sizes = {o["metadata"]["name"]: o["spec"]["replicas"] for o in children.keep if o["kind"] == "Deployment"}
    assert sizes == {"iris-stable": 3, "iris-canary": 1}
    scaled = ModelDeploymentSpec.model_validate(
        {"model": "iris", "modelVersion": "iris-v2", "autoscaling": {"minReplicas": 2, "maxReplicas": 8}})
    assert serving.expected_replicas(scaled, traffic, stable_replicas_now=8) == (None, 2)
    assert serving.expected_replicas(scaled, traffic) == (None, 1)


def test_a_mirror_filter_left_on_the_route_is_a_difference_and_the_patch_removes_it() -> None:
    desired = {"kind": "HTTPRoute", "spec": {"rules": [{"backendRefs": [{"name": "a", "weight": 100}]}]}}
    mirrored = {"kind": "HTTPRoute", "spec": {"rules": [{"backendRefs": [{"name": "a", "weight": 100}],
                                                         "filters": [{"type": "RequestMirror"}]}]}}  # fmt: skip
    assert serving.needs_repair(desired, mirrored)
    assert not serving.needs_repair(desired, desired)
    assert not serving.needs_repair(mirrored, mirrored)
    patch = serving.repair_patch(desired, mirrored)
    assert "filters" not in patch["spec"]["rules"][0]  # a merge patch replaces the list: the filter goes


def with_uid(version_obj: dict[str, Any], uid: str, sha256: str = "c" * 64) -> dict[str, Any]:
    copy = json.loads(json.dumps(version_obj))
    copy["metadata"]["uid"] = uid
    copy["spec"]["artifact"]["sha256"] = sha256
    return copy


def test_each_version_object_gets_its_own_config_map_even_under_one_name() -> None:
    """The stable serves iris-v1 as promoted; another iris-v1 (re-created) runs as the canary beside it."""
    spec = ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v1", "replicas": 2})
    old, new = with_uid(VERSIONS["iris-v1"], "0a0a0a0a-1"), with_uid(VERSIONS["iris-v1"], "1b1b1b1b-2", "e" * 64)
    traffic = serving.Traffic("iris-v1", "iris-v1", canary_weight=50, canary_active=True)
    children = serving.desired_children(spec, OWNER, traffic, stable=old, canary=new, image="img")
    configs = {c["metadata"]["name"]: json.loads(c["data"]["result.json"]) for c in children.keep
               if c["kind"] == "ConfigMap"}  # fmt: skip
    assert {name: r["artifact"]["sha256"] for name, r in configs.items()} == {
        "iris-model-iris-v1-0a0a0a0a": "c" * 64, "iris-model-iris-v1-1b1b1b1b": "e" * 64}  # fmt: skip
    deployments = {c["metadata"]["name"]: c for c in children.keep if c["kind"] == "Deployment"}
    mounts = {"iris-stable": "iris-model-iris-v1-0a0a0a0a", "iris-canary": "iris-model-iris-v1-1b1b1b1b"}
    for name, config in mounts.items():
        assert serving.mounted_config_maps(deployments[name]) == {config}
    assert children.frozen == []


def test_a_role_whose_version_is_gone_is_left_as_it_is_with_its_config_map() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v2", "replicas": 2})
    traffic = serving.Traffic("iris-v1", "iris-v2", canary_weight=50, canary_active=True)
    canary = with_uid(VERSIONS["iris-v2"], "2c2c2c2c-3")
    children = serving.desired_children(spec, OWNER, traffic, stable=None, canary=canary, image="img")
    assert children.frozen == ["iris-stable"]
    assert sorted(c["metadata"]["name"] for c in children.keep if c["kind"] in ("Deployment", "ConfigMap")) == [
        "iris-canary", "iris-model-iris-v2-2c2c2c2c"]  # fmt: skip
    existing = [{"metadata": {"name": n, "labels": {serving.DEPLOYMENT_LABEL: "iris"}}}
                for n in ("iris-model-iris-v1-0a0a0a0a", "iris-model-iris-v2-2c2c2c2c", "iris-model-iris-v0-99")]
    frozen_mounts = {"iris-model-iris-v1-0a0a0a0a"}
    assert serving.stale_config_maps("iris", existing, children.keep, frozen_mounts) == ["iris-model-iris-v0-99"]
    assert serving.stale_config_maps("iris", existing, children.keep) == [
        "iris-model-iris-v0-99", "iris-model-iris-v1-0a0a0a0a"]  # fmt: skip
    assert serving.mounted_config_maps(None) == set()


def test_servers_run_as_the_configured_user_or_as_the_platform_assigns() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v2"})
    traffic = serving.Traffic("iris-v1", "iris-v2", canary_weight=30, canary_active=True)
    for run_as, pinned in ((10001, {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}), (None, {})):
        versions = {"stable": VERSIONS["iris-v1"], "canary": VERSIONS["iris-v2"]}
        children = serving.desired_children(spec, OWNER, traffic, **versions, image="img", run_as=run_as)
        for child in (c for c in children.keep if c["kind"] == "Deployment"):
            context = child["spec"]["template"]["spec"]["securityContext"]
            assert {k: v for k, v in context.items() if k in ("runAsUser", "runAsGroup", "fsGroup")} == pinned
            assert context["runAsNonRoot"] is True
            assert problems(child) == []


def test_server_limits_in_the_spec_become_flags_the_server_accepts() -> None:
    from modelops.serve import cli as serve_cli

    limits = {
        "maxBodyBytes": 1048576, "maxHeaderBytes": 4096, "maxUrlBytes": 1024, "maxConnections": 64,
        "headerTimeoutSeconds": 5, "bodyTimeoutSeconds": 30.5, "sendTimeoutSeconds": 20, "keepaliveSeconds": 15,
        "explainMaxRows": 0,
    }  # fmt: skip
    traffic = serving.Traffic("iris-v1", None, canary_weight=0, canary_active=False)
    for server, expected in (({}, {}), (limits, limits)):
        spec = ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v1", "server": server})
        children = serving.desired_children(spec, OWNER, traffic, stable=VERSIONS["iris-v1"], canary=None, image="i")
        [deployment] = [c for c in children.keep if c["kind"] == "Deployment"]
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        parsed = serve_cli._parser().parse_args(args[1:])  # the pod's args, as `modelops serve` reads them
        defaults = serve_cli._parser().parse_args(["--model-dir", "/m", "--port", "8080"])
        for field_name, flag in serving.SERVER_FLAGS:
            key = flag.removeprefix("--").replace("-", "_")
            camel = "".join(w.capitalize() if i else w for i, w in enumerate(field_name.split("_")))
            assert getattr(parsed, key) == expected.get(camel, getattr(defaults, key)), flag


@pytest.mark.parametrize(
    ("field", "value"),
    [("maxBodyBytes", 0), ("maxHeaderBytes", 100), ("maxConnections", 0), ("headerTimeoutSeconds", 0),
     ("explainMaxRows", -1), ("keepaliveSeconds", 7200)],
)  # fmt: skip
def test_server_limits_out_of_range_are_refused_naming_the_field(field: str, value: float) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=field):
        ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v1", "server": {field: value}})
