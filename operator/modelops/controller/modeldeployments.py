"""ModelDeployment: serve a ModelVersion."""

from __future__ import annotations

import kopf

from modelops.api import kind_info
from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.controller.common import API, lookup, waiting_for
from modelops.controller.framework import Context, Outcome, register
from modelops.logic import conditions as cond


async def reconcile_modeldeployment(spec: ModelDeploymentSpec, ctx: Context) -> Outcome:
    if spec.model_version is None:
        return Outcome(
            summary=cond.Summary(
                ready=False,
                reason=cond.Reason.WAITING,
                message=f"following the {spec.track} stage of {spec.model}; no version resolved yet",
                reconciling=True,
            ),
            status={"phase": "Progressing"},
        )
    version, problem = await lookup(API, "ModelVersion", ctx.namespace, spec.model_version)
    if problem is not None:
        return waiting_for("spec.modelVersion", problem, {"phase": "Progressing", "desiredVersion": spec.model_version})
    if version.get("spec", {}).get("model") != spec.model:
        return Outcome(
            summary=cond.Summary(
                ready=False,
                reason=cond.Reason.INVALID_SPEC,
                message=(
                    f"spec.modelVersion: {spec.model_version} is a version of "
                    f"{version.get('spec', {}).get('model')!r}, not of {spec.model!r}"
                ),
                stalled=True,
            ),
        )
    return Outcome(
        summary=cond.Summary(
            ready=False,
            reason=cond.Reason.PENDING,
            message=f"{spec.model_version} resolved; the model server Deployments are not created yet",
            reconciling=True,
        ),
        status={"phase": "Progressing", "desiredVersion": spec.model_version},
    )


def setup(registry: kopf.OperatorRegistry) -> None:
    """Add this kind's handlers to an operator's registry."""
    register(registry, kind_info("ModelDeployment"), reconcile_modeldeployment)
