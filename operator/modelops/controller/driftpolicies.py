"""DriftPolicy: watch a ModelDeployment's inputs for drift."""

from __future__ import annotations

import kopf

from modelops.api import kind_info
from modelops.api.driftpolicy import DriftPolicySpec
from modelops.controller.common import API, lookup, waiting_for
from modelops.controller.framework import Context, Outcome, register
from modelops.logic import conditions as cond


async def reconcile_driftpolicy(spec: DriftPolicySpec, ctx: Context) -> Outcome:
    _, problem = await lookup(API, "ModelDeployment", ctx.namespace, spec.deployment)
    if problem is not None:
        return waiting_for("spec.deployment", problem)
    return Outcome(
        summary=cond.Summary(
            ready=False,
            reason=cond.Reason.PENDING,
            message=f"watching {spec.deployment} is accepted; drift evaluation is not running yet",
            reconciling=True,
        ),
    )


def setup(registry: kopf.OperatorRegistry) -> None:
    """Add this kind's handlers to an operator's registry."""
    register(registry, kind_info("DriftPolicy"), reconcile_driftpolicy)
