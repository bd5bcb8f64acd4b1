"""What the plugin shows, computed from the objects the API returned: pure functions, no I/O.

Each view is a plain dict (camelCase keys, as in the resources) so ``-o json|yaml`` prints
it as is; the table and Markdown renderings are made from the same dicts. Every status field
may be absent (the operator has not reconciled yet, or an older operator wrote it).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from modelops.api.keys import MODEL_LABEL
from modelops.api.modelversion import MAX_TRUSTED_ECE
from modelops.logic.conditions import parse_time

Obj = dict[str, Any]



def dig(obj: Mapping[str, Any] | None, path: str, default: Any = None) -> Any:
    """The value at a dotted path, or ``default`` when any part is missing."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return default
        current = current[part]
    return default if current is None else current


def name_of(obj: Mapping[str, Any]) -> str:
    return str(dig(obj, "metadata.name", ""))


def condition(obj: Mapping[str, Any], type_: str) -> str | None:
    """The status (True, False, Unknown) of a condition, or None when it is absent."""
    for item in dig(obj, "status.conditions", []):
        if isinstance(item, Mapping) and item.get("type") == type_:
            return str(item.get("status"))
    return None


def belongs_to_model(obj: Mapping[str, Any], model: str) -> bool:
    labels = dig(obj, "metadata.labels", {})
    return dig(obj, "spec.model") == model or (isinstance(labels, Mapping) and labels.get(MODEL_LABEL) == model)


def _version_number(obj: Mapping[str, Any]) -> int:
    number = dig(obj, "spec.version", 0)
    return number if isinstance(number, int) else 0


def sort_versions(versions: Iterable[Obj]) -> list[Obj]:
    return sorted(versions, key=lambda v: (_version_number(v), name_of(v)))


# --- status ----------------------------------------------------------------------------------


def training_run_row(run: Mapping[str, Any]) -> Obj:
    progress = dig(run, "status.progress")
    trials = dig(run, "status.trials", [])
    if progress is None and trials:
        done = sum(1 for t in trials if isinstance(t, Mapping) and t.get("phase") in ("Succeeded", "Failed"))
        progress = f"{done}/{len(trials)}"
    return {
        "name": name_of(run),
        "phase": dig(run, "status.phase"),
        "progress": progress,
        "metrics": dig(run, "status.metrics"),
        "modelVersion": dig(run, "status.modelVersion"),
        "ready": condition(run, "Ready"),
    }


def model_version_row(version: Mapping[str, Any]) -> Obj:
    return {
        "name": name_of(version),
        "version": dig(version, "spec.version"),
        "askedStage": dig(version, "spec.stage", "None"),
        "grantedStage": dig(version, "status.stage", "None"),
        "format": dig(version, "spec.artifact.format", "skops"),
        "metrics": dig(version, "spec.metrics", {}),
        "ready": condition(version, "Ready"),
        "message": dig(version, "status.message"),
    }


def model_deployment_row(deployment: Mapping[str, Any]) -> Obj:
    return {
        "name": name_of(deployment),
        "source": dig(deployment, "spec.modelVersion") or (f"track:{dig(deployment, 'spec.track')}"),
        "desiredVersion": dig(deployment, "status.desiredVersion"),
        "servingVersion": dig(deployment, "status.servingVersion") or dig(deployment, "status.stableVersion"),
        "phase": dig(deployment, "status.phase"),
        "canaryVersion": dig(deployment, "status.canaryVersion"),
        "canaryWeight": dig(deployment, "status.canaryWeight"),
        "step": dig(deployment, "status.step"),
        "ready": condition(deployment, "Ready"),
        "message": dig(deployment, "status.message"),
    }


def drift_policy_row(policy: Mapping[str, Any]) -> Obj:
    features = [f for f in dig(policy, "status.features", []) if isinstance(f, Mapping)]
    return {
        "name": name_of(policy),
        "deployment": dig(policy, "spec.deployment"),
        "method": dig(policy, "spec.method"),
        "drifted": dig(policy, "status.drifted"),
        "driftedFeatures": [str(f.get("name")) for f in features if f.get("drifted")],
        "lastEvaluation": dig(policy, "status.lastEvaluation"),
        "samples": dig(policy, "status.samples"),
        "retrains": [r.get("name") for r in dig(policy, "status.retrains", []) if isinstance(r, Mapping)],
        "fairness": [
            {k: f.get(k) for k in ("feature", "metric", "value", "max", "evidence", "degraded")}
            for f in dig(policy, "status.fairness", []) if isinstance(f, Mapping)
        ],
    }


# status.quality figures (live, estimated) and the training metrics shown beside them.
LIVE_FIGURES = ("accuracy", "macroF1", "mae", "rmse")
ESTIMATED_FIGURES = {"estimatedAccuracy": "accuracy", "estimatedMacroF1": "macroF1"}
TRAINING_FIGURES = ("accuracy", "f1", "ece", "mae", "rmse")


def estimate_trusted(version: Any) -> bool | None:
    """Whether a version's probabilities are calibrated enough for the estimate: the operator's
    ``EstimateTrusted`` condition where it has set one, else its training ECE at most ``MAX_TRUSTED_ECE``
    (docs/quality.md); None when there is neither (a regressor, an old version)."""
    for condition in dig(version, "status.conditions", []):
        if isinstance(condition, Mapping) and condition.get("type") == "EstimateTrusted":
            status = condition.get("status")
            if status in ("True", "False"):
                return bool(status == "True")
    metrics = dig(version, "spec.metrics", {})
    ece = metrics.get("ece") if isinstance(metrics, Mapping) else None
    if not isinstance(ece, int | float):
        return None
    return bool(ece <= MAX_TRUSTED_ECE)


def quality_rows(deployments: Iterable[Obj], versions: Iterable[Obj]) -> list[Obj]:
    """Per deployment and served version: live quality with its labels, the estimate with its rows,
    and the version's training metrics, from ``status.quality`` (filled by the operator)."""
    by_name = {name_of(v): v for v in versions}
    rows: list[Obj] = []
    for deployment in deployments:
        for entry in dig(deployment, "status.quality", []):
            if not isinstance(entry, Mapping):
                continue
            version = by_name.get(str(entry.get("version")), {})
            metrics = dig(version, "spec.metrics", {})
            rows.append({
                "deployment": name_of(deployment),
                "version": entry.get("version"),
                "role": entry.get("role"),
                "window": entry.get("window"),
                "labels": entry.get("labels"),
                "live": {k: entry[k] for k in LIVE_FIGURES if entry.get(k) is not None},
                "predictions": entry.get("predictions"),
                "estimated": {short: entry[k] for k, short in ESTIMATED_FIGURES.items() if entry.get(k) is not None},
                "training": {k: metrics[k] for k in TRAINING_FIGURES if isinstance(metrics, Mapping) and k in metrics},
                "estimateTrusted": estimate_trusted(version),
                "measuredAt": dig(deployment, "status.qualityMeasuredAt"),
            })  # fmt: skip
    return rows


def model_status(
    model: str,
    namespace: str,
    runs: Iterable[Obj],
    versions: Iterable[Obj],
    deployments: Iterable[Obj],
    policies: Iterable[Obj],
) -> Obj:
    """The whole pipeline of one model: objects of other models are left out here."""
    mine_runs = sorted((r for r in runs if belongs_to_model(r, model)), key=name_of)
    mine_versions = sort_versions(v for v in versions if belongs_to_model(v, model))
    mine_deployments = sorted((d for d in deployments if dig(d, "spec.model") == model), key=name_of)
    deployment_names = {name_of(d) for d in mine_deployments}
    mine_policies = sorted((p for p in policies if dig(p, "spec.deployment") in deployment_names), key=name_of)
    return {
        "model": model,
        "namespace": namespace,
        "trainingRuns": [training_run_row(r) for r in mine_runs],
        "modelVersions": [model_version_row(v) for v in mine_versions],
        "modelDeployments": [model_deployment_row(d) for d in mine_deployments],
        "driftPolicies": [drift_policy_row(p) for p in mine_policies],
        "quality": quality_rows(mine_deployments, mine_versions),
    }


def is_empty_status(status: Mapping[str, Any]) -> bool:
    return not any(status[key] for key in ("trainingRuns", "modelVersions", "modelDeployments"))


# --- history ---------------------------------------------------------------------------------


def version_events(version: Mapping[str, Any]) -> list[Obj]:
    """Stage transitions, approvals and the rejection of one version, oldest first."""
    name = name_of(version)
    events: list[Obj] = []
    for item in dig(version, "status.history", []):
        if isinstance(item, Mapping):
            events.append(
                {
                    "at": item.get("at"),
                    "version": name,
                    "event": "transition",
                    "from": item.get("from"),
                    "to": item.get("to"),
                    "by": item.get("by"),
                    "reason": item.get("reason"),
                }
            )
    for item in dig(version, "status.approvals", []):
        if isinstance(item, Mapping):
            event: Obj = {
                "at": item.get("at"),
                "version": name,
                "event": "approval",
                "to": item.get("stage"),
                "by": item.get("user"),
            }
            if item.get("reviewer"):
                event["reviewer"] = item.get("reviewer")
                event["assertedBy"] = item.get("assertedBy") or item.get("user")
                event["reason"] = f"reviewer {item.get('reviewer')}, asserted by {event['assertedBy']}"
            events.append(event)
    rejected = dig(version, "status.rejected")
    if isinstance(rejected, Mapping):
        value = rejected.get("value")
        detail = f"{rejected.get('metric')}={value}" if value is not None else str(rejected.get("metric"))
        message = rejected.get("message")
        events.append(
            {
                "at": rejected.get("at"),
                "version": name,
                "event": "rejection",
                "by": rejected.get("deployment"),
                "metric": rejected.get("metric"),
                "value": value,
                "reason": f"{detail}: {message}" if message else detail,
            }
        )
    return sort_events(events)


def sort_events(events: Iterable[Obj]) -> list[Obj]:
    """By time (unparseable or missing times last), then version, keeping each version's order."""
    far = datetime.datetime.max.replace(tzinfo=datetime.UTC)
    return sorted(events, key=lambda e: (parse_time(e.get("at")) or far, str(e.get("version"))))


def history(versions: Iterable[Obj]) -> list[Obj]:
    """The events of several versions (a model's), merged by time."""
    return sort_events(event for version in versions for event in version_events(version))


# --- card ------------------------------------------------------------------------------------


def pick_version(versions: Iterable[Obj]) -> Obj | None:
    """A model's card describes its Production version, else its newest version."""
    ordered = sort_versions(versions)
    production = [v for v in ordered if dig(v, "status.stage") == "Production"]
    if production:
        return production[-1]
    return ordered[-1] if ordered else None


def serves(deployment: Mapping[str, Any], version: str) -> str | None:
    """The role (stable, canary, desired) in which a deployment holds a version, if it does."""
    if version in (dig(deployment, "status.servingVersion"), dig(deployment, "status.stableVersion")):
        return "stable"
    if dig(deployment, "status.canaryVersion") == version:
        return "canary"
    if version in (dig(deployment, "status.desiredVersion"), dig(deployment, "spec.modelVersion")):
        return "desired"
    return None


def analysis_of(deployment: Mapping[str, Any], version: str, role: str) -> list[Obj]:
    """The deployment's latest canary measurements when they are this version's.

    They measure the canary: this version's while it is the canary, or while it is the stable its
    own canary analysis promoted (the newest rollout record is its, and no other canary runs since).
    """
    analysis = [dict(a) for a in dig(deployment, "status.analysis", []) if isinstance(a, Mapping)]
    newest = next((r for r in dig(deployment, "status.history", []) if isinstance(r, Mapping)), {})
    if role == "canary" or (
        role == "stable" and not dig(deployment, "status.canaryVersion") and newest.get("version") == version
    ):
        return analysis
    return []


def model_card(version: Mapping[str, Any], namespace: str, deployments: Iterable[Obj], policies: Iterable[Obj]) -> Obj:
    """Everything a model card shows, from one version and the deployments and policies around it."""
    name = name_of(version)
    spec = dig(version, "spec", {})
    status = dig(version, "status", {})
    rollouts: list[Obj] = []
    records: list[Obj] = []
    for deployment in sorted(deployments, key=name_of):
        records += [
            {"deployment": name_of(deployment), **r}
            for r in dig(deployment, "status.history", [])
            if isinstance(r, Mapping) and name in (r.get("version"), r.get("fromVersion"))
        ]
        role = serves(deployment, name)
        if role is None:
            continue
        row = model_deployment_row(deployment)
        row["role"] = role
        weight = (row["canaryWeight"] or 0) if row["canaryVersion"] else 0
        row["trafficPercent"] = {"stable": 100 - weight, "canary": weight}.get(role, 0)
        row["analysis"] = analysis_of(deployment, name, role)
        rollouts.append(row)
    for ref in status.get("deployedBy") or []:
        if isinstance(ref, Mapping) and ref.get("name") not in {r["name"] for r in rollouts}:
            rollouts.append({"name": ref.get("name"), "namespace": ref.get("namespace"), "role": ref.get("role")})
    served_by = {str(r["name"]) for r in rollouts}
    drift = [drift_policy_row(p) | {"features": dig(p, "status.features", [])} for p in policies]
    drift = [d for d in drift if d["deployment"] in served_by]
    lineage = spec.get("lineage") or {}
    reference = spec.get("referenceStats") or {}
    return {
        "name": name,
        "namespace": namespace,
        "model": spec.get("model"),
        "version": spec.get("version"),
        "askedStage": spec.get("stage", "None"),
        "grantedStage": status.get("stage", "None"),
        "task": spec.get("task"),
        "framework": spec.get("framework"),
        "artifact": spec.get("artifact"),
        "modelCard": spec.get("modelCard") or {},
        "signature": spec.get("signature"),
        "data": {
            "dataset": lineage.get("dataset"),
            "referenceSampleSize": reference.get("sampleSize"),
            "referenceFeatures": [
                {"name": f.get("name"), "kind": f.get("kind"), "bins": len(f.get("counts") or [])}
                for f in reference.get("features") or []
                if isinstance(f, Mapping)
            ],
            "preprocessing": lineage.get("preprocessing"),
            "columns": [c for c in lineage.get("columns") or [] if isinstance(c, Mapping)],
        },
        "training": {
            key: lineage.get(key)
            for key in ("trainingRun", "estimator", "params", "image", "sklearnVersion", "sourceRevision", "trial",
                        "calibration")
            if lineage.get(key) is not None
        },
        "metrics": spec.get("metrics") or {},
        "fairness": spec.get("fairness"),
        "featureImportance": spec.get("featureImportance"),
        "gates": status.get("gates") or [],
        "approvals": status.get("approvals") or [],
        "history": status.get("history") or [],
        "rejected": status.get("rejected"),
        "rollouts": rollouts,
        "rolloutHistory": sort_events(records),
        "drift": drift,
    }
