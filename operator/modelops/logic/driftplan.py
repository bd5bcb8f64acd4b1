"""The DriftPolicy reconcile's decisions, as pure functions of (spec, status, observations, now).

The controller (``controller.driftpolicies``) does only I/O, in this order:

1. reads the ModelDeployment and its serving ModelVersion; :func:`subject` says what the policy
   watches (model, version, reference statistics, features, quality limits) or why it cannot;
2. asks :func:`due` whether an evaluation is due (a new serving version, a new generation, or
   ``spec.interval`` since ``status.lastEvaluation``) and, if it is, reads Prometheus; lists the
   policy's TrainingRuns;
3. asks :func:`decide` for a :class:`Plan`: the status fields, the ``DriftDetected``,
   ``QualityDegraded`` and ``FairnessDegraded`` (``logic.fairnessloop``) conditions and their
   Events, the PrometheusRule to apply, whether to create a retraining TrainingRun, and the
   retrain records whose versions to ask ``promoteTo`` for;
4. applies the plan (the rule through children.apply, the create, the stage requests) and hands
   what the API server said to :func:`settle`, which gives the outcome: ``RuleSynced`` (``Ready``
   follows it: a policy whose alerting rule is not in place is not ready), ``RetrainTriggered``,
   ``status.retrains``, the summary and when to look again.

Rules:
- an unreachable Prometheus keeps the previous results (``DriftDetected`` Unknown) and retries
  next interval; no Prometheus configured is Unknown too; so is quality with no answer;
- drift, quality decay and unfairness retrain alike (``logic.driftloop.retrain_decision``: one decision, one
  cooldown and budget); between evaluations only a run's progress changes ``RetrainTriggered``,
  so it does not flip to "no drift";
- with a run in flight or a version still to promote, look again within the poll interval.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelops.api.driftpolicy import DriftPolicySpec
from modelops.drift import bins as binning
from modelops.logic import conditions as cond
from modelops.logic import driftloop as loop
from modelops.logic import driftrules as rules
from modelops.logic import fairnessloop as fairness
from modelops.logic import qualityloop as quality
from modelops.logic.analysis import parse_duration
from modelops.logic.rules import missing_labels

Event = tuple[str, str, str]
Counts = tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]  # (buckets, categories) per feature


@dataclass(frozen=True)
class Subject:
    """What a policy watches: the serving version and what its evaluation needs from it."""

    target: rules.Target
    version: Mapping[str, Any]
    reference_stats: Any
    reference: Mapping[str, binning.FeatureBins]
    features: Sequence[str]
    bounds: list[quality.Limit]
    bound_problems: list[str]


@dataclass(frozen=True)
class Refusal:
    """Why the policy cannot act on its serving version now (not ready; looked at again later)."""

    reason: str
    message: str
    stalled: bool = False


def subject(
    spec: DriftPolicySpec, policy: str, namespace: str, uid: str | None,
    deployment: Mapping[str, Any], serving: str, version: Mapping[str, Any],
) -> Subject | Refusal:  # fmt: skip
    """The subject of the policy, or why there is none (the deployment and version are resolved)."""
    vspec = version.get("spec") or {}
    reference_stats = vspec.get("referenceStats")
    if not reference_stats and spec.quality is None and spec.fairness is None:
        return Refusal(cond.Reason.NO_REFERENCE_STATS, no_reference(serving))
    try:
        # A policy with quality thresholds still judges quality for a version without reference statistics.
        reference = binning.parse_reference_stats(reference_stats) if reference_stats else {}
        features = rules.select_features(spec, reference) if reference_stats else []
        loop.check_methods(spec, reference, features)
    except ValueError as error:
        # spec.features / spec.method name themselves; anything else is the version's referenceStats. Look
        # again later either way: the deployment may move to a version that has those features.
        text = str(error)
        message = text if text.startswith("spec.") else f"ModelVersion {serving} spec.referenceStats: {text}"
        return Refusal(cond.Reason.INVALID_SPEC, message, stalled=True)
    model = str((deployment.get("spec") or {}).get("model") or vspec.get("model") or "")
    target = rules.Target(policy=policy, namespace=namespace, deployment=str(spec.deployment), model=model,
                          version=serving, uid=uid)  # fmt: skip
    classes = (vspec.get("signature") or {}).get("classes")
    bounds, problems = quality.limits(spec.quality, vspec.get("metrics") or {}, classes) if spec.quality else ([], [])
    return Subject(target, version, reference_stats, reference, features, bounds, problems)


def no_reference(serving: str) -> str:
    return f"ModelVersion {serving} has no spec.referenceStats; drift cannot be measured until they are added"


def due(
    spec: DriftPolicySpec, status: Mapping[str, Any], serving: str, generation: int, now: datetime.datetime
) -> bool:
    """Whether an evaluation is due: a new serving version or generation, or an interval since the last."""
    changed = status.get("modelVersion") != serving or status.get("observedGeneration") != generation
    return changed or loop.seconds_until_due(status.get("lastEvaluation"), spec.interval, now) <= 0


@dataclass(frozen=True)
class Readings:
    """What Prometheus answered for one evaluation (gathered only when one is due)."""

    url: str | None  # None: no Prometheus configured
    counts: Counts | None = None  # the drift counts; None when not asked or no answer
    counts_error: str | None = None
    quality: Mapping[str, tuple[float | None, float]] | None = None  # metric → (value, evidence)
    quality_error: str | None = None
    fairness: fairness.Readings | None = None  # (feature, metric) → (gap, evidence); None: not asked or no answer
    fairness_error: str | None = None


@dataclass(frozen=True)
class Observations:
    """What the controller read for one decision."""

    subject: Subject
    rule_labels: Mapping[str, str] | None  # the labels Prometheus selects rules by; None: not valid
    rule_labels_error: str | None
    readings: Readings | None  # None: no evaluation due
    runs: Sequence[Mapping[str, Any]] | None  # the policy's TrainingRuns; None: could not be listed
    runs_error: str | None = None


@dataclass
class Plan:
    """What to do: the status so far, conditions and Events, and the writes to make."""

    status: dict[str, Any]
    conditions: list[cond.Condition]
    events: list[Event]
    message: str
    due: bool
    rule: dict[str, Any] | None  # the PrometheusRule to apply (None: the rule labels are not valid)
    records: list[dict[str, Any]] | None  # the retrain records (None: the runs could not be listed)
    retrain: loop.Decision | None = None  # create a run when ``retrain.create``
    promote: list[Mapping[str, Any]] = field(default_factory=list)  # records whose versions to promote


def decide(
    spec: DriftPolicySpec, status: Mapping[str, Any], observed: Observations, now: datetime.datetime
) -> Plan:
    """The plan for one reconcile (see the module docstring). The rule's KS critical values come
    from scipy's exact distribution: seconds of CPU the first time a threshold is seen, so call
    this off the event loop."""
    sub = observed.subject
    conditions: list[cond.Condition] = []
    events: list[Event] = []
    new: dict[str, Any] = {"modelVersion": sub.target.version}
    rule: dict[str, Any] | None = None
    if observed.rule_labels is None:
        conditions.append(cond.Condition(loop.RULE_SYNCED, False, cond.Reason.INVALID_RULE_LABELS,
                                         str(observed.rule_labels_error)))  # fmt: skip
    else:
        alerts = quality_alerts(spec, sub.target, sub.bounds) if spec.actions.alert.enabled else []
        alerts += fairness.policy_alerts(spec, sub.target)
        rule = rules.prometheus_rule(spec, sub.target, sub.reference, sub.features, observed.rule_labels, alerts)

    drifted_now: bool | None = None
    degraded_now: bool | None = None
    unfair_now: bool | None = None
    message = str(status.get("message") or "waiting for the first evaluation")
    readings = observed.readings
    if readings is not None:
        if readings.url is None:
            message = "no Prometheus: set spec.prometheus.address or the operator's MODELOPS_PROMETHEUS_URL"
            conditions.append(cond.Condition(loop.DRIFT_DETECTED, "Unknown", loop.REASON_NO_PROMETHEUS, message))
        elif not sub.reference_stats:
            message = no_reference(sub.target.version)
            conditions.append(cond.Condition(loop.DRIFT_DETECTED, "Unknown", cond.Reason.NO_REFERENCE_STATS, message))
        elif readings.counts is None:
            message = (f"Prometheus unreachable, previous results kept, retrying in {spec.interval}: "
                       f"{readings.counts_error}")  # fmt: skip
            conditions.append(cond.Condition(loop.DRIFT_DETECTED, "Unknown", loop.REASON_PROM_UNREACHABLE, message))
        else:
            buckets, categories = readings.counts
            evaluation = loop.evaluate(spec, sub.reference_stats, sub.features, buckets, categories)
            new["lastEvaluation"] = cond.now_iso(now)
            new["samples"] = round(evaluation.samples)
            if evaluation.samples < spec.min_samples:
                message = loop.too_few_message(spec, evaluation.samples)
                conditions.append(cond.Condition(loop.DRIFT_DETECTED, "Unknown", loop.REASON_TOO_FEW, message))
            else:
                message = loop.drift_message(spec, evaluation)
                reason = loop.REASON_DRIFT if evaluation.drifted else loop.REASON_NO_DRIFT
                conditions.append(cond.Condition(loop.DRIFT_DETECTED, evaluation.drifted, reason, message))
                new["features"] = evaluation.features
                new["drifted"] = evaluation.drifted
                events += loop.drift_events(status.get("drifted"), evaluation, message)
                drifted_now = evaluation.drifted
        if spec.quality is not None:
            verdict = judge_quality(spec, sub, readings)
            conditions.append(cond.Condition(quality.QUALITY_DEGRADED, _tristate(verdict.degraded), verdict.reason,
                                             verdict.message))  # fmt: skip
            if verdict.results or verdict.degraded is not None:
                new["quality"] = verdict.results
            if verdict.degraded is not None:
                new["qualityDegraded"] = verdict.degraded
                events += quality.events(status.get("qualityDegraded"), verdict)
            if verdict.degraded is True:
                degraded_now, message = True, f"{message}; {verdict.message}"
            elif verdict.degraded is False:
                degraded_now = False
        if spec.fairness is not None:
            fair = fairness.judge_readings(spec, readings.url, readings.fairness, readings.fairness_error)
            conditions.append(cond.Condition(fairness.FAIRNESS_DEGRADED, _tristate(fair.degraded), fair.reason,
                                             fair.message))  # fmt: skip
            if fair.results:
                new["fairness"] = fair.results
            if fair.degraded is not None:
                new["fairnessDegraded"] = unfair_now = fair.degraded
                events += fairness.events(status.get("fairnessDegraded"), fair)
            if fair.degraded is True:
                message = f"{message}; {fair.message}"
    new["message"] = message

    plan = Plan(new, conditions, events, message, readings is not None, rule, None)
    if observed.runs is None:
        conditions.append(cond.Condition(loop.RETRAIN_TRIGGERED, "Unknown", cond.Reason.LIST_FAILED,
                                         f"cannot list TrainingRuns: {observed.runs_error}"))  # fmt: skip
        return plan
    plan.records = loop.merge_records(status.get("retrains"), observed.runs)
    # Decay of quality, or unfairness, retrains like drift: the same decision, cooldown and budget.
    act_now, cause = fairness.retrain_cause(drifted_now, degraded_now, unfair_now)
    plan.retrain = loop.retrain_decision(spec.actions.retrain, drifted_now=act_now, records=plan.records, now=now,
                                         cause=cause)  # fmt: skip
    plan.promote = loop.to_promote(plan.records, spec.actions.retrain)
    return plan


def judge_quality(spec: DriftPolicySpec, sub: Subject, readings: Readings) -> quality.Verdict:
    """QualityDegraded from what Prometheus answered; no Prometheus or no answer is Unknown, saying so."""
    assert spec.quality is not None
    if readings.url is None:
        return quality.Verdict(None, loop.REASON_NO_PROMETHEUS, "no Prometheus: set spec.prometheus.address or the "
                               "operator's MODELOPS_PROMETHEUS_URL", [])  # fmt: skip
    if readings.quality is None:
        message = f"Prometheus unreachable, no action, retrying in {spec.interval}: {readings.quality_error}"
        return quality.Verdict(None, loop.REASON_PROM_UNREACHABLE, message, [])
    return quality.judge(spec.quality, sub.bounds, readings.quality, sub.bound_problems)


def quality_alerts(spec: DriftPolicySpec, target: rules.Target, bounds: list[quality.Limit]) -> list[dict[str, Any]]:
    if spec.quality is None:
        return []
    alert = spec.actions.alert
    return quality.alert_rules(
        spec.quality, bounds, namespace=target.namespace, deployment=target.deployment, model=target.model,
        version=target.version, window=rules.prom_duration(spec.quality.window),
        labels={**(alert.labels or {}), "drift_policy": target.policy_id, "deployment": target.deployment},
        for_=rules.prom_duration(alert.for_), severity=alert.severity,
    )  # fmt: skip


def _tristate(value: bool | None) -> bool | cond.Status:
    return "Unknown" if value is None else value


def rule_synced(
    rule: Mapping[str, Any], applied: Mapping[str, Any] | None, error: tuple[int, str] | None,
    wanted: Mapping[str, str], spec: DriftPolicySpec,
) -> cond.Condition:  # fmt: skip
    """RuleSynced from what the API server answered to the apply: the object, or (status, message)."""
    name = rule["metadata"]["name"]
    if error is not None:
        status, text = error
        if status == 404:
            return cond.Condition(loop.RULE_SYNCED, False, cond.Reason.PROMETHEUS_RULE_UNAVAILABLE,
                                  f"the API server has no PrometheusRule kind (install the Prometheus Operator "
                                  f"CRDs): {text}")  # fmt: skip
        return cond.Condition(loop.RULE_SYNCED, False, cond.Reason.APPLY_FAILED, f"PrometheusRule {name}: {text}")
    missing = missing_labels(((applied or {}).get("metadata") or {}).get("labels"), wanted)
    if missing:
        pairs = ",".join(f"{k}={v}" for k, v in missing.items())
        return cond.Condition(loop.RULE_SYNCED, False, cond.Reason.LABELS_MISSING,
                              f"PrometheusRule lacks the selected labels {pairs}")  # fmt: skip
    note = rules.alerts_note(spec)
    if note is not None:
        return cond.Condition(loop.RULE_SYNCED, True, cond.Reason.SYNCED_WITHOUT_ALERTS,
                              f"PrometheusRule {name} is applied; {note}")  # fmt: skip
    return cond.Condition(loop.RULE_SYNCED, True, cond.Reason.SYNCED, f"PrometheusRule {name} is applied")


@dataclass(frozen=True)
class Settled:
    """What the API server said to the plan's writes."""

    synced: cond.Condition | None  # RuleSynced after the apply (None: no rule to apply)
    retrain: cond.Condition | None = None  # RetrainTriggered after a create (None: none asked for)
    created: Mapping[str, Any] | None = None  # the TrainingRun created
    records: list[dict[str, Any]] | None = None  # the records after the stage requests
    promote_problems: Sequence[str] = ()


@dataclass
class Result:
    """The reconcile's outcome: what the controller returns to the framework."""

    summary: cond.Summary
    status: dict[str, Any]
    conditions: list[cond.Condition]
    events: list[Event]
    requeue_after: float


def settle(
    spec: DriftPolicySpec, status: Mapping[str, Any], plan: Plan, settled: Settled, now: datetime.datetime,
    *, poll: float, retry: float,
) -> Result:  # fmt: skip
    """The outcome of a plan, once its writes were made (``poll``/``retry``: the operator's intervals)."""
    conditions = list(plan.conditions)
    if settled.synced is not None:
        conditions.insert(0, settled.synced)
    events = list(plan.events)
    new = dict(plan.status)
    pending = False
    if plan.records is not None and plan.retrain is not None:
        decision = plan.retrain
        records = settled.records if settled.records is not None else plan.records
        retrain_condition = cond.Condition(loop.RETRAIN_TRIGGERED, decision.status, decision.reason, decision.message)
        if decision.create and settled.retrain is not None:
            retrain_condition = settled.retrain
            if settled.created is not None:
                events.append(("Normal", cond.Reason.RETRAIN_STARTED, retrain_condition.message))
        fresh = plan.due or decision.create or decision.reason == cond.Reason.IN_FLIGHT
        if settled.promote_problems:
            conditions.append(cond.Condition(loop.RETRAIN_TRIGGERED, False, cond.Reason.PROMOTE_FAILED,
                                             "; ".join(settled.promote_problems)))  # fmt: skip
        elif fresh or cond.find(status.get("conditions"), loop.RETRAIN_TRIGGERED) is None:
            conditions.append(retrain_condition)
        if records or status.get("retrains"):
            new["retrains"] = records
        pending = loop.in_flight(records) is not None or bool(loop.to_promote(records, spec.actions.retrain))

    if plan.due and "lastEvaluation" not in new:
        next_due = parse_duration(spec.interval)  # no answer from Prometheus: retry next interval
    else:
        last = new.get("lastEvaluation") or status.get("lastEvaluation")
        next_due = max(loop.seconds_until_due(last, spec.interval, now), 0.5)
    if pending:
        next_due = min(next_due, poll)
    synced = next(c for c in conditions if c.type == loop.RULE_SYNCED)
    if synced.status is not True:
        # The alerts the policy promises are not in place: not Ready, and looked at again soon.
        next_due = min(next_due, retry)
        summary = cond.Summary(ready=False, reason=synced.reason, message=f"{synced.message}; {plan.message}",
                               reconciling=True)  # fmt: skip
    else:
        summary = cond.Summary(ready=True, reason=cond.Reason.RECONCILED, message=plan.message)
    return Result(summary, new, conditions, events, next_due)
