"""The drift loop end to end: live traffic → Prometheus → the operator → drift, alerts, a retrain.

Given a real `modelops serve` process serving iris-v1 (trained by the real trainer, with its
referenceStats), a real Prometheus scraping it every second, and the real operator watching
a DriftPolicy over a 10 s window on the emulator:
when the traffic is drawn from the training data, then no feature drifts and nothing retrains;
when two features shift, then exactly those two drift in status, the generated
PrometheusRule's alert fires for them in Prometheus, one TrainingRun is created, and no other
within the cooldown; when Prometheus goes away, the last results stay and a condition says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from driftloop.conftest import Traffic, TrainedModel
from kubeemu import Emulator
from kubeemu.client import KubeClient
from modelops.logic import serving
from promkit import Prometheus, pod_target, service_monitor_relabelling
from serve.conftest import Server

API = "modelops.io/v1alpha1"
NAMESPACE = "ml"
SHIFTED = ["petal length (cm)", "sepal width (cm)"]
RUN_LABEL = "modelops.io/drift-policy=iris-inputs"


@pytest.fixture
def loop_env(emulator: Emulator, prometheus: Prometheus, monkeypatch: pytest.MonkeyPatch) -> Prometheus:
    emulator.register_builtin_extras()  # the PrometheusRule kind
    monkeypatch.setenv("MODELOPS_PROMETHEUS_URL", prometheus.url)
    monkeypatch.setenv("MODELOPS_RULE_LABELS", "release=kps,prometheus=main")
    return prometheus


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def version_of(model: TrainedModel) -> dict[str, Any]:
    result = model.result
    return {
        "apiVersion": API, "kind": "ModelVersion",
        "metadata": {"name": "iris-v1", "namespace": NAMESPACE},
        "spec": {
            "model": "iris", "version": 1, "task": "classification",
            "artifact": {"uri": result["artifact"]["uri"], "sha256": result["artifact"]["sha256"],
                         "format": result["artifact"]["format"]},
            "metrics": result["metrics"],
            "signature": result["signature"],
            "referenceStats": result["referenceStats"],
            "lineage": {"dataset": {"uri": result["dataset"]["uri"], "sha256": result["dataset"]["sha256"]},
                        "estimator": result["estimator"]["className"], "params": result["estimator"]["params"]},
        },
    }  # fmt: skip


def policy() -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "DriftPolicy",
        "metadata": {"name": "iris-inputs", "namespace": NAMESPACE},
        "spec": {
            "deployment": "iris", "method": "psi", "threshold": 0.2, "window": "10s", "interval": "2s",
            "minSamples": 500,
            "actions": {"alert": {"for": "1s", "severity": "critical", "labels": {"team": "ml"}},
                        "retrain": {"enabled": True, "cooldown": "1h", "maxPerDay": 2}},
        },
    }  # fmt: skip


def evaluated_after(previous: str | None, check: Callable[[dict[str, Any]], bool]) -> Callable[[Any], bool]:
    """A fresh evaluation (lastEvaluation moved on) whose status passes ``check``."""

    def predicate(obj: dict[str, Any] | None) -> bool:
        status = (obj or {}).get("status") or {}
        return bool(status.get("lastEvaluation")) and status.get("lastEvaluation") != previous and check(obj or {})

    return predicate


def drifted_features(obj: dict[str, Any]) -> list[str]:
    return sorted(f["name"] for f in obj["status"].get("features") or [] if f["drifted"])


def test_traffic_like_training_is_quiet_and_shifted_traffic_drifts_alerts_and_retrains_once(
    loop_env: Prometheus, cluster: KubeClient, operator: KopfRunner, iris_model: TrainedModel,
    iris_server: Server, tmp_path: Path,
) -> None:  # fmt: skip
    prometheus = loop_env
    # The server as a pod of ModelDeployment iris, relabelled as its ServiceMonitor asks.
    prometheus.set_relabel_configs(service_monitor_relabelling(serving.SCRAPE_RELABELINGS))
    prometheus.set_targets([pod_target(iris_server.url.removeprefix("http://"), namespace=NAMESPACE, service="iris",
                                       pod="iris-stable-0", labels={serving.DEPLOYMENT_LABEL: "iris"})])  # fmt: skip
    prometheus.wait_scraped(1)
    cluster.create(version_of(iris_model))
    cluster.create({"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": "iris", "namespace": NAMESPACE},
                    "spec": {"model": "iris", "track": "Production"}})  # fmt: skip
    # The deployment serves iris-v1 (what its controller would write once rolled out).
    cluster.patch_status(API, "ModelDeployment", NAMESPACE, "iris", {"status": {"servingVersion": "iris-v1"}})
    cluster.create(policy())

    with Traffic(iris_server, iris_model.features) as traffic:
        # --- traffic drawn from the training distribution: no drift, no retrain.
        quiet = cluster.wait_for(
            API, "DriftPolicy", NAMESPACE, "iris-inputs",
            evaluated_after(None, lambda o: condition(o, "DriftDetected").get("reason") == "NoDrift"), timeout=40,
        )  # fmt: skip
        assert quiet is not None
        status = quiet["status"]
        assert status["modelVersion"] == "iris-v1"
        assert status["drifted"] is False
        assert status["samples"] >= 500
        assert sorted(f["name"] for f in status["features"]) == sorted(iris_model.features)
        assert all(f["score"] is not None and f["score"] < 0.2 for f in status["features"]), status["features"]
        assert condition(quiet, "RetrainTriggered")["reason"] == "NoDrift"
        assert cluster.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL) == []

        # The PrometheusRule exists, owned by the policy, with the labels Prometheus selects.
        rule = cluster.get("monitoring.coreos.com/v1", "PrometheusRule", NAMESPACE, "iris-inputs-drift")
        assert rule["metadata"]["labels"]["release"] == "kps"
        assert rule["metadata"]["labels"]["prometheus"] == "main"
        assert rule["metadata"]["ownerReferences"][0]["name"] == "iris-inputs"
        assert condition(quiet, "RuleSynced")["status"] == "True"
        rule_file = tmp_path / "drift-rules.yml"
        rule_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        prometheus.set_rule_files([rule_file])

        # --- shift two features.
        traffic.shift = {SHIFTED[0]: 4.0, SHIFTED[1]: -1.5}
        last = status["lastEvaluation"]
        drifted = cluster.wait_for(
            API, "DriftPolicy", NAMESPACE, "iris-inputs",
            evaluated_after(last, lambda o: drifted_features(o) == sorted(SHIFTED)), timeout=40,
        )  # fmt: skip
        assert drifted is not None
        assert drifted["status"]["drifted"] is True
        assert condition(drifted, "DriftDetected")["status"] == "True"

        def firing() -> set[str]:
            return {a["labels"]["feature"] for a in prometheus.alerts()
                    if a["labels"].get("alertname") == "ModelInputDrift" and a["state"] == "firing"}  # fmt: skip

        assert prometheus.wait(lambda: firing() == set(SHIFTED), timeout=30, what="drift alerts firing")
        alert = next(a for a in prometheus.alerts() if a["labels"].get("alertname") == "ModelInputDrift")
        assert {k: alert["labels"][k] for k in ("model", "version", "deployment", "severity", "team")} == {
            "model": "iris",
            "version": "iris-v1",
            "deployment": "iris",
            "severity": "critical",
            "team": "ml",
        }

        # One TrainingRun, from the serving version's lineage, labelled with the policy and not owned by it.
        retrained = cluster.wait_for(
            API, "DriftPolicy", NAMESPACE, "iris-inputs", lambda o: bool((o or {})["status"].get("retrains")),
            timeout=30,
        )  # fmt: skip
        runs = cluster.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL)
        assert len(runs) == 1
        run = runs[0]
        assert "ownerReferences" not in run["metadata"]
        assert run["spec"]["model"] == "iris"
        assert run["spec"]["estimator"]["className"] == "sklearn.tree.DecisionTreeClassifier"
        assert run["spec"]["estimator"]["params"] == iris_model.result["estimator"]["params"]
        assert run["spec"]["dataset"]["uri"] == "sklearn://iris"
        assert retrained is not None
        record = retrained["status"]["retrains"][0]
        assert record["name"] == run["metadata"]["name"]
        assert "drift in" in record["reason"]
        events = {e["reason"] for e in cluster.list("v1", "Event", NAMESPACE)
                  if e["involvedObject"]["name"] == "iris-inputs"}  # fmt: skip
        assert {"DriftStarted", "RetrainStarted"} <= events

        # Drift persists; the run is gone (say, cleaned up): the cooldown still holds off a second one.
        cluster.delete(API, "TrainingRun", NAMESPACE, run["metadata"]["name"])
        cooling = cluster.wait_for(
            API, "DriftPolicy", NAMESPACE, "iris-inputs",
            lambda o: condition(o, "RetrainTriggered").get("reason") == "CoolingDown", timeout=30,
        )  # fmt: skip
        assert cooling is not None
        later = cluster.wait_for(
            API, "DriftPolicy", NAMESPACE, "iris-inputs",
            evaluated_after(cooling["status"]["lastEvaluation"], lambda o: o["status"]["drifted"] is True), timeout=30,
        )  # fmt: skip
        assert later is not None
        assert condition(later, "RetrainTriggered")["reason"] == "CoolingDown"
        # Deleted, or Failed/Succeeded when the run finished before it was deleted: no longer in flight.
        assert [r["phase"] in {"Deleted", "Failed", "Succeeded"} for r in later["status"]["retrains"]] == [True]
        assert cluster.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL) == []
        assert traffic.errors == []

    # --- Prometheus goes away: a condition says so, the last results stay.
    prometheus.stop()
    down = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "iris-inputs",
        lambda o: condition(o, "DriftDetected").get("reason") == "PrometheusUnreachable", timeout=30,
    )  # fmt: skip
    assert down is not None
    assert drifted_features(down) == sorted(SHIFTED)
    assert down["status"]["drifted"] is True
