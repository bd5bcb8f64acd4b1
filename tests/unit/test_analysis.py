"""Canary analysis, the pure part: queries, PSI, success conditions and the verdict arithmetic."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from modelops.api.modeldeployment import (
    AnalysisSpec,
    ErrorRateCheck,
    LatencyCheck,
    MetricCheck,
    PredictionShiftCheck,
)
from modelops.logic import analysis as a
from modelops.logic.analysis import AnalysisTarget, Measurement
from modelops.logic.rolloutstate import AnalysisResult, RolloutState

NOW = "2025-01-01T00:00:00Z"
TARGET = AnalysisTarget(
    namespace="ml", deployment="iris", model="iris", stable_version="iris-v1", canary_version="iris-v2"
)
FIRST = AnalysisTarget(namespace="ml", deployment="iris", model="iris", stable_version=None, canary_version="iris-v1")


# --- durations, selectors and queries ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("1m", 60.0), ("1h30m", 5400.0), ("500ms", 0.5), ("1.5m", 90.0), ("2m30s", 150.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert a.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "s", "5x", "1m 2s", "-5s", "5s5", "m5"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        a.parse_duration(text)


@pytest.mark.parametrize(("interval", "window"), [("1m", "60s"), ("5s", "5s"), ("1.5s", "1500ms"), ("100ms", "1s")])
def test_promql_range(interval: str, window: str) -> None:
    assert a.promql_range(interval) == window


def test_error_rate_query() -> None:
    assert a.error_rate_query(TARGET, "iris-v2", "60s") == (
        "(sum(rate(modelops_requests_total"
        '{namespace="ml",deployment="iris",model="iris",version="iris-v2",code=~"5.."}[60s]))'
        " or vector(0))"
        ' / sum(rate(modelops_requests_total{namespace="ml",deployment="iris",model="iris",version="iris-v2"}[60s]))'
    )


def test_latency_query() -> None:
    assert a.latency_query(TARGET, "iris-v1", "30s") == (
        "histogram_quantile(0.99, sum by (le) (rate(modelops_request_duration_seconds_bucket"
        '{namespace="ml",deployment="iris",model="iris",version="iris-v1"}[30s])))'
    )


def test_distribution_queries() -> None:
    sel = '{namespace="ml",deployment="iris",model="iris",version="iris-v2"}'
    assert a.class_counts_query(TARGET, "iris-v2", "5s") == (
        f"sum by (class) (increase(modelops_predictions_total{sel}[5s]))"
    )
    assert a.value_buckets_query(TARGET, "iris-v2", "5s") == (
        f"sum by (le) (increase(modelops_prediction_value_bucket{sel}[5s]))"
    )


def test_label_values_are_escaped() -> None:
    odd = AnalysisTarget(namespace='a"b', deployment='d"\n', model="m\\x", stable_version=None, canary_version="c")
    assert a.selector(odd, "c") == '{namespace="a\\"b",deployment="d\\"\\n",model="m\\\\x",version="c"}'


def test_render_query_substitutes_versions_namespace_and_deployment() -> None:
    query = 'x{version="{{canary}}", ns="{{ namespace }}", deployment="{{deployment}}"} / x{version="{{stable}}"}'
    assert a.render_query(query, TARGET) == 'x{version="iris-v2", ns="ml", deployment="iris"} / x{version="iris-v1"}'


def test_two_deployments_of_one_version_select_disjoint_series() -> None:
    # Same namespace, model and version: only the deployment tells their evidence apart.
    other = AnalysisTarget(
        namespace="ml", deployment="iris-eu", model="iris", stable_version="iris-v1", canary_version="iris-v2"
    )
    ours, theirs = a.error_rate_query(TARGET, "iris-v2", "60s"), a.error_rate_query(other, "iris-v2", "60s")
    assert ours != theirs
    assert 'deployment="iris"' in ours
    assert 'deployment="iris-eu"' not in ours
    assert 'deployment="iris-eu"' in theirs
    for query in (a.latency_query, a.class_counts_query, a.value_buckets_query):
        assert 'deployment="iris-eu"' in query(other, "iris-v2", "5s")


def test_render_query_without_a_stable_refuses_stable() -> None:
    assert a.render_query('x{version="{{canary}}"}', FIRST) == 'x{version="iris-v1"}'
    with pytest.raises(ValueError, match="no stable version"):
        a.render_query('x{version="{{stable}}"}', FIRST)


# --- PSI -----------------------------------------------------------------------------------------


def test_psi_against_a_hand_computation() -> None:
    stable = {"0": 50.0, "1": 30.0, "2": 20.0}
    canary = {"0": 30.0, "1": 30.0, "2": 40.0}
    # (0.3-0.5)ln(0.3/0.5) + 0 + (0.4-0.2)ln(0.4/0.2) = 0.2*ln(5/3) + 0.2*ln(2)
    expected = 0.2 * math.log(5 / 3) + 0.2 * math.log(2)
    assert a.psi(stable, canary) == pytest.approx(expected, rel=1e-12)
    assert a.psi(stable, canary) == pytest.approx(0.240795, abs=1e-6)


def test_psi_is_zero_for_equal_shares_and_symmetric() -> None:
    assert a.psi({"a": 1, "b": 3}, {"a": 10, "b": 30}) == 0.0
    p, q = {"a": 1.0, "b": 3.0}, {"a": 2.0, "b": 1.0}
    assert a.psi(p, q) == pytest.approx(a.psi(q, p))


def test_psi_empty_bin_uses_epsilon() -> None:
    # One class the canary never predicts, over the union of keys: its share is floored at 1e-4.
    stable = {"0": 50.0, "1": 50.0}
    canary = {"0": 100.0}
    expected = (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert a.psi(stable, canary) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(a.psi(stable, canary))


def test_psi_needs_observations_on_both_sides() -> None:
    with pytest.raises(ValueError, match="both sides"):
        a.psi({"0": 0.0}, {"0": 3.0})


def test_bins_from_cumulative_buckets() -> None:
    buckets = {"+Inf": 10.0, "1.0": 4.0, "0.5": 1.0, "10.0": 9.0}
    assert a.bins_from_buckets(buckets) == {"0.5": 1.0, "1.0": 3.0, "10.0": 5.0, "+Inf": 1.0}
    # A bucket reading below the one under it (pods' counters read at different times) is not negative.
    assert a.bins_from_buckets({"1": 5.0, "2": 4.0, "+Inf": 6.0}) == {"1": 5.0, "2": 0.0, "+Inf": 1.0}


# --- success conditions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        ("result < 0.05", 0.01, True),
        ("result < 0.05", 0.05, False),
        ("result <= 0.05", 0.05, True),
        (" result>1e3 ", 1001.0, True),
        ("result >= -2", -2.0, True),
        ("result == 1", 1.0, True),
        ("result != 1", 1.0, False),
        ("result > 1.5E-2", 0.01, False),
    ],
)
def test_parse_condition(text: str, value: float, holds: bool) -> None:
    assert a.parse_condition(text).holds(value) is holds


@pytest.mark.parametrize(
    "text",
    [
        "result < 0.05 or True",
        "__import__('os').system('true')",
        "result < x",
        "result <> 1",
        "result < 1e+e-",
        "result < ..",
        "value < 1",
        "0.05 > result",
        "result < 1e999",
        "",
    ],
)
def test_parse_condition_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="successCondition"):
        a.parse_condition(text)


# --- judging single checks -----------------------------------------------------------------------


def test_error_rate_absolute_and_relative() -> None:
    check = ErrorRateCheck(max_ratio=0.05, max_increase_over_stable=0.01)
    assert a.judge_error_rate(check, None, 0.0).phase == "Inconclusive"
    assert a.judge_error_rate(check, 0.06, 0.06).phase == "Failed"
    relative = a.judge_error_rate(check, 0.03, 0.01)
    assert (relative.phase, relative.value) == ("Failed", 0.03)
    assert "maxIncreaseOverStable" in relative.message
    assert a.judge_error_rate(check, 0.015, 0.01).phase == "Successful"
    no_stable = a.judge_error_rate(check, 0.03, None)
    assert no_stable.phase == "Successful"
    assert "only maxRatio applied" in no_stable.message


def test_latency_absolute_and_relative() -> None:
    check = LatencyCheck(max_seconds=0.5, max_ratio_to_stable=2.0)
    assert a.judge_latency(check, None, 0.1).phase == "Inconclusive"
    assert a.judge_latency(check, 0.6, None).phase == "Failed"
    assert a.judge_latency(check, 0.3, 0.1).phase == "Failed"
    assert a.judge_latency(check, 0.19, 0.1).phase == "Successful"
    assert a.judge_latency(LatencyCheck(max_seconds=0.5), 0.3, None).phase == "Successful"


def test_prediction_shift() -> None:
    check = PredictionShiftCheck(max_psi=0.1)
    assert a.judge_prediction_shift(check, {"0": 5}, {"0": 5}).phase == "Successful"
    shifted = a.judge_prediction_shift(check, {"0": 30, "1": 30, "2": 40}, {"0": 50, "1": 30, "2": 20})
    assert shifted.phase == "Failed"
    assert shifted.value == pytest.approx(0.240795, abs=1e-6)
    assert a.judge_prediction_shift(check, {}, {"0": 1}).phase == "Inconclusive"
    assert a.judge_prediction_shift(check, {"0": 1}, {"0": 0}).phase == "Inconclusive"
    skipped = a.judge_prediction_shift(check, None, None, has_stable=False)
    assert (skipped.phase, skipped.value) == ("Successful", None)


def test_metric_check() -> None:
    check = MetricCheck(name="q", query="x", success_condition="result < 0.05")
    assert a.judge_metric(check, 0.01).phase == "Successful"
    assert a.judge_metric(check, 0.07).phase == "Failed"
    assert a.judge_metric(check, None).phase == "Inconclusive"
    assert a.judge_metric(check, math.nan).phase == "Inconclusive"
    # The API pattern lets '1e+e-' through; the parser does not, and the check can never pass.
    garbage = MetricCheck(name="q", query="x", success_condition="result < 1e+e-")
    judged = a.judge_metric(garbage, 0.01)
    assert (judged.phase, judged.value) == ("Failed", None)
    assert "not a number" in judged.message


def test_check_names_follow_the_spec() -> None:
    assert a.check_names(AnalysisSpec()) == ["error-rate", "latency-p99"]
    spec = AnalysisSpec.model_validate(
        {
            "builtin": {"errorRate": None, "predictionShift": {}},
            "metrics": [{"name": "m", "query": "q", "successCondition": "result > 0"}],
        }
    )
    assert a.check_names(spec) == ["latency-p99", "prediction-shift", "m"]


# --- the verdict ---------------------------------------------------------------------------------


def ok(name: str = "error-rate", value: float = 0.0) -> Measurement:
    return Measurement(name, "Successful", value, "fine")


def bad(name: str = "error-rate", value: float = 0.5) -> Measurement:
    return Measurement(name, "Failed", value, "too many errors")


def unknown(name: str = "error-rate") -> Measurement:
    return Measurement(name, "Inconclusive", None, "Prometheus gave no answer")


def decide(
    measurements: list[Measurement],
    *,
    limit: int = 1,
    policy: Any = "Pause",
    previous: tuple[AnalysisResult, ...] | None = None,
) -> a.Verdict:
    return a.decide(measurements, failure_limit=limit, inconclusive_policy=policy, previous=previous, now=NOW)


def test_all_successful() -> None:
    verdict = decide([ok(), ok("latency-p99", 0.01)])
    assert verdict.phase == "Successful"
    assert verdict.failing is None
    written = [r.to_status() for r in verdict.results]
    # the status.analysis JSON, keys in their order: name, phase, message, at, the counts, value
    assert json.dumps(written) == json.dumps([
        {"name": "error-rate", "phase": "Successful", "message": "fine", "at": NOW, "failures": 0,
         "inconclusive": 0, "value": 0.0},
        {"name": "latency-p99", "phase": "Successful", "message": "fine", "at": NOW, "failures": 0,
         "inconclusive": 0, "value": 0.01},
    ])  # fmt: skip
    assert tuple(AnalysisResult.parse(entry) for entry in written) == verdict.results


def test_no_checks_is_successful() -> None:
    assert decide([]).phase == "Successful"


def test_a_failure_at_the_limit_fails_with_the_check() -> None:
    verdict = decide([ok("latency-p99"), bad()])
    assert verdict.phase == "Failed"
    assert verdict.failing == ("error-rate", 0.5, "too many errors")
    assert verdict.results[1].failures == 1


def test_failures_below_the_limit_hold_and_carry_across_measurements() -> None:
    first = decide([bad(), ok("latency-p99")], limit=3)
    assert first.phase == "Inconclusive"
    assert first.failing is None
    second = decide([ok(), ok("latency-p99")], limit=3, previous=first.results)
    assert second.phase == "Successful"
    assert second.results[0].failures == 1  # cumulative within the step, not reset by a success
    third = decide([bad(), ok("latency-p99")], limit=3, previous=second.results)
    assert (third.phase, third.results[0].failures) == ("Inconclusive", 2)
    fourth = decide([bad(value=0.7), ok("latency-p99")], limit=3, previous=third.results)
    assert fourth.phase == "Failed"
    assert fourth.failing == ("error-rate", 0.7, "too many errors")
    assert fourth.results[0].failures == 3


def test_counts_are_carried_by_name_and_malformed_previous_is_ignored() -> None:
    state = RolloutState.from_status({"analysis": [
        {"name": "latency-p99", "phase": "Inconclusive", "at": NOW, "failures": 2, "inconclusive": 1},
        {"name": "error-rate", "phase": "Failed", "at": NOW, "failures": "many", "inconclusive": -3},
        "garbage",
    ]})  # fmt: skip
    assert [r.name for r in state.analysis] == ["latency-p99"]
    assert len(state.problems) == 2  # the entry that is not an object, and the one with bad counts
    verdict = decide([bad(), ok("latency-p99")], limit=3, previous=state.analysis)
    assert verdict.phase == "Inconclusive"
    assert [(r.failures, r.inconclusive) for r in verdict.results] == [(1, 0), (2, 1)]


def test_inconclusive_under_pause_holds_then_fails_at_the_limit() -> None:
    first = decide([ok("latency-p99"), unknown()], limit=2)
    assert first.phase == "Inconclusive"
    assert first.results[1].to_status() == {
        "name": "error-rate", "phase": "Inconclusive", "message": "Prometheus gave no answer", "at": NOW,
        "failures": 0, "inconclusive": 1,
    }  # fmt: skip
    second = decide([ok("latency-p99"), unknown()], limit=2, previous=first.results)
    assert second.phase == "Failed"
    assert second.failing is not None
    assert second.failing[:2] == ("error-rate", None)
    assert "inconclusive 2 times, failureLimit 2 reached" in second.failing[2]
    assert second.results[1].failures == 0  # never failed: held too long


def test_inconclusive_under_pass_counts_as_success() -> None:
    verdict = decide([unknown(), ok("latency-p99")], policy="Pass")
    assert verdict.phase == "Successful"
    assert verdict.results[0].phase == "Inconclusive"
    assert verdict.results[0].inconclusive == 1
    assert "inconclusivePolicy Pass" in (verdict.results[0].message or "")
    again = decide([unknown(), ok("latency-p99")], policy="Pass", previous=verdict.results)
    assert again.phase == "Successful"
    assert again.results[0].inconclusive == 2


def test_inconclusive_under_fail_counts_as_failure() -> None:
    verdict = decide([unknown()], policy="Fail")
    assert verdict.phase == "Failed"
    assert verdict.failing is not None
    assert "inconclusivePolicy Fail" in verdict.failing[2]
    assert verdict.results[0].failures == 1
    held = decide([unknown()], policy="Fail", limit=2)
    assert held.phase == "Inconclusive"
    assert decide([unknown()], policy="Fail", limit=2, previous=held.results).phase == "Failed"


def test_the_first_check_at_its_limit_is_failing() -> None:
    verdict = decide([unknown("latency-p99"), bad("error-rate")], policy="Fail")
    assert verdict.failing is not None
    assert verdict.failing[0] == "latency-p99"


def test_all_inconclusive_names_every_check() -> None:
    spec = AnalysisSpec.model_validate({"metrics": [{"name": "m", "query": "q", "successCondition": "result > 0"}]})
    measurements = a.all_inconclusive(spec, a.NO_PROMETHEUS)
    assert [m.name for m in measurements] == ["error-rate", "latency-p99", "m"]
    assert {m.phase for m in measurements} == {"Inconclusive"}
