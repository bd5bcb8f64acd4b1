"""The generated quality rules, run by the real promtool on counters whose rows are known.

Rows (true and predicted class) are drawn here, split over two pods and counted per minute as
``modelops serve`` counts them; what promtool records must be scikit-learn's accuracy,
precision, recall, F1 and macro F1 on the rows of the window, MAE and RMSE likewise, and the
estimate the formulas of docs/contracts.md on the expected confusion matrix (the sum of the
probability rows by predicted class).
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    recall_score,
)

from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.logic import qualityrules as q
from modelops.logic import serving
from promkit import PROMTOOL, promtool_test

pytestmark = pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed")

CLASSES = ["a", "b", "c", "d"]  # "d": never predicted nor labelled, so not in macro F1 (as scikit-learn)
WINDOW_MINUTES = 5
BASE = 'namespace="ml", deployment="shop", model="churn"'


def owner_rule(windows: list[str]) -> dict[str, Any]:
    spec = ModelDeploymentSpec.model_validate({"model": "churn", "modelVersion": "churn-v1",
                                               "quality": {"windows": windows}})  # fmt: skip
    children = serving.desired_children(
        spec, serving.Owner("shop", "ml", "uid-1"), serving.Traffic("churn-v1", None),
        stable=None, canary=None, image="modelops:dev",
    )  # fmt: skip
    return next(c for c in children.keep if c["kind"] == "PrometheusRule")


def per_minute_rows(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One minute's rows of one pod: true class, predicted class (indices), probability rows."""
    rng = np.random.default_rng(seed)
    n = 40
    truth = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    predicted = np.where(rng.random(n) < 0.7, truth, rng.choice(3, size=n))
    proba = rng.dirichlet([1.0, 1.0, 1.0, 0.2], size=n)
    proba[np.arange(n), predicted] += 2.0  # the predicted class is the most probable one
    proba /= proba.sum(axis=1, keepdims=True)
    return truth, predicted, proba


def counter(name: str, labels: str, step: float) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": f"0+{step!r}x20"}


def classifier_series(pod: str, version: str, seed: int, base: str = BASE) -> list[dict[str, str]]:
    truth, predicted, proba = per_minute_rows(seed)
    where = f'{base}, version="{version}", pod="{pod}"'
    expected = np.zeros((4, 4))
    for row, k in zip(proba, predicted, strict=True):
        expected[k] += row
    series = [counter("modelops_feedback_labels_total", where, len(truth))]
    for i, label in enumerate(CLASSES):
        cls = f'{where}, class="{label}"'
        series += [
            counter("modelops_feedback_correct_total", cls, int(np.sum((truth == i) & (predicted == i)))),
            counter("modelops_feedback_predicted_total", cls, int(np.sum(predicted == i))),
            counter("modelops_feedback_actual_total", cls, int(np.sum(truth == i))),
            counter("modelops_predictions_total", cls, int(np.sum(predicted == i))),
            counter("modelops_expected_correct_total", cls, float(expected[i, i])),
            counter("modelops_expected_actual_total", cls, float(expected[:, i].sum())),
        ]
    return series


def window_rows(seeds: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row the window holds: each pod's minute repeated for every minute of the window."""
    parts = [per_minute_rows(seed) for seed in seeds]
    truth = np.concatenate([p[0] for p in parts] * WINDOW_MINUTES)
    predicted = np.concatenate([p[1] for p in parts] * WINDOW_MINUTES)
    proba = np.concatenate([p[2] for p in parts] * WINDOW_MINUTES)
    return truth, predicted, proba


def regression_series() -> tuple[list[dict[str, str]], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    actual = rng.normal(100, 20, size=25)
    predicted = actual + rng.normal(3, 10, size=25)
    errors = predicted - actual
    where = f'{BASE}, version="churn-reg", pod="p-0"'
    series = [
        counter("modelops_feedback_labels_total", where, len(actual)),
        counter("modelops_feedback_absolute_error_total", where, float(np.abs(errors).sum())),
        counter("modelops_feedback_squared_error_total", where, float((errors**2).sum())),
    ]
    return series, np.tile(actual, WINDOW_MINUTES), np.tile(predicted, WINDOW_MINUTES)


def close(expr: str, value: float, labels: dict[str, str]) -> dict[str, Any]:
    """A promtool case: ``expr`` within 1e-9 of ``value`` (summation order may differ in the last bits)."""
    return {"expr": f"abs({expr} - {float(value)!r}) < bool 1e-9", "eval_time": "10m",
            "exp_samples": [{"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}",
                             "value": 1}]}  # fmt: skip


def run_promtool(tmp_path: Path, rule: dict[str, Any], tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    return promtool_test(tmp_path, rule["spec"]["groups"], tests)


def version_labels(version: str, window: str = "5m") -> dict[str, str]:
    return {"namespace": "ml", "deployment": "shop", "model": "churn", "version": version, "window": window}


def cases() -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    seeds = [1, 2]
    series = [s for i, seed in enumerate(seeds) for s in classifier_series(f"p-{i}", "churn-v1", seed)]
    # Another deployment's counters of the same model and version must not count.
    series += classifier_series("p-9", "churn-v1", 3, BASE.replace('"shop"', '"other"'))
    reg_series, reg_actual, reg_predicted = regression_series()
    series += reg_series
    truth, predicted, proba = window_rows(seeds)
    y_true = np.array(CLASSES)[truth]
    y_pred = np.array(CLASSES)[predicted]
    v1 = version_labels("churn-v1")
    tests: list[dict[str, Any]] = [
        close(f"{q.LABELS}{{version='churn-v1', window='5m'}}", float(len(truth)), v1),
        close(f"{q.ACCURACY}{{window='5m'}}", accuracy_score(y_true, y_pred), v1),
        close(f"{q.MACRO_F1}{{window='5m'}}", f1_score(y_true, y_pred, average="macro"), v1),
    ]
    present = sorted(set(y_true) | set(y_pred))
    assert "d" not in present
    precision = precision_score(y_true, y_pred, average=None, labels=present)
    recall = recall_score(y_true, y_pred, average=None, labels=present)
    f1 = f1_score(y_true, y_pred, average=None, labels=present)
    for i, label in enumerate(present):
        with_class = {**v1, "class": label}
        tests += [
            close(f"{q.PRECISION}{{class='{label}', window='5m'}}", precision[i], with_class),
            close(f"{q.RECALL}{{class='{label}', window='5m'}}", recall[i], with_class),
            close(f"{q.F1}{{class='{label}', window='5m'}}", f1[i], with_class),
        ]
    # No evidence for "d": nothing recorded rather than a made-up 0.
    tests.append({"expr": f"{q.F1}{{class='d'}} or {q.PRECISION}{{class='d'}} or {q.RECALL}{{class='d'}}",
                  "eval_time": "10m", "exp_samples": []})  # fmt: skip
    # The estimate: the formulas on the expected confusion matrix (rows: predicted).
    expected = np.zeros((4, 4))
    for row, k in zip(proba, predicted, strict=True):
        expected[k] += row
    served = expected.sum(axis=1)
    tests += [
        close(f"{q.PREDICTIONS}{{window='5m'}}", float(len(predicted)), v1),
        close(f"{q.ESTIMATED_ACCURACY}{{window='5m'}}", float(np.trace(expected) / served.sum()), v1),
    ]
    estimated_f1 = []
    for i, label in enumerate(CLASSES):
        correct, column = expected[i, i], expected[:, i].sum()
        with_class = {**v1, "class": label}
        tests.append(close(f"{q.ESTIMATED_RECALL}{{class='{label}', window='5m'}}", correct / column, with_class))
        if served[i] > 0:
            tests.append(close(f"{q.ESTIMATED_PRECISION}{{class='{label}', window='5m'}}", correct / served[i],
                               with_class))  # fmt: skip
        estimated_f1.append(2 * correct / (served[i] + column))
        tests.append(close(f"{q.ESTIMATED_F1}{{class='{label}', window='5m'}}", estimated_f1[-1], with_class))
    tests.append(close(f"{q.ESTIMATED_MACRO_F1}{{window='5m'}}", float(np.mean(estimated_f1)), v1))
    reg = version_labels("churn-reg")
    tests += [
        close(f"{q.MAE}{{window='5m'}}", mean_absolute_error(reg_actual, reg_predicted), reg),
        close(f"{q.RMSE}{{window='5m'}}", math.sqrt(mean_squared_error(reg_actual, reg_predicted)), reg),
        # A regressor has no classification figures, a classifier no regression ones.
        {"expr": f"{q.ACCURACY}{{version='churn-reg'}} or {q.MAE}{{version='churn-v1'}}", "eval_time": "10m",
         "exp_samples": []},
    ]  # fmt: skip
    return series, tests


def test_recorded_quality_is_scikit_learns_on_the_windows_rows(tmp_path: Path) -> None:
    series, tests = cases()
    result = run_promtool(tmp_path, owner_rule(["5m", "1h"]), [{"interval": "1m", "input_series": series,
                                                                  "promql_expr_test": tests}])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_window_is_recorded_under_its_own_label(tmp_path: Path) -> None:
    series, _ = cases()
    # The 1h window at minute 10 holds every row since minute 0: twice the 5m window's labels.
    v1 = version_labels("churn-v1", "1h")
    labels_5m = float(len(window_rows([1, 2])[0]))
    tests = [close(f"{q.LABELS}{{version='churn-v1', window='1h'}}", 2 * labels_5m, v1)]
    result = run_promtool(tmp_path, owner_rule(["5m", "1h"]), [{"interval": "1m", "input_series": series,
                                                                  "promql_expr_test": tests}])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_fails_when_the_figure_is_wrong(tmp_path: Path) -> None:
    """The harness can fail: an accuracy off by 1e-6 is refused."""
    series, _ = cases()
    truth, predicted, _ = window_rows([1, 2])
    wrong = accuracy_score(truth, predicted) + 1e-6
    tests = [close(f"{q.ACCURACY}{{window='5m'}}", wrong, version_labels("churn-v1"))]
    result = run_promtool(tmp_path, owner_rule(["5m"]), [{"interval": "1m", "input_series": series,
                                                          "promql_expr_test": tests}])  # fmt: skip
    assert result.returncode != 0


def test_the_default_windows_and_their_labels() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": "churn", "track": "Production"})
    assert spec.quality.windows == ["1h", "24h"]
    rule = owner_rule(["1h", "24h"])
    quality = rule["spec"]["groups"][1]
    assert quality["name"] == "modelops-quality-ml-shop"
    windows = {r["labels"]["window"] for r in quality["rules"]}
    assert windows == {"1h", "24h"}
    assert all('deployment="shop"' in r["expr"] for r in quality["rules"])


def test_windows_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="each window once"):
        ModelDeploymentSpec.model_validate({"model": "churn", "track": "Production",
                                            "quality": {"windows": ["1h", "1h"]}})  # fmt: skip


@pytest.mark.parametrize("window", ["0s", "30s", "59999ms"])
def test_windows_shorter_than_a_minute_are_refused(window: str) -> None:
    with pytest.raises(ValueError, match=f"quality.windows: '{window}' is shorter than 1m"):
        ModelDeploymentSpec.model_validate({"model": "churn", "track": "Production",
                                            "quality": {"windows": ["1h", window]}})  # fmt: skip


def test_status_query_and_entries() -> None:
    scope = q.Scope("ml", "shop", "churn")
    query = q.status_query(scope, "1h")
    assert query.startswith('{namespace="ml", deployment="shop", model="churn", __name__=~"modelops_quality:labels|')
    assert query.endswith('window="1h"}')
    samples = [
        ({"__name__": q.ACCURACY, "version": "v1"}, 0.9),
        ({"__name__": q.LABELS, "version": "v1"}, 1200.5),
        ({"__name__": q.ESTIMATED_MACRO_F1, "version": "v2"}, 0.8),
        ({"__name__": q.MACRO_F1, "version": "v2"}, float("nan")),  # no figure, not a NaN in status
        ({"__name__": q.ACCURACY, "version": "v0"}, 0.5),  # neither stable nor canary: left out
        ({"__name__": q.F1, "version": "v1"}, 0.7),  # a per-class figure: not in status
    ]
    entries = q.version_quality(samples, {"v2": "canary", "v1": "stable"}, "1h")
    assert entries == [
        {"version": "v1", "role": "stable", "window": "1h", "accuracy": 0.9, "labels": 1200.5},
        {"version": "v2", "role": "canary", "window": "1h", "estimatedMacroF1": 0.8},
    ]


@pytest.mark.parametrize(
    ("status", "roles"),
    [
        ({}, {}),
        ({"stableVersion": "v1"}, {"v1": "stable"}),
        ({"stableVersion": "v1", "canaryVersion": "v2"}, {"v1": "stable", "v2": "canary"}),
        ({"stableVersion": "v1", "canaryVersion": "v1"}, {"v1": "stable"}),
        ({"stableVersion": 3, "canaryVersion": ""}, {}),
    ],
)
def test_whose_quality_the_status_shows(status: dict[str, Any], roles: dict[str, str]) -> None:
    assert q.shown_versions(status) == roles


def test_one_namespace_query_answers_what_each_deployments_own_query_answers() -> None:
    scope = q.Scope("ml", "shop", "churn")
    query = q.namespace_status_query("ml", "1h")
    assert query == q.status_query(scope, "1h").replace(', deployment="shop", model="churn"', "")
    assert query.startswith('{namespace="ml", __name__=~"modelops_quality:labels|')
    # The namespace's answer: this deployment's series among another deployment's, another model's (a
    # deployment that changed model), and a series without the model label (PromQL reads it as model="").
    mine = [({"__name__": q.ACCURACY, "namespace": "ml", "deployment": "shop", "model": "churn", "version": "v1"},
             0.9),
            ({"__name__": q.LABELS, "namespace": "ml", "deployment": "shop", "model": "churn", "version": "v2"},
             40.0)]  # fmt: skip
    others = [
        ({"__name__": q.ACCURACY, "namespace": "ml", "deployment": "shop-eu", "model": "churn", "version": "v1"}, 0.1),
        ({"__name__": q.ACCURACY, "namespace": "ml", "deployment": "shop", "model": "fraud", "version": "v1"}, 0.2),
        ({"__name__": q.ACCURACY, "namespace": "ml", "deployment": "shop", "version": "v1"}, 0.3),
        ({"__name__": q.ACCURACY, "namespace": "ml-2", "deployment": "shop", "model": "churn", "version": "v1"}, 0.4),
    ]
    answer = [others[0], mine[0], *others[1:], mine[1]]
    grouped = q.by_scope(answer)
    assert grouped[scope] == mine
    assert grouped[q.Scope("ml", "shop", "")] == others[2:3]
    assert sum(map(len, grouped.values())) == len(answer)  # every series under one scope only
    assert [len(grouped[q.Scope(*key)]) for key in [("ml", "shop-eu", "churn"), ("ml", "shop", "fraud")]] == [1, 1]
    roles = {"v1": "stable", "v2": "canary"}
    assert q.version_quality(grouped[scope], roles, "1h") == q.version_quality(mine, roles, "1h")
