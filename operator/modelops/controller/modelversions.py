"""ModelVersion: the granted stage, decided by the governance policy.

The reconcile reads the evidence (metrics against gates, approval records from the
``modelops.io/approvals`` annotation that only the mutating webhook writes, the creator, a
canary's rejection) and grants ``spec.stage`` into ``status.stage`` when the policy allows.
Granting Production archives the model's previous Production version (a status patch on
it, with its own history entry and Event). Malformed records are ignored with a Warning.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import kopf

from modelops.api import kind_info
from modelops.api.modelversion import ModelVersionSpec
from modelops.controller import common, webhooks
from modelops.controller.framework import Context, Outcome, build_status, register
from modelops.controller.kube import KubeError
from modelops.logic import conditions as cond
from modelops.logic import governance
from modelops.logic.policy import DEFAULT, Policy

_PRODUCTION_LOCKS: dict[tuple[int, str, str], asyncio.Lock] = {}


def _production_lock(namespace: str, model: str) -> asyncio.Lock:
    """A lock per model in this operator's event loop (tests run several operators in turn)."""
    key = (id(asyncio.get_running_loop()), namespace, model)
    return _PRODUCTION_LOCKS.setdefault(key, asyncio.Lock())


async def archive_previous_production(spec: ModelVersionSpec, ctx: Context, now: str) -> list[str]:
    """Archive every other Production version of the same model; the names archived."""
    archived: list[str] = []
    for other in await common.kube().list(common.API, "ModelVersion", ctx.namespace):
        meta = other.get("metadata") or {}
        status = other.get("status") or {}
        name = str(meta.get("name"))
        if name == ctx.name or (other.get("spec") or {}).get("model") != spec.model:
            continue
        if status.get("stage") != "Production":
            continue
        entry = governance.supersede(ctx.name, now)
        message = f"stage Production → Archived: {entry['reason']}"
        conditions = cond.set_condition(
            status.get("conditions"),
            cond.READY,
            False,
            "Superseded",
            f"archived: {ctx.name} was granted Production; approve Production again to bring this version back",
            generation=int(meta.get("generation") or 0),
            now=now,
        )
        patch: dict[str, Any] = {
            # The resourceVersion makes this a compare-and-swap: a concurrent change is a 409, retried.
            "metadata": {"resourceVersion": meta.get("resourceVersion")},
            "status": {
                "stage": "Archived",
                "history": governance.append_history(status.get("history"), entry),
                "message": message,
                "conditions": conditions,
            },
        }
        await common.kube().patch(common.API, "ModelVersion", ctx.namespace, name, patch, subresource="status")
        kopf.event(kopf.Body(cast(kopf.RawBody, other)), type="Normal", reason="StageChanged", message=message)
        archived.append(name)
    return archived


def make_reconcile(policy: Policy) -> Any:
    async def reconcile_modelversion(spec: ModelVersionSpec, ctx: Context) -> Outcome:
        now = cond.now_iso()
        granted = str(ctx.status.get("stage") or "None")
        annotations = (ctx.body.get("metadata") or {}).get("annotations") or {}
        records, problems = governance.parse_records(annotations.get(governance.APPROVALS))
        creator, creator_problem = governance.parse_creator(annotations.get(governance.CREATED_BY))
        events: list[tuple[str, str, str]] = []
        if creator_problem:
            problems.append(creator_problem)
        for problem in problems:
            events.append(("Warning", "MalformedApproval", f"ignored: {problem}"))
        history = list(ctx.status.get("history") or [])
        decision = governance.decide(
            desired=spec.stage,
            granted=granted,
            policy=policy,
            metrics=spec.metrics,
            version_gates=[g.model_dump(by_alias=True) for g in spec.gates or ()],
            records=records,
            creators=([creator] if creator else []) + await webhooks.trainingrun_creators(ctx.body),
            history=history,
            rejected=ctx.status.get("rejected"),
            sha256=spec.artifact.sha256,
            now=now,
            requested_by=governance.parse_requester(annotations.get(governance.STAGE_REQUESTED_BY), spec.stage),
        )
        status: dict[str, Any] = {
            "stage": decision.stage,
            "message": decision.message,
            "gates": decision.gates,
            "approvals": records,
        }
        outcome = Outcome(
            summary=cond.Summary(ready=decision.ready, reason=decision.reason, message=decision.message),
            status=status,
            conditions=decision.conditions,
            events=events,
        )
        if decision.transition is None:
            return outcome
        t = decision.transition
        if decision.stage != "Production":
            status["history"] = governance.append_history(history, t)
            events.append(("Normal", "StageChanged", f"stage {t['from']} → {t['to']} by {t['by']}: {t['reason']}"))
            return outcome
        # One grant of Production per model at a time (one active replica, through peering): archive
        # the others and write this grant's whole status before another version of the model looks.
        async with _production_lock(ctx.namespace, spec.model):
            try:
                archived = await archive_previous_production(spec, ctx, now)
            except KubeError as error:
                # Nothing of this version was granted yet: try again, the whole move at once.
                raise kopf.TemporaryError(f"cannot archive the previous Production version: {error}", delay=2) from None
            if archived:
                t = {**t, "reason": f"{t['reason']}; archived {', '.join(archived)}"}
            status["history"] = governance.append_history(history, t)
            events.append(("Normal", "StageChanged", f"stage {t['from']} → {t['to']} by {t['by']}: {t['reason']}"))
            granted_status = build_status(ctx.status, outcome, ctx.generation, now)
            await common.kube().patch(
                common.API, "ModelVersion", ctx.namespace, ctx.name, {"status": granted_status}, subresource="status"
            )
        return outcome

    return reconcile_modelversion


def setup(registry: kopf.OperatorRegistry, *, policy: Policy = DEFAULT) -> None:
    """Add this kind's handlers to an operator's registry."""
    register(registry, kind_info("ModelVersion"), make_reconcile(policy))
