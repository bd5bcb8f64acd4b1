"""A DriftPolicy's reconcile against the emulator, without traffic: what it waits for, what it refuses,
the PrometheusRule it keeps in place, and the stage it asks for on a retrained version.

No Prometheus is configured here, so every evaluation says so (``DriftDetected=Unknown``,
``NoPrometheus``) while the rest of the policy is reconciled.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kopf.testing import KopfRunner

from driftloop.conftest import TrainedModel
from driftloop.test_loop import API, NAMESPACE, condition, version_of
from kubeemu import Emulator
from kubeemu.client import KubeClient

RULES = "monitoring.coreos.com/v1"
CRDS = "apiextensions.k8s.io/v1"


@pytest.fixture
def no_prometheus(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator.register_builtin_extras()
    monkeypatch.delenv("MODELOPS_PROMETHEUS_URL", raising=False)
    monkeypatch.setenv("MODELOPS_RULE_LABELS", "release=kps")


def second_version(model: TrainedModel) -> dict[str, Any]:
    obj = copy.deepcopy(version_of(model))
    obj["metadata"]["name"] = "iris-v2"
    obj["spec"]["version"] = 2
    return obj


def policy(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "DriftPolicy",
        "metadata": {"name": "p", "namespace": NAMESPACE},
        "spec": {"deployment": "iris", "window": "10s", "interval": "1s", "minSamples": 10, **spec},
    }


def ready(obj: dict[str, Any] | None) -> dict[str, Any]:
    return condition(obj, "Ready")


def test_waits_for_a_serving_version_then_keeps_its_rule_in_place(
    no_prometheus: None, cluster: KubeClient, operator: KopfRunner, iris_model: TrainedModel
) -> None:
    cluster.create(version_of(iris_model))
    cluster.create(second_version(iris_model))
    cluster.create(
        {
            "apiVersion": API,
            "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": NAMESPACE},
            "spec": {"model": "iris", "track": "Production"},
        }
    )
    # Evaluated hourly: only the watches on its rule and its deployment can make it act sooner.
    cluster.create(policy(interval="1h"))
    waiting = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "p", lambda o: "serves no version" in ready(o).get("message", ""), timeout=30
    )
    assert ready(waiting)["reason"] == "NotFound"
    assert ready(waiting)["message"].startswith("spec.deployment: ModelDeployment ml/iris serves no version yet")

    cluster.patch_status(API, "ModelDeployment", NAMESPACE, "iris", {"status": {"servingVersion": "iris-v1"}})
    synced = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "p", lambda o: condition(o, "RuleSynced").get("status") == "True", timeout=30
    )
    assert synced is not None
    assert ready(synced)["status"] == "True"
    assert synced["status"]["modelVersion"] == "iris-v1"
    detected = condition(synced, "DriftDetected")
    assert (detected["status"], detected["reason"]) == ("Unknown", "NoPrometheus")
    rule = cluster.get(RULES, "PrometheusRule", NAMESPACE, "p-drift")
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert 'version="iris-v1"' in rule["spec"]["groups"][0]["rules"][0]["expr"]

    # Deleted by someone: put back at once (the watch on the policy's rules), not in an hour.
    cluster.delete(RULES, "PrometheusRule", NAMESPACE, "p-drift")
    back = cluster.wait_for(RULES, "PrometheusRule", NAMESPACE, "p-drift", lambda o: o is not None, timeout=30)
    assert back is not None

    # Edited by someone: put back at once too.
    cluster.patch(RULES, "PrometheusRule", NAMESPACE, "p-drift", {"spec": {"groups": []}})
    restored = cluster.wait_for(RULES, "PrometheusRule", NAMESPACE, "p-drift",
                                lambda o: o is not None and o["spec"]["groups"], timeout=30)  # fmt: skip
    assert restored is not None

    # A new serving version rewrites the rule for it (the watch on the deployment).
    cluster.patch_status(API, "ModelDeployment", NAMESPACE, "iris", {"status": {"servingVersion": "iris-v2"}})
    moved = cluster.wait_for(
        RULES,
        "PrometheusRule",
        NAMESPACE,
        "p-drift",
        lambda o: o is not None and 'version="iris-v2"' in o["spec"]["groups"][0]["rules"][0]["expr"],
        timeout=30,
    )
    assert moved is not None
    assert moved["metadata"]["annotations"]["modelops.io/model-version"] == "iris-v2"
    follows = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "p", lambda o: o["status"].get("modelVersion") == "iris-v2", timeout=30
    )
    assert follows is not None


def test_unknown_features_and_unfit_methods_name_the_field(
    no_prometheus: None, cluster: KubeClient, operator: KopfRunner, iris_model: TrainedModel
) -> None:
    cluster.create(version_of(iris_model))
    cluster.create(
        {
            "apiVersion": API,
            "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": NAMESPACE},
            "spec": {"model": "iris", "track": "Production"},
        }
    )
    cluster.patch_status(API, "ModelDeployment", NAMESPACE, "iris", {"status": {"servingVersion": "iris-v1"}})
    cluster.create(policy(features=["petal length (cm)", "colour"]))
    refused = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "p", lambda o: ready(o).get("reason") == "InvalidSpec", timeout=30
    )
    assert ready(refused)["message"].startswith("spec.features: 'colour' not in the serving version's referenceStats")
    assert condition(refused, "Stalled")["status"] == "True"
    assert cluster.list(RULES, "PrometheusRule", NAMESPACE) == []

    cluster.patch(API, "DriftPolicy", NAMESPACE, "p", {"spec": {"features": ["petal length (cm)"]}})
    fixed = cluster.wait_for(API, "DriftPolicy", NAMESPACE, "p", lambda o: ready(o).get("status") == "True", timeout=30)
    assert fixed is not None
    rule = cluster.get(RULES, "PrometheusRule", NAMESPACE, "p-drift")
    exprs = " ".join(r["expr"] for r in rule["spec"]["groups"][0]["rules"])
    assert "petal length (cm)" in exprs
    assert "sepal width (cm)" not in exprs


def test_a_retrained_version_is_asked_for_staging_once(
    no_prometheus: None, cluster: KubeClient, operator: KopfRunner, iris_model: TrainedModel
) -> None:
    cluster.create(version_of(iris_model))
    cluster.create(second_version(iris_model))
    cluster.create(
        {
            "apiVersion": API,
            "kind": "ModelDeployment",
            "metadata": {"name": "iris", "namespace": NAMESPACE},
            "spec": {"model": "iris", "track": "Production"},
        }
    )
    cluster.patch_status(API, "ModelDeployment", NAMESPACE, "iris", {"status": {"servingVersion": "iris-v1"}})
    cluster.create(policy(actions={"retrain": {"enabled": True, "promoteTo": "Staging"}}))
    cluster.wait_for(API, "DriftPolicy", NAMESPACE, "p", lambda o: ready(o).get("status") == "True", timeout=30)
    # A retrain that finished and registered iris-v2 (its run since cleaned up).
    record = {"name": "p-retrain-old", "at": "2026-01-01T00:00:00Z", "phase": "Succeeded", "modelVersion": "iris-v2"}
    cluster.patch_status(API, "DriftPolicy", NAMESPACE, "p", {"status": {"retrains": [record]}})
    asked = cluster.wait_for(
        API,
        "DriftPolicy",
        NAMESPACE,
        "p",
        lambda o: [r.get("stageRequested") for r in o["status"].get("retrains") or []] == ["Staging"],
        timeout=30,
    )
    assert asked is not None
    assert cluster.get(API, "ModelVersion", NAMESPACE, "iris-v2")["spec"]["stage"] == "Staging"
    assert cluster.get(API, "ModelVersion", NAMESPACE, "iris-v1")["spec"].get("stage", "None") == "None"
    assert asked["status"]["retrains"][0]["phase"] == "Succeeded"


def test_ready_follows_rule_synced_and_a_ks_policy_alerts_on_ks(
    cluster: KubeClient, operator: KopfRunner, iris_model: TrainedModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # No Prometheus Operator CRD for rules: the policy's alerting rule cannot exist.
    monkeypatch.delenv("MODELOPS_PROMETHEUS_URL", raising=False)
    crd = cluster.get(CRDS, "CustomResourceDefinition", None, "prometheusrules.monitoring.coreos.com")
    cluster.delete(CRDS, "CustomResourceDefinition", None, "prometheusrules.monitoring.coreos.com")
    cluster.create(version_of(iris_model))
    cluster.create({"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": "iris", "namespace": NAMESPACE},
                    "spec": {"model": "iris", "track": "Production"}})  # fmt: skip
    cluster.patch_status(API, "ModelDeployment", NAMESPACE, "iris", {"status": {"servingVersion": "iris-v1"}})
    cluster.create(policy(method="ks", threshold=0.01))
    unsynced = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "p", lambda o: condition(o, "RuleSynced").get("status") == "False", timeout=30
    )
    assert condition(unsynced, "RuleSynced")["reason"] == "PrometheusRuleUnavailable"
    assert (ready(unsynced)["status"], ready(unsynced)["reason"]) == ("False", "PrometheusRuleUnavailable")
    assert "install the Prometheus Operator CRDs" in ready(unsynced)["message"]

    crd["metadata"] = {"name": crd["metadata"]["name"]}
    crd.pop("status", None)
    cluster.create(crd)  # the CRD arrives: the next look applies the rule
    synced = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "p", lambda o: ready(o).get("status") == "True", timeout=60
    )
    assert condition(synced, "RuleSynced")["reason"] == "Synced"
    rule = cluster.get(RULES, "PrometheusRule", NAMESPACE, "p-drift")
    alerts = [r for r in rule["spec"]["groups"][0]["rules"] if "alert" in r]
    assert [a["labels"]["method"] for a in alerts] == ["ks"]
    assert alerts[0]["expr"].startswith('modelops_drift:feature_ks:statistic{drift_policy="ml/p"} > ')
