"""The builtin ``quality`` check end to end below the operator: labels sent back to real servers, read
from a real Prometheus by ``modelops.controller.analysis.measure`` exactly as the controller calls it.

Three versions of an iris model serve as pods of the ModelDeployment ``iris`` with the namespace's
feedback keys: the stable (``iris-v1``, a logistic regression), a healthy canary (``iris-v2``, the
same family regularised more) and a bad one (``iris-v3``, a depth-1 tree, which cannot tell two of
the three species apart). Every iris row goes through each; until their labels come back the check
is inconclusive, after that the bad canary fails on its accuracy, by the figure scikit-learn gives
on the same rows, and the healthy one passes. Before any label, the estimated F1 of one class (CBPE)
already fails the bad canary, by the figure its probabilities give.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from modelops.api.modeldeployment import AnalysisSpec
from modelops.controller.analysis import AnalysisTarget, measure
from modelops.logic import serving
from promkit import BINARY, Prometheus, pod_target, service_monitor_relabelling
from serve import modelkit
from serve.conftest import Server
from serve.test_feedback_parts import one_key_dir

NAMESPACE = "ml"
MODEL = "iris"
STABLE, HEALTHY, BAD = "iris-v1", "iris-v2", "iris-v3"
ESTIMATORS: dict[str, Any] = {
    STABLE: LogisticRegression(max_iter=2000),
    HEALTHY: LogisticRegression(max_iter=2000, C=0.5),
    BAD: DecisionTreeClassifier(max_depth=1, random_state=0),
}


@dataclass
class Labelled:
    """The servers, the Prometheus scraping them, and each version's predictions of every iris row."""

    servers: dict[str, Server]
    prometheus: Prometheus
    x: np.ndarray
    y: np.ndarray
    predicted: dict[str, np.ndarray]
    confidence: dict[str, float]  # the mean top probability of every row: the estimated accuracy
    proba: dict[str, np.ndarray]  # every row's predicted probabilities
    ids: dict[str, list[str]]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Labelled]:
    if not Path(BINARY).exists():
        pytest.skip("Debian's prometheus is not installed (.ci/run installs it: apt-get install prometheus)")
    base = tmp_path_factory.mktemp("quality-check")
    keys = one_key_dir(base / "keys")
    data = load_iris(as_frame=True)
    train_x, test_x, train_y, _ = modelkit._split(data.data, data.target)
    servers: dict[str, Server] = {}
    pipelines: dict[str, Pipeline] = {}
    relabelling = service_monitor_relabelling(serving.SCRAPE_RELABELINGS)
    prometheus = Prometheus(base / "prometheus", relabel_configs=relabelling)
    try:
        for version, estimator in ESTIMATORS.items():
            pipelines[version] = Pipeline([("scale", StandardScaler()), ("clf", estimator)]).fit(train_x, train_y)
            model_dir = modelkit.write_model_dir(base / version, name=MODEL, pipeline=pipelines[version],
                                                 train_x=train_x, test_x=test_x, task="classification")  # fmt: skip
            servers[version] = Server(model_dir.path, "--version", version, "--feedback-keys", str(keys),
                                      "--feedback-scope", f"{NAMESPACE}/{MODEL}")  # fmt: skip
        for server in servers.values():
            server.wait_ready()
        prometheus.set_targets([
            pod_target(f"127.0.0.1:{server.port}", namespace=NAMESPACE, service=MODEL, pod=f"{MODEL}-{version}-0",
                       labels={serving.DEPLOYMENT_LABEL: MODEL, serving.VERSION_LABEL: version})
            for version, server in servers.items()
        ])  # fmt: skip
        prometheus.start()
        prometheus.wait_scraped(len(servers))
        x = data.data.to_numpy(dtype=np.float64)
        predicted: dict[str, np.ndarray] = {}
        ids: dict[str, list[str]] = {}
        for version, server in servers.items():
            ids[version] = []
            for start in range(0, len(x), 25):
                rows = x[start : start + 25]
                body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64",
                                    "data": rows.ravel().tolist()}]}  # fmt: skip
                answer = server.post(f"/v2/models/{MODEL}/infer", json=body)
                assert answer.status_code == 200, answer.text
                ids[version].append(answer.json()["id"])
            predicted[version] = pipelines[version].predict(data.data)
        proba = {v: p.predict_proba(data.data) for v, p in pipelines.items()}
        confidence = {v: float(p.max(axis=1).mean()) for v, p in proba.items()}
        yield Labelled(servers, prometheus, x, data.target.to_numpy(), predicted, confidence, proba, ids)
    finally:
        prometheus.stop()
        for server in servers.values():
            server.close()


def send_labels(fleet: Labelled, version: str) -> None:
    for i, fid in enumerate(fleet.ids[version]):
        truth = fleet.y[i * 25 : (i + 1) * 25].tolist()
        answer = fleet.servers[version].post(f"/v2/models/{MODEL}/feedback", json={"id": fid, "actual": truth})
        assert answer.status_code == 200, answer.text
        assert answer.json()["counted"] == len(truth)


def wait_labels(fleet: Labelled, version: str) -> None:
    promql = f'sum(modelops_feedback_labels_total{{deployment="{MODEL}",version="{version}"}})'

    def scraped() -> bool:
        result = fleet.prometheus.query(promql)
        return bool(result) and float(result[0]["value"][1]) == len(fleet.y)

    fleet.prometheus.wait(scraped, timeout=60, what=f"the labels of {version} scraped")


def spec(fleet: Labelled, limit: int = 1, **quality: Any) -> AnalysisSpec:
    """The quality check alone; one failed measurement fails it unless ``limit`` says otherwise."""
    return AnalysisSpec.model_validate({
        "interval": "5s", "failureLimit": limit, "prometheus": {"address": fleet.prometheus.url},
        "builtin": {"errorRate": None, "latency": None, "quality": {"minFeedback": 100, "maxDrop": 0.05, **quality}},
    })  # fmt: skip


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def target(canary: str) -> AnalysisTarget:
    return AnalysisTarget(namespace=NAMESPACE, deployment=MODEL, model=MODEL, stable_version=STABLE,
                          canary_version=canary)  # fmt: skip


async def test_quality_waits_for_labels_then_judges_the_canary_against_the_stable(fleet: Labelled) -> None:
    # Before any label: the estimate already tells the depth-1 tree (unsure between two species) from the stable.
    for version in (STABLE, BAD):
        rows = f'sum(modelops_predictions_total{{deployment="{MODEL}",version="{version}"}})'
        fleet.prometheus.wait(lambda rows=rows: (r := fleet.prometheus.query(rows)) and float(r[0]["value"][1]) == 150,
                              timeout=60, what=f"the rows of {version} scraped")  # fmt: skip
    early = await measure(spec(fleet, metric="estimatedAccuracy"), target(BAD), None, now=now())
    assert early.phase == "Failed", early.results
    assert early.results[0].value == pytest.approx(fleet.confidence[BAD], abs=1e-9)
    assert f"below the stable's {fleet.confidence[STABLE]:.4g}" in early.results[0].message
    # The rows behind both figures (increase() extrapolates them to the window's edges: at least 150 each).
    assert re.search(r"\((\d+) and (\d+) rows\)$", early.results[0].message)

    # Served, but no label back yet: inconclusive, held under the default policy (Pause).
    verdict = await measure(spec(fleet, limit=3), target(BAD), None, now=now())
    assert verdict.phase == "Inconclusive"
    assert verdict.results[0].name == "quality"
    assert "the canary has 0 labels in the last 1h, minFeedback 100" in verdict.results[0].message

    # The canary's labels alone are not enough: the stable needs its minFeedback too.
    send_labels(fleet, BAD)
    wait_labels(fleet, BAD)
    verdict = await measure(spec(fleet, limit=3), target(BAD), None, now=now())
    assert verdict.phase == "Inconclusive"
    assert "the stable has 0 labels" in verdict.results[0].message
    # ... and the Pass policy lets it through.
    passed = await measure(spec(fleet).model_copy(update={"inconclusive_policy": "Pass"}), target(BAD), None, now=now())
    assert passed.phase == "Successful"

    send_labels(fleet, STABLE)
    send_labels(fleet, HEALTHY)
    wait_labels(fleet, STABLE)
    wait_labels(fleet, HEALTHY)
    bad_accuracy = accuracy_score(fleet.y, fleet.predicted[BAD])
    stable_accuracy = accuracy_score(fleet.y, fleet.predicted[STABLE])
    assert stable_accuracy - bad_accuracy > 0.05  # the scenario is what it says

    verdict = await measure(spec(fleet), target(BAD), None, now=now())
    result = verdict.results[0]
    assert verdict.phase == "Failed", result
    assert verdict.failing is not None
    assert verdict.failing[0] == "quality"
    # One pod counted every label of its version, so the ratio is exact despite increase()'s extrapolation.
    assert result.value == pytest.approx(bad_accuracy, abs=1e-9)
    assert f"below the stable's {stable_accuracy:.4g}, more than maxDrop 0.05" in result.message

    healthy = await measure(spec(fleet), target(HEALTHY), None, now=now())
    assert healthy.phase == "Successful", healthy.results
    assert healthy.results[0].value == pytest.approx(accuracy_score(fleet.y, fleet.predicted[HEALTHY]), abs=1e-9)

    # Macro F1 too, and a minFeedback above the labels there are holds the verdict again.
    macro = await measure(spec(fleet, metric="macroF1"), target(BAD), None, now=now())
    assert macro.phase == "Failed"
    assert macro.results[0].value == pytest.approx(f1_score(fleet.y, fleet.predicted[BAD], average="macro"),
                                                      abs=1e-9)  # fmt: skip
    starved = await measure(spec(fleet, limit=3, minFeedback=len(fleet.y) * 2), target(BAD), None, now=now())
    assert starved.phase == "Inconclusive"


def estimated_f1(fleet: Labelled, version: str, positive: int) -> float:
    """CBPE's F1 of one class from the probabilities alone: the expected true positives of the rows
    predicted ``positive``, twice, over those rows plus the expected rows of the class."""
    proba, predicted = fleet.proba[version][:, positive], fleet.predicted[version]
    return float(2 * proba[predicted == positive].sum() / ((predicted == positive).sum() + proba.sum()))


async def test_an_estimated_f1_of_one_class_judges_the_canary_before_labels(fleet: Labelled) -> None:
    for version in (STABLE, BAD, HEALTHY):
        rows = f'sum(modelops_predictions_total{{deployment="{MODEL}",version="{version}"}})'
        fleet.prometheus.wait(lambda rows=rows: (r := fleet.prometheus.query(rows)) and float(r[0]["value"][1]) == 150,
                              timeout=60, what=f"the rows of {version} scraped")  # fmt: skip
    stable, bad = estimated_f1(fleet, STABLE, 1), estimated_f1(fleet, BAD, 1)
    assert stable - bad > 0.05  # the depth-1 tree cannot tell versicolor from virginica, and knows it
    verdict = await measure(spec(fleet, metric="estimatedF1", positiveClass="1"), target(BAD), None, now=now())
    result = verdict.results[0]
    assert verdict.phase == "Failed", result
    # One pod served every row of its version: the figures are exact, by the probabilities alone.
    assert result.value == pytest.approx(bad, abs=1e-9)
    assert f"estimatedF1 of class 1 {bad:.4g} is " in result.message
    assert f"below the stable's {stable:.4g}" in result.message
    # The more regularised logistic regression is less sure of itself (about 0.05 lower): within 0.1.
    assert stable - estimated_f1(fleet, HEALTHY, 1) < 0.1
    healthy = await measure(spec(fleet, metric="estimatedF1", positiveClass="1", maxDrop=0.1), target(HEALTHY), None,
                            now=now())  # fmt: skip
    assert healthy.phase == "Successful", healthy.results
    assert healthy.results[0].value == pytest.approx(estimated_f1(fleet, HEALTHY, 1), abs=1e-9)
