"""Gateway API routing through the real operator and the emulator: HTTPRoute weights per step, and
a shadow step that mirrors traffic to the canary before it takes any."""

from __future__ import annotations

from typing import Any

from kopf.testing import KopfRunner

from kubeemu import Emulator
from kubeemu.client import KubeClient
from rollout.kit import API, NAMESPACE, deployment, model_version, replicas, status_is

ROUTES = "gateway.networking.k8s.io/v1"
GATEWAY = {"gatewayAPI": {"parentRefs": [{"name": "public", "namespace": "gateways"}], "hostnames": ["iris.example"]}}


def start(emulator: Emulator, kube: KubeClient, steps: list[dict[str, Any]]) -> None:
    emulator.register_builtin_extras()  # the Gateway API CRDs
    kube.create(model_version(1))
    kube.create(model_version(2))
    kube.create(deployment(modelVersion="iris-v1", trafficRouting=GATEWAY, rollout={"steps": steps}))
    kube.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy", stableVersion="iris-v1"),
                  timeout=30)  # fmt: skip
    kube.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"modelVersion": "iris-v2"}})


def route_rule(kube: KubeClient) -> dict[str, Any]:
    route = kube.get(ROUTES, "HTTPRoute", NAMESPACE, "iris")
    rule: dict[str, Any] = route["spec"]["rules"][0]
    return rule


def weights(rule: dict[str, Any]) -> dict[str, int]:
    return {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}


def canary_weight(route: dict[str, Any] | None) -> int | None:
    return None if route is None else weights(route["spec"]["rules"][0])["iris-canary"]


def act(kube: KubeClient, value: str) -> None:
    kube.patch(API, "ModelDeployment", NAMESPACE, "iris", {"metadata": {"annotations": {"modelops.io/action": value}}})


def scraped(kube: KubeClient) -> str:
    """The ServiceMonitor's selector as a label selector string (its matchLabels and matchExpressions)."""
    selector = kube.get("monitoring.coreos.com/v1", "ServiceMonitor", NAMESPACE, "iris")["spec"]["selector"]
    terms = [f"{key}={value}" for key, value in selector.get("matchLabels", {}).items()]
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] in {"Exists", "DoesNotExist"}, expression
        terms.append(("!" if expression["operator"] == "DoesNotExist" else "") + expression["key"])
    return ",".join(terms)


def mirrored(route: dict[str, Any] | None) -> bool:
    return route is not None and bool(route["spec"]["rules"][0].get("filters"))


def test_route_weights_follow_the_steps_and_the_stable_keeps_its_replicas(
    emulator: Emulator, cluster: KubeClient, operator: KopfRunner
) -> None:
    start(emulator, cluster, [{"setWeight": 40}, {"pause": {}}])
    paused = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Paused"), timeout=30)
    assert paused is not None
    assert (paused["status"]["step"], paused["status"]["canaryWeight"]) == (1, 40)
    cluster.wait_for(ROUTES, "HTTPRoute", NAMESPACE, "iris", lambda o: canary_weight(o) == 40, timeout=30)
    route = cluster.get(ROUTES, "HTTPRoute", NAMESPACE, "iris")
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    assert route["spec"]["hostnames"] == ["iris.example"]
    assert weights(route["spec"]["rules"][0]) == {"iris-stable": 60, "iris-canary": 40}
    assert "filters" not in route["spec"]["rules"][0]
    assert route["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    # Weights split the traffic exactly: the stable keeps every replica, the canary gets its share.
    assert replicas(cluster, "iris-stable") == 4
    assert replicas(cluster, "iris-canary") == 2
    # Each role has its own Service for the route's backends.
    for role in ("stable", "canary"):
        service = cluster.get("v1", "Service", NAMESPACE, f"iris-{role}")
        assert service["spec"]["selector"]["modelops.io/role"] == role
    # The ServiceMonitor scrapes each pod once, through the Service over both roles: through the
    # per-role ones too, every request would count twice in analysis and drift.
    monitored = cluster.list("v1", "Service", NAMESPACE, label_selector=scraped(cluster))
    assert [service["metadata"]["name"] for service in monitored] == ["iris"]

    cluster.patch(
        API, "ModelDeployment", NAMESPACE, "iris", {"metadata": {"annotations": {"modelops.io/action": "promote"}}}
    )
    done = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(stableVersion="iris-v2"), timeout=30)
    assert done is not None
    cluster.wait_for(ROUTES, "HTTPRoute", NAMESPACE, "iris", lambda o: canary_weight(o) == 0, timeout=30)


def test_a_shadow_step_mirrors_traffic_to_the_canary_before_it_takes_any(
    emulator: Emulator, cluster: KubeClient, operator: KopfRunner
) -> None:
    start(emulator, cluster, [{"shadow": {"percent": 30, "duration": "1h"}}, {"setWeight": 50}])
    shadowing = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                                 status_is(canaryVersion="iris-v2", step=0), timeout=30)  # fmt: skip
    assert shadowing is not None
    assert shadowing["status"]["canaryWeight"] == 0

    route = cluster.wait_for(ROUTES, "HTTPRoute", NAMESPACE, "iris", mirrored, timeout=30)
    assert route is not None
    rule = route["spec"]["rules"][0]
    assert weights(rule) == {"iris-stable": 100, "iris-canary": 0}  # no real traffic yet
    assert rule["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "iris-canary", "port": 80}, "percent": 30}}]  # fmt: skip
    assert replicas(cluster, "iris-canary") == 1  # a pod to answer the mirrored requests

    cluster.patch(
        API, "ModelDeployment", NAMESPACE, "iris", {"metadata": {"annotations": {"modelops.io/action": "abort"}}}
    )
    # The mirror goes with the shadow step.
    aborted = cluster.wait_for(ROUTES, "HTTPRoute", NAMESPACE, "iris", lambda o: not mirrored(o), timeout=30)
    assert aborted is not None
    assert weights(aborted["spec"]["rules"][0]) == {"iris-stable": 100, "iris-canary": 0}
