"""What the plugin shows, computed from the objects the API returned: pure functions, no I/O.

Each view is a plain dict (camelCase keys, as in the resources) so ``-o json|yaml`` prints
it as is; the table and Markdown renderings are made from the same dicts. Every status field
may be absent (the operator has not reconciled yet, or an older operator wrote it).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from modelops.logic.conditions import parse_time

Obj = dict[str, Any]

MODEL_LABEL = "modelops.io/model"


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
    }


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


def model_card(version: Mapping[str, Any], namespace: str, deployments: Iterable[Obj], policies: Iterable[Obj]) -> Obj:
    """Everything a model card shows, from one version and the deployments and policies around it."""
    name = name_of(version)
    spec = dig(version, "spec", {})
    status = dig(version, "status", {})
    rollouts: list[Obj] = []
    for deployment in sorted(deployments, key=name_of):
        role = serves(deployment, name)
        if role is None:
            continue
        row = model_deployment_row(deployment)
        row["role"] = role
        weight = (row["canaryWeight"] or 0) if row["canaryVersion"] else 0
        row["trafficPercent"] = {"stable": 100 - weight, "canary": weight}.get(role, 0)
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
            for key in ("trainingRun", "estimator", "params", "image", "sklearnVersion", "sourceRevision", "trial")
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
        "drift": drift,
    }


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return lines


def _imputed(column: Mapping[str, Any]) -> str:
    strategy = column.get("impute")
    if strategy in (None, "none"):
        return "no"
    return f"constant ({column.get('fillValue')})" if strategy == "constant" else str(strategy)


def _encoding(column: Mapping[str, Any]) -> str:
    encoding = str(column.get("encoding") or "—")
    if column.get("kind") == "categorical" and column.get("categories") is not None:
        return f"{encoding} ({column.get('categories')} of {column.get('distinct')} values)"
    return encoding


#: Per-group columns of the fairness tables, in the order shown.
GROUP_COLUMNS = ("selectionRate", "accuracy", "precision", "recall", "falsePositiveRate", "mae", "meanPrediction")


def _fairness_section(record: Any) -> list[str]:
    """Fairness by sensitive feature: each feature's gaps, then a row per group (small ones marked)."""
    out = ["## Fairness", ""]
    if not isinstance(record, Mapping) or not record.get("features"):
        return [*out, "_not measured (spec.evaluation.sensitiveFeatures of the TrainingRun)_", ""]
    selection = f"positive class `{record['positiveClass']}`" if record.get("positiveClass") else "per class"
    out += [
        f"On {record.get('rows')} held-out rows ({record.get('library') or 'fairlearn'}); selection: {selection}; "
        f"groups under {record.get('minGroupSize')} rows are marked insufficient.",
        "",
    ]
    for feature in record["features"]:
        if not isinstance(feature, Mapping):
            continue
        how = feature.get("kind")
        if feature.get("bins"):
            how = f"binned at {', '.join(f'{b:g}' for b in feature['bins'])}"
        used = "an input" if feature.get("usedAsInput") else "not an input"
        out += [f"### {feature.get('name')} ({how}; {used})", ""]
        gaps = feature.get("metrics") or {}
        out += [", ".join(f"{k} **{_cell(v)}**" for k, v in gaps.items()) or "_no gap is defined_", ""]
        groups = [g for g in feature.get("groups") or [] if isinstance(g, Mapping)]
        shown = [c for c in GROUP_COLUMNS if any(c in g for g in groups)]
        by_class = any(g.get("selectionRateByClass") for g in groups)
        headers = ["group", "rows", *shown] + (["selection rate by class"] if by_class else []) + ["evidence"]
        rows = (
            [g.get("group"), g.get("count"), *(g.get(c) for c in shown)]
            + ([", ".join(f"{k}: {v:.3g}" for k, v in (g.get("selectionRateByClass") or {}).items())]
               if by_class else [])
            + ["insufficient" if g.get("insufficient") else "ok"]
            for g in groups
        )  # fmt: skip
        out += [*_md_table(headers, rows), ""]
    return out


def _importance_section(record: Any) -> list[str]:
    """Permutation importance per input column, most important first."""
    out = ["## Feature importance", ""]
    if not isinstance(record, Mapping) or not record.get("features"):
        return [*out, "_not recorded_", ""]
    out += [
        f"Drop of {record.get('scoring')} (baseline {_cell(record.get('baseline'))}) when a column is shuffled: "
        f"{record.get('repeats')} shuffles each, {record.get('rows')} held-out rows, seed {record.get('seed')}.",
        "",
    ]
    entries = [e for e in record["features"] if isinstance(e, Mapping)]
    out += _md_table(["feature", "mean", "std"], ([e.get("feature"), e.get("mean"), e.get("std")] for e in entries))
    return [*out, ""]


def card_markdown(card: Mapping[str, Any]) -> str:
    """The model card in Markdown: a section per topic, '_none_' where a topic has nothing yet."""
    out: list[str] = [f"# Model card: {card['name']}", ""]
    out.append(
        f"Model **{card.get('model')}**, version **{card.get('version')}**, namespace `{card['namespace']}`. "
        f"Stage: **{card.get('grantedStage')}** (asked: {card.get('askedStage')})."
    )
    out.append("")
    info = card.get("modelCard") or {}
    for title, key in (("Description", "description"), ("Intended use", "intendedUse"), ("Limitations", "limitations")):
        out += [f"## {title}", "", str(info.get(key) or "_not given_"), ""]
    out += ["## Owners", ""]
    out += [f"- {owner}" for owner in info.get("owners") or []] or ["_not given_"]
    out.append("")

    out += ["## Data", ""]
    data = card.get("data") or {}
    dataset = data.get("dataset") or {}
    if dataset:
        out.append(f"- Dataset: `{dataset.get('uri')}`")
        if dataset.get("sha256"):
            out.append(f"- SHA-256: `{dataset.get('sha256')}`")
        if dataset.get("rows") is not None:
            out.append(f"- Rows: {dataset.get('rows')}")
    else:
        out.append("- Dataset: _not recorded_")
    columns = data.get("columns") or []
    if columns:
        out += ["", "What training did to each column:", ""]
        out += _md_table(["column", "kind", "missing", "imputed", "missing indicator", "scaled", "encoding"],
                         ([c.get("name"), c.get("kind"), c.get("missing"), _imputed(c),
                           "yes" if c.get("indicator") else "no", "yes" if c.get("scaled") else "no",
                           _encoding(c)] for c in columns))  # fmt: skip
    features = data.get("referenceFeatures") or []
    if features:
        out += ["", f"Reference statistics ({data.get('referenceSampleSize')} rows):", ""]
        out += _md_table(["feature", "kind", "bins"], ([f["name"], f["kind"], f["bins"]] for f in features))
    out.append("")

    training = card.get("training") or {}
    artifact = card.get("artifact") or {}
    out += ["## Training", ""]
    if artifact:
        kind = artifact.get("format") or "skops"
        out.append(f"- Artifact: `{artifact.get('uri')}` ({kind}, sha256 `{artifact.get('sha256')}`)")
    run = training.get("trainingRun")
    if isinstance(run, Mapping):
        out.append(f"- TrainingRun: {run.get('name')}")
    for key, label in (("estimator", "Estimator"), ("image", "Image"), ("sklearnVersion", "scikit-learn")):
        if training.get(key):
            out.append(f"- {label}: `{training[key]}`")
    if training.get("params"):
        params = ", ".join(f"{k}={v}" for k, v in sorted(training["params"].items()))
        out.append(f"- Parameters: {params}")
    out.append("")

    out += ["## Metrics", ""]
    metrics = card.get("metrics") or {}
    out += _md_table(["metric", "value"], sorted(metrics.items())) if metrics else ["_none_"]
    out.append("")

    out += _fairness_section(card.get("fairness"))
    out += _importance_section(card.get("featureImportance"))

    out += ["## Gates", ""]
    gates = card.get("gates") or []
    rows = (
        [
            g.get("stage"),
            g.get("metric"),
            f"{g.get('op')} {g.get('threshold')}",
            g.get("value"),
            ("pass" if g.get("passed") else "FAIL")
            + (f" (insufficient evidence: {g['insufficientEvidence']})" if g.get("insufficientEvidence") else ""),
            g.get("source"),
        ]
        for g in gates
    )
    out += _md_table(["stage", "metric", "needs", "value", "verdict", "source"], rows) if gates else ["_none_"]
    out.append("")

    out += ["## Approvals", ""]
    approvals = card.get("approvals") or []
    rows = ([a.get("stage"), a.get("user"), a.get("reviewer"), a.get("at")] for a in approvals)
    out += _md_table(["stage", "approved by", "reviewer", "at"], rows) if approvals else ["_none_"]
    out.append("")

    out += ["## Stage history", ""]
    transitions = card.get("history") or []
    rows = ([t.get("at"), t.get("from"), t.get("to"), t.get("by"), t.get("reason")] for t in transitions)
    out += _md_table(["at", "from", "to", "by", "reason"], rows) if transitions else ["_none_"]
    out.append("")

    out += ["## Rollouts", ""]
    rollouts = card.get("rollouts") or []
    rows = ([r.get("name"), r.get("role"), r.get("phase"), r.get("trafficPercent")] for r in rollouts)
    out += _md_table(["deployment", "role", "phase", "traffic %"], rows) if rollouts else ["_not deployed_"]
    rejected = card.get("rejected")
    if isinstance(rejected, Mapping):
        out += [
            "",
            f"**Rejected** by a canary on {rejected.get('deployment')} at {rejected.get('at')}: "
            f"{rejected.get('metric')} = {_cell(rejected.get('value'))}"
            + (f" ({rejected.get('message')})" if rejected.get("message") else ""),
        ]
    out.append("")

    out += ["## Drift", ""]
    drift = card.get("drift") or []
    if not drift:
        out.append("_no DriftPolicy watches this version's deployments_")
    for policy in drift:
        state = {True: "drifted", False: "no drift"}.get(policy.get("drifted"), "not evaluated yet")
        out.append(
            f"DriftPolicy **{policy['name']}** on {policy['deployment']} ({policy.get('method')}): {state}, "
            f"last evaluation {policy.get('lastEvaluation') or '—'}."
        )
        scores = [f for f in policy.get("features") or [] if isinstance(f, Mapping)]
        if scores:
            out.append("")
            rows = (
                [f.get("name"), f.get("score"), f.get("threshold"), "yes" if f.get("drifted") else "no"] for f in scores
            )
            out += _md_table(["feature", "score", "threshold", "drifted"], rows)
        if policy.get("retrains"):
            out += ["", "Retrains: " + ", ".join(str(r) for r in policy["retrains"])]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
