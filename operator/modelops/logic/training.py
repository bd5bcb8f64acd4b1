"""A TrainingRun's children and the state of its training, as pure functions.

``desired_children`` turns a run into the ConfigMap that holds the trainer's run config
(``docs/contracts.md``) and the ``batch/v1`` Job that runs ``modelops train`` (an Indexed
Job, one index per trial, for a sweep), complete with labels, ownerReferences, volumes and
a locked-down security context. ``observe`` reads the Job and its Pods (as the job
controller and the kubelet report them) into the run's phase, progress, trials and the
reason of a failure, including the trainer's own message from a termination message.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelops.api import keys
from modelops.api.trainingrun import TrainingRunSpec
from modelops.logic import fairness
from modelops.logic.conditions import Reason
from modelops.logic.names import child_name, owner_reference
from modelops.logic.pods import IMAGE_UID, container_security, pod_security, scheduling
from modelops.train import locations
from modelops.train.config import evaluation_problem
from modelops.train.errors import ConfigError
from modelops.train.estimators import ALLOWED_ESTIMATORS, check_class_name
from modelops.train.output import RESULT_LOG_PREFIX
from modelops.train.progress import elapsed
from modelops.train.sweep import SweepError, best_trial, expand_sweep

JsonDict = dict[str, Any]

CONFIG_KEY = "run.json"
CONFIG_DIR = "/etc/modelops"
PVC_ROOT = "/mnt/pvc"
CONTAINER = "train"
RUN_LABEL = "modelops.io/training-run"
MODEL_LABEL = keys.MODEL_LABEL
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


class UnsupportedSpecError(ValueError):
    """A valid spec that this operator version cannot run yet (names the field)."""


class InvalidRunError(ValueError):
    """A spec the schema accepts but the trainer would refuse (names the field)."""


#: Variables the operator sets in training pods; a run's own env may not set them.
OPERATOR_ENV = (locations.FILE_ROOTS_ENV, locations.PVC_ROOT_ENV, locations.ENDPOINTS_ENV)


def _check_locations(spec: TrainingRunSpec, allowed_endpoints: Sequence[str]) -> None:
    """Claim names, regions and endpoints by the rules of :mod:`modelops.train.locations`."""
    stores = [("spec.dataset.s3", spec.dataset.s3)]
    if spec.artifact_store is not None:
        stores.append(("spec.artifactStore.s3", spec.artifact_store.s3))
    try:
        if spec.dataset.uri.startswith("pvc://"):
            claim, path = _pvc_parts(spec.dataset.uri)
            locations.check_claim(claim, "spec.dataset.uri: claim")
            locations.check_relative(path, "spec.dataset.uri: path")
        if spec.artifact_store is not None and spec.artifact_store.uri.startswith("pvc://"):
            claim, path = _pvc_parts(spec.artifact_store.uri)
            locations.check_claim(claim, "spec.artifactStore.uri: claim")
            locations.check_relative(path, "spec.artifactStore.uri: path")
        for where, options in stores:
            if options is None:
                continue
            if options.endpoint_url is not None:
                locations.check_endpoint(options.endpoint_url, allowed_endpoints, f"{where}.endpointUrl")
            if options.region is not None:
                locations.check_region(options.region, f"{where}.region")
    except locations.LocationError as error:
        raise InvalidRunError(str(error)) from None
    for index, variable in enumerate((spec.pod.env or []) if spec.pod else []):
        if variable.name in OPERATOR_ENV:
            raise InvalidRunError(
                f"spec.pod.env[{index}].name: {variable.name} is set by the operator (it confines what the trainer "
                "reads and where it sends signed requests)"
            )


def check(spec: TrainingRunSpec, allowed_endpoints: Sequence[str] = ()) -> None:
    """Refuse before any pod starts what the trainer would refuse: estimator, sweep, locations, and an
    evaluation at odds with the dataset (a sensitive feature that is the target, or kept out of the
    inputs that dataset.features lists). Whether its columns exist only the trainer can tell."""
    if spec.estimator is not None:
        try:
            check_class_name(spec.estimator.class_name, "spec.estimator.className")
        except ConfigError as error:
            raise InvalidRunError(str(error).removeprefix("config ")) from None
        name = spec.estimator.class_name
        if spec.estimator.calibration is not None and ALLOWED_ESTIMATORS[name] != "classification":
            raise InvalidRunError(f"spec.estimator.calibration: {name} is a regressor; only classifiers are calibrated")
    try:
        trials_of(spec)
    except SweepError as error:
        raise InvalidRunError(f"spec.{error}") from None
    _check_locations(spec, allowed_endpoints)
    if spec.evaluation is not None:
        problem = evaluation_problem(spec.evaluation, spec.dataset.target, spec.dataset.features)
        if problem is not None:
            raise InvalidRunError(f"spec.evaluation.{problem[0]}: {problem[1]}")


@dataclass(frozen=True)
class RunRef:
    """The identity of the TrainingRun the children belong to."""

    name: str
    namespace: str
    uid: str


def job_name(run: str) -> str:
    return child_name(run, "train")


def config_name(run: str) -> str:
    return child_name(run, "config")


def _pvc_parts(uri: str) -> tuple[str, str]:
    rest = uri.removeprefix("pvc://")
    claim, _, path = rest.partition("/")
    return claim, path.strip("/")


def labels(ref: RunRef, spec: TrainingRunSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "modelops-trainer",
        "app.kubernetes.io/managed-by": "modelops-operator",
        RUN_LABEL: ref.name,
        MODEL_LABEL: spec.model,
    }


def trials_of(spec: TrainingRunSpec) -> list[dict[str, Any]]:
    """The parameters of each trial: one trial without a sweep."""
    if spec.sweep is None:
        return [{}]
    return expand_sweep(spec.sweep.model_dump(by_alias=True, exclude_none=True))


S3_OUTPUT_DIR = "/tmp/modelops-output"  # on the pod's /tmp emptyDir; the trainer uploads from there


def artifact_location(spec: TrainingRunSpec, ref: RunRef, default_store: str | None) -> tuple[str | None, str, str]:
    """(claim or None, output directory in the pod, artifact URI prefix) for the run's files.

    A pvc:// store is mounted and written in place; with an s3:// store the trainer writes to
    the pod's scratch space and uploads the model, then result.json, below the prefix.
    """
    store = spec.artifact_store.uri if spec.artifact_store else default_store
    if not store:
        raise UnsupportedSpecError(
            "spec.artifactStore: not set, and the operator has no default artifact store "
            "(MODELOPS_ARTIFACT_STORE, e.g. pvc://modelops-artifacts)"
        )
    if store.startswith("s3://"):
        bucket, _, prefix = store.removeprefix("s3://").partition("/")
        if not bucket:
            raise UnsupportedSpecError(f"spec.artifactStore.uri: {store!r} names no bucket")
        relative = "/".join(p for p in (prefix.strip("/"), ref.namespace, ref.name) if p)
        return None, S3_OUTPUT_DIR, f"s3://{bucket}/{relative}"
    if not store.startswith("pvc://"):
        raise UnsupportedSpecError(f"spec.artifactStore.uri: {store!r}: only pvc:// and s3:// stores are supported")
    claim, prefix = _pvc_parts(store)
    relative = "/".join(p for p in (prefix, ref.namespace, ref.name) if p)
    return claim, f"{PVC_ROOT}/{claim}/{relative}", f"pvc://{claim}/{relative}"


def run_config(spec: TrainingRunSpec, ref: RunRef, artifact_uri: str, image: str) -> JsonDict:
    """The trainer's run config (docs/contracts.md) for this run."""
    dataset = spec.dataset.model_dump(by_alias=True, exclude_none=True)
    if spec.dataset.s3 is not None:
        dataset["s3"] = {k: v for k, v in dataset["s3"].items() if k in ("endpointUrl", "region")}
    config: JsonDict = {
        "run": {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid, "image": image},
        "model": spec.model,
        "dataset": dataset,
        "artifactUri": artifact_uri,
    }
    store = spec.artifact_store
    if artifact_uri.startswith("s3://") and store is not None and store.s3 is not None:
        options = store.s3.model_dump(by_alias=True, exclude_none=True)
        config["artifactStore"] = {"s3": {k: v for k, v in options.items() if k in ("endpointUrl", "region")}}
    if spec.source_revision:
        config["run"]["sourceRevision"] = spec.source_revision
    if spec.task:
        config["task"] = spec.task
    if spec.estimator is not None:
        config["estimator"] = spec.estimator.model_dump(by_alias=True, exclude_none=True)
    if spec.sweep is not None:
        config["sweep"] = spec.sweep.model_dump(by_alias=True, exclude_none=True)
    if spec.evaluation is not None:
        config["evaluation"] = spec.evaluation.model_dump(by_alias=True, exclude_none=True)
    return config


def _env(spec: TrainingRunSpec, allowed_endpoints: Sequence[str]) -> list[JsonDict]:
    env: list[JsonDict] = [
        {"name": locations.PVC_ROOT_ENV, "value": PVC_ROOT},
        # file:// datasets: only the claims the Job mounts (never the pod's own files, its token).
        {"name": locations.FILE_ROOTS_ENV, "value": PVC_ROOT},
    ]
    if allowed_endpoints:
        env.append({"name": locations.ENDPOINTS_ENV, "value": ",".join(allowed_endpoints)})
    secrets = {
        s.secret_ref
        for s in (spec.dataset.s3, spec.artifact_store.s3 if spec.artifact_store else None)
        if s is not None and s.secret_ref
    }
    for secret in sorted(secrets):
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    if spec.pod and spec.pod.env:
        env.extend(e.model_dump(by_alias=True, exclude_none=True) for e in spec.pod.env)
    return env


def desired_children(
    spec: TrainingRunSpec,
    ref: RunRef,
    *,
    image: str,
    default_store: str | None,
    allowed_endpoints: Sequence[str] = (),
    run_as: int | None = IMAGE_UID,
) -> tuple[JsonDict, JsonDict]:
    """The ConfigMap and the Job of a run; its pods run as ``run_as`` (None: as the platform assigns).

    Raises InvalidRunError for what the trainer would refuse, UnsupportedSpecError for what
    cannot run yet.
    """
    check(spec, allowed_endpoints)
    claim, output_dir, artifact_uri = artifact_location(spec, ref, default_store)
    trials = trials_of(spec)
    common = {
        "namespace": ref.namespace,
        "labels": labels(ref, spec),
        "ownerReferences": [owner_reference("TrainingRun", ref.name, ref.uid)],
    }
    config = run_config(spec, ref, artifact_uri, spec.image or image)
    configmap: JsonDict = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_name(ref.name), **common},
        "data": {CONFIG_KEY: json.dumps(config, indent=2, sort_keys=True)},
    }
    claims: dict[str, bool] = {claim: False} if claim else {}
    if spec.dataset.uri.startswith("pvc://"):
        data_claim, _ = _pvc_parts(spec.dataset.uri)
        claims.setdefault(data_claim, True)  # read-only unless it is also the artifact store
    volumes: list[JsonDict] = [
        {"name": "config", "configMap": {"name": config_name(ref.name)}},
        {"name": "tmp", "emptyDir": {}},
    ]
    mounts: list[JsonDict] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    for index, (name, read_only) in enumerate(sorted(claims.items())):
        volume = f"pvc-{index}"
        volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": name, "readOnly": read_only}})
        mounts.append({"name": volume, "mountPath": f"{PVC_ROOT}/{name}", "readOnly": read_only})
    pod_options = spec.pod
    container: JsonDict = {
        "name": CONTAINER,
        "image": spec.image or image,
        "command": spec.command if spec.image else ["modelops", "train"],
        "args": (spec.args or []) if spec.image else ["--config", f"{CONFIG_DIR}/{CONFIG_KEY}", "--output", output_dir],
        "env": _env(spec, allowed_endpoints),
        "volumeMounts": mounts,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security(),
    }
    if spec.image and not spec.command:
        del container["command"]
    if pod_options and pod_options.resources:
        container["resources"] = pod_options.resources.model_dump(by_alias=True, exclude_none=True)
    pod_spec: JsonDict = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": volumes,
        "securityContext": pod_security(run_as),
    }
    pod_spec.update(scheduling(pod_options))
    job_spec: JsonDict = {
        "backoffLimit": spec.backoff_limit,
        "template": {"metadata": {"labels": labels(ref, spec)}, "spec": pod_spec},
    }
    if spec.sweep is not None:
        job_spec.update(
            completionMode="Indexed",
            completions=len(trials),
            parallelism=min(spec.sweep.parallelism, len(trials)),
        )
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    job: JsonDict = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(ref.name), **common},
        "spec": job_spec,
    }
    return configmap, job


@dataclass
class Observation:
    """What the Job and its Pods say about a run."""

    phase: str
    reason: str
    message: str
    start_time: str | None = None
    completion_time: str | None = None
    progress: str | None = None
    trials: list[JsonDict] = field(default_factory=list)
    best_trial: int | None = None
    results: dict[int, JsonDict] = field(default_factory=dict)  # index → the trainer's success message


def _condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for item in (job.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_ and item.get("status") == "True":
            return dict(item)
    return None


TERMINATION_ENCODING = "gzip+base64"


def decode_termination(text: str) -> Any:
    """A trainer's termination message: plain JSON, or JSON gzip-compressed and base64-encoded in
    ``{"ok", "encoding": "gzip+base64", "data"}`` when plain JSON would not fit in 4 KiB."""
    parsed = json.loads(text)
    if isinstance(parsed, dict) and parsed.get("encoding") == TERMINATION_ENCODING:
        try:
            return json.loads(gzip.decompress(base64.b64decode(str(parsed.get("data")), validate=True)))
        except (OSError, EOFError, binascii.Error, zlib.error) as error:
            raise ValueError(f"a compressed termination message that does not decode: {error}") from None
    return parsed


# --- the whole result, when the termination message had to leave parts out ---------------------

#: The fields of a success message that registration needs from the whole result.
RESULT_FIELDS = ("signature", "referenceStats", "columns", "params", "task", "framework", "rows", "metrics",
                 "fairness", "featureImportance")  # fmt: skip


def needs_whole_result(message: Mapping[str, Any]) -> bool:
    """Whether a success message left out fields that registration needs (a wide table's statistics)."""
    return bool(message.get("truncated")) or any(
        message.get(key) is None for key in ("signature", "referenceStats")
    )


def verified_result(data: bytes, expected_sha256: str | None) -> JsonDict:
    """A ``result.json``'s bytes, parsed, if their sha256 is the one the termination message names."""
    if not expected_sha256:
        raise ValueError("the termination message names no resultSha256 to check the whole result against")
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ValueError(f"the whole result's sha256 is {actual}, not the {expected_sha256} the trainer reported")
    document = json.loads(data)
    if not isinstance(document, dict):
        raise ValueError("the whole result is not a JSON object")
    return document


def result_from_log(log: str, expected_sha256: str | None) -> JsonDict:
    """The whole ``result.json`` a truncated run printed as the last ``modelops-result`` line of its log."""
    lines = [line for line in log.splitlines() if line.startswith(RESULT_LOG_PREFIX)]
    if not lines:
        raise ValueError("the training pod's log has no modelops-result line")
    try:
        data = gzip.decompress(base64.b64decode(lines[-1][len(RESULT_LOG_PREFIX) :].strip(), validate=True))
    except (OSError, EOFError, binascii.Error, zlib.error) as error:
        raise ValueError(f"the modelops-result line of the log does not decode: {error}") from None
    return verified_result(data, expected_sha256)


def completed_message(message: Mapping[str, Any], result: Mapping[str, Any]) -> JsonDict:
    """A truncated success message with what registration needs filled in from the whole result."""
    whole: JsonDict = dict(message)
    whole.pop("truncated", None)
    dataset = result.get("dataset") or {}
    estimator = result.get("estimator") or {}
    fill = {
        "signature": result.get("signature"),
        "referenceStats": result.get("referenceStats"),
        "columns": (result.get("preprocessing") or {}).get("columns"),
        "params": estimator.get("params"),
        "task": result.get("task"),
        "framework": result.get("framework"),
        "rows": dataset.get("rows"),
        "metrics": result.get("metrics"),
        "model": result.get("model"),
        "fairness": result.get("fairness"),
        "featureImportance": result.get("featureImportance"),
        "calibration": result.get("calibration"),
    }
    for key, value in fill.items():
        if whole.get(key) is None and value is not None:
            whole[key] = value
    if isinstance(result.get("artifact"), Mapping):
        artifact = {k: v for k, v in result["artifact"].items() if k in ("uri", "sha256", "sizeBytes")}
        whole["artifact"] = {**artifact, **(whole.get("artifact") or {})}
    if isinstance(dataset, Mapping):
        known = {k: dataset[k] for k in ("uri", "sha256") if k in dataset}
        whole["dataset"] = {**known, **(whole.get("dataset") or {})}
    return whole


def succeeded_pod(pods: Sequence[Mapping[str, Any]], trial: int) -> Mapping[str, Any] | None:
    """The pod that ran ``trial`` (its completion index) and succeeded, if one is left."""
    for pod in pods:
        if _index(pod) == trial and (pod.get("status") or {}).get("phase") == "Succeeded":
            return pod
    return None


def termination_of(pod: Mapping[str, Any]) -> JsonDict | None:
    """The trainer's termination message of a pod, parsed; None when there is none (yet)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != CONTAINER:
            continue
        terminated = (status.get("state") or {}).get("terminated") or {}
        text = terminated.get("message")
        if not text:
            return None
        try:
            parsed = decode_termination(text)
        except ValueError:
            return {"ok": False, "error": text.strip().splitlines()[-1][:500] if text.strip() else "no message"}
        return parsed if isinstance(parsed, dict) else None
    return None


def _index(pod: Mapping[str, Any]) -> int:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations.get(COMPLETION_INDEX, "0"))
    except ValueError:
        return 0


def _trials(
    spec: TrainingRunSpec, pods: Sequence[Mapping[str, Any]], results: dict[int, JsonDict] | None = None
) -> list[JsonDict]:
    params = trials_of(spec)
    result: list[JsonDict] = [{"index": i, "params": p, "phase": "Pending"} for i, p in enumerate(params)]
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp", ""))):
        index = _index(pod)
        if not 0 <= index < len(result):
            continue
        trial = result[index]
        phase = (pod.get("status") or {}).get("phase")
        if trial["phase"] == "Succeeded":
            continue  # a retry of an index that already succeeded changes nothing
        started = (pod.get("status") or {}).get("startTime")
        if started:
            trial["startTime"] = started
        finished = _finished_at(pod)
        if finished:
            trial["completionTime"] = finished
        if phase == "Running":
            trial["phase"] = "Running"
            trial.pop("completionTime", None)
        message = termination_of(pod)
        if phase == "Succeeded" and message and message.get("ok"):
            trial["phase"] = "Succeeded"
            trial["metrics"] = {k: float(v) for k, v in (message.get("metrics") or {}).items()}
            if message.get("fairness"):
                trial["fairness"] = fairness.summary(message["fairness"])
            artifact = message.get("artifact") or {}
            if artifact.get("uri") and artifact.get("sha256"):
                trial["artifact"] = {k: artifact[k] for k in ("uri", "sha256", "sizeBytes") if k in artifact}
            trial.pop("message", None)
            if results is not None:
                results[index] = message
        elif phase == "Failed":
            trial["phase"] = "Failed"
            trial["message"] = (message or {}).get("error") or "the training pod failed"
    return result


def _finished_at(pod: Mapping[str, Any]) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            finished = ((status.get("state") or {}).get("terminated") or {}).get("finishedAt")
            return str(finished) if finished else None
    return None


def _seconds_between(start: str | None, now: str | None) -> float | None:
    import datetime

    if not start or not now:
        return None
    try:
        begin = datetime.datetime.fromisoformat(start.replace("Z", "+00:00"))
        end = datetime.datetime.fromisoformat(now.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (end - begin).total_seconds())


def _ordinals(indices: Sequence[int]) -> str:
    """``3``, ``2 and 3``, ``2, 3 and 5`` -- trial numbers counted from 1, as a person counts them."""
    numbers = [str(i + 1) for i in indices]
    return numbers[0] if len(numbers) == 1 else ", ".join(numbers[:-1]) + " and " + numbers[-1]


def _took(start: str | None, completion: str | None) -> str:
    seconds = _seconds_between(start, completion)
    return f" in {elapsed(seconds)}" if seconds is not None else ""


def running_message(trials: Sequence[Mapping[str, Any]], start: str | None, now: str | None) -> str:
    """``training: trial 3 of 8 running (2 finished, 1 failed), 4m05s elapsed`` (pure)."""
    running = [int(t["index"]) for t in trials if t.get("phase") == "Running"]
    done = sum(1 for t in trials if t.get("phase") == "Succeeded")
    failed = sum(1 for t in trials if t.get("phase") == "Failed")
    total = len(trials)
    if running:
        noun = "trial" if len(running) == 1 else "trials"
        text = f"training: {noun} {_ordinals(running)} of {total} running"
    else:
        text = f"training: waiting for the next of {total} trials"
    counts = [f"{done} finished"] + ([f"{failed} failed"] if failed else [])
    text += f" ({', '.join(counts)})"
    seconds = _seconds_between(start, now)
    if seconds is not None:
        text += f", {elapsed(seconds)} elapsed"
    return text


def observe(
    spec: TrainingRunSpec, job: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]], now: str | None = None
) -> Observation:
    """The run's state from its Job and Pods; ``now`` (RFC 3339) puts the elapsed time in the message."""
    if job is None:
        return Observation(phase="Pending", reason=Reason.JOB_PENDING, message="the training Job is being created")
    status = job.get("status") or {}
    results: dict[int, JsonDict] = {}
    trials = _trials(spec, pods, results)
    done = sum(1 for t in trials if t["phase"] == "Succeeded")
    progress = f"{done}/{len(trials)}"
    start, completion = status.get("startTime"), status.get("completionTime")
    failed = _condition(job, "Failed")
    if failed is not None:
        trainer_errors = [t["message"] for t in trials if t.get("message")]
        detail = trainer_errors[-1] if trainer_errors else failed.get("message") or ""
        reason = str(failed.get("reason") or "Failed")
        return Observation(
            phase="Failed",
            reason=reason,
            message=f"{reason}: {detail}".rstrip(": "),
            start_time=start,
            completion_time=completion or failed.get("lastTransitionTime"),
            progress=progress,
            trials=trials,
        )
    if _condition(job, "Complete") is not None:
        metric = spec.sweep.metric if spec.sweep else None
        goal = spec.sweep.goal if spec.sweep else "maximize"
        candidates = [t if t["phase"] == "Succeeded" else None for t in trials]
        best = best_trial(candidates, metric, goal) if metric else (0 if candidates and candidates[0] else None)
        return Observation(
            phase="Succeeded",
            reason=Reason.SUCCEEDED,
            message=f"training finished: {progress} trials succeeded" + _took(start, completion),
            start_time=start,
            completion_time=completion,
            progress=progress,
            trials=trials,
            best_trial=best,
            results=results,
        )
    running = bool(status.get("active")) or any(t["phase"] == "Running" for t in trials)
    return Observation(
        phase="Running" if running or start else "Pending",
        reason=Reason.RUNNING if running else Reason.JOB_PENDING,
        message=running_message(trials, start, now) if running else "waiting for the training pods to start",
        start_time=start,
        progress=progress,
        trials=trials,
    )
