"""A DriftPolicy's fairness thresholds: the verdict on readings, the alert rules, and what retrains."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelops.api.driftpolicy import DriftPolicySpec, FairnessPolicy
from modelops.logic import fairnessloop as fairness

DP, EO = "demographicParityDifference", "equalizedOddsDifference"


def policy(min_group_count: int = 30) -> FairnessPolicy:
    return FairnessPolicy.model_validate({
        "thresholds": [{"feature": "sex", "metric": DP, "max": 0.1}, {"feature": "age", "metric": EO, "max": 0.2}],
        "window": "2h", "minGroupCount": min_group_count,
    })  # fmt: skip


def test_a_gap_above_its_max_with_enough_in_every_group_is_unfair_and_the_reason_names_the_metric() -> None:
    verdict = fairness.judge(policy(), {("sex", DP): (0.05, 40.0), ("age", EO): (0.31, 35.0)})
    assert verdict.degraded is True
    assert verdict.reason == "EqualizedOddsDifferenceAboveMax"
    assert verdict.message == ("live fairness degraded over the last 2h: equalizedOddsDifference on age 0.31 is "
                               "above max 0.2")
    assert [r["degraded"] for r in verdict.results] == [False, True]
    assert verdict.results[1] == {"feature": "age", "metric": EO, "max": 0.2, "degraded": True, "evidence": 35.0,
                                  "value": 0.31, "message": "equalizedOddsDifference on age 0.31 is above max 0.2"}
    assert fairness.events(None, verdict) == [("Warning", "FairnessDegraded", verdict.message)]
    assert fairness.events(True, verdict) == []


def test_every_gap_within_its_max_is_fair_and_recovery_is_an_event() -> None:
    verdict = fairness.judge(policy(), {("sex", DP): (0.1, 30.0), ("age", EO): (0.0, 31.0)})
    assert (verdict.degraded, verdict.reason) == (False, "FairnessWithinLimits")
    assert fairness.events(True, verdict)[0][:2] == ("Normal", "FairnessRecovered")


def test_too_few_in_a_group_or_no_reading_is_unknown_unless_another_gap_is_crossed() -> None:
    few = fairness.judge(policy(), {("sex", DP): (0.9, 12.0)})
    assert (few.degraded, few.reason) == (None, "TooFewInGroups")
    assert "the smallest group of sex has 12 rows in the last 2h, minGroupCount 30" in few.message
    assert "no labels of a group of age in the last 2h" in few.message
    crossed = fairness.judge(policy(), {("sex", DP): (0.9, 12.0), ("age", EO): (0.5, 100.0)})
    assert crossed.degraded is True


def test_the_alert_holds_each_gap_to_its_max_while_every_group_has_enough() -> None:
    rules = fairness.alert_rules(policy(), namespace="ml", deployment="shop", model="churn", version="v3",
                                 labels={"team": "ml"}, for_="5m", severity="warning")  # fmt: skip
    assert [r["alert"] for r in rules] == ["ModelFairnessDegraded"] * 2
    assert [(r["labels"]["feature"], r["labels"]["metric"]) for r in rules] == [("sex", DP), ("age", EO)]
    assert ") > 0.1\nand on () (" in rules[0]["expr"]
    assert rules[0]["expr"].endswith(">= 30")
    assert "modelops_group_predictions_total" in rules[0]["expr"]
    assert "modelops_feedback_group_correct_total" in rules[1]["expr"]
    assert "[7200s]" in rules[1]["expr"]
    assert 'version="v3"' in rules[1]["expr"]


@pytest.mark.parametrize(
    ("drifted", "quality", "fair", "act", "cause"),
    [
        (None, None, None, None, "drift"),
        (False, None, False, False, "drift"),
        (None, None, True, True, "unfairness"),
        (False, True, True, True, "quality decay"),
        (True, False, True, True, "drift"),
    ],
)
def test_unfairness_retrains_like_drift(
    drifted: bool | None, quality: bool | None, fair: bool | None, act: bool | None, cause: str
) -> None:
    assert fairness.retrain_cause(drifted, quality, fair) == (act, cause)


def test_a_spec_without_a_metric_the_server_counts_or_with_max_above_one_is_refused() -> None:
    base = {"deployment": "shop", "fairness": {"thresholds": [{"feature": "sex", "metric": DP, "max": 0.1}]}}
    assert DriftPolicySpec.model_validate(base).fairness is not None
    for bad in ({"feature": "sex", "metric": "recall", "max": 0.1}, {"feature": "sex", "metric": DP, "max": 1.5},
                {"feature": "", "metric": DP, "max": 0.1}):  # fmt: skip
        with pytest.raises(ValidationError):
            DriftPolicySpec.model_validate({**base, "fairness": {"thresholds": [bad]}})
