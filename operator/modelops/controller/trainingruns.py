"""TrainingRun: a ConfigMap and a Job that runs `modelops train`; a success registered as a ModelVersion.

The run follows its Job and pods as they change: a watch on Jobs and Pods labelled with the
run writes a digest of what the reconcile reads into the run's ``modelops.io/observed-job``
annotation when it changes, which makes the run reconcile at once (a Kopf retry delay would
hold a handler back even when news arrive). A timer on running runs re-checks every
``MODELOPS_POLL_SECONDS`` in case a watch event was missed, and, while the run is running,
nudges it once every ``MODELOPS_PROGRESS_TICK_SECONDS`` (default 60) even when nothing changed,
so the time elapsed in its status message stays current during a long fit.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from modelops.api import GROUP, VERSION, kind_info
from modelops.api.trainingrun import TrainingRunSpec
from modelops.controller import children, results, trainers
from modelops.controller.common import (
    API,
    ARTIFACT_STORE,
    TRAINER_IMAGE,
    kube,
    poll_seconds,
    run_as_user,
    wait_retry_seconds,
)
from modelops.controller.framework import Context, Outcome, register
from modelops.controller.kube import KubeError
from modelops.logic import conditions as cond
from modelops.logic import registration, training
from modelops.train import locations


async def _register(
    spec: TrainingRunSpec,
    ref: training.RunRef,
    result: dict[str, Any],
    job: dict[str, Any],
    trial: int | None,
    run: Mapping[str, Any],
) -> str:
    """Register the run's result once, as <model>-v<N> with N the next free number."""
    by_run = f"{registration.RUN_UID_LABEL}={ref.uid}"
    mine = await kube().list(API, "ModelVersion", ref.namespace, label_selector=by_run)
    if mine:
        return str(mine[0]["metadata"]["name"])
    by_model = f"{training.MODEL_LABEL}={spec.model}"
    version = registration.next_version(await kube().list(API, "ModelVersion", ref.namespace, label_selector=by_model))
    trained_by = await trainers.registered_trainers(run)  # four eyes must outlive the run
    for _ in range(20):
        body = registration.model_version(
            spec, ref, result, version=version, job=job, image=TRAINER_IMAGE, trial=trial, trained_by=trained_by
        )
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
        configmap, job = training.desired_children(
            spec, ref, image=TRAINER_IMAGE, default_store=ARTIFACT_STORE,
            allowed_endpoints=locations.allowed_endpoints(), run_as=run_as_user(),
        )  # fmt: skip
    except training.InvalidRunError as error:
        return Outcome(
            summary=cond.Summary(ready=False, reason=cond.Reason.INVALID_SPEC, message=str(error), stalled=True),
            status={"phase": "Failed", "message": str(error)},
        )
    except training.UnsupportedSpecError as error:
        return Outcome(
            summary=cond.Summary(ready=False, reason=cond.Reason.UNSUPPORTED, message=str(error), stalled=True),
            status={"phase": "Failed", "message": str(error)},
        )
    # Both immutable once made: the Job's pods read the ConfigMap as it was when it started.
    await children.apply(configmap, immutable=True)
    job_now = (await children.apply(job, immutable=True)).obj
    pods = await kube().list("v1", "Pod", ctx.namespace, label_selector=f"{training.RUN_LABEL}={ctx.name}")
    seen = training.observe(spec, job_now, pods, now=cond.now_iso())
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
                summary=cond.Summary(ready=False, reason=cond.Reason.NO_RESULT, message=message, stalled=True),
                status={**status, "message": message},
            )
        if training.needs_whole_result(result) and not ctx.status.get("modelVersion"):
            try:
                result = await results.whole_message(spec, ctx.namespace, result, pods, seen.best_trial or 0)
            except results.ResultUnavailableError as error:
                # Registering without the reference statistics would make a version drift cannot watch.
                message = f"{seen.message}, but its whole result (a wide table's statistics) cannot be read: {error}"
                return Outcome(
                    summary=cond.Summary(
                        ready=False, reason=cond.Reason.RESULT_UNAVAILABLE, message=message, reconciling=True
                    ),
                    status={**status, "message": message},
                    conditions=[cond.Condition("Registered", False, cond.Reason.RESULT_UNAVAILABLE, str(error))],
                    requeue_after=wait_retry_seconds(),
                )
        try:
            name = await _register(spec, ref, result, job_now, seen.best_trial, ctx.body)
        except KubeError as error:
            if error.status not in (400, 403, 422):
                raise
            # Refused by the schema or an admission webhook (e.g. a pickle where the policy allows none).
            message = f"{seen.message}, but registering the ModelVersion was refused: {error.message}"
            return Outcome(
                summary=cond.Summary(
                    ready=False, reason=cond.Reason.REGISTRATION_REFUSED, message=message, stalled=True
                ),
                status={**status, "message": message},
            )
        message = f"{seen.message}; registered as ModelVersion {name}"
        return Outcome(
            summary=cond.Summary(ready=True, reason=cond.Reason.SUCCEEDED, message=message),
            status={**status, "message": message, "modelVersion": name},
            conditions=[cond.Condition("Registered", True, cond.Reason.MODEL_VERSION_CREATED, f"ModelVersion {name}")],
        )
    if seen.phase == "Failed":
        return Outcome(
            summary=cond.Summary(ready=False, reason=seen.reason, message=seen.message, stalled=True),
            status=status,
        )
    return Outcome(
        summary=cond.Summary(ready=False, reason=seen.reason, message=seen.message, reconciling=True),
        status=status,
    )


# --- following the Job and its pods ------------------------------------------------------------

OBSERVED_ANNOTATION = "modelops.io/observed-job"


def progress_tick() -> float:
    """Seconds between the status updates of a running run whose Job and pods say nothing new."""
    return max(1.0, float(os.environ.get("MODELOPS_PROGRESS_TICK_SECONDS", "60")))


def job_digest(job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]], tick: int | None = None) -> str:
    """A digest of what the reconcile reads from a run's Job and pods (their status only), and of the
    clock's ``tick`` while the run is running (its elapsed time is news too)."""
    seen = {
        "tick": tick,
        "job": (job or {}).get("status") or {},
        "pods": sorted(
            ((p.get("metadata") or {}).get("name", ""), json.dumps(p.get("status") or {}, sort_keys=True)) for p in pods
        ),
    }
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:16]


async def nudge(namespace: str, name: str) -> bool:
    """Make a run reconcile when its Job or pods changed since it last looked; whether it did."""
    run = await kube().get(API, "TrainingRun", namespace, name)
    if run is None or run["metadata"].get("deletionTimestamp"):
        return False
    job = await kube().get("batch/v1", "Job", namespace, training.job_name(name))
    pods = await kube().list("v1", "Pod", namespace, label_selector=f"{training.RUN_LABEL}={name}")
    running = ((run.get("status") or {}).get("phase")) in ("Pending", "Running")
    digest = job_digest(job, pods, int(time.time() // progress_tick()) if running else None)
    if (run["metadata"].get("annotations") or {}).get(OBSERVED_ANNOTATION) == digest:
        return False
    try:
        await kube().patch(
            API, "TrainingRun", namespace, name, {"metadata": {"annotations": {OBSERVED_ANNOTATION: digest}}}
        )
    except KubeError as error:
        if error.status != 404:
            raise
        return False
    return True


async def on_child_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """A Job or pod of a run changed: let the run look."""
    meta = body.get("metadata") or {}
    run, namespace = (meta.get("labels") or {}).get(training.RUN_LABEL), meta.get("namespace")
    if run and namespace and event.get("type") in (None, "ADDED", "MODIFIED", "DELETED"):
        await nudge(str(namespace), str(run))


def _running(status: kopf.Status, **_: Any) -> bool:
    return dict(status or {}).get("phase") in ("Pending", "Running")


async def recheck(name: str, namespace: str | None, **_: Any) -> None:
    """The safety net for a missed watch event: nudge only if something changed."""
    await nudge(str(namespace), str(name))


def setup(registry: kopf.OperatorRegistry) -> None:
    """Add this kind's handlers to an operator's registry: the reconcile, the Job/pod watch, the timer."""
    register(registry, kind_info("TrainingRun"), reconcile_trainingrun)
    for group, version, plural in (("batch", "v1", "jobs"), ("", "v1", "pods")):
        kopf.on.event(
            group, version, plural, id=f"follow-{plural}", registry=registry,
            labels={training.RUN_LABEL: kopf.PRESENT},
        )(on_child_event)  # fmt: skip
    kopf.on.timer(
        GROUP, VERSION, "trainingruns", id="recheck-runs", registry=registry,
        interval=min(poll_seconds(), progress_tick()), when=_running,
    )(recheck)  # fmt: skip
