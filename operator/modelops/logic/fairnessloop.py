"""A DriftPolicy's fairness thresholds: the queries, the verdict and the alert rules.

``spec.fairness.thresholds`` hold the serving version's live gap between the groups of a sensitive
feature (docs/fairness.md, In production) to at most ``max`` over ``spec.fairness.window``:
``demographicParityDifference`` from the predictions counted by group, ``equalizedOddsDifference``
from the labels sent back by group. The figures are the canary check's (``logic.analysis``):
``fairness_query`` and ``equalized_odds_query`` over the policy's own window, so they need no
particular ``spec.quality.windows`` of the deployment.

:func:`judge` reads each gap and its evidence (the rows, or labels, of the feature's smallest group
with any in the window) and decides the ``FairnessDegraded`` condition: True when any gap is above
its ``max`` with every group holding at least ``minGroupCount`` (the reason names the metric, the
message the feature, value and limit), False when every gap held with enough evidence, Unknown when
some gap lacked evidence and none was crossed. The controller treats True like drift and quality
decay: an Event when it starts or ends, and with ``actions.retrain`` the same retrain, cooldown and
budget.

:func:`alert_rules` gives the ``ModelFairnessDegraded`` alerts for the policy's PrometheusRule: the
same queries and limits, evaluated by Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from modelops.api.driftpolicy import DriftPolicySpec, FairnessPolicy, FairnessThreshold
from modelops.api.modeldeployment import FairnessCheck
from modelops.logic import analysis
from modelops.logic import driftloop as loop
from modelops.logic import driftrules as rules
from modelops.logic.analysis import AnalysisTarget
from modelops.logic.conditions import Reason
from modelops.logic.qualityloop import Verdict as Verdict  # the same shape: degraded, reason, message, results

JsonDict = dict[str, Any]

FAIRNESS_DEGRADED: Final = "FairnessDegraded"
#: The reason when a gap is above its limit, by metric.
REASON_CROSSED: Final = {
    "demographicParityDifference": Reason.DEMOGRAPHIC_PARITY_DIFFERENCE_ABOVE_MAX,
    "equalizedOddsDifference": Reason.EQUALIZED_ODDS_DIFFERENCE_ABOVE_MAX,
}
REASON_OK: Final = Reason.FAIRNESS_WITHIN_LIMITS
REASON_TOO_FEW: Final = Reason.TOO_FEW_IN_GROUPS
ALERT: Final = "ModelFairnessDegraded"
_UNIT: Final = {"demographicParityDifference": "rows", "equalizedOddsDifference": "labels"}


#: What Prometheus answered: per (feature, metric), the gap and the smallest group's count (None: none).
Readings = Mapping[tuple[str, str], tuple[float | None, float | None]]


def key(threshold: FairnessThreshold) -> tuple[str, str]:
    return threshold.feature, threshold.metric


def _check(policy: FairnessPolicy, threshold: FairnessThreshold) -> FairnessCheck:
    return FairnessCheck.model_validate(
        {"feature": threshold.feature, "metric": threshold.metric, "window": policy.window}
    )


def queries(
    policy: FairnessPolicy, threshold: FairnessThreshold, namespace: str, deployment: str, model: str, version: str
) -> tuple[str, str]:
    """(the gap, its evidence) of ``version`` over the policy's window, each one value or none."""
    check = _check(policy, threshold)
    target = AnalysisTarget(namespace=namespace, deployment=deployment, model=model, stable_version=None,
                            canary_version=version)  # fmt: skip
    return analysis.fairness_query(check, target, version), analysis.fairness_evidence_query(check, target, version)


def judge_readings(spec: DriftPolicySpec, url: str | None, readings: Readings | None, error: str | None) -> Verdict:
    """FairnessDegraded from what Prometheus answered; no Prometheus or no answer is Unknown, saying so."""
    assert spec.fairness is not None
    if url is None:
        return Verdict(None, loop.REASON_NO_PROMETHEUS, "no Prometheus: set spec.prometheus.address or the "
                       "operator's MODELOPS_PROMETHEUS_URL", [])  # fmt: skip
    if readings is None:
        return Verdict(None, loop.REASON_PROM_UNREACHABLE,
                       f"Prometheus unreachable, no action, retrying in {spec.interval}: {error}", [])  # fmt: skip
    return judge(spec.fairness, readings)


def judge(policy: FairnessPolicy, readings: Readings) -> Verdict:
    """Hold each gap (feature, metric) to its ``max``, given its reading (value, smallest group's count)."""
    results: list[JsonDict] = []
    crossed: list[FairnessThreshold] = []
    unknown: list[str] = []
    for item in policy.thresholds:
        value, evidence = readings.get(key(item), (None, None))
        name = f"{item.metric} on {item.feature}"
        result: JsonDict = {"feature": item.feature, "metric": item.metric, "max": item.max, "degraded": False}
        if evidence is not None:
            result["evidence"] = evidence
        if value is not None and math.isfinite(value):
            result["value"] = value
        if evidence is None or evidence < policy.min_group_count or value is None or not math.isfinite(value):
            if evidence is None:
                why = f"no {_UNIT[item.metric]} of a group of {item.feature} in the last {policy.window}"
            elif evidence < policy.min_group_count:
                why = (f"the smallest group of {item.feature} has {evidence:.0f} {_UNIT[item.metric]} in the last "
                       f"{policy.window}, minGroupCount {policy.min_group_count}")  # fmt: skip
            else:
                why = f"no {item.metric} in the last {policy.window}"
            result["message"] = f"not judged: {why}"
            unknown.append(f"{name}: {why}")
        elif value > item.max:
            result["degraded"] = True
            result["message"] = f"{name} {value:.4g} is above max {item.max:.4g}"
            crossed.append(item)
        else:
            result["message"] = f"{name} {value:.4g} within max {item.max:.4g}"
        results.append(result)
    if crossed:
        parts = [r["message"] for r in results if r["degraded"]]
        message = f"live fairness degraded over the last {policy.window}: {'; '.join(parts)}"
        return Verdict(True, REASON_CROSSED[crossed[0].metric], message, results)
    if unknown:
        return Verdict(None, REASON_TOO_FEW, "; ".join(unknown), results)
    return Verdict(False, REASON_OK, "; ".join(str(r["message"]) for r in results), results)


def events(was_degraded: bool | None, verdict: Verdict) -> list[tuple[str, str, str]]:
    """An Event when unfairness starts or ends (not on every evaluation)."""
    if verdict.degraded is True and was_degraded is not True:
        return [("Warning", Reason.FAIRNESS_DEGRADED, verdict.message)]
    if verdict.degraded is False and was_degraded is True:
        return [("Normal", Reason.FAIRNESS_RECOVERED, verdict.message)]
    return []


def alert_rules(
    policy: FairnessPolicy,
    *,
    namespace: str,
    deployment: str,
    model: str,
    version: str,
    labels: Mapping[str, str],
    for_: str,
    severity: str,
) -> list[JsonDict]:
    """``ModelFairnessDegraded`` per threshold: the gap above its max while every group has minGroupCount."""
    rules: list[JsonDict] = []
    for item in policy.thresholds:
        value, evidence = queries(policy, item, namespace, deployment, model, version)
        rules.append({
            "alert": ALERT,
            "expr": f"({value}) > {item.max!r}\nand on () ({evidence}) >= {policy.min_group_count}",
            "for": for_,
            "labels": {**labels, "severity": severity, "metric": item.metric, "feature": item.feature,
                       "model": model, "version": version},
            "annotations": {
                "summary": f"Model {model} {version}: live {item.metric} on {item.feature} above {item.max:g}",
                "description": f"{item.metric} of {model} {version} on {item.feature} over the last "
                               f"{policy.window} is {{{{ $value | printf \"%.4g\" }}}}, above max {item.max:g}; "
                               f"deployment {namespace}/{deployment}.",
            },
        })  # fmt: skip
    return rules


def policy_alerts(spec: DriftPolicySpec, target: rules.Target) -> list[JsonDict]:
    """The policy's ``ModelFairnessDegraded`` rules (none without ``spec.fairness`` or with alerts off)."""
    if spec.fairness is None or not spec.actions.alert.enabled:
        return []
    alert = spec.actions.alert
    return alert_rules(
        spec.fairness, namespace=target.namespace, deployment=target.deployment, model=target.model,
        version=target.version,
        labels={**(alert.labels or {}), "drift_policy": target.policy_id, "deployment": target.deployment},
        for_=rules.prom_duration(alert.for_), severity=alert.severity,
    )  # fmt: skip


def retrain_cause(drifted: bool | None, quality: bool | None, fairness: bool | None) -> tuple[bool | None, str]:
    """Whether to act (True on any of the three, None when none was judged) and what to name as the cause."""
    judged: Sequence[bool | None] = (drifted, quality, fairness)
    if any(judged):
        act: bool | None = True
    else:
        act = None if all(j is None for j in judged) else False
    cause = "drift" if drifted else "quality decay" if quality else "unfairness" if fairness else "drift"
    return act, cause
