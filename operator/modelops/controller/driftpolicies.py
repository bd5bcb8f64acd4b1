"""DriftPolicy: watch a ModelDeployment's live inputs for drift and quality, alert, and retrain.

One reconcile, run on create/update/resume and again every ``spec.interval`` (``Outcome.
requeue_after``), as thin as the ModelDeployment's: it reads, asks the pure decisions in
``logic.driftplan`` what to do, and writes. In order:

1. resolve the ModelDeployment, its serving version (``status.servingVersion``, else
   ``stableVersion``) and that ModelVersion -- waiting while missing; ``driftplan.subject``;
2. when an evaluation is due (``driftplan.due``), read the Prometheus HTTP API: the raw bucket
   and category increases over the window (not the recording rules, so the evaluation works
   whether or not the cluster's Prometheus loaded them) and, with ``spec.quality``, the serving
   version's live (or estimated) metrics and their evidence; list the policy's TrainingRuns;
3. ``driftplan.decide`` gives the plan; then apply its PrometheusRule (``children.apply``: created,
   patched or left as it is; owned by the
   policy, so an edited or deleted rule is put back at the next reconcile and a new serving
   version rewrites it), create the retraining TrainingRun it asks for, ask for ``promoteTo`` on
   the versions finished retrains registered;
4. ``driftplan.settle`` turns what the API server answered into the outcome.
"""

from __future__ import annotations

import asyncio
import datetime
import os
from collections.abc import Mapping
from typing import Any

import kopf

from modelops.api import GROUP, VERSION, kind_info
from modelops.api.driftpolicy import DriftPolicySpec
from modelops.controller import children, fairnesspolicy, requeue, runtime
from modelops.controller import prometheus as prom
from modelops.controller.common import API, kube, lookup, poll_seconds, wait_retry_seconds, waiting_for
from modelops.controller.framework import Context, Outcome, register
from modelops.controller.kube import KubeError
from modelops.logic import conditions as cond
from modelops.logic import driftloop as loop
from modelops.logic import driftplan as plan
from modelops.logic import driftrules as rules
from modelops.logic import qualityloop as quality
from modelops.logic.rules import rule_labels


def _not_ready(reason: str, message: str, *, stalled: bool = False) -> Outcome:
    return Outcome(
        summary=cond.Summary(ready=False, reason=reason, message=message, reconciling=not stalled, stalled=stalled),
        requeue_after=wait_retry_seconds(),
    )


async def _apply_rule(rule: dict[str, Any]) -> tuple[dict[str, Any] | None, tuple[int, str] | None]:
    """The rule created, patched or left as it is (``children.apply``, the way every kind applies its children):
    (the object the API server has, None) or (None, (status, message))."""
    try:
        applied = await children.apply(rule, optional_api=True)
    except KubeError as error:
        return None, (error.status, error.message)
    if applied.missing_api:
        return None, (404, f"the server could not find the requested resource ({rule['apiVersion']})")
    return applied.obj, None


async def _query_counts(url: str, target: rules.Target, window: str) -> plan.Counts:
    buckets: dict[str, dict[str, float]] = {}
    for sample in await prom.query(url, loop.bucket_query(target, window)):
        buckets.setdefault(sample.labels.get("feature", ""), {})[sample.labels.get("le", "")] = sample.value
    categories: dict[str, dict[str, float]] = {}
    for sample in await prom.query(url, loop.category_query(target, window)):
        categories.setdefault(sample.labels.get("feature", ""), {})[sample.labels.get("category", "")] = sample.value
    return buckets, categories


async def _read_prometheus(spec: DriftPolicySpec, sub: plan.Subject) -> plan.Readings:
    """What Prometheus says for one evaluation: the drift counts, the quality and the fairness readings."""
    url = spec.prometheus.address if spec.prometheus and spec.prometheus.address else prom.default_url()
    if url is None:
        return plan.Readings(url=None)
    counts: plan.Counts | None = None
    counts_error: str | None = None
    if sub.reference_stats:
        try:
            counts = await _query_counts(url, sub.target, rules.prom_duration(spec.window))
        except prom.PrometheusError as error:
            counts_error = str(error)
    readings: dict[str, tuple[float | None, float]] | None = None
    quality_error: str | None = None
    if spec.quality is not None:
        target = sub.target
        where = (target.namespace, target.deployment, target.model, target.version,
                 rules.prom_duration(spec.quality.window))  # fmt: skip
        readings = {}
        try:
            for bound in {b.key: b for b in sub.bounds}.values():
                value = await prom.query_one(url, quality.value_query(bound, *where))
                evidence = await prom.query_one(url, quality.evidence_query(bound, *where))
                readings[bound.key] = (value, evidence or 0.0)
        except prom.PrometheusError as error:
            readings, quality_error = None, str(error)
    unfair, unfair_error = await fairnesspolicy.read(spec, sub.target, url) if spec.fairness else (None, None)
    return plan.Readings(url, counts, counts_error, readings, quality_error, unfair, unfair_error)


async def _runs_of(namespace: str, policy: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    try:
        return await kube().list(API, "TrainingRun", namespace, label_selector=f"{rules.POLICY_LABEL}={policy}"), None
    except KubeError as error:
        return None, error.message


async def _promote(
    records: list[dict[str, Any]], wanted: list[Mapping[str, Any]], spec: DriftPolicySpec, namespace: str
) -> list[str]:
    """Ask for promoteTo on the versions finished retrains registered; problems as messages."""
    problems = []
    stage = spec.actions.retrain.promote_to
    for record in wanted:
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
    """Read, decide (``logic.driftplan``), write what the plan says, and settle the outcome."""
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
    uid = (ctx.body.get("metadata") or {}).get("uid")
    sub = plan.subject(spec, ctx.name, ctx.namespace, uid, deployment, serving, version)
    if isinstance(sub, plan.Refusal):
        return _not_ready(sub.reason, sub.message, stalled=sub.stalled)

    now = datetime.datetime.now(datetime.UTC)
    try:
        wanted_labels: dict[str, str] | None = rule_labels(os.environ.get("MODELOPS_RULE_LABELS"))
        labels_problem = None
    except ValueError as error:
        wanted_labels, labels_problem = None, str(error)
    readings = await _read_prometheus(spec, sub) if plan.due(spec, ctx.status, serving, ctx.generation, now) else None
    runs, runs_problem = await _runs_of(ctx.namespace, ctx.name)
    observed = plan.Observations(sub, wanted_labels, labels_problem, readings, runs, runs_problem)
    # The rule's KS critical values may take seconds of CPU: decide off the event loop.
    decided = await asyncio.to_thread(plan.decide, spec, ctx.status, observed, now)

    synced = None
    if decided.rule is not None and wanted_labels is not None:
        applied, apply_error = await _apply_rule(decided.rule)
        synced = plan.rule_synced(decided.rule, applied, apply_error, wanted_labels, spec)
    retrained, created = None, None
    records = decided.records
    if decided.retrain is not None and decided.retrain.create and records is not None:
        retrained, created = await _create_retrain(spec, sub.target, version, decided.message, now)
        if created is not None:
            records = loop.merge_records(records, [created])
    problems = await _promote(records, decided.promote, spec, ctx.namespace) if records is not None else []
    settled = plan.Settled(synced, retrained, created, records, problems)
    result = plan.settle(spec, ctx.status, decided, settled, now, poll=poll_seconds(), retry=wait_retry_seconds())
    return Outcome(summary=result.summary, status=result.status, conditions=result.conditions, events=result.events,
                   requeue_after=result.requeue_after)  # fmt: skip


async def _create_retrain(
    spec: DriftPolicySpec, target: rules.Target, version: Mapping[str, Any], reason: str, now: datetime.datetime
) -> tuple[cond.Condition, dict[str, Any] | None]:
    action = spec.actions.retrain
    original = None
    lineage_run = ((version.get("spec") or {}).get("lineage") or {}).get("trainingRun") or {}
    if action.template is None and lineage_run.get("name"):
        original, _ = await lookup(API, "TrainingRun", target.namespace, str(lineage_run["name"]))
    try:
        run_spec = loop.retrain_spec(action, target.model, version, original)
    except loop.RetrainError as error:
        return cond.Condition(loop.RETRAIN_TRIGGERED, False, cond.Reason.CANNOT_RETRAIN, str(error)), None
    run = loop.retrain_run(target, action, run_spec, reason, now, cond.now_iso(now))
    try:
        created = await kube().create(run)
    except KubeError as error:
        failed = f"cannot create TrainingRun {run['metadata']['name']}: {error.message}"
        return cond.Condition(loop.RETRAIN_TRIGGERED, False, cond.Reason.CREATE_FAILED, failed), None
    name = run["metadata"]["name"]
    return cond.Condition(loop.RETRAIN_TRIGGERED, True, cond.Reason.RETRAIN_STARTED,
                          f"TrainingRun {name} created: {reason}"), created  # fmt: skip


async def on_rule_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """A policy's PrometheusRule was edited or deleted by hand: let the policy put it back now."""
    meta = body.get("metadata") or {}
    policy, namespace = (meta.get("labels") or {}).get(rules.POLICY_LABEL), meta.get("namespace")
    owned = any(ref.get("kind") == "DriftPolicy" for ref in meta.get("ownerReferences") or [])
    if policy and namespace and owned and event.get("type") in ("MODIFIED", "DELETED"):
        requeue.schedule("DriftPolicy", str(namespace), str(policy), 0)


async def on_deployment_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A deployment now serves another version: its policies re-target their rule at once.

    Only when the version it serves changed since this run last looked (a deployment's other events,
    its status's many, list no policies)."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    namespace, name = meta.get("namespace"), meta.get("name")
    serving = status.get("servingVersion") or status.get("stableVersion")
    seen: dict[tuple[str, str], str] = runtime.of(memo).kept("driftpolicy-serving-seen", dict)
    key = (str(namespace), str(name))
    if event.get("type") == "DELETED":
        seen.pop(key, None)
    if not namespace or not name or not serving or event.get("type") not in (None, "ADDED", "MODIFIED"):
        return
    if seen.get(key) == serving:
        return
    for item in await kube().list(API, "DriftPolicy", str(namespace)):
        if (item.get("spec") or {}).get("deployment") != name:
            continue
        if (item.get("status") or {}).get("modelVersion") != serving:
            requeue.schedule("DriftPolicy", str(namespace), str(item["metadata"]["name"]), 0)
    seen[key] = str(serving)


def setup(registry: kopf.OperatorRegistry) -> None:
    """Add this kind's handlers to an operator's registry: the reconcile, and watches on its rules and
    on the deployments it follows."""
    register(registry, kind_info("DriftPolicy"), reconcile_driftpolicy)
    kopf.on.event(
        "monitoring.coreos.com", "v1", "prometheusrules", id="restore-drift-rules", registry=registry,
        labels={rules.POLICY_LABEL: kopf.PRESENT},
    )(runtime.bound(on_rule_event))  # fmt: skip
    kopf.on.event(GROUP, VERSION, "modeldeployments", id="follow-serving-version", registry=registry)(
        runtime.bound(on_deployment_event)
    )
