"""A DriftPolicy's quality thresholds: the limits, the queries, the verdict and the alert rules.

``spec.quality.thresholds`` hold the serving version's live metrics (from labels sent back:
accuracy, macroF1, precision, recall, f1, mae, rmse) or estimated ones (estimatedAccuracy,
estimatedMacroF1, estimatedPrecision, estimatedRecall, estimatedF1, from the predicted
probabilities) to a limit over ``spec.quality.window``: an absolute ``threshold``, or at most
``maxDrop`` worse than the version's own training metric (``spec.metrics``: accuracy, mae, rmse, and
a binary classifier's precision, recall, f1). Worse is lower, except for mae and rmse.

Precision, recall and F1 are of one class (:func:`positive_class`): the threshold's
``positiveClass``, else a binary version's ``signature.classes[1]`` — the class scikit-learn's
``average="binary"`` scores, so its training metric is the same class's and a maxDrop can anchor to
it. A multiclass version needs the class named; a class the version does not know is named as a
problem (no limit), never guessed.

:func:`limits` turns the thresholds into numbers for one version; :func:`judge` reads the values
and their evidence (labels for a live metric, served rows for an estimate) and decides the
``QualityDegraded`` condition: True when any limit is crossed with at least ``minFeedback`` of
evidence (the reason says live or estimated; the message which metric, value and limit), False
when every limit held with enough evidence, Unknown when some metric lacked evidence and none was
crossed. The controller treats True like drift: an Event when it starts or ends, and with
``actions.retrain`` the same retrain, cooldown and budget.

:func:`alert_rules` gives the ``ModelQualityDegraded`` alerts for the policy's PrometheusRule: the
same queries and limits, evaluated by Prometheus.

:func:`estimate_trust` gives a classifier version's ``EstimateTrusted`` condition from the calibration
its training recorded (``spec.metrics.ece`` against ``MAX_TRUSTED_ECE``): whether the estimated
metrics of that version may be read as its quality before labels arrive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from modelops.api.driftpolicy import LOWER_IS_BETTER, PER_CLASS, TRAINING_METRIC, QualityPolicy, QualityThreshold
from modelops.api.modeldeployment import QualityCheck
from modelops.api.modelversion import MAX_TRUSTED_ECE
from modelops.logic import analysis
from modelops.logic.analysis import AnalysisTarget
from modelops.logic.conditions import Reason

JsonDict = dict[str, Any]

QUALITY_DEGRADED: Final = "QualityDegraded"
REASON_LIVE: Final = "LiveQualityDegraded"
REASON_ESTIMATED: Final = "EstimatedQualityDegraded"
REASON_OK: Final = "QualityWithinLimits"
REASON_TOO_FEW: Final = "TooFewLabels"
REASON_NO_LIMIT: Final = "NoLimit"
ALERT: Final = "ModelQualityDegraded"
# A ModelVersion's condition on its estimate (reasons: CamelCase constants, as every condition's).
ESTIMATE_TRUSTED: Final = "EstimateTrusted"
REASON_CALIBRATED: Final = Reason.WELL_CALIBRATED
REASON_POOR_CALIBRATION: Final = Reason.POOR_CALIBRATION
REASON_NO_PROBABILITIES: Final = Reason.NO_PROBABILITIES


@dataclass(frozen=True)
class Limit:
    """One threshold made a number for one version."""

    metric: str
    bound: float
    lower_is_better: bool
    source: str  # how the bound was found, for messages
    positive_class: str | None = None  # precision, recall, f1: the class

    @property
    def key(self) -> str:
        """The reading this limit is held to: the metric, of its class for a per-class metric."""
        return self.metric if self.positive_class is None else f"{self.metric}:{self.positive_class}"

    @property
    def name(self) -> str:
        """The metric as messages name it: ``estimatedF1 of class 1``."""
        return self.metric if self.positive_class is None else f"{self.metric} of class {self.positive_class}"

    def crossed(self, value: float) -> bool:
        return value > self.bound if self.lower_is_better else value < self.bound


def estimated(metric: str) -> bool:
    return metric.startswith("estimated")


def positive_class(item: QualityThreshold, classes: Sequence[Any] | None) -> tuple[str | None, str | None]:
    """The class a threshold's precision, recall or F1 is of (None for other metrics), or the problem that
    leaves it without one: ``positiveClass``, else a binary version's second class."""
    if item.metric not in PER_CLASS:
        return None, None
    known = [str(c) for c in classes] if classes else None
    if item.positive_class is not None:
        if known is not None and item.positive_class not in known:
            return None, (f"{item.metric}: positiveClass {item.positive_class!r} is not a class of the version "
                          f"({', '.join(known)})")  # fmt: skip
        return item.positive_class, None
    if known is not None and len(known) == 2:
        return known[1], None
    has = f"has {len(known)} classes" if known is not None else "records no classes (signature.classes)"
    return None, f"{item.metric}: name positiveClass: the version {has}; only a binary one has a default"


def limits(
    policy: QualityPolicy, training: Mapping[str, Any], classes: Sequence[Any] | None = None
) -> tuple[list[Limit], list[str]]:
    """The limits of ``policy`` for a version with ``training`` metrics and ``classes`` (signature.classes),
    and the thresholds that have none (a maxDrop whose training metric the version lacks, a per-class
    metric without a class), named."""
    out: list[Limit] = []
    problems: list[str] = []
    binary_positive = str(classes[1]) if classes and len(classes) == 2 else None
    for item in policy.thresholds:
        lower = item.metric in LOWER_IS_BETTER
        of, problem = positive_class(item, classes)
        if problem is not None:
            problems.append(problem)
            continue
        if item.threshold is not None:
            out.append(Limit(item.metric, item.threshold, lower, f"threshold {item.threshold:g}", of))
        if item.max_drop is not None:
            name = TRAINING_METRIC[item.metric]
            trained = training.get(name)
            if of is not None and of != binary_positive:
                # Training scores a binary version's classes[1], a multiclass one's macro average.
                problems.append(f"{item.metric}: maxDrop needs the training {name} of class {of}, which training "
                                "measures only as a binary version's second class")  # fmt: skip
                continue
            if not isinstance(trained, int | float) or isinstance(trained, bool) or not math.isfinite(trained):
                problems.append(f"{item.metric}: maxDrop needs the version's training metric {name}, which it lacks")
                continue
            bound = trained + item.max_drop if lower else trained - item.max_drop
            out.append(Limit(item.metric, bound, lower, f"training {name} {trained:.4g} {'+' if lower else '-'} "
                                                        f"maxDrop {item.max_drop:g}", of))  # fmt: skip
    return out, problems


def _target(namespace: str, deployment: str, model: str, version: str) -> AnalysisTarget:
    return AnalysisTarget(namespace=namespace, deployment=deployment, model=model, stable_version=None,
                          canary_version=version)  # fmt: skip


def _check(limit: Limit | str) -> QualityCheck:
    if isinstance(limit, str):
        return QualityCheck.model_validate({"metric": limit})
    return QualityCheck.model_validate({"metric": limit.metric, "positiveClass": limit.positive_class})


def value_query(
    limit: Limit | str, namespace: str, deployment: str, model: str, version: str, window: str
) -> str:
    """The limit's metric (of its class) of ``version`` over ``window`` (a PromQL range), one value or none."""
    target = _target(namespace, deployment, model, version)
    return analysis.quality_query(_check(limit), target, version, window)


def evidence_query(
    limit: Limit | str, namespace: str, deployment: str, model: str, version: str, window: str
) -> str:
    """Labels (a live metric) or served rows (an estimate) behind the limit's metric over ``window``."""
    target = _target(namespace, deployment, model, version)
    return analysis.evidence_query(_check(limit), target, version, window)


@dataclass(frozen=True)
class Verdict:
    """QualityDegraded: True, False or None (Unknown), why, and a result per limit for status."""

    degraded: bool | None
    reason: str
    message: str
    results: list[JsonDict]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def judge(
    policy: QualityPolicy,
    bounds: Sequence[Limit],
    readings: Mapping[str, tuple[float | None, float]],
    problems: Sequence[str] = (),
) -> Verdict:
    """Hold each limit to its metric's reading (value, evidence), in the order of the thresholds."""
    results: list[JsonDict] = []
    crossed: list[tuple[Limit, float]] = []
    unknown: list[str] = list(problems)
    for bound in bounds:
        value, evidence = readings.get(bound.key, (None, 0.0))
        unit = "rows" if estimated(bound.metric) else "labels"
        result: JsonDict = {"metric": bound.metric, "limit": bound.bound, "evidence": evidence, "degraded": False}
        if bound.positive_class is not None:
            result["positiveClass"] = bound.positive_class
        if value is not None and math.isfinite(value):
            result["value"] = value
        if evidence < policy.min_feedback or value is None or not math.isfinite(value):
            why = (f"{evidence:.0f} {unit} in the last {policy.window}, minFeedback {policy.min_feedback}"
                   if evidence < policy.min_feedback else f"no {bound.name} in the last {policy.window}")  # fmt: skip
            result["message"] = f"not judged: {why}"
            unknown.append(f"{bound.name}: {why}")
        elif bound.crossed(value):
            result["degraded"] = True
            direction = "above" if bound.lower_is_better else "below"
            result["message"] = f"{bound.name} {_fmt(value)} is {direction} {_fmt(bound.bound)} ({bound.source})"
            crossed.append((bound, value))
        else:
            result["message"] = f"{bound.name} {_fmt(value)} within {_fmt(bound.bound)} ({bound.source})"
        results.append(result)
    if crossed:
        live = [c for c in crossed if not estimated(c[0].metric)]
        reason = REASON_LIVE if live else REASON_ESTIMATED
        kind = "live" if live else "estimated"
        parts = [r["message"] for r in results if r["degraded"]]
        return Verdict(True, reason, f"{kind} quality degraded over the last {policy.window}: {'; '.join(parts)}",
                       results)  # fmt: skip
    if unknown:
        reason = REASON_NO_LIMIT if problems and len(unknown) == len(problems) else REASON_TOO_FEW
        return Verdict(None, reason, "; ".join(unknown), results)
    held = "; ".join(str(r["message"]) for r in results)
    return Verdict(False, REASON_OK, held or "no limits", results)


def events(was_degraded: bool | None, verdict: Verdict) -> list[tuple[str, str, str]]:
    """An Event when decay starts or ends (not on every evaluation)."""
    if verdict.degraded is True and was_degraded is not True:
        return [("Warning", "QualityDegraded", verdict.message)]
    if verdict.degraded is False and was_degraded is True:
        return [("Normal", "QualityRecovered", verdict.message)]
    return []


def alert_rules(
    policy: QualityPolicy,
    bounds: Sequence[Limit],
    *,
    namespace: str,
    deployment: str,
    model: str,
    version: str,
    window: str,
    labels: Mapping[str, str],
    for_: str,
    severity: str,
) -> list[JsonDict]:
    """``ModelQualityDegraded`` per limit: the metric past its bound while the window holds minFeedback."""
    rules: list[JsonDict] = []
    for bound in bounds:
        value = value_query(bound, namespace, deployment, model, version, window)
        evidence = evidence_query(bound, namespace, deployment, model, version, window)
        op = ">" if bound.lower_is_better else "<"
        kind = "estimated" if estimated(bound.metric) else "live"
        rules.append({
            "alert": ALERT,
            "expr": f"({value}) {op} {bound.bound!r}\nand ({evidence}) >= {policy.min_feedback}",
            "for": for_,
            "labels": {**labels, "severity": severity, "metric": bound.metric, "quality": kind, "model": model,
                       "version": version,
                       **({"class": bound.positive_class} if bound.positive_class is not None else {})},
            "annotations": {
                "summary": f"Model {model} {version}: {kind} {bound.name} degraded",
                "description": f"{bound.name} of {model} {version} over the last {policy.window} is "
                               f"{{{{ $value | printf \"%.4g\" }}}}, past {bound.bound:.4g} ({bound.source}); "
                               f"deployment {namespace}/{deployment}.",
            },
        })  # fmt: skip
    return rules


def _how_measured(calibration: Mapping[str, Any] | None) -> str:
    """'(10 bins, 38 held-out rows, calibrated: sigmoid)' from spec.lineage.calibration, or ''."""
    if not isinstance(calibration, Mapping):
        return ""
    parts = []
    if isinstance(calibration.get("bins"), int):
        parts.append(f"{calibration['bins']} bins")
    if isinstance(calibration.get("rows"), int):
        parts.append(f"{calibration['rows']} held-out rows")
    method = calibration.get("method")
    if isinstance(method, str):
        parts.append("the estimator's own probabilities" if method == "none" else f"calibrated: {method}")
    return f" ({', '.join(parts)})" if parts else ""


def estimate_trust(
    task: str | None,
    classes: Sequence[Any] | None,
    metrics: Mapping[str, Any] | None,
    calibration: Mapping[str, Any] | None,
) -> tuple[str, bool, str, str] | None:
    """The ``EstimateTrusted`` condition of a version (type, status, reason, message); None for a
    version with no estimate to judge (a regressor)."""
    if task == "regression" or (task is None and not classes):
        return None
    ece = (metrics or {}).get("ece")
    if not isinstance(ece, int | float) or isinstance(ece, bool) or not math.isfinite(ece):
        return (ESTIMATE_TRUSTED, False, REASON_NO_PROBABILITIES,
                "no calibration recorded (spec.metrics.ece): the classifier has no predict_proba, or was trained "
                "before calibration was measured, so its quality cannot be estimated before labels arrive; train "
                "it with spec.estimator.calibration")  # fmt: skip
    measured = f"expected calibration error {ece:.4g} on the held-out split{_how_measured(calibration)}"
    if ece > MAX_TRUSTED_ECE:
        untrusted = (f"{measured} is above {MAX_TRUSTED_ECE:g}: estimated quality (estimated accuracy, precision, "
                     "recall, F1) is not to be trusted; trust labels, or retrain with spec.estimator.calibration")
        return ESTIMATE_TRUSTED, False, REASON_POOR_CALIBRATION, untrusted
    trusted = f"{measured} is at most {MAX_TRUSTED_ECE:g}: estimated quality can be read before labels arrive"
    return ESTIMATE_TRUSTED, True, REASON_CALIBRATED, trusted
