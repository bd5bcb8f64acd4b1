"""ModelVersion: the granted stage, decided by the governance policy and written by compare-and-swap.

The reconcile reads the version afresh (never deciding on the event's copy, which may be stale),
gathers the evidence (metrics against gates, approval records from the ``modelops.io/approvals``
annotation that only the mutating webhook writes, the creator and ``spec.trainedBy``, a canary's
rejection) and lets ``logic.governance.decide`` grant ``spec.stage`` into ``status.stage``.

Every write of governed status (``stage``, ``approvals``, ``history``, ``rejected``) is a merge
patch carrying the ``metadata.resourceVersion`` it was decided on: a 409 means someone wrote in
between, so the reconcile reads again and decides again. Kopf's own status patch (which has no
precondition) does not carry these fields for this kind (``Outcome.status_written``).

One Production version per model: a grant of Production archives the model's other Production
versions, then writes its own; a lock per model orders the grants of one replica, and one replica
acts at a time (Kopf peering). Peering has windows in which two act (docs/governance.md), so a
version holding Production also lists the model's versions after its write and archives every
other one holding it, keeping the one granted last (``governance.production_winner``): both
replicas apply the rule to what they list and agree. Malformed records are ignored with a Warning.

A grant whose own write then meets a 409 is decided again; should the new decision not grant
(the version changed in that moment: a rejection, a new stage asked for), the versions archived
for it stay archived, as the history and Events say.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

import kopf

from modelops.api import API_VERSION, GROUP, VERSION, keys, kind_info
from modelops.api.modelversion import ModelVersionSpec
from modelops.controller import audit, common, metrics, runtime, trainers
from modelops.controller.framework import Context, Outcome, build_status, invalid_outcome, register
from modelops.controller.kube import KubeError
from modelops.logic import conditions as cond
from modelops.logic import governance, qualityloop
from modelops.logic.policy import DEFAULT, Policy
from modelops.logic.validation import parse

# How often one reconcile reads again after a 409 before Kopf retries it later.
MAX_ATTEMPTS = 8


class ConflictError(Exception):
    """The object changed since it was read: read it again and decide again."""


def _production_lock(namespace: str, model: str) -> asyncio.Lock:
    """A lock per model in this operator run."""
    return runtime.current().lock("production", namespace, model)


async def write_status(namespace: str, name: str, resource_version: str, status: Mapping[str, Any]) -> Any:
    """A status merge patch that only applies to the object as it was read (409, 404 → :class:`ConflictError`)."""
    patch = {"metadata": {"resourceVersion": resource_version}, "status": dict(status)}
    try:
        return await common.kube().patch(API_VERSION, "ModelVersion", namespace, name, patch, subresource="status")
    except KubeError as error:
        if error.status in (404, 409):  # changed, or deleted: the next read tells which
            raise ConflictError(str(error)) from None
        raise


async def _model_versions(namespace: str, model: str) -> list[dict[str, Any]]:
    listed = await common.kube().list(API_VERSION, "ModelVersion", namespace)
    return [v for v in listed if (v.get("spec") or {}).get("model") == model]


def _holds_production(version: Mapping[str, Any]) -> bool:
    return (version.get("status") or {}).get("stage") == "Production"


async def archive(other: Mapping[str, Any], successor: str, now: str) -> bool:
    """Archive one version that holds Production because ``successor`` keeps it; whether it was archived.

    Compare-and-swap on the version as listed; after a 409 it is read again and archived only if it
    still holds Production.
    """
    meta = other.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    current: Mapping[str, Any] | None = other
    for _ in range(MAX_ATTEMPTS):
        if current is None or not _holds_production(current):
            return False
        meta = current.get("metadata") or {}
        status = current.get("status") or {}
        entry = governance.supersede(successor, now)
        message = f"stage Production → Archived: {entry['reason']}"
        conditions = cond.set_condition(
            status.get("conditions"), cond.READY, False, "Superseded",
            f"archived: {successor} was granted Production; approve Production again to bring this version back",
            generation=int(meta.get("generation") or 0), now=now,
        )  # fmt: skip
        archived = {
            "stage": "Archived",
            "history": governance.append_history(status.get("history"), entry),
            "message": message,
            "conditions": conditions,
        }
        try:
            await write_status(namespace, name, str(meta.get("resourceVersion")), archived)
        except ConflictError:
            current = await common.kube().get(API_VERSION, "ModelVersion", namespace, name)
            continue
        audit.status_written(current, status, archived)
        kopf.event(
            kopf.Body(cast(kopf.RawBody, current)), type="Normal", reason=cond.Reason.STAGE_CHANGED, message=message
        )
        return True
    raise kopf.TemporaryError(f"ModelVersion {namespace}/{name} kept changing while it was archived", delay=1)


async def settle_production(namespace: str, model: str, now: str) -> list[str]:
    """Leave one version of the model in Production (the one granted last); the names archived."""
    holders = [v for v in await _model_versions(namespace, model) if _holds_production(v)]
    if len(holders) < 2:
        return []
    winner = governance.production_winner(holders)
    archived = []
    for other in holders:
        name = str(other["metadata"]["name"])
        if name != winner and await archive(other, winner, now):
            archived.append(name)
    return archived


async def creators_of(body: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """Everyone four eyes keeps from approving: the creator, spec.trainedBy, and its TrainingRun's creators."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    creator, problem = governance.parse_creator(annotations.get(keys.CREATED_BY))
    people = ([creator] if creator else []) + governance.trainers(body.get("spec"))
    # The live TrainingRun too: versions registered before spec.trainedBy existed, or made by hand.
    people += await trainers.trainingrun_creators(body)
    return list(dict.fromkeys(people)), problem


async def evaluate(spec: ModelVersionSpec, body: Mapping[str, Any], policy: Policy, now: str) -> Outcome:
    """The decision on one reading of the version, as an Outcome (status, conditions, Events)."""
    status_now: Mapping[str, Any] = body.get("status") or {}
    granted = str(status_now.get("stage") or "None")
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    records, problems = governance.parse_records(annotations.get(keys.APPROVALS))
    creators, creator_problem = await creators_of(body)
    if creator_problem:
        problems.append(creator_problem)
    events: list[tuple[str, str, str]] = [
        ("Warning", cond.Reason.MALFORMED_APPROVAL, f"ignored: {problem}") for problem in problems
    ]
    history = list(status_now.get("history") or [])
    decision = governance.decide(
        desired=spec.stage,
        granted=granted,
        policy=policy,
        metrics=spec.metrics,
        version_gates=[g.model_dump(by_alias=True) for g in spec.gates or ()],
        records=records,
        creators=creators,
        history=history,
        rejected=status_now.get("rejected"),
        sha256=spec.artifact.sha256,
        now=now,
        requested_by=governance.parse_requester(annotations.get(keys.STAGE_REQUESTED_BY), spec.stage),
        fairness_record=spec.fairness.model_dump(by_alias=True, exclude_none=True) if spec.fairness else None,
    )
    status: dict[str, Any] = {
        "stage": decision.stage,
        "message": decision.message,
        "gates": decision.gates,
        "approvals": records,
        "stageRequest": governance.stage_request(
            spec.stage, annotations.get(keys.STAGE_REQUESTED_BY), status_now.get("stageRequest"), now
        ),
    }
    t = decision.transition
    if t is not None:
        status["history"] = governance.append_history(history, t)
        kind = "Warning" if decision.reason == cond.Reason.REJECTED else "Normal"
        events.append((kind, cond.Reason.STAGE_CHANGED, f"stage {t['from']} → {t['to']} by {t['by']}: {t['reason']}"))
    return Outcome(
        summary=cond.Summary(ready=decision.ready, reason=decision.reason, message=decision.message),
        status=status,
        conditions=[*decision.conditions, *_estimate_trust(spec)],
        events=events,
        status_written=True,
    )


def _estimate_trust(spec: ModelVersionSpec) -> list[tuple[str, bool, str, str]]:
    """EstimateTrusted from the calibration training recorded (none for a regressor)."""
    calibration = spec.lineage.calibration if spec.lineage else None
    trust = qualityloop.estimate_trust(
        spec.task,
        spec.signature.classes if spec.signature else None,
        spec.metrics,
        calibration.model_dump(exclude_none=True) if calibration else None,
    )
    return [trust] if trust else []


def _name_archived(outcome: Outcome, others: list[str]) -> None:
    """Say in the grant's history entry and Event which versions it supersedes."""
    if not others or "history" not in outcome.status:
        return
    entry = dict(outcome.status["history"][-1])
    entry["reason"] = f"{entry['reason']}; archived {', '.join(others)}"
    outcome.status["history"] = [*outcome.status["history"][:-1], entry]
    outcome.events = [
        (kind, reason, f"{text}; archived {', '.join(others)}" if reason == cond.Reason.STAGE_CHANGED else text)
        for kind, reason, text in outcome.events
    ]


def make_reconcile(policy: Policy) -> Any:
    async def reconcile_modelversion(spec: ModelVersionSpec, ctx: Context) -> Outcome:
        uid = (ctx.body.get("metadata") or {}).get("uid")
        for _ in range(MAX_ATTEMPTS):
            now = cond.now_iso()
            fresh = await common.kube().get(API_VERSION, "ModelVersion", ctx.namespace, ctx.name)
            meta = (fresh or {}).get("metadata") or {}
            if fresh is None or meta.get("uid") != uid or meta.get("deletionTimestamp"):
                metrics.VERSIONS.forget(ctx.namespace, ctx.name)
                gone = cond.Summary(ready=False, reason=cond.Reason.NOT_FOUND, message="deleted")
                return Outcome(summary=gone, status_written=True)  # nothing of this object to write
            parsed = parse(ModelVersionSpec, fresh.get("spec") or {})
            if parsed.model is None:
                return invalid_outcome(parsed.invalid.message if parsed.invalid else "spec is invalid")
            current = parsed.model
            metrics.VERSIONS.observe(ctx.namespace, ctx.name, {"model": current.model, "metrics": current.metrics})
            outcome = await evaluate(current, fresh, policy, now)
            production = outcome.status["stage"] == "Production"
            lock = _production_lock(ctx.namespace, current.model) if production else None
            try:
                if lock is not None:
                    await lock.acquire()
                if production and "history" in outcome.status:
                    # A grant archives the model's other Production versions first, so that (with one replica
                    # acting) nobody ever lists two; its own write follows.
                    holders = [v for v in await _model_versions(ctx.namespace, current.model) if _holds_production(v)]
                    archived = [
                        str(v["metadata"]["name"])
                        for v in holders
                        if v["metadata"]["uid"] != uid and await archive(v, ctx.name, now)
                    ]
                    _name_archived(outcome, archived)
                fresh_status: dict[str, Any] = fresh.get("status") or {}
                status = build_status(fresh_status, outcome, int(meta.get("generation") or 0), now)
                if any(fresh_status.get(key) != value for key, value in status.items()):
                    await write_status(ctx.namespace, ctx.name, str(meta.get("resourceVersion")), status)
                    audit.status_written(fresh, fresh_status, status)
                if production:
                    await settle_production(ctx.namespace, current.model, now)
            except ConflictError:
                continue  # written in between: read again, decide again
            finally:
                if lock is not None:
                    lock.release()
            return outcome
        raise kopf.TemporaryError(f"ModelVersion {ctx.namespace}/{ctx.name} kept changing; deciding again", delay=1)

    return reconcile_modelversion


def setup(registry: kopf.OperatorRegistry, *, policy: Policy = DEFAULT) -> None:
    """Add this kind's handlers to an operator's registry."""
    register(registry, kind_info("ModelVersion"), make_reconcile(policy))
    kopf.on.event(GROUP, VERSION, "modelversions", id="forget-training-series", registry=registry)(
        runtime.bound(metrics.forget_deleted(metrics.VERSIONS))
    )
