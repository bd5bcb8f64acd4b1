"""TrainingRun: a ConfigMap and a Job that runs `modelops train`; a success registered as a ModelVersion."""

from __future__ import annotations

from typing import Any

import kopf

from modelops.api import kind_info
from modelops.api.trainingrun import TrainingRunSpec
from modelops.controller.common import API, ARTIFACT_STORE, TRAINER_IMAGE, ensure, kube, poll_seconds
from modelops.controller.framework import Context, Outcome, register
from modelops.controller.kube import KubeError
from modelops.logic import conditions as cond
from modelops.logic import registration, training


async def _register(
    spec: TrainingRunSpec, ref: training.RunRef, result: dict[str, Any], job: dict[str, Any], trial: int | None
) -> str:
    """Register the run's result once, as <model>-v<N> with N the next free number."""
    by_run = f"{registration.RUN_UID_LABEL}={ref.uid}"
    mine = await kube().list(API, "ModelVersion", ref.namespace, label_selector=by_run)
    if mine:
        return str(mine[0]["metadata"]["name"])
    by_model = f"{training.MODEL_LABEL}={spec.model}"
    version = registration.next_version(await kube().list(API, "ModelVersion", ref.namespace, label_selector=by_model))
    for _ in range(20):
        body = registration.model_version(spec, ref, result, version=version, job=job, image=TRAINER_IMAGE, trial=trial)
        try:
            created = await kube().create(body)
        except KubeError as error:
            if error.status != 409:
                raise
            version += 1  # another run took that number (or a hand-made version has it): take the next
            continue
        return str(created["metadata"]["name"])
    raise kopf.TemporaryError(f"no free version number for model {spec.model} near v{version}", delay=5)


async def reconcile_trainingrun(spec: TrainingRunSpec, ctx: Context) -> Outcome:
    ref = training.RunRef(name=ctx.name, namespace=ctx.namespace, uid=str(ctx.body["metadata"]["uid"]))
    try:
        configmap, job = training.desired_children(spec, ref, image=TRAINER_IMAGE, default_store=ARTIFACT_STORE)
    except training.InvalidRunError as error:
        return Outcome(
            summary=cond.Summary(ready=False, reason=cond.Reason.INVALID_SPEC, message=str(error), stalled=True),
            status={"phase": "Failed", "message": str(error)},
        )
    except training.UnsupportedSpecError as error:
        return Outcome(
            summary=cond.Summary(ready=False, reason="Unsupported", message=str(error), stalled=True),
            status={"phase": "Failed", "message": str(error)},
        )
    await ensure(configmap)
    created = await ensure(job)
    job_now = await kube().get("batch/v1", "Job", ctx.namespace, job["metadata"]["name"]) or created
    pods = await kube().list("v1", "Pod", ctx.namespace, label_selector=f"{training.RUN_LABEL}={ctx.name}")
    seen = training.observe(spec, job_now, pods)
    status: dict[str, Any] = {
        "phase": seen.phase,
        "message": seen.message,
        "jobName": job["metadata"]["name"],
        "progress": seen.progress,
        "trials": seen.trials,
    }
    for key, value in (
        ("startTime", seen.start_time),
        ("completionTime", seen.completion_time),
        ("bestTrial", seen.best_trial),
    ):
        if value is not None:
            status[key] = value
    if seen.best_trial is not None:
        best = seen.trials[seen.best_trial]
        status["metrics"] = best.get("metrics")
        if best.get("artifact"):
            status["artifact"] = best["artifact"]
    if seen.phase == "Succeeded":
        result = seen.results.get(seen.best_trial) if seen.best_trial is not None else None
        if result is None:
            message = f"{seen.message}, but no trial reported a result to register"
            return Outcome(
                summary=cond.Summary(ready=False, reason="NoResult", message=message, stalled=True),
                status={**status, "message": message},
            )
        name = await _register(spec, ref, result, job_now, seen.best_trial)
        message = f"{seen.message}; registered as ModelVersion {name}"
        return Outcome(
            summary=cond.Summary(ready=True, reason=cond.Reason.SUCCEEDED, message=message),
            status={**status, "message": message, "modelVersion": name},
            conditions=[("Registered", True, "ModelVersionCreated", f"ModelVersion {name}")],
        )
    if seen.phase == "Failed":
        return Outcome(
            summary=cond.Summary(ready=False, reason=seen.reason, message=seen.message, stalled=True),
            status=status,
        )
    return Outcome(
        summary=cond.Summary(ready=False, reason=seen.reason, message=seen.message, reconciling=True),
        status=status,
        requeue_after=poll_seconds(),
    )


def setup(registry: kopf.OperatorRegistry) -> None:
    """Add this kind's handlers to an operator's registry."""
    register(registry, kind_info("TrainingRun"), reconcile_trainingrun)
