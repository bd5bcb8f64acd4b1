"""Quality decay end to end: labels sent back → Prometheus → the operator → QualityDegraded, an alert, a retrain.

Given a real `modelops serve` serving iris-v1 (trained by the real trainer, its accuracy recorded on
the version) with feedback keys, a real Prometheus scraping it, and the real operator watching a
DriftPolicy whose ``quality`` holds live accuracy to at most 0.1 below the training accuracy:
when the true labels come back, quality holds and nothing retrains; when the business then reports
labels that contradict every prediction, QualityDegraded turns True with the live metric, value and
limit in its message, the generated ModelQualityDegraded alert fires in Prometheus, an Event is
posted and exactly one TrainingRun is created; when Prometheus goes away, no action is taken and
the condition says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from kopf.testing import KopfRunner
from sklearn.datasets import load_iris

from driftloop.conftest import TrainedModel
from driftloop.test_loop import API, NAMESPACE, condition, loop_env, version_of  # noqa: F401 (a fixture)
from kubeemu.client import KubeClient
from modelops.logic import serving
from promkit import Prometheus, pod_target, service_monitor_relabelling
from serve.conftest import Server
from serve.test_feedback_parts import one_key_dir

RUN_LABEL = "modelops.io/drift-policy=iris-quality"


@pytest.fixture
def labelled_server(iris_model: TrainedModel, tmp_path: Path) -> Iterator[Server]:
    keys = one_key_dir(tmp_path / "keys")
    server = Server(iris_model.path, "--name", "iris", "--version", "iris-v1", "--feedback-keys", str(keys),
                    "--feedback-scope", f"{NAMESPACE}/iris").wait_ready()  # fmt: skip
    yield server
    server.close()


def serving_iris_v1(cluster: KubeClient) -> None:
    """The ModelDeployment iris, serving iris-v1 (what its controller would write once rolled out)."""
    cluster.create({"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": "iris", "namespace": NAMESPACE},
                    "spec": {"model": "iris", "track": "Production"}})  # fmt: skip
    cluster.patch_status(API, "ModelDeployment", NAMESPACE, "iris", {"status": {"servingVersion": "iris-v1"}})


def quality_state(cluster: KubeClient, reason: str, policy: str = "iris-quality") -> dict[str, Any]:
    """The policy once its QualityDegraded condition has ``reason``."""
    found = cluster.wait_for(API, "DriftPolicy", NAMESPACE, policy,
                             lambda o: condition(o, "QualityDegraded").get("reason") == reason, timeout=60)  # fmt: skip
    assert found is not None
    return found


def policy() -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "DriftPolicy",
        "metadata": {"name": "iris-quality", "namespace": NAMESPACE},
        "spec": {
            # Input drift is not what this test is about: the window never holds minSamples inputs.
            "deployment": "iris", "window": "10s", "interval": "2s", "minSamples": 1000000,
            "quality": {"thresholds": [{"metric": "accuracy", "maxDrop": 0.1}], "window": "1h", "minFeedback": 100},
            "actions": {"alert": {"for": "1s", "severity": "critical", "labels": {"team": "ml"}},
                        "retrain": {"enabled": True, "cooldown": "1h"}},
        },
    }  # fmt: skip


def predict_and_label(server: Server, wrong: bool) -> int:
    """Every iris row through the server in batches; the labels back: the truth, or never what was predicted."""
    data = load_iris()
    x, y = data.data, data.target
    sent = 0
    for start in range(0, len(x), 30):
        rows = x[start : start + 30]
        body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]}
        answer = server.post("/v2/models/iris/infer", json=body)
        assert answer.status_code == 200, answer.text
        predicted = np.asarray(answer.json()["outputs"][0]["data"])
        truth = (predicted + 1) % 3 if wrong else y[start : start + 30]
        back = server.post("/v2/models/iris/feedback", json={"id": answer.json()["id"], "actual": truth.tolist()})
        assert back.status_code == 200, back.text
        sent += back.json()["counted"]
    return sent


def test_decay_in_live_labels_degrades_alerts_and_retrains_once(
    loop_env: Prometheus, cluster: KubeClient, operator: KopfRunner, iris_model: TrainedModel,  # noqa: F811
    labelled_server: Server, tmp_path: Path,
) -> None:  # fmt: skip
    prometheus = loop_env
    prometheus.set_relabel_configs(service_monitor_relabelling(serving.SCRAPE_RELABELINGS))
    prometheus.set_targets([pod_target(labelled_server.url.removeprefix("http://"), namespace=NAMESPACE,
                                       service="iris", pod="iris-stable-0",
                                       labels={serving.DEPLOYMENT_LABEL: "iris"})])  # fmt: skip
    prometheus.wait_scraped(1)
    cluster.create(version_of(iris_model))
    trained = iris_model.result["metrics"]["accuracy"]
    serving_iris_v1(cluster)

    # --- the truth comes back: quality holds, nothing retrains.
    assert predict_and_label(labelled_server, wrong=False) == 150
    cluster.create(policy())
    holding = quality_state(cluster, "QualityWithinLimits")
    assert condition(holding, "QualityDegraded")["status"] == "False"
    (result,) = holding["status"]["quality"]
    assert result["metric"] == "accuracy"
    assert result["limit"] == pytest.approx(trained - 0.1)
    assert result["value"] > trained - 0.1
    assert result["evidence"] >= 150
    assert holding["status"]["qualityDegraded"] is False
    assert cluster.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL) == []

    # The policy's PrometheusRule carries the quality alert; loaded into Prometheus, it stays quiet for now.
    rule = cluster.get("monitoring.coreos.com/v1", "PrometheusRule", NAMESPACE, "iris-quality-drift")
    alerts = [r for r in rule["spec"]["groups"][0]["rules"] if r.get("alert") == "ModelQualityDegraded"]
    assert [a["labels"]["metric"] for a in alerts] == ["accuracy"]
    rule_file = tmp_path / "quality-rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    prometheus.set_rule_files([rule_file])

    # --- the business reports every later prediction wrong: half of the window's labels are misses.
    assert predict_and_label(labelled_server, wrong=True) == 150
    degraded = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "iris-quality",
        lambda o: condition(o, "QualityDegraded").get("status") == "True", timeout=60,
    )  # fmt: skip
    assert degraded is not None
    state = condition(degraded, "QualityDegraded")
    assert state["reason"] == "LiveQualityDegraded"
    assert "live quality degraded over the last 1h: accuracy 0.4" in state["message"]
    assert f"(training accuracy {trained:.4g} - maxDrop 0.1)" in state["message"]
    assert degraded["status"]["qualityDegraded"] is True

    def firing() -> bool:
        return any(a["labels"].get("alertname") == "ModelQualityDegraded" and a["state"] == "firing"
                   for a in prometheus.alerts())  # fmt: skip

    prometheus.wait(firing, timeout=60, what="ModelQualityDegraded firing")
    alert = next(a for a in prometheus.alerts() if a["labels"].get("alertname") == "ModelQualityDegraded")
    assert {k: alert["labels"][k] for k in ("model", "version", "deployment", "metric", "quality", "team")} == {
        "model": "iris", "version": "iris-v1", "deployment": "iris", "metric": "accuracy", "quality": "live",
        "team": "ml",
    }  # fmt: skip

    # One retrain, on the drift path: the reason names the decay; an Event says it started.
    retrained = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "iris-quality", lambda o: bool((o or {})["status"].get("retrains")),
        timeout=30,
    )  # fmt: skip
    assert retrained is not None
    assert "accuracy" in retrained["status"]["retrains"][0]["reason"]
    runs = cluster.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL)
    assert len(runs) == 1
    assert runs[0]["spec"]["dataset"]["uri"] == "sklearn://iris"
    events = {e["reason"] for e in cluster.list("v1", "Event", NAMESPACE)
              if e["involvedObject"]["name"] == "iris-quality"}  # fmt: skip
    assert {"QualityDegraded", "RetrainStarted"} <= events
    # Decay persists, the run is in flight: no second one.
    last = retrained["status"]["lastEvaluation"]
    later = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "iris-quality",
        lambda o: (o or {})["status"].get("lastEvaluation") not in (None, last), timeout=30,
    )  # fmt: skip
    assert later is not None
    assert len(cluster.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL)) == 1

    # --- Prometheus goes away: no action, and the condition says so.
    prometheus.stop()
    down = quality_state(cluster, "PrometheusUnreachable")
    assert condition(down, "QualityDegraded")["status"] == "Unknown"
    assert "no action" in condition(down, "QualityDegraded")["message"]
    assert len(cluster.list(API, "TrainingRun", NAMESPACE, label_selector=RUN_LABEL)) == 1


def test_a_version_without_reference_stats_is_judged_on_quality_alone(
    loop_env: Prometheus, cluster: KubeClient, operator: KopfRunner, iris_model: TrainedModel,  # noqa: F811
) -> None:  # fmt: skip
    version = version_of(iris_model)
    del version["spec"]["referenceStats"]
    cluster.create(version)
    serving_iris_v1(cluster)
    cluster.create(policy())
    judged = quality_state(cluster, "TooFewLabels")
    assert condition(judged, "QualityDegraded")["status"] == "Unknown"
    assert "accuracy: 0 labels in the last 1h, minFeedback 100" in condition(judged, "QualityDegraded")["message"]
    drift = condition(judged, "DriftDetected")
    assert (drift["status"], drift["reason"]) == ("Unknown", "NoReferenceStats")
    assert condition(judged, "Ready")["status"] == "True"
    rule = cluster.get("monitoring.coreos.com/v1", "PrometheusRule", NAMESPACE, "iris-quality-drift")
    assert [r.get("alert") for r in rule["spec"]["groups"][0]["rules"]] == ["ModelQualityDegraded"]

    # Without quality thresholds there is nothing such a policy can watch: not ready, saying why.
    inputs_only = policy()
    inputs_only["metadata"]["name"] = "iris-inputs"
    del inputs_only["spec"]["quality"]
    cluster.create(inputs_only)
    waiting = cluster.wait_for(
        API, "DriftPolicy", NAMESPACE, "iris-inputs",
        lambda o: condition(o, "Ready").get("reason") == "NoReferenceStats", timeout=30,
    )  # fmt: skip
    assert waiting is not None
    assert condition(waiting, "Ready")["status"] == "False"
