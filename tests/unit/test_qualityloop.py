"""A DriftPolicy's quality thresholds: limits from the spec and the version, the verdict as a table, the
Events, and the ModelQualityDegraded alerts run by the real promtool."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from modelops.api.driftpolicy import DriftPolicySpec, QualityPolicy, RetrainAction
from modelops.logic import driftloop
from modelops.logic import qualityloop as q
from promkit import PROMTOOL, promtool_test

TRAINING = {"accuracy": 0.95, "f1": 0.94, "mae": 3.0}


def policy(*thresholds: dict[str, Any], **fields: Any) -> QualityPolicy:
    return QualityPolicy.model_validate({"thresholds": list(thresholds), "minFeedback": 100, **fields})


def test_limits_from_thresholds_and_training_metrics() -> None:
    bounds, problems = q.limits(policy({"metric": "accuracy", "threshold": 0.9, "maxDrop": 0.03},
                                       {"metric": "mae", "maxDrop": 0.5},
                                       {"metric": "rmse", "maxDrop": 1.0},  # the version has no rmse
                                       {"metric": "estimatedMacroF1", "threshold": 0.8}), TRAINING)  # fmt: skip
    assert [(b.metric, b.bound, b.lower_is_better) for b in bounds] == [
        ("accuracy", 0.9, False), ("accuracy", pytest.approx(0.92), False), ("mae", 3.5, True),
        ("estimatedMacroF1", 0.8, False),
    ]  # fmt: skip
    assert bounds[1].source == "training accuracy 0.95 - maxDrop 0.03"
    assert problems == ["rmse: maxDrop needs the version's training metric rmse, which it lacks"]


BINARY = ["no", "yes"]
TRAINED_BINARY = {"accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": 0.75}


@pytest.mark.parametrize(
    ("threshold", "classes", "expected", "problem"),
    [
        # A binary version: its second class, the one its training precision/recall/F1 are of.
        ({"metric": "estimatedF1", "threshold": 0.6}, BINARY, ("yes", 0.6, "threshold 0.6"), None),
        ({"metric": "estimatedPrecision", "maxDrop": 0.1}, BINARY,
         ("yes", pytest.approx(0.7), "training precision 0.8 - maxDrop 0.1"), None),
        ({"metric": "recall", "maxDrop": 0.2}, [0, 1], ("1", pytest.approx(0.5), "training recall 0.7"), None),
        # Named: that class, whatever the version; a maxDrop only where training measured that class.
        ({"metric": "estimatedRecall", "threshold": 0.5, "positiveClass": "no"}, BINARY, ("no", 0.5, "threshold"),
         None),
        ({"metric": "estimatedF1", "threshold": 0.5, "positiveClass": "2"}, [0, 1, 2], ("2", 0.5, "threshold"), None),
        ({"metric": "estimatedF1", "maxDrop": 0.1, "positiveClass": "no"}, BINARY, None,
         "estimatedF1: maxDrop needs the training f1 of class no"),
        ({"metric": "estimatedF1", "maxDrop": 0.1, "positiveClass": "2"}, [0, 1, 2], None,
         "estimatedF1: maxDrop needs the training f1 of class 2"),
        # No class to be had: named, never guessed.
        ({"metric": "estimatedF1", "threshold": 0.5}, [0, 1, 2], None,
         "estimatedF1: name positiveClass: the version has 3 classes"),
        ({"metric": "estimatedF1", "threshold": 0.5}, None, None, "records no classes"),
        ({"metric": "estimatedF1", "threshold": 0.5, "positiveClass": "maybe"}, BINARY, None,
         "positiveClass 'maybe' is not a class of the version (no, yes)"),
        # Other metrics have no class.
        ({"metric": "estimatedAccuracy", "threshold": 0.8}, BINARY, (None, 0.8, "threshold"), None),
    ],
)  # fmt: skip
def test_the_class_of_a_per_class_threshold(
    threshold: dict[str, Any], classes: list[Any] | None, expected: tuple[Any, ...] | None, problem: str | None
) -> None:
    bounds, problems = q.limits(policy(threshold), TRAINED_BINARY, classes)
    if expected is None:
        assert bounds == []
        (named,) = problems
        assert problem in named
        return
    assert problems == []
    (bound,) = bounds
    assert (bound.positive_class, bound.bound) == expected[:2]
    assert expected[2] in bound.source


def test_a_per_class_limit_reads_its_own_class_series() -> None:
    spec = policy({"metric": "estimatedF1", "threshold": 0.6}, {"metric": "estimatedF1", "threshold": 0.5,
                                                                "positiveClass": "no"})  # fmt: skip
    bounds, _ = q.limits(spec, TRAINED_BINARY, BINARY)
    assert [b.key for b in bounds] == ["estimatedF1:yes", "estimatedF1:no"]
    where = ("ml", "churn", "churn", "churn-v1", "5m")
    yes, no = (q.value_query(b, *where) for b in bounds)
    assert 'modelops_expected_correct_total{namespace="ml",deployment="churn",model="churn",version="churn-v1",' \
           'class="yes"}[5m]' in yes
    assert 'class="no"' in no
    assert 'class="yes"' not in no
    # The estimate rests on every row served, not on one class's.
    assert q.evidence_query(bounds[0], *where) == q.evidence_query("estimatedAccuracy", *where)
    verdict = q.judge(spec, bounds, {"estimatedF1:yes": (0.55, 500), "estimatedF1:no": (0.9, 500)})
    assert verdict.degraded is True
    assert "estimatedF1 of class yes 0.55 is below 0.6 (threshold 0.6)" in verdict.message
    assert [r.get("positiveClass") for r in verdict.results] == ["yes", "no"]


def test_the_spec_refuses_what_cannot_be_judged() -> None:
    with pytest.raises(ValidationError, match="sets threshold or maxDrop"):
        policy({"metric": "accuracy"})
    with pytest.raises(ValidationError, match="maxDrop applies to accuracy, mae, rmse, precision, recall, f1"):
        policy({"metric": "macroF1", "maxDrop": 0.1})
    with pytest.raises(ValidationError, match="positiveClass applies to precision, recall, f1"):
        policy({"metric": "accuracy", "threshold": 0.9, "positiveClass": "1"})
    with pytest.raises(ValidationError):
        policy()  # at least one threshold
    spec = DriftPolicySpec.model_validate({"deployment": "iris"})
    assert spec.quality is None


ACC = {"metric": "accuracy", "threshold": 0.9}
EST = {"metric": "estimatedAccuracy", "threshold": 0.9}
MAE = {"metric": "mae", "threshold": 4.0}


@pytest.mark.parametrize(
    ("thresholds", "readings", "degraded", "reason", "words"),
    [
        ([ACC], {"accuracy": (0.85, 500)}, True, q.REASON_LIVE,
         "live quality degraded over the last 1h: accuracy 0.85 is below 0.9 (threshold 0.9)"),
        ([ACC], {"accuracy": (0.93, 500)}, False, q.REASON_OK, "accuracy 0.93 within 0.9"),
        ([ACC], {"accuracy": (0.10, 99)}, None, q.REASON_TOO_FEW,
         "accuracy: 99 labels in the last 1h, minFeedback 100"),
        ([ACC], {}, None, q.REASON_TOO_FEW, "0 labels"),
        ([ACC], {"accuracy": (None, 500)}, None, q.REASON_TOO_FEW, "no accuracy in the last 1h"),
        ([EST], {"estimatedAccuracy": (0.7, 5000)}, True, q.REASON_ESTIMATED, "estimated quality degraded"),
        ([EST], {"estimatedAccuracy": (0.7, 50)}, None, q.REASON_TOO_FEW, "50 rows"),
        # Live decay wins the reason when both are degraded; one crossed limit is decay even if another lacks labels.
        ([EST, ACC], {"estimatedAccuracy": (0.7, 5000), "accuracy": (0.8, 500)}, True, q.REASON_LIVE, "accuracy 0.8"),
        ([EST, ACC], {"estimatedAccuracy": (0.7, 5000), "accuracy": (0.1, 3)}, True, q.REASON_ESTIMATED, "0.7"),
        ([EST, ACC], {"estimatedAccuracy": (0.95, 5000), "accuracy": (0.1, 3)}, None, q.REASON_TOO_FEW, "3 labels"),
        ([MAE], {"mae": (4.5, 300)}, True, q.REASON_LIVE, "mae 4.5 is above 4"),
        ([MAE], {"mae": (3.5, 300)}, False, q.REASON_OK, "within"),
    ],
)  # fmt: skip
def test_the_verdict(
    thresholds: list[dict[str, Any]], readings: dict[str, tuple[float | None, float]], degraded: bool | None,
    reason: str, words: str,
) -> None:
    spec = policy(*thresholds)
    bounds, _ = q.limits(spec, TRAINING)
    verdict = q.judge(spec, bounds, readings)
    assert (verdict.degraded, verdict.reason) == (degraded, reason)
    assert words in verdict.message
    assert [r["metric"] for r in verdict.results] == [t["metric"] for t in thresholds]
    assert any(r["degraded"] for r in verdict.results) == (degraded is True)


def test_a_threshold_without_a_limit_is_named_and_unknown() -> None:
    spec = policy({"metric": "rmse", "maxDrop": 1.0})
    bounds, problems = q.limits(spec, TRAINING)
    verdict = q.judge(spec, bounds, {}, problems)
    assert (verdict.degraded, verdict.reason) == (None, q.REASON_NO_LIMIT)
    assert "training metric rmse" in verdict.message


def test_events_on_start_and_end_only() -> None:
    spec = policy(ACC)
    bounds, _ = q.limits(spec, TRAINING)
    bad = q.judge(spec, bounds, {"accuracy": (0.5, 500)})
    good = q.judge(spec, bounds, {"accuracy": (0.99, 500)})
    unknown = q.judge(spec, bounds, {"accuracy": (0.5, 5)})
    assert [e[:2] for e in q.events(None, bad)] == [("Warning", "QualityDegraded")]
    assert q.events(True, bad) == []
    assert [e[:2] for e in q.events(True, good)] == [("Normal", "QualityRecovered")]
    assert q.events(False, good) == []
    assert q.events(True, unknown) == []  # no evidence is not a recovery


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed")
def test_the_alert_fires_on_decay_with_enough_labels(tmp_path: Path) -> None:
    spec = policy({"metric": "accuracy", "maxDrop": 0.05}, EST, window="5m")
    bounds, _ = q.limits(spec, TRAINING)  # accuracy below 0.9, estimated accuracy below 0.9
    rules = q.alert_rules(spec, bounds, namespace="ml", deployment="iris", model="iris", version="iris-v2",
                          window="5m", labels={"team": "ml", "drift_policy": "ml/p", "deployment": "iris"},
                          for_="1m", severity="critical")  # fmt: skip
    where = 'namespace="ml", deployment="iris", model="iris", version="iris-v2"'
    series = [
        # 30 labels a minute, 24 right (0.8): below the limit, but 5m hold 150 labels only from minute 4 on...
        {"series": f"modelops_feedback_labels_total{{{where}}}", "values": "0+30x20"},
        {"series": f'modelops_feedback_correct_total{{{where}, class="0"}}', "values": "0+24x20"},
        # ...while the estimate (0.95 of 100 rows a minute) holds.
        {"series": f'modelops_predictions_total{{{where}, class="0"}}', "values": "0+100x20"},
        {"series": f'modelops_expected_correct_total{{{where}, class="0"}}', "values": "0+95x20"},
    ]
    labels = {"severity": "critical", "metric": "accuracy", "quality": "live", "model": "iris",
              "version": "iris-v2", "team": "ml", "drift_policy": "ml/p", "deployment": "iris"}  # fmt: skip
    quiet_then_firing(tmp_path, rules, series, "3m", labels, {  # at 3m, 90 labels: fewer than minFeedback
        "summary": "Model iris iris-v2: live accuracy degraded",
        "description": "accuracy of iris iris-v2 over the last 5m is 0.8, past 0.9 (training accuracy "
                       "0.95 - maxDrop 0.05); deployment ml/iris.",
    })  # fmt: skip


def quiet_then_firing(
    tmp_path: Path, rules: list[dict[str, Any]], series: list[dict[str, str]], quiet_at: str,
    labels: dict[str, str], annotations: dict[str, str],
) -> None:  # fmt: skip
    """promtool: no alert at ``quiet_at``, one alert with these labels and annotations at 10m."""
    result = promtool_test(tmp_path, [{"name": "quality", "rules": rules}], [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [
            {"eval_time": quiet_at, "alertname": q.ALERT, "exp_alerts": []},
            {"eval_time": "10m", "alertname": q.ALERT,
             "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}]},
        ],
    }])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="promtool is not installed")
def test_the_estimated_f1_alert_reads_the_positive_class_only(tmp_path: Path) -> None:
    spec = policy({"metric": "estimatedF1", "maxDrop": 0.1}, window="5m")
    bounds, problems = q.limits(spec, {"f1": 0.8}, [0, 1])  # binary: F1 of class 1, below 0.7
    assert problems == []
    rules = q.alert_rules(spec, bounds, namespace="ml", deployment="churn", model="churn", version="churn-v1",
                          window="5m", labels={}, for_="1m", severity="warning")  # fmt: skip
    where = 'namespace="ml", deployment="churn", model="churn", version="churn-v1"'

    def counters(cls: str, served: int, correct: float, actual: float) -> list[dict[str, str]]:
        return [{"series": f'modelops_{part}_total{{{where}, class="{cls}"}}', "values": f"0+{step!r}x20"}
                for part, step in (("predictions", served), ("expected_correct", correct),
                                   ("expected_actual", actual))]  # fmt: skip

    # A minute: class 1 predicted 20 times, 12 expected right, 20 expected actual → F1 2·12/40 = 0.6;
    # class 0 (80 rows, 76 right, F1 about 0.95) would never fire: the alert is of class 1 alone.
    series = counters("1", 20, 12.0, 20.0) + counters("0", 80, 76.0, 80.0)
    labels = {"severity": "warning", "metric": "estimatedF1", "quality": "estimated", "model": "churn",
              "version": "churn-v1", "class": "1"}  # fmt: skip
    quiet_then_firing(tmp_path, rules, series, "1m", labels, {  # at 1m: not yet for 1m
        "summary": "Model churn churn-v1: estimated estimatedF1 of class 1 degraded",
        "description": "estimatedF1 of class 1 of churn churn-v1 over the last 5m is 0.6, past 0.7 "
                       "(training f1 0.8 - maxDrop 0.1); deployment ml/churn.",
    })  # fmt: skip


def test_a_retrain_on_decay_says_so() -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    enabled = RetrainAction.model_validate({"enabled": True, "cooldown": "1h"})
    start = driftloop.retrain_decision(enabled, drifted_now=True, records=[], now=now, cause="quality decay")
    assert (start.create, start.message) == (True, "quality decay detected: retraining")
    recent = [{"name": "r", "at": "2026-01-01T00:00:00Z", "phase": "Succeeded"}]
    cooling = driftloop.retrain_decision(enabled, drifted_now=True, records=recent, now=now, cause="quality decay")
    assert cooling.reason == "CoolingDown"
    assert cooling.message.startswith("quality decay persists; no retrain before")


@pytest.mark.parametrize(
    ("task", "classes", "metrics", "expected"),
    [
        ("classification", [0, 1], {"accuracy": 0.9, "ece": 0.021}, (True, q.REASON_CALIBRATED, "0.021")),
        ("classification", [0, 1], {"ece": 0.05}, (True, q.REASON_CALIBRATED, "at most 0.05")),
        ("classification", [0, 1], {"ece": 0.1234}, (False, q.REASON_POOR_CALIBRATION, "0.1234 on the held-out")),
        ("classification", [0, 1, 2], {"accuracy": 0.9}, (False, q.REASON_NO_PROBABILITIES, "spec.metrics.ece")),
        (None, ["a", "b"], {"ece": float("nan")}, (False, q.REASON_NO_PROBABILITIES, "predict_proba")),
        (None, ["a", "b"], {"ece": 0.2}, (False, q.REASON_POOR_CALIBRATION, "above 0.05")),
        ("classification", None, None, (False, q.REASON_NO_PROBABILITIES, "no calibration")),
        ("regression", None, {"mae": 1.0}, None),
        (None, None, {"ece": 0.01}, None),  # neither a task nor classes: nothing to estimate
    ],
)
def test_estimate_trust_from_the_recorded_calibration(
    task: str | None, classes: list[Any] | None, metrics: dict[str, float] | None,
    expected: tuple[bool, str, str] | None,
) -> None:
    found = q.estimate_trust(task, classes, metrics, None)
    if expected is None:
        assert found is None
        return
    assert found is not None
    type_, status, reason, message = found
    assert (type_, status, reason) == (q.ESTIMATE_TRUSTED, *expected[:2])
    assert expected[2] in message


def test_estimate_trust_says_how_calibration_was_measured() -> None:
    found = q.estimate_trust("classification", [0, 1], {"ece": 0.08},
                             {"method": "none", "bins": 10, "rows": 38})  # fmt: skip
    assert found is not None
    assert "(10 bins, 38 held-out rows, the estimator's own probabilities) is above 0.05" in found[3]
    calibrated = q.estimate_trust("classification", [0, 1], {"ece": 0.01}, {"method": "sigmoid", "cv": 5})
    assert calibrated is not None
    assert "(calibrated: sigmoid) is at most 0.05" in calibrated[3]
