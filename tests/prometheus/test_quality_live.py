"""Live quality end to end: real model servers, labels sent back, counters read from a real Prometheus.

Two replicas of one deployment (two workers each) share the keys, as a ModelDeployment's pods
share the namespace's Secret; Prometheus scrapes them with the relabelling the operator's
ServiceMonitor asks for (``logic.serving.SCRAPE_RELABELINGS``, applied by Prometheus itself). Held-out
rows go through the replicas with their true labels known to the test only; every label is sent to
the replica that did not predict it. What Prometheus then holds, summed over the pods of the
deployment, must be scikit-learn's own figures on those rows: the confusion matrix exactly;
accuracy, F1 (binary, the second class positive), MAE and RMSE computed in PromQL from the counters
to 1e-9; and the expected confusion matrix, the sum of the predict_proba rows by predicted class.
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, mean_absolute_error, mean_squared_error

from modelops.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelops.controller import quality
from modelops.logic import qualityrules, serving
from modelops.logic.serving import SCRAPE_RELABELINGS
from promkit import Prometheus, pod_target, service_monitor_relabelling
from serve import modelkit
from serve.conftest import Server
from serve.test_feedback_parts import one_key_dir

pytestmark = pytest.mark.slow  # labels through real servers into a real Prometheus

DEPLOYMENT = "quality"


@pytest.fixture
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[modelkit.ModelDir, Any]]:
    kind = request.param
    keys_dir = one_key_dir(tmp_path / "keys")
    build = {"classification": modelkit.breast_cancer, "iris": modelkit.iris, "regression": modelkit.diabetes}[kind]
    model = build(tmp_path / kind)
    load = {"classification": load_breast_cancer, "iris": load_iris, "regression": load_diabetes}[kind]
    dataset = load(as_frame=True)
    test_y = modelkit._split(dataset.data, dataset.target)[3]
    servers = [
        Server(model.path, "--workers", "2", "--feedback-keys", str(keys_dir), "--feedback-scope", f"ml/{DEPLOYMENT}")
        for _ in range(2)
    ]
    try:
        for server in servers:
            server.wait_ready()
        yield model, (servers, test_y)
    finally:
        for server in servers:
            server.close()


def scrape(prometheus: Prometheus, servers: list[Server]) -> None:
    prometheus.set_relabel_configs(service_monitor_relabelling(copy.deepcopy(SCRAPE_RELABELINGS)))
    prometheus.set_targets([
        pod_target(f"127.0.0.1:{s.port}", namespace="ml", service=DEPLOYMENT, pod=f"{DEPLOYMENT}-{i}",
                   labels={"modelops.io/deployment": DEPLOYMENT, "modelops.io/version": "1"})
        for i, s in enumerate(servers)
    ])  # fmt: skip
    prometheus.wait_scraped(len(servers))


def value(prometheus: Prometheus, promql: str) -> float:
    result = prometheus.query(promql)
    assert len(result) == 1, (promql, result)
    return float(result[0]["value"][1])


def wait_counted_and_evaluated(prometheus: Prometheus, raw: str, expected: int, recorded: str, what: str) -> None:
    """Wait until ``raw`` (a sum of counters) is ``expected``, then until the rules wrote ``recorded``
    (a recorded series) on a scrape made after that: every count is in what the rules record."""
    prometheus.wait(lambda: prometheus.query(raw) and value(prometheus, raw) == expected, timeout=60,
                    what=f"every {what} scraped")  # fmt: skip
    complete_at = time.time()
    evaluated = f"timestamp({recorded})"
    prometheus.wait(lambda: prometheus.query(evaluated) and value(prometheus, evaluated) > complete_at + 1,
                    timeout=60, what=f"the rules evaluated on every {what}")  # fmt: skip


def predict_everything(model: modelkit.ModelDir, servers: list[Server]) -> list[tuple[int, str, Any]]:
    """Every held-out row through a replica (rows one by one, then batches): (server index, id, row or rows)."""
    x = model.test_x.to_numpy(dtype=np.float64)
    sent: list[tuple[int, str, Any]] = []
    cut = len(x) // 2
    for i in range(cut):
        body = {"inputs": [{"name": "x", "shape": [1, x.shape[1]], "datatype": "FP64", "data": x[i].tolist()}]}
        r = servers[i % 2].post(f"/v2/models/{model.name}/infer", json=body)
        assert r.status_code == 200, r.text
        sent.append((i % 2, r.json()["id"], i))
    for start in range(cut, len(x), 10):
        rows = list(range(start, min(start + 10, len(x))))
        body = {"inputs": [{"name": "x", "shape": [len(rows), x.shape[1]], "datatype": "FP64",
                            "data": x[rows].ravel().tolist()}], "id": f"batch-{start}"}  # fmt: skip
        r = servers[start % 2].post(f"/v2/models/{model.name}/infer", json=body)
        assert r.status_code == 200, r.text
        sent.append((start % 2, r.json()["parameters"]["feedback_id"], rows))
    return sent


def send_labels(
    model: modelkit.ModelDir, servers: list[Server], sent: list[tuple[int, str, Any]], y: Any, *, to: int | None = None
) -> None:
    """Each label to the replica that did not predict it (or all to replica ``to``)."""
    for origin, fid, rows in sent:
        other = servers[1 - origin if to is None else to]
        truth = y[rows].item() if isinstance(rows, int) else [v.item() for v in y[rows]]
        r = other.post(f"/v2/models/{model.name}/feedback", json={"id": fid, "actual": truth})
        assert r.status_code == 200, r.text
        assert r.json()["counted"] == (1 if isinstance(rows, int) else len(rows))


@pytest.mark.parametrize("replicas", ["classification"], indirect=True)
def test_live_confusion_matrix_accuracy_and_f1_are_scikit_learns(
    prometheus: Prometheus, replicas: tuple[modelkit.ModelDir, Any]
) -> None:
    model, (servers, y) = replicas
    scrape(prometheus, servers)
    sent = predict_everything(model, servers)
    send_labels(model, servers, sent, y)
    predicted = model.pipeline.predict(model.test_x)
    expected = confusion_matrix(y, predicted, labels=[0, 1])
    where = f'namespace="ml",deployment="{DEPLOYMENT}",version="1"'

    def confusion() -> np.ndarray:
        out = np.zeros((2, 2))
        promql = f"sum by (predicted, actual) (modelops_feedback_confusion_total{{{where}}})"
        for sample in prometheus.query(promql):
            out[int(sample["metric"]["actual"]), int(sample["metric"]["predicted"])] = float(sample["value"][1])
        return out

    prometheus.wait(lambda: np.array_equal(confusion(), expected), timeout=60, what="every label scraped")
    np.testing.assert_array_equal(confusion(), expected)  # rows: actual, as scikit-learn's

    labels = f"sum(modelops_feedback_labels_total{{{where}}})"
    correct = f"sum(modelops_feedback_correct_total{{{where}}})"
    assert value(prometheus, labels) == len(y)
    assert value(prometheus, f"{correct} / {labels}") == pytest.approx(accuracy_score(y, predicted), abs=1e-9)
    positive = f'{where},class="1"'
    f1 = (
        f"2 * sum(modelops_feedback_correct_total{{{positive}}}) / (sum(modelops_feedback_predicted_total"
        f"{{{positive}}}) + sum(modelops_feedback_actual_total{{{positive}}}))"
    )
    assert value(prometheus, f1) == pytest.approx(f1_score(y, predicted, pos_label=1), abs=1e-9)

    # The estimate: the sum of the predict_proba rows, by predicted class, summed over both replicas
    # (a worker adds a single row's share to its array within a second; wait for every row to be there).
    served = f"sum(modelops_predictions_total{{{where}}})"
    prometheus.wait(lambda: value(prometheus, served) == len(y), timeout=60, what="every prediction scraped")
    proba = model.pipeline.predict_proba(model.test_x)
    expected_cells = np.zeros((2, 2))
    for row, k in zip(proba, predicted, strict=True):
        expected_cells[k] += row
    for k in (0, 1):
        for c in (0, 1):
            promql = f'sum(modelops_expected_confusion_total{{{where},predicted="{k}",actual="{c}"}})'
            assert value(prometheus, promql) == pytest.approx(expected_cells[k, c], rel=1e-9, abs=1e-12)
    estimated = (
        f"sum(modelops_expected_correct_total{{{where}}}) / sum(modelops_predictions_total{{{where}}})"
    )
    assert value(prometheus, estimated) == pytest.approx(proba.max(axis=1).mean(), abs=1e-9)


@pytest.mark.parametrize("replicas", ["regression"], indirect=True)
def test_live_mae_and_rmse_are_scikit_learns(prometheus: Prometheus, replicas: tuple[modelkit.ModelDir, Any]) -> None:
    model, (servers, y) = replicas
    scrape(prometheus, servers)
    sent = predict_everything(model, servers)
    send_labels(model, servers, sent, y)
    predicted = model.pipeline.predict(model.test_x)
    where = f'namespace="ml",deployment="{DEPLOYMENT}",version="1"'
    labels = f"sum(modelops_feedback_labels_total{{{where}}})"
    prometheus.wait(lambda: prometheus.query(labels) and value(prometheus, labels) == len(y), timeout=60,
                    what="every label scraped")  # fmt: skip
    mae = f"sum(modelops_feedback_absolute_error_total{{{where}}}) / {labels}"
    rmse = f"sqrt(sum(modelops_feedback_squared_error_total{{{where}}}) / {labels})"
    bias = (
        f"(sum(modelops_feedback_overestimate_total{{{where}}}) - sum(modelops_feedback_underestimate_total"
        f"{{{where}}})) / {labels}"
    )
    assert value(prometheus, mae) == pytest.approx(mean_absolute_error(y, predicted), rel=1e-9)
    assert value(prometheus, rmse) == pytest.approx(math.sqrt(mean_squared_error(y, predicted)), rel=1e-9)
    assert value(prometheus, bias) == pytest.approx(float(np.mean(predicted - y)), rel=1e-9, abs=1e-9)


def quality_rules(tmp_path: Path, model: str, kind: str = "quality") -> Path:
    """The ``kind`` group (quality, fairness) of the PrometheusRule the operator generates for this deployment,
    as a rule file."""
    spec = ModelDeploymentSpec.model_validate({"model": model, "modelVersion": "1", "quality": {"windows": ["1h"]}})
    children = serving.desired_children(spec, serving.Owner(DEPLOYMENT, "ml", "uid-1"), serving.Traffic("1", None),
                                        stable=None, canary=None, image="modelops:dev")  # fmt: skip
    rule = next(c for c in children.keep if c["kind"] == "PrometheusRule")
    groups = [g for g in rule["spec"]["groups"] if g["name"].startswith(f"modelops-{kind}-")]
    path = tmp_path / f"{kind}-rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    return path


@pytest.mark.parametrize("replicas", ["classification", "iris"], indirect=True)
def test_recorded_accuracy_and_macro_f1_are_scikit_learns(
    prometheus: Prometheus, replicas: tuple[modelkit.ModelDir, Any], tmp_path: Path
) -> None:
    """The operator's recording rules, evaluated by the real Prometheus, on labels sent back live.

    Both replicas predict; every label is counted by replica 0, whichever replica issued its id, so
    that increase()'s extrapolation (by each pod's own scrape times) scales numerator and denominator
    alike and the ratios are exact (docs/quality.md says what a mix of pods costs). For iris, whose
    held-out rows the model gets all right, every third label sent is another class: the truth is
    what the business says, and the figures must follow it.
    """
    model, (servers, y) = replicas
    truth = np.asarray(y).copy()
    if model.name == "iris":
        truth[::3] = (truth[::3] + 1) % 3
    prometheus.set_rule_files([quality_rules(tmp_path, model.name)])
    scrape(prometheus, servers)
    sent = predict_everything(model, servers)
    send_labels(model, servers, sent, truth, to=0)
    predicted = model.pipeline.predict(model.test_x if model.name != "iris" else model.test_x.to_numpy())
    where = f'namespace="ml",deployment="{DEPLOYMENT}",model="{model.name}",version="1"'
    raw = f"sum(modelops_feedback_labels_total{{{where}}})"
    recorded = f'{where},window="1h"'
    wait_counted_and_evaluated(prometheus, raw, len(truth), f"{qualityrules.LABELS}{{{recorded}}}", "label")

    accuracy = value(prometheus, f"{qualityrules.ACCURACY}{{{recorded}}}")
    macro_f1 = value(prometheus, f"{qualityrules.MACRO_F1}{{{recorded}}}")
    assert accuracy == pytest.approx(accuracy_score(truth, predicted), abs=1e-9)
    assert macro_f1 == pytest.approx(f1_score(truth, predicted, average="macro"), abs=1e-9)
    assert accuracy < 1.0  # the figures are not trivially perfect
    for label in sorted(set(truth) | set(predicted)):
        f1 = value(prometheus, f'{qualityrules.F1}{{{recorded},class="{label}"}}')
        assert f1 == pytest.approx(f1_score(truth, predicted, labels=[label], average="macro"), abs=1e-9)
    # The labels behind the figures: increase() extrapolates to the window's end, so at least all of them.
    assert value(prometheus, f"{qualityrules.LABELS}{{{recorded}}}") >= len(truth)
    # The estimate is both replicas' rows (each pod's share weighted by its scrape times): near the mean
    # top probability of the rows, not to 1e-9.
    proba = model.pipeline.predict_proba(model.test_x if model.name != "iris" else model.test_x.to_numpy())
    estimated = value(prometheus, f"{qualityrules.ESTIMATED_ACCURACY}{{{recorded}}}")
    assert estimated == pytest.approx(proba.max(axis=1).mean(), abs=0.05)

    # What the operator's timer writes into the deployment's status.quality, read through the same API.
    scope = qualityrules.Scope("ml", DEPLOYMENT, model.name)
    measured = asyncio.run(quality.read(prometheus.url, scope, "1h", {"1": "stable"}))
    assert measured is not None, "no answer from Prometheus"
    (entry,) = measured.entries
    assert (entry["version"], entry["role"], entry["window"]) == ("1", "stable", "1h")
    assert entry["accuracy"] == pytest.approx(accuracy_score(truth, predicted), abs=1e-9)
    assert entry["macroF1"] == pytest.approx(f1_score(truth, predicted, average="macro"), abs=1e-9)
    assert entry["labels"] >= len(truth)
    assert entry["predictions"] >= len(truth)
    assert "mae" not in entry  # a classifier's status has no regression figures
    ModelDeploymentStatus.model_validate({"quality": [entry]})  # the CRD's shape
