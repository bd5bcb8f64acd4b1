"""TrainingRun: a ConfigMap and a Job that runs `modelops train`; a success registered as a ModelVersion.

The run follows its Job and pods as they change: a watch on Jobs and Pods labelled with the
run writes a digest of what the reconcile reads into the run's ``modelops.io/observed-job``
annotation when it changes, which makes the run reconcile at once (a Kopf retry delay would
hold a handler back even when news arrive). The watch keeps the last Job and pods it saw per run
in the operator's memo (:class:`Children`, forgotten as they and the run are deleted): the digest
is computed from them, not read again from the API. One pass of the operator's over the pending
and running runs (kept from their own watch) re-checks every ``MODELOPS_POLL_SECONDS`` from that
memory, so a nudge that failed is made again without a request per run per interval (a pass, not
a Kopf timer per run: Kopf puts a finalizer on every object a timer serves); while a run is running it
nudges once every ``MODELOPS_PROGRESS_TICK_SECONDS`` (default 60) even when nothing changed, so the
time elapsed in its status message stays current during a long fit (a pending run's message
shows no time, so it gets no tick).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from modelops.api import GROUP, VERSION, kind_info
from modelops.api.trainingrun import TrainingRunSpec
from modelops.controller import children, results, runtime, trainers
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
    # Both immutable once made: the Job's pods read the ConfigMap as it was when it started. A new run
    # (no jobName yet) creates them without reading first: one request each.
    new = not ctx.status.get("jobName")
    await children.apply(configmap, immutable=True, create_first=new)
    applied = await children.apply(job, immutable=True, create_first=new)
    job_now = applied.obj
    # A Job this reconcile made has no pods yet; any pod it gets later is an event that nudges the run.
    by_run = f"{training.RUN_LABEL}={ctx.name}"
    pods = [] if applied.created else await kube().list("v1", "Pod", ctx.namespace, label_selector=by_run)
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


class Children:
    """The last state the watches delivered of each run (the runs' own watch) and of its Job and pods,
    by (namespace, run)."""

    def __init__(self) -> None:
        self._jobs: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._pods: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
        self._runs: dict[tuple[str, str], Mapping[str, Any]] = {}

    def run_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """Take one watch event of a run itself (deleted: it and what it owned are forgotten)."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if event_type == "DELETED":
            self.forget(namespace, name)
        elif namespace and name:
            self._runs[(namespace, name)] = body

    def runs(self) -> list[Mapping[str, Any]]:
        """Every run as last delivered."""
        return list(self._runs.values())

    def record(self, event_type: str | None, body: Mapping[str, Any]) -> tuple[str, str] | None:
        """Take one watch event of a Job or pod; the run it belongs to, if it names one."""
        meta = body.get("metadata") or {}
        run, namespace = (meta.get("labels") or {}).get(training.RUN_LABEL), meta.get("namespace")
        if not run or not namespace:
            return None
        key, name, gone = (str(namespace), str(run)), str(meta.get("name", "")), event_type == "DELETED"
        if body.get("kind") == "Job":
            if gone:
                self._jobs.pop(key, None)
            else:
                self._jobs[key] = body
        else:
            pods = self._pods.setdefault(key, {})
            if gone:
                pods.pop(name, None)
            else:
                pods[name] = body
            if not pods:
                del self._pods[key]
        return key

    def of(self, namespace: str, run: str) -> tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]:
        key = (namespace, run)
        return self._jobs.get(key), list(self._pods.get(key, {}).values())

    def forget(self, namespace: str, run: str) -> None:
        """The run is gone: so is what it owned (its Job and pods follow it by garbage collection)."""
        self._jobs.pop((namespace, run), None)
        self._pods.pop((namespace, run), None)
        self._runs.pop((namespace, run), None)

    def __len__(self) -> int:
        return len(self._jobs) + len(self._pods)


def known_children(memo: Any) -> Children:
    """This operator run's memory of runs' children (one per run, in its :class:`runtime.Runtime`)."""
    return runtime.of(memo).kept("trainingrun-children", Children)


def just_made(job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]]) -> bool:
    """A Job without status and without pods: as the reconcile that created it saw it (no news for the run)."""
    return job is not None and not job.get("status") and not pods


def observed_digest(run: Mapping[str, Any], known: Children) -> str:
    """The digest a run's annotation should hold now: its Job and pods as last seen, and the clock's tick
    while it runs."""
    meta = run.get("metadata") or {}
    job, pods = known.of(str(meta.get("namespace")), str(meta.get("name")))
    running = ((run.get("status") or {}).get("phase")) == "Running"
    return job_digest(job, pods, int(time.time() // progress_tick()) if running else None)


async def nudge(run: Mapping[str, Any], known: Children) -> bool:
    """Make a run reconcile when its Job or pods changed since it last looked; whether it did."""
    meta = run.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    digest, last = observed_digest(run, known), (meta.get("annotations") or {}).get(OBSERVED_ANNOTATION)
    if last == digest or (last is None and just_made(*known.of(str(meta.get("namespace")), str(meta.get("name"))))):
        return False  # nothing new; or a Job just made, which the reconcile that made it saw as it is
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    try:
        await kube().patch(
            API, "TrainingRun", namespace, name, {"metadata": {"annotations": {OBSERVED_ANNOTATION: digest}}}
        )
    except KubeError as error:
        if error.status != 404:
            raise
        return False
    return True


async def on_child_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A Job or pod of a run changed: remember it, and let the run look."""
    known = known_children(memo)
    if event.get("type") not in (None, "ADDED", "MODIFIED", "DELETED"):
        return
    owner = known.record(event.get("type"), body)
    if owner is None or just_made(*known.of(*owner)):
        return  # a Job just made, without pods: its run's reconcile made it and saw it so
    run = await kube().get(API, "TrainingRun", *owner)
    if run is not None:
        await nudge(run, known)


async def on_run_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """A run as the watch delivers it, kept for the re-checks; deleted, it and its children are forgotten."""
    raw = event.get("object")
    if isinstance(raw, Mapping):
        known_children(memo).run_event(event.get("type"), raw)


def _waiting(run: Mapping[str, Any]) -> bool:
    return ((run.get("status") or {}).get("phase")) in ("Pending", "Running")


def recheck_seconds() -> float:
    return min(poll_seconds(), progress_tick())


async def recheck(known: Children, logger: logging.Logger | logging.LoggerAdapter[Any]) -> int:
    """One pass of the safety net for a nudge that failed, and of the running runs' tick, over every pending or
    running run as last delivered: no API read, a patch only where one is due. How many runs it nudged.

    One operator-wide pass, not a Kopf timer per run: Kopf puts a finalizer on every object a timer serves,
    one more write per run, and a run's deletion would wait for the operator."""
    nudged = 0
    for run in known.runs():
        if not _waiting(run):
            continue
        try:
            nudged += await nudge(run, known)
        except Exception as error:  # one run's failure must not end the pass for every other run
            meta = run.get("metadata") or {}
            logger.warning("re-check of TrainingRun %s/%s failed: %s", meta.get("namespace"), meta.get("name"), error)
    return nudged


async def _recheck_forever(known: Children, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    while True:
        await asyncio.sleep(recheck_seconds())
        await recheck(known, logger)


async def start_rechecks(
    memo: kopf.Memo, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
) -> None:
    """Start-up: the re-check pass every ``min(MODELOPS_POLL_SECONDS, MODELOPS_PROGRESS_TICK_SECONDS)``, for the
    run's life (cancelled at clean-up with the rest of the run's tasks)."""
    runtime.of(memo).spawn(_recheck_forever(known_children(memo), logger))


def setup(registry: kopf.OperatorRegistry) -> None:
    """Add this kind's handlers to an operator's registry: the reconcile, the Job/pod watch, the timer."""
    register(registry, kind_info("TrainingRun"), reconcile_trainingrun)
    for group, version, plural in (("batch", "v1", "jobs"), ("", "v1", "pods")):
        kopf.on.event(
            group, version, plural, id=f"follow-{plural}", registry=registry,
            labels={training.RUN_LABEL: kopf.PRESENT},
        )(runtime.bound(on_child_event))  # fmt: skip
    kopf.on.event(GROUP, VERSION, "trainingruns", id="keep-runs", registry=registry)(runtime.bound(on_run_event))
    kopf.on.startup(registry=registry, id="recheck-runs")(runtime.bound(start_rechecks))
