"""DriftPolicy: watch a ModelDeployment's live inputs for drift, alert, and retrain.

One reconcile, run on create/update/resume and again every ``spec.interval`` (``Outcome.
requeue_after``), does in order:

1. resolve the ModelDeployment, its serving version (``status.servingVersion``, else
   ``stableVersion``) and that ModelVersion's ``referenceStats`` -- waiting while missing;
2. apply the PrometheusRule (server-side apply, owned by the policy, so an edited or deleted
   rule is put back at the next reconcile and a new serving version rewrites it) and set
   ``RuleSynced`` from what the API server returned (exists, carries MODELOPS_RULE_LABELS);
   ``Ready`` follows it: a policy whose alerting rule is not in place is not ready;
3. when due, evaluate through the Prometheus HTTP API: the raw bucket and category
   increases over the window, scored with the drift library (``logic.driftloop``) -- not the
   recording rules, so the evaluation works whether or not the cluster's Prometheus loaded
   them; unreachable Prometheus keeps the previous results and retries next interval;
   With ``spec.quality``, the same evaluation reads the serving version's live (or estimated)
   metrics and their evidence and sets ``QualityDegraded`` (``logic.qualityloop``); no Prometheus,
   or no answer, is Unknown and no action;
4. retrain on drift or on quality decay (``logic.driftloop.retrain_decision``: one decision, one
   cooldown and budget), follow the runs in ``status.retrains`` and ask for ``promoteTo`` on the
   versions they registered.
"""

from __future__ import annotations

import asyncio
import datetime
import os
from collections.abc import Mapping
from typing import Any

import kopf

from modelops.api import kind_info
from modelops.api.driftpolicy import DriftPolicySpec
from modelops.controller import prometheus as prom
from modelops.controller import requeue
from modelops.controller.common import API, kube, lookup, poll_seconds, wait_retry_seconds, waiting_for
from modelops.controller.framework import Context, Outcome, register
from modelops.controller.kube import KubeError
from modelops.drift import bins as binning
from modelops.logic import conditions as cond
from modelops.logic import driftloop as loop
from modelops.logic import driftrules as rules
from modelops.logic import qualityloop as quality
from modelops.logic.analysis import parse_duration
from modelops.logic.rules import missing_labels, rule_labels

Condition = tuple[str, bool | cond.Status, str, str]


def _not_ready(reason: str, message: str, *, stalled: bool = False) -> Outcome:
    return Outcome(
        summary=cond.Summary(ready=False, reason=reason, message=message, reconciling=not stalled, stalled=stalled),
        requeue_after=wait_retry_seconds(),
    )


async def _sync_rule(rule: dict[str, Any], wanted: Mapping[str, str]) -> Condition:
    try:
        applied = await kube().apply(rule)
    except KubeError as error:
        if error.status == 404:
            return (loop.RULE_SYNCED, False, cond.Reason.PROMETHEUS_RULE_UNAVAILABLE,
                    f"the API server has no PrometheusRule kind (install the Prometheus Operator CRDs): "
                    f"{error.message}")  # fmt: skip
        return (loop.RULE_SYNCED, False, cond.Reason.APPLY_FAILED,
                f"PrometheusRule {rule['metadata']['name']}: {error.message}")  # fmt: skip
    missing = missing_labels((applied.get("metadata") or {}).get("labels"), wanted)
    if missing:
        pairs = ",".join(f"{k}={v}" for k, v in missing.items())
        return (loop.RULE_SYNCED, False, cond.Reason.LABELS_MISSING,
                f"PrometheusRule lacks the selected labels {pairs}")  # fmt: skip
    return (loop.RULE_SYNCED, True, cond.Reason.SYNCED, f"PrometheusRule {rule['metadata']['name']} is applied")


async def _query_counts(
    url: str, target: rules.Target, window: str
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    buckets: dict[str, dict[str, float]] = {}
    for sample in await prom.query(url, loop.bucket_query(target, window)):
        buckets.setdefault(sample.labels.get("feature", ""), {})[sample.labels.get("le", "")] = sample.value
    categories: dict[str, dict[str, float]] = {}
    for sample in await prom.query(url, loop.category_query(target, window)):
        categories.setdefault(sample.labels.get("feature", ""), {})[sample.labels.get("category", "")] = sample.value
    return buckets, categories


async def _runs_of(namespace: str, policy: str) -> list[dict[str, Any]]:
    return await kube().list(API, "TrainingRun", namespace, label_selector=f"{rules.POLICY_LABEL}={policy}")


async def _promote(records: list[dict[str, Any]], spec: DriftPolicySpec, namespace: str) -> list[str]:
    """Ask for promoteTo on the versions finished retrains registered; problems as messages."""
    problems = []
    stage = spec.actions.retrain.promote_to
    for record in loop.to_promote(records, spec.actions.retrain):
        name = str(record["modelVersion"])
        version, problem = await lookup(API, "ModelVersion", namespace, name)
        if problem is not None:
            problems.append(problem)
            continue
        current = (version.get("spec") or {}).get("stage") or "None"
        try:
            if current == "None":
                await kube().patch(API, "ModelVersion", namespace, name, {"spec": {"stage": stage}})
        except KubeError as error:
            problems.append(f"cannot ask for {stage} on ModelVersion {name}: {error.message}")
            continue
        for item in records:
            if item["name"] == record["name"]:
                item["stageRequested"] = stage if current == "None" else f"{stage} (skipped: already {current})"
    return problems


async def reconcile_driftpolicy(spec: DriftPolicySpec, ctx: Context) -> Outcome:
    deployment, problem = await lookup(API, "ModelDeployment", ctx.namespace, spec.deployment)
    if problem is not None:
        return waiting_for("spec.deployment", problem)
    dstatus = deployment.get("status") or {}
    serving = dstatus.get("servingVersion") or dstatus.get("stableVersion")
    if not serving:
        problem = f"ModelDeployment {ctx.namespace}/{spec.deployment} serves no version yet"
        return waiting_for("spec.deployment", problem)
    version, problem = await lookup(API, "ModelVersion", ctx.namespace, serving)
    if problem is not None:
        return waiting_for("spec.deployment", f"its serving version: {problem}")
    vspec = version.get("spec") or {}
    reference_stats = vspec.get("referenceStats")
    no_reference = (f"ModelVersion {serving} has no spec.referenceStats; drift cannot be measured until they are "
                    "added")  # fmt: skip
    if not reference_stats and spec.quality is None:
        return _not_ready("NoReferenceStats", no_reference)
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
        return _not_ready(cond.Reason.INVALID_SPEC, message, stalled=True)
    model = str((deployment.get("spec") or {}).get("model") or vspec.get("model") or "")
    target = rules.Target(
        policy=ctx.name, namespace=ctx.namespace, deployment=spec.deployment, model=model, version=serving,
        uid=(ctx.body.get("metadata") or {}).get("uid"),
    )  # fmt: skip
    conditions: list[Condition] = []
    status: dict[str, Any] = {"modelVersion": serving}
    events: list[tuple[str, str, str]] = []
    bounds, bound_problems = (
        quality.limits(spec.quality, vspec.get("metrics") or {}) if spec.quality is not None else ([], [])
    )

    # 2. the PrometheusRule.
    try:
        wanted_labels = rule_labels(os.environ.get("MODELOPS_RULE_LABELS"))
    except ValueError as error:
        conditions.append((loop.RULE_SYNCED, False, cond.Reason.INVALID_RULE_LABELS, str(error)))
        wanted_labels = None
    if wanted_labels is not None:
        # KS critical values come from scipy's exact distribution: seconds of CPU the first time a
        # threshold is seen, so off the event loop.
        alerts = _quality_alerts(spec, target, bounds) if spec.actions.alert.enabled else []
        rule = await asyncio.to_thread(
            rules.prometheus_rule, spec, target, reference, features, wanted_labels, alerts
        )
        synced = await _sync_rule(rule, wanted_labels)
        note = rules.alerts_note(spec)
        if synced[1] is True and note is not None:
            synced = (loop.RULE_SYNCED, True, cond.Reason.SYNCED_WITHOUT_ALERTS, f"{synced[3]}; {note}")
        conditions.append(synced)

    # 3. the evaluation, when due.
    now = datetime.datetime.now(datetime.UTC)
    old = ctx.status
    changed = old.get("modelVersion") != serving or old.get("observedGeneration") != ctx.generation
    due = changed or loop.seconds_until_due(old.get("lastEvaluation"), spec.interval, now) <= 0
    drifted_now: bool | None = None
    degraded_now: bool | None = None
    message = str(old.get("message") or "waiting for the first evaluation")
    url: str | None = None
    if due:
        url = spec.prometheus.address if spec.prometheus and spec.prometheus.address else prom.default_url()
        if url is None:
            message = "no Prometheus: set spec.prometheus.address or the operator's MODELOPS_PROMETHEUS_URL"
            conditions.append((loop.DRIFT_DETECTED, "Unknown", loop.REASON_NO_PROMETHEUS, message))
        elif not reference_stats:
            message = no_reference
            conditions.append((loop.DRIFT_DETECTED, "Unknown", cond.Reason.NO_REFERENCE_STATS, message))
        else:
            try:
                buckets, categories = await _query_counts(url, target, rules.prom_duration(spec.window))
            except prom.PrometheusError as error:
                message = f"Prometheus unreachable, previous results kept, retrying in {spec.interval}: {error}"
                conditions.append((loop.DRIFT_DETECTED, "Unknown", loop.REASON_PROM_UNREACHABLE, message))
            else:
                evaluation = loop.evaluate(spec, reference_stats, features, buckets, categories)
                status["lastEvaluation"] = cond.now_iso(now)
                status["samples"] = round(evaluation.samples)
                if evaluation.samples < spec.min_samples:
                    message = loop.too_few_message(spec, evaluation.samples)
                    conditions.append((loop.DRIFT_DETECTED, "Unknown", loop.REASON_TOO_FEW, message))
                else:
                    message = loop.drift_message(spec, evaluation)
                    reason = loop.REASON_DRIFT if evaluation.drifted else loop.REASON_NO_DRIFT
                    conditions.append((loop.DRIFT_DETECTED, evaluation.drifted, reason, message))
                    status["features"] = evaluation.features
                    status["drifted"] = evaluation.drifted
                    events += loop.drift_events(old.get("drifted"), evaluation, message)
                    drifted_now = evaluation.drifted
        if spec.quality is not None:
            verdict = await _judge_quality(spec, target, url, bounds, bound_problems)
            conditions.append((quality.QUALITY_DEGRADED, _tristate(verdict.degraded), verdict.reason,
                               verdict.message))  # fmt: skip
            if verdict.results or verdict.degraded is not None:
                status["quality"] = verdict.results
            if verdict.degraded is not None:
                status["qualityDegraded"] = verdict.degraded
                events += quality.events(old.get("qualityDegraded"), verdict)
            if verdict.degraded is True:
                degraded_now, message = True, f"{message}; {verdict.message}"
            elif verdict.degraded is False:
                degraded_now = False
    status["message"] = message

    # 4. retraining.
    action = spec.actions.retrain
    try:
        runs = await _runs_of(ctx.namespace, ctx.name)
    except KubeError as error:
        listing = f"cannot list TrainingRuns: {error.message}"
        conditions.append((loop.RETRAIN_TRIGGERED, "Unknown", cond.Reason.LIST_FAILED, listing))
        runs = None
    if runs is not None:
        records = loop.merge_records(old.get("retrains"), runs)
        # Decay of quality retrains like drift: the same decision, cooldown and budget.
        act_now = True if (drifted_now or degraded_now) else (None if drifted_now is None and degraded_now is None
                                                              else False)  # fmt: skip
        cause = "drift" if drifted_now or not degraded_now else "quality decay"
        decision = loop.retrain_decision(action, drifted_now=act_now, records=records, now=now, cause=cause)
        retrain_condition: Condition = (loop.RETRAIN_TRIGGERED, decision.status, decision.reason, decision.message)
        if decision.create:
            retrain_condition, created = await _create_retrain(spec, target, version, message, now)
            if created is not None:
                records = loop.merge_records(records, [created])
                events.append(("Normal", cond.Reason.RETRAIN_STARTED, retrain_condition[3]))
        problems = await _promote(records, spec, ctx.namespace)
        # Between evaluations only a run's progress changes the condition, so it does not flip to "no drift".
        fresh = due or decision.create or decision.reason == cond.Reason.IN_FLIGHT
        if problems:
            conditions.append((loop.RETRAIN_TRIGGERED, False, cond.Reason.PROMOTE_FAILED, "; ".join(problems)))
        elif fresh or cond.find(old.get("conditions"), loop.RETRAIN_TRIGGERED) is None:
            conditions.append(retrain_condition)
        if records or old.get("retrains"):
            status["retrains"] = records
        pending = loop.in_flight(records) is not None or bool(loop.to_promote(records, action))
    else:
        pending = False

    if due and "lastEvaluation" not in status:
        next_due = parse_duration(spec.interval)  # no answer from Prometheus: retry next interval
    else:
        last = status.get("lastEvaluation") or old.get("lastEvaluation")
        next_due = max(loop.seconds_until_due(last, spec.interval, now), 0.5)
    if pending:
        next_due = min(next_due, poll_seconds())
    rule_synced = next(c for c in conditions if c[0] == loop.RULE_SYNCED)
    if rule_synced[1] is not True:
        # The alerts the policy promises are not in place: not Ready, and looked at again soon.
        next_due = min(next_due, wait_retry_seconds())
        summary = cond.Summary(ready=False, reason=rule_synced[2], message=f"{rule_synced[3]}; {message}",
                               reconciling=True)  # fmt: skip
    else:
        summary = cond.Summary(ready=True, reason=cond.Reason.RECONCILED, message=message)
    return Outcome(
        summary=summary,
        status=status,
        conditions=conditions,
        events=events,
        requeue_after=next_due,
    )


def _tristate(value: bool | None) -> bool | cond.Status:
    return "Unknown" if value is None else value


def _quality_alerts(spec: DriftPolicySpec, target: rules.Target, bounds: list[quality.Limit]) -> list[dict[str, Any]]:
    if spec.quality is None:
        return []
    alert = spec.actions.alert
    return quality.alert_rules(
        spec.quality, bounds, namespace=target.namespace, deployment=target.deployment, model=target.model,
        version=target.version, window=rules.prom_duration(spec.quality.window),
        labels={**(alert.labels or {}), "drift_policy": target.policy_id, "deployment": target.deployment},
        for_=rules.prom_duration(alert.for_), severity=alert.severity,
    )  # fmt: skip


async def _judge_quality(
    spec: DriftPolicySpec, target: rules.Target, url: str | None, bounds: list[quality.Limit], problems: list[str]
) -> quality.Verdict:
    """QualityDegraded from the Prometheus HTTP API; no Prometheus or no answer is Unknown, saying so."""
    assert spec.quality is not None
    if url is None:
        return quality.Verdict(None, loop.REASON_NO_PROMETHEUS, "no Prometheus: set spec.prometheus.address or the "
                               "operator's MODELOPS_PROMETHEUS_URL", [])  # fmt: skip
    window = rules.prom_duration(spec.quality.window)
    where = (target.namespace, target.deployment, target.model, target.version, window)
    readings: dict[str, tuple[float | None, float]] = {}
    try:
        for metric in {b.metric for b in bounds}:
            value = await prom.query_one(url, quality.value_query(metric, *where))
            evidence = await prom.query_one(url, quality.evidence_query(metric, *where))
            readings[metric] = (value, evidence or 0.0)
    except prom.PrometheusError as error:
        message = f"Prometheus unreachable, no action, retrying in {spec.interval}: {error}"
        return quality.Verdict(None, loop.REASON_PROM_UNREACHABLE, message, [])
    return quality.judge(spec.quality, bounds, readings, problems)


async def _create_retrain(
    spec: DriftPolicySpec, target: rules.Target, version: Mapping[str, Any], reason: str, now: datetime.datetime
) -> tuple[Condition, dict[str, Any] | None]:
    action = spec.actions.retrain
    original = None
    lineage_run = ((version.get("spec") or {}).get("lineage") or {}).get("trainingRun") or {}
    if action.template is None and lineage_run.get("name"):
        original, _ = await lookup(API, "TrainingRun", target.namespace, str(lineage_run["name"]))
    try:
        run_spec = loop.retrain_spec(action, target.model, version, original)
    except loop.RetrainError as error:
        return (loop.RETRAIN_TRIGGERED, False, cond.Reason.CANNOT_RETRAIN, str(error)), None
    run = loop.retrain_run(target, action, run_spec, reason, now, cond.now_iso(now))
    try:
        created = await kube().create(run)
    except KubeError as error:
        return (loop.RETRAIN_TRIGGERED, False, cond.Reason.CREATE_FAILED,
                f"cannot create TrainingRun {run['metadata']['name']}: {error.message}"), None  # fmt: skip
    name = run["metadata"]["name"]
    return (loop.RETRAIN_TRIGGERED, True, cond.Reason.RETRAIN_STARTED, f"TrainingRun {name} created: {reason}"), created


async def on_rule_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """A policy's PrometheusRule was edited or deleted by hand: let the policy put it back now."""
    meta = body.get("metadata") or {}
    policy, namespace = (meta.get("labels") or {}).get(rules.POLICY_LABEL), meta.get("namespace")
    owned = any(ref.get("kind") == "DriftPolicy" for ref in meta.get("ownerReferences") or [])
    if policy and namespace and owned and event.get("type") in ("MODIFIED", "DELETED"):
        requeue.schedule("DriftPolicy", str(namespace), str(policy), 0)


async def on_deployment_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """A deployment now serves another version: its policies re-target their rule at once."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    serving = status.get("servingVersion") or status.get("stableVersion")
    if not namespace or not name or not serving or event.get("type") not in (None, "ADDED", "MODIFIED"):
        return
    for item in await kube().list(API, "DriftPolicy", str(namespace)):
        if (item.get("spec") or {}).get("deployment") != name:
            continue
        if (item.get("status") or {}).get("modelVersion") != serving:
            requeue.schedule("DriftPolicy", str(namespace), str(item["metadata"]["name"]), 0)


def setup(registry: kopf.OperatorRegistry) -> None:
    """Add this kind's handlers to an operator's registry: the reconcile, and watches on its rules and
    on the deployments it follows."""
    register(registry, kind_info("DriftPolicy"), reconcile_driftpolicy)
    kopf.on.event(
        "monitoring.coreos.com", "v1", "prometheusrules", id="restore-drift-rules", registry=registry,
        labels={rules.POLICY_LABEL: kopf.PRESENT},
    )(on_rule_event)  # fmt: skip
    kopf.on.event("modelops.io", "v1alpha1", "modeldeployments", id="follow-serving-version", registry=registry)(
        on_deployment_event
    )
