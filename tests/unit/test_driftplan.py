"""The DriftPolicy reconcile's decisions, without a cluster: (spec, status, observations, now) → plan → outcome."""

from __future__ import annotations

import datetime
from typing import Any

from modelops.api.driftpolicy import DriftPolicySpec
from modelops.logic import conditions as cond
from modelops.logic import driftloop as loop
from modelops.logic import driftplan as plan

NOW = datetime.datetime(2026, 1, 2, 12, 0, 0, tzinfo=datetime.UTC)
REFERENCE: dict[str, Any] = {
    "sampleSize": 100,
    "features": [
        {"name": "colour", "kind": "categorical", "categories": ["red", "blue", "__other__"], "counts": [50, 30, 20]},
    ],
}
VERSION = {"metadata": {"name": "iris-v3"}, "spec": {"model": "iris", "referenceStats": REFERENCE}}
DEPLOYMENT = {"spec": {"model": "iris"}, "status": {"servingVersion": "iris-v3"}}
LABELS = {"release": "prometheus"}
STEADY = {"red": 50, "blue": 30, "__other__": 20}
SHIFTED = {"red": 5, "blue": 5, "__other__": 90}
RETRAIN = {"actions": {"retrain": {"enabled": True, "cooldown": "1h"}}}


def spec(**changes: Any) -> DriftPolicySpec:
    return DriftPolicySpec.model_validate({"deployment": "iris", "minSamples": 50, **changes})


def subject(s: DriftPolicySpec, version: dict[str, Any] = VERSION) -> plan.Subject:
    found = plan.subject(s, "inputs", "ml", "uid-1", DEPLOYMENT, "iris-v3", version)
    assert isinstance(found, plan.Subject)
    return found


def observed(s: DriftPolicySpec, readings: plan.Readings | None, *, runs: list[Any] | None = None,
             labels: dict[str, str] | None = LABELS) -> plan.Observations:  # fmt: skip
    return plan.Observations(subject(s), labels, None if labels is not None else "bad labels", readings,
                             [] if runs is None else runs)  # fmt: skip


def read(colour: dict[str, float]) -> plan.Readings:
    return plan.Readings(url="http://prometheus", counts=({}, {"colour": colour}))


def settled(decided: plan.Plan, synced: bool = True, **kwargs: Any) -> plan.Settled:
    condition = cond.Condition(loop.RULE_SYNCED, synced, cond.Reason.SYNCED if synced else cond.Reason.APPLY_FAILED,
                               "rule")  # fmt: skip
    return plan.Settled(condition if decided.rule is not None else None, **kwargs)


def outcome(s: DriftPolicySpec, status: dict[str, Any], decided: plan.Plan, done: plan.Settled) -> plan.Result:
    return plan.settle(s, status, decided, done, NOW, poll=5.0, retry=2.0)


def of_type(conditions: list[cond.Condition], type_: str) -> cond.Condition:
    return next(c for c in conditions if c.type == type_)


def test_a_version_without_reference_stats_is_refused_unless_quality_is_watched() -> None:
    bare = {"metadata": {"name": "iris-v3"}, "spec": {"model": "iris"}}
    refused = plan.subject(spec(), "inputs", "ml", None, DEPLOYMENT, "iris-v3", bare)
    assert refused == plan.Refusal(cond.Reason.NO_REFERENCE_STATS, plan.no_reference("iris-v3"))
    quality = {"quality": {"thresholds": [{"metric": "accuracy", "threshold": 0.9}]}}
    assert isinstance(plan.subject(spec(**quality), "inputs", "ml", None, DEPLOYMENT, "iris-v3", bare), plan.Subject)


def test_garbled_reference_stats_are_a_stalled_refusal_naming_the_version() -> None:
    garbled = {"spec": {"model": "iris", "referenceStats": {"features": "nonsense"}}}
    refused = plan.subject(spec(), "inputs", "ml", None, DEPLOYMENT, "iris-v3", garbled)
    assert isinstance(refused, plan.Refusal)
    assert (refused.reason, refused.stalled) == (cond.Reason.INVALID_SPEC, True)
    assert refused.message.startswith("ModelVersion iris-v3 spec.referenceStats:")


def test_due_on_a_new_version_a_new_generation_or_after_the_interval() -> None:
    last = {"modelVersion": "iris-v3", "observedGeneration": 1, "lastEvaluation": "2026-01-02T11:58:00Z"}
    assert not plan.due(spec(), last, "iris-v3", 1, NOW)  # 2 minutes of a 5-minute interval
    assert plan.due(spec(), last, "iris-v4", 1, NOW)
    assert plan.due(spec(), last, "iris-v3", 2, NOW)
    assert plan.due(spec(), last, "iris-v3", 1, NOW + datetime.timedelta(minutes=3))


def test_drift_found_is_detected_reported_once_and_retrains() -> None:
    s = spec(**RETRAIN)
    decided = plan.decide(s, {}, observed(s, read(SHIFTED)), NOW)
    drift = of_type(decided.conditions, loop.DRIFT_DETECTED)
    assert (drift.status, drift.reason) == (True, cond.Reason.DRIFT_DETECTED)
    assert [e[1] for e in decided.events] == [cond.Reason.DRIFT_STARTED]
    assert (decided.status["drifted"], decided.status["lastEvaluation"]) == (True, "2026-01-02T12:00:00Z")
    assert decided.rule is not None
    assert decided.rule["kind"] == "PrometheusRule"
    assert decided.retrain is not None
    assert decided.retrain.create
    again = plan.decide(s, {**decided.status, "drifted": True}, observed(s, read(SHIFTED)), NOW)
    assert again.events == []  # drift that goes on is not an Event every interval


def test_no_drift_does_not_retrain_and_is_ready_until_the_next_interval() -> None:
    s = spec(**RETRAIN)
    decided = plan.decide(s, {}, observed(s, read(STEADY)), NOW)
    assert of_type(decided.conditions, loop.DRIFT_DETECTED).status is False
    assert decided.retrain is not None
    assert not decided.retrain.create
    result = outcome(s, {}, decided, settled(decided))
    assert result.summary == cond.Summary(ready=True, reason=cond.Reason.RECONCILED, message=decided.message)
    assert result.requeue_after == 300.0
    assert of_type(result.conditions, loop.RULE_SYNCED).status is True


def test_not_due_keeps_the_last_message_and_judges_nothing() -> None:
    status = {"message": "psi drift in colour", "lastEvaluation": "2026-01-02T11:58:00Z"}
    decided = plan.decide(spec(), status, observed(spec(), None), NOW)
    assert not decided.due
    assert [c.type for c in decided.conditions] == []
    assert decided.status == {"modelVersion": "iris-v3", "message": "psi drift in colour"}
    assert outcome(spec(), status, decided, settled(decided)).requeue_after == 180.0


def test_without_prometheus_or_its_answer_drift_is_unknown_and_the_evaluation_retried() -> None:
    none = plan.decide(spec(), {}, observed(spec(), plan.Readings(url=None)), NOW)
    assert of_type(none.conditions, loop.DRIFT_DETECTED)[1:3] == ("Unknown", cond.Reason.NO_PROMETHEUS)
    down = plan.Readings(url="http://prometheus", counts_error="connection refused")
    failed = plan.decide(spec(), {"drifted": True}, observed(spec(), down), NOW)
    condition = of_type(failed.conditions, loop.DRIFT_DETECTED)
    assert (condition.status, condition.reason) == ("Unknown", cond.Reason.PROMETHEUS_UNREACHABLE)
    assert "connection refused" in condition.message
    assert "drifted" not in failed.status  # the previous results are kept
    assert outcome(spec(), {}, failed, settled(failed)).requeue_after == 300.0


def test_rule_labels_that_are_not_valid_apply_no_rule_and_are_not_ready_soon_again() -> None:
    status = {"lastEvaluation": "2026-01-02T11:58:00Z"}
    decided = plan.decide(spec(), status, observed(spec(), None, labels=None), NOW)
    assert decided.rule is None
    result = outcome(spec(), status, decided, settled(decided))
    assert result.summary.reason == cond.Reason.INVALID_RULE_LABELS
    assert not result.summary.ready
    assert result.requeue_after == 2.0


def test_a_rule_not_in_place_is_not_ready() -> None:
    decided = plan.decide(spec(), {}, observed(spec(), read(STEADY)), NOW)
    result = outcome(spec(), {}, decided, settled(decided, synced=False))
    assert (result.summary.ready, result.summary.reason, result.requeue_after) == (False, "ApplyFailed", 2.0)


def test_what_the_api_server_says_to_the_rule_sets_rule_synced() -> None:
    decided = plan.decide(spec(), {}, observed(spec(), None), NOW)
    assert decided.rule is not None
    missing = plan.rule_synced(decided.rule, None, (404, "no kind"), LABELS, spec())
    assert missing.reason == cond.Reason.PROMETHEUS_RULE_UNAVAILABLE
    assert plan.rule_synced(decided.rule, None, (500, "boom"), LABELS, spec()).reason == cond.Reason.APPLY_FAILED
    unlabelled = plan.rule_synced(decided.rule, {"metadata": {"labels": {}}}, None, LABELS, spec())
    assert (unlabelled.status, unlabelled.reason) == (False, cond.Reason.LABELS_MISSING)
    applied = plan.rule_synced(decided.rule, decided.rule, None, LABELS, spec())
    assert (applied.status, applied.reason) == (True, cond.Reason.SYNCED)


def test_a_created_retrain_is_an_event_a_record_and_a_reason_to_look_again_soon() -> None:
    s = spec(**RETRAIN)
    decided = plan.decide(s, {}, observed(s, read(SHIFTED)), NOW)
    run = {"metadata": {"name": "inputs-retrain-1", "annotations": {"modelops.io/retrain-at": "2026-01-02T12:00:00Z"}}}
    created = cond.Condition(loop.RETRAIN_TRIGGERED, True, cond.Reason.RETRAIN_STARTED, "TrainingRun created")
    records = loop.merge_records(decided.records, [run])
    result = outcome(s, {}, decided, settled(decided, retrain=created, created=run, records=records))
    assert ("Normal", cond.Reason.RETRAIN_STARTED, "TrainingRun created") in result.events
    assert of_type(result.conditions, loop.RETRAIN_TRIGGERED) == created
    assert [r["name"] for r in result.status["retrains"]] == ["inputs-retrain-1"]
    assert result.requeue_after == 5.0  # a run in flight: polled


def test_stage_requests_that_fail_and_runs_that_cannot_be_listed_are_said() -> None:
    s = spec(**RETRAIN)
    decided = plan.decide(s, {}, observed(s, read(STEADY)), NOW)
    result = outcome(s, {}, decided, settled(decided, promote_problems=["ModelVersion x: not found"]))
    failed = of_type(result.conditions, loop.RETRAIN_TRIGGERED)
    assert (failed.status, failed.reason) == (False, cond.Reason.PROMOTE_FAILED)
    unlisted = plan.Observations(subject(s), LABELS, None, None, None, "forbidden")
    blind = plan.decide(s, {}, unlisted, NOW)
    listing = of_type(blind.conditions, loop.RETRAIN_TRIGGERED)
    assert (listing.status, listing.reason) == ("Unknown", cond.Reason.LIST_FAILED)
    assert blind.retrain is None
