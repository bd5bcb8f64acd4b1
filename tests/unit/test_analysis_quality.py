"""The builtin canary check ``quality``: its PromQL, and the decision as a table of cases.

The queries' numbers are checked against scikit-learn through promtool (the same counters, the
same rows) so that the canary check and the recording rules say the same thing; the decision is
a pure function of the two versions' readings.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    recall_score,
)

from modelops.api.modeldeployment import AnalysisSpec, QualityCheck
from modelops.logic import analysis as a
from modelops.logic.analysis import AnalysisTarget, QualityReading
from promkit import PROMTOOL, promtool_test

NOW = "2025-01-01T00:00:00Z"
TARGET = AnalysisTarget(namespace="ml", deployment="iris", model="iris", stable_version="iris-v1",
                        canary_version="iris-v2")  # fmt: skip


def check(**fields: Any) -> QualityCheck:
    return QualityCheck.model_validate({"minFeedback": 100, "maxDrop": 0.02, **fields})


@pytest.mark.parametrize(
    ("fields", "canary", "stable", "phase", "words"),
    [
        # Enough labels on both sides: judged on the drop.
        ({}, (0.90, 500), (0.91, 800), "Successful", "accuracy 0.9 against the stable's 0.91, within maxDrop 0.02"),
        ({}, (0.85, 500), (0.91, 800), "Failed", "accuracy 0.85 is 0.06 below the stable's 0.91, more than maxDrop"),
        ({}, (0.95, 500), (0.91, 800), "Successful", "within maxDrop"),  # better is never a failure
        ({}, (0.889, 500), (0.909, 800), "Successful", "within"),  # a drop of exactly 0.02 (to rounding) holds
        # Too few labels on either side: inconclusive, whatever the values say.
        ({}, (0.10, 99), (0.91, 800), "Inconclusive", "the canary has 99 labels in the last 1h, minFeedback 100"),
        ({}, (0.10, 500), (0.91, 12), "Inconclusive", "the stable has 12 labels in the last 1h, minFeedback 100"),
        ({}, (None, 0), (0.91, 800), "Inconclusive", "the canary has 0 labels"),
        ({"minFeedback": 10}, (0.10, 10), (0.91, 10), "Failed", "more than maxDrop"),
        # Labels but no figure (a class never predicted nor labelled): inconclusive.
        ({"metric": "f1", "positiveClass": "1"}, (None, 500), (0.9, 800), "Inconclusive",
         "no f1 of class 1 of the canary"),
        # Errors: worse is higher.
        ({"metric": "mae", "maxDrop": 1.0}, (12.5, 300), (11.0, 300), "Failed",
         "mae 12.5 is 1.5 above the stable's 11, more than maxDrop 1"),
        ({"metric": "rmse", "maxDrop": 1.0}, (9.0, 300), (11.0, 300), "Successful", "within maxDrop 1"),
        ({"metric": "macroF1", "maxDrop": 0.0}, (0.8, 300), (0.8000001, 300), "Failed", "macroF1"),
        # An estimate rests on served rows, not labels.
        ({"metric": "estimatedAccuracy"}, (0.8, 50), (0.9, 500), "Inconclusive", "the canary has 50 rows"),
        ({"metric": "estimatedAccuracy"}, (0.8, 500), (0.9, 500), "Failed", "(500 and 500 rows)"),
        # An estimate of one class too, named with its class.
        ({"metric": "estimatedF1", "positiveClass": "1"}, (0.7, 500), (0.8, 500), "Failed",
         "estimatedF1 of class 1 0.7 is 0.1 below the stable's 0.8, more than maxDrop 0.02 (500 and 500 rows)"),
        ({"metric": "estimatedRecall", "positiveClass": "1"}, (0.79, 40), (0.8, 500), "Inconclusive",
         "the canary has 40 rows"),
    ],
)  # fmt: skip
def test_the_decision(
    fields: dict[str, Any], canary: tuple[float | None, float], stable: tuple[float | None, float], phase: str,
    words: str,
) -> None:
    measured = a.judge_quality(check(**fields), QualityReading(*canary), QualityReading(*stable))
    assert measured.name == "quality"
    assert measured.phase == phase
    assert words in measured.message
    assert measured.value == canary[0]


def test_no_stable_skips_and_no_stable_reading_is_inconclusive() -> None:
    first = a.judge_quality(check(), QualityReading(0.5, 1000), None, has_stable=False)
    assert (first.phase, first.message) == ("Successful", "no stable version to compare with; skipped")
    missing = a.judge_quality(check(), QualityReading(0.5, 1000), None)
    assert missing.phase == "Inconclusive"
    assert "the stable has 0 labels" in missing.message


@pytest.mark.parametrize(("policy", "limit", "phase", "failures"),
                         [("Pause", 3, "Inconclusive", 0), ("Pass", 1, "Successful", 0),
                          ("Fail", 1, "Failed", 1)])  # fmt: skip
def test_too_few_labels_follows_the_inconclusive_policy(policy: str, limit: int, phase: str, failures: int) -> None:
    measured = a.judge_quality(check(), QualityReading(0.2, 5), QualityReading(0.9, 500))
    verdict = a.decide([measured], failure_limit=limit, inconclusive_policy=policy, previous=None, now=NOW)  # type: ignore[arg-type]
    assert verdict.phase == phase
    assert verdict.results[0].failures == failures
    assert verdict.results[0].inconclusive == 1


def test_per_class_metrics_need_a_class_and_the_check_is_listed() -> None:
    with pytest.raises(ValidationError, match="need positiveClass"):
        QualityCheck.model_validate({"metric": "precision"})
    with pytest.raises(ValidationError, match="need positiveClass"):
        QualityCheck.model_validate({"metric": "estimatedF1"})
    with pytest.raises(ValidationError):
        QualityCheck.model_validate({"metric": "auc"})
    spec = AnalysisSpec.model_validate({"builtin": {"predictionShift": {}, "quality": {}}})
    assert a.check_names(spec) == ["error-rate", "latency-p99", "prediction-shift", "quality"]
    assert AnalysisSpec.model_validate({}).builtin.quality is None  # off unless asked for
    defaults = QualityCheck()
    assert (defaults.metric, defaults.max_drop, defaults.min_feedback, defaults.window) == ("accuracy", 0.02, 100, "1h")


def test_class_values_are_escaped() -> None:
    query = a.quality_query(check(metric="recall", positiveClass='say "yes"'), TARGET, "iris-v2", "1h")
    assert 'class="say \\"yes\\""' in query


# --- the queries' numbers, through promtool --------------------------------------------------------

ROWS = 60  # labels per minute


def rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    truth = rng.choice(3, size=ROWS, p=[0.5, 0.3, 0.2])
    predicted = np.where(rng.random(ROWS) < 0.75, truth, rng.choice(3, size=ROWS))
    return truth, predicted


def expected_rows() -> np.ndarray:
    """One minute's probability rows, the predicted class the most probable."""
    _, predicted = rows()
    proba = np.random.default_rng(12).dirichlet([1.0, 1.0, 1.0], size=ROWS)
    proba[np.arange(ROWS), predicted] += 1.5
    return proba / proba.sum(axis=1, keepdims=True)


def series(version: str, deployment: str = "iris") -> list[dict[str, str]]:
    """A classifier's counters under ``version``, and a regressor's under ``reg``, ROWS labels a minute."""
    truth, predicted = rows()
    base = f'namespace="ml", deployment="{deployment}", model="iris"'
    where = f'{base}, version="{version}"'
    out = [{"series": f"modelops_feedback_labels_total{{{where}}}", "values": f"0+{ROWS}x20"}]
    for i in range(3):
        counts = {"correct": np.sum((truth == i) & (predicted == i)), "predicted": np.sum(predicted == i),
                  "actual": np.sum(truth == i)}  # fmt: skip
        out += [{"series": f'modelops_feedback_{part}_total{{{where}, class="{i}"}}', "values": f"0+{int(n)}x20"}
                for part, n in counts.items()]  # fmt: skip
    proba = expected_rows()
    for i in range(3):
        served = {"predictions": float(np.sum(predicted == i)),
                  "expected_correct": float(proba[predicted == i, i].sum()),
                  "expected_actual": float(proba[:, i].sum())}  # fmt: skip
        out += [{"series": f'modelops_{part}_total{{{where}, class="{i}"}}', "values": f"0+{step!r}x20"}
                for part, step in served.items()]  # fmt: skip
    errors = (predicted - truth).astype(float) * 1.5
    reg = f'{base}, version="reg"'
    per_minute = {"labels": float(ROWS), "absolute_error": float(np.abs(errors).sum()),
                  "squared_error": float((errors**2).sum())}  # fmt: skip
    out += [{"series": f"modelops_feedback_{part}_total{{{reg}}}", "values": f"0+{step!r}x20"}
            for part, step in per_minute.items()]  # fmt: skip
    return out


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed")
def test_the_queries_are_scikit_learns_figures(tmp_path: Path) -> None:
    truth, predicted = rows()
    errors = (predicted - truth).astype(float) * 1.5
    expected = {
        "accuracy": accuracy_score(truth, predicted),
        "macroF1": f1_score(truth, predicted, average="macro"),
        "precision": precision_score(truth, predicted, labels=[1], average="macro"),
        "recall": recall_score(truth, predicted, labels=[1], average="macro"),
        "f1": f1_score(truth, predicted, labels=[1], average="macro"),
    }
    cases: list[dict[str, Any]] = []
    for metric, value in expected.items():
        query = a.quality_query(check(metric=metric, positiveClass="1"), TARGET, "iris-v2", "5m")
        cases.append({"expr": f"abs(({query}) - {float(value)!r}) < bool 1e-9", "eval_time": "10m",
                      "exp_samples": [{"labels": "{}", "value": 1}]})  # fmt: skip
    for metric, value in {"mae": float(np.mean(np.abs(errors))),
                          "rmse": math.sqrt(mean_squared_error(truth * 1.5, predicted * 1.5))}.items():  # fmt: skip
        query = a.quality_query(check(metric=metric), TARGET, "reg", "5m")
        cases.append({"expr": f"abs(({query}) - {value!r}) < bool 1e-9", "eval_time": "10m",
                      "exp_samples": [{"labels": "{}", "value": 1}]})  # fmt: skip
    _, predicted = rows()
    proba = expected_rows()
    cells = np.array([[proba[predicted == k, c].sum() for c in range(3)] for k in range(3)])  # rows: predicted
    served, columns = cells.sum(axis=1), cells.sum(axis=0)
    estimates = {"estimatedAccuracy": float(np.trace(cells) / ROWS),
                 "estimatedMacroF1": float(np.mean(2 * np.diag(cells) / (served + columns))),
                 # CBPE of one class: expected true positives over predicted, over expected actual, and F1.
                 "estimatedPrecision": float(cells[1, 1] / served[1]),
                 "estimatedRecall": float(cells[1, 1] / columns[1]),
                 "estimatedF1": float(2 * cells[1, 1] / (served[1] + columns[1]))}  # fmt: skip
    assert len({round(v, 6) for v in estimates.values()}) == len(estimates)  # each figure is its own
    for metric, value in estimates.items():
        of = {"positiveClass": "1"} if metric in ("estimatedPrecision", "estimatedRecall", "estimatedF1") else {}
        query = a.quality_query(check(metric=metric, **of), TARGET, "iris-v2", "5m")
        cases.append({"expr": f"abs(({query}) - {value!r}) < bool 1e-9", "eval_time": "10m",
                      "exp_samples": [{"labels": "{}", "value": 1}]})  # fmt: skip
    rows_query = a.evidence_query(check(metric="estimatedAccuracy"), TARGET, "iris-v2", "5m")
    cases.append({"expr": rows_query, "eval_time": "10m", "exp_samples": [{"labels": "{}", "value": 5 * ROWS}]})
    assert expected["accuracy"] < 1
    assert mean_absolute_error(truth, predicted) > 0
    labels = a.feedback_labels_query(TARGET, "iris-v2", "5m")
    cases.append({"expr": labels, "eval_time": "10m", "exp_samples": [{"labels": "{}", "value": 5 * ROWS}]})
    # Another deployment's labels of the same version are not the canary's evidence.
    inputs = series("iris-v2") + series("iris-v2", deployment="iris-eu")
    result = promtool_test(tmp_path, [{"name": "none", "rules": []}],
                           [{"interval": "1m", "input_series": inputs, "promql_expr_test": cases}])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
