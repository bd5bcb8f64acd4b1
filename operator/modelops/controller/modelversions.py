"""ModelVersion: the granted stage, decided by the governance policy."""

from __future__ import annotations

import kopf

from modelops.api import kind_info
from modelops.api.modelversion import ModelVersionSpec
from modelops.controller.framework import Context, Outcome, register
from modelops.logic import conditions as cond
from modelops.logic import governance


async def reconcile_modelversion(spec: ModelVersionSpec, ctx: Context) -> Outcome:
    now = cond.now_iso()
    granted = str(ctx.status.get("stage") or "None")
    decision = governance.decide_stage(spec.stage, granted, now=now)
    history = governance.append_history(ctx.status.get("history"), decision.transition)
    events = []
    if decision.transition is not None:
        events.append(("Normal", "StageChanged", f"stage {granted} → {decision.stage}"))
    return Outcome(
        summary=cond.Summary(ready=True, reason=cond.Reason.RECONCILED, message=decision.message),
        status={"stage": decision.stage, "history": history, "message": decision.message},
        conditions=[("Validated", True, "SpecValid", f"{spec.model} v{spec.version} is valid")],
        events=events,
    )


def setup(registry: kopf.OperatorRegistry) -> None:
    """Add this kind's handlers to an operator's registry."""
    register(registry, kind_info("ModelVersion"), reconcile_modelversion)
