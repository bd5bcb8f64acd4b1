"""Estimated precision, recall and F1 of a binary classifier, acted on by the operator before any label.

Given a logistic regression trained on breast cancer data by the real trainer (its training
precision, recall and F1 are of class 1, ``signature.classes[1]``), served by a real `modelops serve`
scraped by a real Prometheus, and the real operator watching a DriftPolicy whose ``quality`` holds
the estimated F1 to at most 0.1 below the training F1 — no class named — and the estimated recall of
class 0 to an absolute threshold: when rows are served (no label ever sent), the operator reads the
F1 of class 1 (the binary default) against the training F1 less the drop, and the recall of class 0
as named; a threshold the estimate cannot meet turns QualityDegraded True with reason
EstimatedQualityDegraded, naming the metric, its class, its value and the limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner
from sklearn.datasets import load_breast_cancer

from driftloop.conftest import TrainedModel, train
from driftloop.test_loop import API, NAMESPACE, condition, loop_env  # noqa: F401 (a fixture)
from kubeemu.client import KubeClient
from modelops.logic import serving
from promkit import Prometheus, pod_target, service_monitor_relabelling
from serve import modelkit
from serve.conftest import Server

MODEL = "cancer"


@pytest.fixture(scope="module")
def cancer_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    return train(tmp_path_factory.mktemp("cancer-train"), {
        "model": MODEL,
        "dataset": {"uri": "sklearn://breast_cancer", "target": "target"},
        "estimator": {"className": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 2000}},
    })  # fmt: skip


@pytest.fixture
def cancer_server(cancer_model: TrainedModel) -> Iterator[Server]:
    server = Server(cancer_model.path, "--name", MODEL, "--version", f"{MODEL}-v1").wait_ready()
    yield server
    server.close()


def version(model: TrainedModel) -> dict[str, Any]:
    result = model.result
    return {
        "apiVersion": API, "kind": "ModelVersion",
        "metadata": {"name": f"{MODEL}-v1", "namespace": NAMESPACE},
        "spec": {
            "model": MODEL, "version": 1, "task": "classification",
            "artifact": {"uri": result["artifact"]["uri"], "sha256": result["artifact"]["sha256"],
                         "format": result["artifact"]["format"]},
            "metrics": result["metrics"], "signature": result["signature"],
        },
    }  # fmt: skip


def policy(recall_threshold: float) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "DriftPolicy",
        "metadata": {"name": f"{MODEL}-quality", "namespace": NAMESPACE},
        "spec": {
            "deployment": MODEL, "window": "10s", "interval": "2s", "minSamples": 1000000,
            "quality": {"window": "1h", "minFeedback": 100, "thresholds": [
                {"metric": "estimatedF1", "maxDrop": 0.1},
                {"metric": "estimatedRecall", "threshold": recall_threshold, "positiveClass": "0"},
            ]},
            "actions": {"alert": {"enabled": False}},
        },
    }  # fmt: skip


def serve_every_row(server: Server) -> int:
    frame = load_breast_cancer(as_frame=True).data
    for start in range(0, len(frame), 100):
        answer = server.post(f"/v2/models/{MODEL}/infer", json=modelkit.frame_body(frame.iloc[start : start + 100], []))
        assert answer.status_code == 200, answer.text
    return len(frame)


def judged(cluster: KubeClient, name: str) -> dict[str, Any]:
    found = cluster.wait_for(API, "DriftPolicy", NAMESPACE, name,
                             lambda o: condition(o, "QualityDegraded").get("status") in ("True", "False"),
                             timeout=60)  # fmt: skip
    assert found is not None
    return found


def test_the_binary_estimate_is_of_the_positive_class_and_acts_before_labels(
    loop_env: Prometheus, cluster: KubeClient, operator: KopfRunner, cancer_model: TrainedModel,  # noqa: F811
    cancer_server: Server,
) -> None:  # fmt: skip
    prometheus = loop_env
    prometheus.set_relabel_configs(service_monitor_relabelling(serving.SCRAPE_RELABELINGS))
    prometheus.set_targets([pod_target(cancer_server.url.removeprefix("http://"), namespace=NAMESPACE,
                                       service=MODEL, pod=f"{MODEL}-stable-0",
                                       labels={serving.DEPLOYMENT_LABEL: MODEL})])  # fmt: skip
    prometheus.wait_scraped(1)
    trained = cancer_model.result["metrics"]
    assert cancer_model.result["signature"]["classes"] == [0, 1]
    cluster.create(version(cancer_model))
    cluster.create({"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": MODEL, "namespace": NAMESPACE},
                    "spec": {"model": MODEL, "track": "Production"}})  # fmt: skip
    cluster.patch_status(API, "ModelDeployment", NAMESPACE, MODEL, {"status": {"servingVersion": f"{MODEL}-v1"}})
    served = serve_every_row(cancer_server)
    rows = f'sum(modelops_predictions_total{{deployment="{MODEL}"}})'
    prometheus.wait(lambda: (r := prometheus.query(rows)) and float(r[0]["value"][1]) == served, timeout=60,
                    what="every served row scraped")  # fmt: skip

    # Within limits: the estimate of class 1's F1 (no class named: the binary default) and class 0's recall.
    cluster.create(policy(recall_threshold=0.5))
    holding = judged(cluster, f"{MODEL}-quality")
    state = condition(holding, "QualityDegraded")
    assert (state["status"], state["reason"]) == ("False", "QualityWithinLimits"), state
    f1, recall = holding["status"]["quality"]
    assert (f1["metric"], f1["positiveClass"]) == ("estimatedF1", "1"), f1
    assert f1["limit"] == pytest.approx(trained["f1"] - 0.1), f1
    # A well-calibrated model on its own population expects about the F1 it measured in training.
    assert abs(f1["value"] - trained["f1"]) < 0.05, (f1, trained)
    assert f1["evidence"] >= served, f1
    assert (recall["metric"], recall["positiveClass"]) == ("estimatedRecall", "0"), recall
    assert 0.5 < recall["value"] < 1.0, recall

    # A limit the estimate cannot meet: decay, estimated, named with its class — before any label.
    cluster.delete(API, "DriftPolicy", NAMESPACE, f"{MODEL}-quality")
    cluster.wait_for(API, "DriftPolicy", NAMESPACE, f"{MODEL}-quality", lambda o: o is None, timeout=30)
    cluster.create(policy(recall_threshold=0.9999))
    degraded = judged(cluster, f"{MODEL}-quality")
    state = condition(degraded, "QualityDegraded")
    assert (state["status"], state["reason"]) == ("True", "EstimatedQualityDegraded"), state
    assert f"estimatedRecall of class 0 {recall['value']:.4g} is below 0.9999 (threshold 0.9999)" in state["message"]
    assert "estimatedF1" not in state["message"]  # the F1 of class 1 still holds
