"""The Kopf handlers of the four kinds: parse, decide through pure logic, apply.

``registry()`` builds a Kopf registry with everything the operator does; nothing is
registered at import time, so several operators (tests) can run in one process.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from modelops.api import kind_info
from modelops.api.driftpolicy import DriftPolicySpec
from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.api.modelversion import ModelVersionSpec
from modelops.api.trainingrun import TrainingRunSpec
from modelops.controller import credentials, settings
from modelops.controller.framework import Context, Outcome, register
from modelops.controller.kube import Kube, KubeError
from modelops.logic import conditions as cond
from modelops.logic import governance, registration, training

API = "modelops.io/v1alpha1"


# Intervals are read at each use, so a test (or an operator restart with new env) can change them.
def wait_retry_seconds() -> float:
    """How soon to look again while waiting for an object that another resource names."""
    return float(os.environ.get("MODELOPS_WAIT_RETRY_SECONDS", "15"))


def poll_seconds() -> float:
    """How often a running training is looked at again."""
    return float(os.environ.get("MODELOPS_POLL_SECONDS", "10"))


# The image of training pods (the operator's own, which carries `modelops train`).
TRAINER_IMAGE = os.environ.get("MODELOPS_IMAGE", "ghcr.io/modelops/modelops-operator:0.1.0")
# Where runs without spec.artifactStore write their artifacts, e.g. pvc://modelops-artifacts.
ARTIFACT_STORE = os.environ.get("MODELOPS_ARTIFACT_STORE") or None
_kube: Kube | None = None


def kube() -> Kube:
    """One client per operator run, made on first use inside the operator's event loop."""
    global _kube  # a lazily made client shared by the handlers
    if _kube is None:
        _kube = Kube(credentials.load())
    return _kube


async def _close_client(**_: Any) -> None:
    # Several operator runs in one process (tests) must not share a client of an old server.
    global _kube
    if _kube is not None:
        await _kube.close()
        _kube = None


async def _ensure(obj: dict[str, Any]) -> dict[str, Any]:
    """Create a child unless it exists; an existing one is left as it is (Jobs are immutable)."""
    meta = obj["metadata"]
    existing = await kube().get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    if existing is not None:
        return existing
    try:
        return await kube().create(obj)
    except KubeError as error:
        if error.status != 409:
            raise
        found = await kube().get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        return found or obj


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
    await _ensure(configmap)
    created = await _ensure(job)
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


async def _lookup(api_version: str, kind: str, namespace: str, name: str) -> tuple[Any, str | None]:
    try:
        found = await kube().get(api_version, kind, namespace, name)
    except KubeError as error:
        return None, f"cannot read {kind} {namespace}/{name}: {error.message}"
    if found is None:
        return None, f"{kind} {namespace}/{name} does not exist"
    return found, None


def _waiting_for(field: str, problem: str, status: dict[str, Any] | None = None) -> Outcome:
    """Not ready while a referenced object is missing; look again soon, it may be created later."""
    return Outcome(
        summary=cond.Summary(
            ready=False, reason=cond.Reason.NOT_FOUND, message=f"{field}: {problem}", reconciling=True
        ),
        status=status or {},
        requeue_after=wait_retry_seconds(),
    )


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
    version, problem = await _lookup(API, "ModelVersion", ctx.namespace, spec.model_version)
    if problem is not None:
        return _waiting_for(
            "spec.modelVersion", problem, {"phase": "Progressing", "desiredVersion": spec.model_version}
        )
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


async def reconcile_driftpolicy(spec: DriftPolicySpec, ctx: Context) -> Outcome:
    _, problem = await _lookup(API, "ModelDeployment", ctx.namespace, spec.deployment)
    if problem is not None:
        return _waiting_for("spec.deployment", problem)
    return Outcome(
        summary=cond.Summary(
            ready=False,
            reason=cond.Reason.PENDING,
            message=f"watching {spec.deployment} is accepted; drift evaluation is not running yet",
            reconciling=True,
        ),
    )


def registry() -> kopf.OperatorRegistry:
    """A registry with the operator's settings, login, cleanup and the four kinds' handlers."""
    result = kopf.OperatorRegistry()
    settings.register(result)
    kopf.on.cleanup(registry=result)(_close_client)
    register(result, kind_info("TrainingRun"), reconcile_trainingrun)
    register(result, kind_info("ModelVersion"), reconcile_modelversion)
    register(result, kind_info("ModelDeployment"), reconcile_modeldeployment)
    register(result, kind_info("DriftPolicy"), reconcile_driftpolicy)
    return result
