"""Canary analysis, the pure part: the PromQL each check runs, and the verdict arithmetic.

The I/O half (``modelops.controller.analysis.measure``) runs the queries built here through the
Prometheus HTTP API and hands the answers back to the ``judge_*`` functions, which turn one
check's numbers into a :class:`Measurement`; :func:`decide` then folds the measurements of one
analysis round, and the counts carried from the previous rounds of the same step, into a
:class:`Verdict` under ``failureLimit`` and ``inconclusivePolicy``.

What counts as *no data* — and is therefore inconclusive, never a pass — is decided here: a
canary without requests in the window (an empty vector, or a rate of 0/0 = NaN), a histogram
without observations, a user query that answers nothing. An unreachable Prometheus is the same
for the verdict: the controller turns its :class:`PrometheusError` into an inconclusive
measurement.

Series (``docs/contracts.md``): ``modelops_requests_total{code}``, the
``modelops_request_duration_seconds`` histogram, ``modelops_predictions_total{class}`` for a
classifier and the ``modelops_prediction_value`` histogram for a regressor, every one labelled
with ``model`` and ``version`` (the ModelVersion's name). The ServiceMonitor's scrape adds
``namespace`` and ``deployment`` (the ModelDeployment's name, relabelled from the pod's
``modelops.io/deployment`` label), and every selector pins both: two ModelDeployments serving
one version in one namespace are two sets of evidence, never one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from modelops.api.common import parse_duration as parse_duration  # re-exported: the analysis vocabulary
from modelops.api.modeldeployment import (
    ERROR_METRICS,
    AnalysisSpec,
    ErrorRateCheck,
    FairnessCheck,
    LatencyCheck,
    MetricCheck,
    PredictionShiftCheck,
    QualityCheck,
)
from modelops.logic.rolloutstate import AnalysisResult

Phase = Literal["Successful", "Failed", "Inconclusive"]

ERROR_RATE: Final = "error-rate"
LATENCY: Final = "latency-p99"
PREDICTION_SHIFT: Final = "prediction-shift"
QUALITY: Final = "quality"
FAIRNESS: Final = "fairness"
#: The group of served values outside a version's recorded groups: not a group the gap is between.
OTHER_GROUP: Final = "__other__"
# A difference of two ratios carries rounding in its last bits: a drop of exactly maxDrop holds.
DROP_TOLERANCE: Final = 1e-12

# Proportions below this are raised to it before PSI's logarithm, so a class (or bin) that one
# version never predicted gives a large but finite term instead of an infinite one. The same
# floor as the drift library's PSI (``modelops.drift.methods.PSI_EPSILON``).
PSI_EPSILON: Final = 1e-4

# The target label the ServiceMonitor's relabelling gives every series of a ModelDeployment's pods.
DEPLOYMENT_SERIES_LABEL: Final = "deployment"

NO_PROMETHEUS: Final = (
    "no Prometheus to ask: set spec.analysis.prometheus.address or the operator's MODELOPS_PROMETHEUS_URL"
)


@dataclass(frozen=True)
class AnalysisTarget:
    """What is analysed: the canary version of a ModelDeployment, against its stable version."""

    namespace: str
    deployment: str
    model: str
    stable_version: str | None  # ModelVersion name; None on a first rollout
    canary_version: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of one analysis round.

    ``phase`` Inconclusive means: hold, and measure again after the interval. ``results`` are
    the entries of ``status.analysis``, one per check in report order; ``failing`` is the
    (check, value, message) that decided a Failed verdict.
    """

    phase: Phase
    results: tuple[AnalysisResult, ...]
    failing: tuple[str, float | None, str] | None


@dataclass(frozen=True)
class Measurement:
    """One check's reading in one round, before failureLimit and inconclusivePolicy apply."""

    name: str
    phase: Phase
    value: float | None
    message: str


# --- durations and selectors -------------------------------------------------------------------

def promql_range(interval: str) -> str:
    """The PromQL range selector for an analysis interval, in whole milliseconds (at least 1 s)."""
    milliseconds = max(round(parse_duration(interval) * 1000), 1000)
    if milliseconds % 1000 == 0:
        return f"{milliseconds // 1000}s"
    return f"{milliseconds}ms"


def _label_value(value: str) -> str:
    """A PromQL string literal's body: backslashes, quotes and newlines escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def selector(target: AnalysisTarget, version: str, *extra: str) -> str:
    """The label matchers of one version's series in one deployment: namespace, deployment, model,
    version, plus ``extra``."""
    matchers = [
        f'namespace="{_label_value(target.namespace)}"',
        f'{DEPLOYMENT_SERIES_LABEL}="{_label_value(target.deployment)}"',
        f'model="{_label_value(target.model)}"',
        f'version="{_label_value(version)}"',
        *extra,
    ]
    return "{" + ",".join(matchers) + "}"


# --- the built-in checks' queries --------------------------------------------------------------


def error_rate_query(target: AnalysisTarget, version: str, window: str) -> str:
    """The share of 5xx answers over ``window``; empty or NaN when the version had no requests.

    The numerator falls back to 0 when no 5xx series exists yet (``or vector(0)``); the
    denominator does not, so no traffic stays no data instead of becoming a 0 % error rate.
    """
    five_xx = 'code=~"5.."'
    errors = f"sum(rate(modelops_requests_total{selector(target, version, five_xx)}[{window}]))"
    total = f"sum(rate(modelops_requests_total{selector(target, version)}[{window}]))"
    return f"({errors} or vector(0)) / {total}"


def latency_query(target: AnalysisTarget, version: str, window: str, quantile: float = 0.99) -> str:
    """The ``quantile`` of request latency over ``window``, from the buckets of all pods summed."""
    buckets = f"rate(modelops_request_duration_seconds_bucket{selector(target, version)}[{window}])"
    return f"histogram_quantile({quantile}, sum by (le) ({buckets}))"


def class_counts_query(target: AnalysisTarget, version: str, window: str) -> str:
    """Predictions per class over ``window`` (a classifier's prediction distribution)."""
    return f"sum by (class) (increase(modelops_predictions_total{selector(target, version)}[{window}]))"


def value_buckets_query(target: AnalysisTarget, version: str, window: str) -> str:
    """Cumulative bucket counts of predicted values over ``window`` (a regressor's distribution)."""
    return f"sum by (le) (increase(modelops_prediction_value_bucket{selector(target, version)}[{window}]))"


def _increase(metric: str, target: AnalysisTarget, version: str, window: str, *extra: str) -> str:
    return f"increase({metric}{selector(target, version, *extra)}[{window}])"


def evidence_query(check: QualityCheck, target: AnalysisTarget, version: str, window: str) -> str:
    """What the check's figure rests on: labels, or served rows for an estimated metric."""
    if check.metric.startswith("estimated"):
        return predictions_query(target, version, window)
    return feedback_labels_query(target, version, window)


def feedback_labels_query(target: AnalysisTarget, version: str, window: str) -> str:
    """Labels counted for ``version`` (the version that predicted) over ``window``, on every pod."""
    return f"sum({_increase('modelops_feedback_labels_total', target, version, window)})"


def quality_query(check: QualityCheck, target: AnalysisTarget, version: str, window: str) -> str:
    """The check's live metric of ``version`` over ``window`` (docs/contracts.md, "Quality series").

    Empty or NaN when the window holds no evidence for it: no labels, a class never predicted or
    labelled.
    """
    def total(metric: str, *extra: str) -> str:
        return f"sum({_increase(metric, target, version, window, *extra)})"

    def per_class(metric: str) -> str:
        return f"sum by (class) ({_increase(metric, target, version, window)})"

    if check.metric == "estimatedAccuracy":
        return estimated_query("accuracy", target, version, window)
    if check.metric == "estimatedMacroF1":
        return estimated_query("macroF1", target, version, window)
    if check.metric in ("estimatedPrecision", "estimatedRecall", "estimatedF1"):
        assert check.positive_class is not None  # the API refuses a per-class metric without it
        return estimated_class_query(check.metric, check.positive_class, target, version, window)
    labels = total("modelops_feedback_labels_total")
    if check.metric == "accuracy":
        return f"{total('modelops_feedback_correct_total')} / {labels}"
    if check.metric == "macroF1":
        correct, predicted, actual = (
            per_class(f"modelops_feedback_{part}_total") for part in ("correct", "predicted", "actual")
        )
        return f"avg(2 * {correct} / (({predicted} + {actual}) > 0))"
    if check.metric == "mae":
        return f"{total('modelops_feedback_absolute_error_total')} / {labels}"
    if check.metric == "rmse":
        return f"sqrt({total('modelops_feedback_squared_error_total')} / {labels})"
    assert check.positive_class is not None  # the API refuses a per-class metric without it
    one = f'class="{_label_value(check.positive_class)}"'
    correct = total("modelops_feedback_correct_total", one)
    predicted = total("modelops_feedback_predicted_total", one)
    actual = total("modelops_feedback_actual_total", one)
    if check.metric == "precision":
        return f"{correct} / {predicted}"
    if check.metric == "recall":
        return f"{correct} / {actual}"
    return f"2 * {correct} / ({predicted} + {actual})"


def predictions_query(target: AnalysisTarget, version: str, window: str) -> str:
    """Rows ``version`` served over ``window`` (the evidence behind the estimate)."""
    return f"sum({_increase('modelops_predictions_total', target, version, window)})"


def estimated_query(metric: Literal["accuracy", "macroF1"], target: AnalysisTarget, version: str, window: str) -> str:
    """The estimated (CBPE) accuracy or macro F1 of ``version`` over ``window``, from the expected confusion
    matrix; empty for a version without probabilities."""
    def per_class(name: str) -> str:
        return f"sum by (class) ({_increase(name, target, version, window)})"

    correct = per_class("modelops_expected_correct_total")
    if metric == "accuracy":
        return f"sum({correct}) / {predictions_query(target, version, window)}"
    served, actual = per_class("modelops_predictions_total"), per_class("modelops_expected_actual_total")
    return f"avg(2 * {correct} / (({served} + {actual}) > 0))"


def estimated_class_query(
    metric: Literal["estimatedPrecision", "estimatedRecall", "estimatedF1"],
    positive: str,
    target: AnalysisTarget,
    version: str,
    window: str,
) -> str:
    """The estimated (CBPE) precision, recall or F1 of class ``positive`` over ``window``: expected correct
    over predicted, over expected actual, or twice it over their sum; empty while the denominator is 0."""
    one = f'class="{_label_value(positive)}"'

    def total(name: str) -> str:
        return f"sum({_increase(name, target, version, window, one)})"

    correct = total("modelops_expected_correct_total")
    if metric == "estimatedPrecision":
        return f"{correct} / ({total('modelops_predictions_total')} > 0)"
    if metric == "estimatedRecall":
        return f"{correct} / ({total('modelops_expected_actual_total')} > 0)"
    return f"2 * {correct} / (({total('modelops_predictions_total')} + {total('modelops_expected_actual_total')}) > 0)"


def _group_predictions(check: FairnessCheck, target: AnalysisTarget, version: str, by: str) -> str:
    """``version``'s predictions of the check's feature over its window, by ``by``, its known groups only
    (a classifier's: a regression's counts carry no class and have no selection rate)."""
    return _by_group("modelops_group_predictions_total", check, target, version, by, 'class!=""')


def _by_group(
    metric: str, check: FairnessCheck, target: AnalysisTarget, version: str, by: str, *extra: str
) -> str:
    """A per-group counter of ``version`` on the check's feature over its window, by ``by``, known groups only."""
    feature = f'feature="{_label_value(check.feature)}"'
    other = f'group!="{OTHER_GROUP}"'
    window = promql_range(check.window)
    return f"sum by ({by}) ({_increase(metric, target, version, window, feature, other, *extra)})"


def equalized_odds_query(check: FairnessCheck, target: AnalysisTarget, version: str) -> str:
    """The equalized odds difference of ``version`` on the check's feature over its window, from labels sent
    back by group: per class (one-vs-rest) the larger of the recall and false positive rate gaps over the
    groups where each is defined, and the largest of those (docs/fairness.md); empty without labels."""
    def margin(name: str) -> str:
        return _by_group(f"modelops_feedback_group_{name}_total", check, target, version, "group, class")

    correct, predicted, actual = margin("correct"), margin("predicted"), margin("actual")
    labels = _by_group("modelops_feedback_group_labels_total", check, target, version, "group")
    recall = f"{correct} / ({actual} > 0)"
    fpr = f"({predicted} - {correct}) / (({labels} - on (group) group_right () {actual}) > 0)"

    def gap(rate: str, name: str) -> str:
        return f'label_replace(max by (class) ({rate}) - min by (class) ({rate}), "rate", "{name}", "", "")'

    return f"max({gap(recall, 'recall')} or {gap(fpr, 'fpr')})"


def equalized_odds_evidence_query(check: FairnessCheck, target: AnalysisTarget, version: str) -> str:
    """The fewest labels of a group of the feature with any in the window (empty: no labels by group)."""
    return f"min({_by_group('modelops_feedback_group_labels_total', check, target, version, 'group')} > 0)"


def fairness_query(check: FairnessCheck, target: AnalysisTarget, version: str) -> str:
    """The check's gap of ``version`` on its feature over its window: the demographic parity difference
    (per class, the largest minus the smallest selection rate over the groups with rows, and the largest
    of those: docs/fairness.md), or :func:`equalized_odds_query`; empty when no group served a row."""
    if check.metric == "equalizedOddsDifference":
        return equalized_odds_query(check, target, version)
    rates = (
        f"{_group_predictions(check, target, version, 'group, class')} / on (group) group_left () "
        f"({_group_predictions(check, target, version, 'group')} > 0)"
    )
    return f"max(max by (class) ({rates}) - min by (class) ({rates}))"


def fairness_evidence_query(check: FairnessCheck, target: AnalysisTarget, version: str) -> str:
    """The fewest rows of a group of the feature that served any in the window (empty: no rows at all); for
    equalized odds, labels."""
    if check.metric == "equalizedOddsDifference":
        return equalized_odds_evidence_query(check, target, version)
    return f"min({_group_predictions(check, target, version, 'group')} > 0)"


def render_query(template: str, target: AnalysisTarget) -> str:
    """A user query with ``{{canary}}``, ``{{stable}}``, ``{{namespace}}`` and ``{{deployment}}`` substituted.

    Raises ValueError when the query names ``{{stable}}`` and there is no stable version.
    """
    if target.stable_version is None and re.search(r"\{\{\s*stable\s*\}\}", template):
        raise ValueError("the query refers to {{stable}}, but there is no stable version yet")
    values = {
        "canary": target.canary_version,
        "stable": target.stable_version or "",
        "namespace": target.namespace,
        "deployment": target.deployment,
    }
    return re.sub(
        r"\{\{\s*(canary|stable|namespace|deployment)\s*\}\}",
        lambda match: _label_value(values[match.group(1)]),
        template,
    )


# --- prediction distributions ------------------------------------------------------------------


def bins_from_buckets(cumulative: Mapping[str, float]) -> dict[str, float]:
    """Per-bin counts from a histogram's cumulative ``le`` buckets, keyed by each bin's upper bound."""
    ordered = sorted(cumulative.items(), key=lambda item: float(item[0]))  # float('+Inf') sorts last
    bins: dict[str, float] = {}
    below = 0.0
    for bound, count in ordered:
        # Counters of different pods reset at different times, so a bucket may read a hair
        # below the one under it; a negative bin is noise, not a count.
        bins[bound] = max(count - below, 0.0)
        below = max(count, below)
    return bins


def psi(expected: Mapping[str, float], actual: Mapping[str, float], epsilon: float = PSI_EPSILON) -> float:
    """Population Stability Index of two count distributions over the union of their keys.

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i), where e_i and a_i are the shares of bin i in
    ``expected`` (the stable) and ``actual`` (the canary); a share below ``epsilon`` is raised
    to ``epsilon`` first, so a class one side never predicted contributes a large but finite
    term. Raises ValueError when either side has no observations.
    """
    keys = sorted(set(expected) | set(actual))
    expected_total = sum(max(expected.get(key, 0.0), 0.0) for key in keys)
    actual_total = sum(max(actual.get(key, 0.0), 0.0) for key in keys)
    if expected_total <= 0 or actual_total <= 0:
        raise ValueError("PSI needs observations on both sides")
    total = 0.0
    for key in keys:
        e = max(max(expected.get(key, 0.0), 0.0) / expected_total, epsilon)
        a = max(max(actual.get(key, 0.0), 0.0) / actual_total, epsilon)
        total += (a - e) * math.log(a / e)
    return total


# --- success conditions ------------------------------------------------------------------------

_CONDITION = re.compile(r"^\s*result\s*(<=|>=|==|!=|<|>)\s*(-?[0-9.eE+-]+)\s*$")
_COMPARE: Final = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@dataclass(frozen=True)
class Condition:
    """A parsed success condition: ``result <op> threshold``."""

    operator: str
    threshold: float

    def holds(self, value: float) -> bool:
        return bool(_COMPARE[self.operator](value, self.threshold))

    def __str__(self) -> str:
        return f"result {self.operator} {self.threshold:g}"


def parse_condition(text: str) -> Condition:
    """Parse 'result < 0.05' and the like; ValueError for anything else (nothing is evaluated)."""
    match = _CONDITION.match(text)
    if match is None:
        raise ValueError(f"successCondition {text!r} is not a comparison of result with a number, e.g. 'result < 0.05'")
    try:
        threshold = float(match.group(2))
    except ValueError:
        raise ValueError(f"successCondition {text!r}: {match.group(2)!r} is not a number") from None
    if not math.isfinite(threshold):
        raise ValueError(f"successCondition {text!r}: the threshold must be finite")
    return Condition(match.group(1), threshold)


# --- judging one check -------------------------------------------------------------------------


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def judge_error_rate(check: ErrorRateCheck, canary: float | None, stable: float | None) -> Measurement:
    """The canary's 5xx share against ``maxRatio`` and, with a stable reading, ``maxIncreaseOverStable``."""
    if canary is None:
        return Measurement(ERROR_RATE, "Inconclusive", None, "no requests to the canary in the window")
    if canary > check.max_ratio:
        return Measurement(
            ERROR_RATE, "Failed", canary, f"error rate {_fmt(canary)} is above maxRatio {_fmt(check.max_ratio)}"
        )
    note = ""
    if check.max_increase_over_stable is not None:
        if stable is None:
            note = "; the stable had no requests in the window, so only maxRatio applied"
        elif canary - stable > check.max_increase_over_stable:
            return Measurement(
                ERROR_RATE,
                "Failed",
                canary,
                f"error rate {_fmt(canary)} exceeds the stable's {_fmt(stable)} by more than "
                f"maxIncreaseOverStable {_fmt(check.max_increase_over_stable)}",
            )
        else:
            note = f"; stable {_fmt(stable)}"
    return Measurement(
        ERROR_RATE, "Successful", canary, f"error rate {_fmt(canary)} within maxRatio {_fmt(check.max_ratio)}{note}"
    )


def judge_latency(check: LatencyCheck, canary: float | None, stable: float | None) -> Measurement:
    """The canary's p99 against ``maxSeconds`` and, with a stable reading, ``maxRatioToStable``."""
    if canary is None:
        return Measurement(LATENCY, "Inconclusive", None, "no requests to the canary in the window")
    if canary > check.max_seconds:
        return Measurement(
            LATENCY, "Failed", canary, f"p99 latency {_fmt(canary)} s is above maxSeconds {_fmt(check.max_seconds)}"
        )
    note = ""
    if check.max_ratio_to_stable is not None:
        if stable is None or stable <= 0:
            note = "; the stable had no requests in the window, so only maxSeconds applied"
        elif canary > stable * check.max_ratio_to_stable:
            return Measurement(
                LATENCY,
                "Failed",
                canary,
                f"p99 latency {_fmt(canary)} s is more than maxRatioToStable {_fmt(check.max_ratio_to_stable)} "
                f"times the stable's {_fmt(stable)} s",
            )
        else:
            note = f"; stable {_fmt(stable)} s"
    return Measurement(
        LATENCY,
        "Successful",
        canary,
        f"p99 latency {_fmt(canary)} s within maxSeconds {_fmt(check.max_seconds)}{note}",
    )


def judge_prediction_shift(
    check: PredictionShiftCheck,
    canary: Mapping[str, float] | None,
    stable: Mapping[str, float] | None,
    *,
    has_stable: bool = True,
) -> Measurement:
    """PSI between the stable's and the canary's prediction distributions against ``maxPsi``."""
    if not has_stable:
        return Measurement(PREDICTION_SHIFT, "Successful", None, "no stable version to compare with; skipped")
    if not canary or sum(canary.values()) <= 0:
        return Measurement(PREDICTION_SHIFT, "Inconclusive", None, "no predictions by the canary in the window")
    if not stable or sum(stable.values()) <= 0:
        return Measurement(PREDICTION_SHIFT, "Inconclusive", None, "no predictions by the stable in the window")
    value = psi(stable, canary)
    if value > check.max_psi:
        return Measurement(
            PREDICTION_SHIFT,
            "Failed",
            value,
            f"PSI {_fmt(value)} between the canary's and the stable's predictions is above maxPsi "
            f"{_fmt(check.max_psi)}",
        )
    return Measurement(PREDICTION_SHIFT, "Successful", value, f"PSI {_fmt(value)} within maxPsi {_fmt(check.max_psi)}")


@dataclass(frozen=True)
class QualityReading:
    """One version's live metric over the check's window, and the labels behind it."""

    value: float | None  # None: no evidence for the metric (no labels, or a 0/0)
    labels: float


def _metric_name(check: QualityCheck) -> str:
    return f"{check.metric} of class {check.positive_class}" if check.positive_class else check.metric


def judge_quality(
    check: QualityCheck, canary: QualityReading, stable: QualityReading | None, *, has_stable: bool = True
) -> Measurement:
    """The canary's live metric against the stable's: no more than ``maxDrop`` worse, once both have
    ``minFeedback`` labels in the window; fewer labels (or no value) is inconclusive."""
    name = _metric_name(check)
    unit = "rows" if check.metric.startswith("estimated") else "labels"
    if not has_stable:
        return Measurement(QUALITY, "Successful", None, "no stable version to compare with; skipped")
    if canary.labels < check.min_feedback:
        return Measurement(
            QUALITY, "Inconclusive", canary.value,
            f"the canary has {canary.labels:.0f} {unit} in the last {check.window}, minFeedback {check.min_feedback}",
        )  # fmt: skip
    if stable is None or stable.labels < check.min_feedback:
        count = stable.labels if stable is not None else 0.0
        return Measurement(
            QUALITY, "Inconclusive", canary.value,
            f"the stable has {count:.0f} {unit} in the last {check.window}, minFeedback {check.min_feedback}",
        )  # fmt: skip
    if canary.value is None or stable.value is None:
        whose = "canary" if canary.value is None else "stable"
        return Measurement(QUALITY, "Inconclusive", canary.value, f"no {name} of the {whose} in the window")
    lower_is_better = check.metric in ERROR_METRICS
    worse_by = canary.value - stable.value if lower_is_better else stable.value - canary.value
    evidence = f"({canary.labels:.0f} and {stable.labels:.0f} {unit})"
    if worse_by > check.max_drop + DROP_TOLERANCE:
        direction = "above" if lower_is_better else "below"
        return Measurement(
            QUALITY, "Failed", canary.value,
            f"{name} {_fmt(canary.value)} is {_fmt(worse_by)} {direction} the stable's {_fmt(stable.value)}, "
            f"more than maxDrop {_fmt(check.max_drop)} {evidence}",
        )  # fmt: skip
    return Measurement(
        QUALITY, "Successful", canary.value,
        f"{name} {_fmt(canary.value)} against the stable's {_fmt(stable.value)}, within maxDrop "
        f"{_fmt(check.max_drop)} {evidence}",
    )  # fmt: skip


@dataclass(frozen=True)
class FairnessReading:
    """One version's live demographic parity difference, and the rows of its smallest group (None: no rows)."""

    value: float | None
    min_rows: float | None


def judge_fairness(
    check: FairnessCheck, canary: FairnessReading, stable: FairnessReading | None, *, has_stable: bool = True
) -> Measurement:
    """The canary's gap on the feature (demographic parity or equalized odds difference) against the
    stable's: no more than ``maxIncrease`` above it, once every group with rows (labels, for equalized
    odds) has ``minGroupRows`` in each version."""
    if not has_stable:
        return Measurement(FAIRNESS, "Successful", None, "no stable version to compare with; skipped")
    odds = check.metric == "equalizedOddsDifference"
    unit, name = ("labels", "equalized odds difference") if odds else ("rows", "demographic parity difference")
    for whose, reading in (("canary", canary), ("stable", stable)):
        rows = reading.min_rows if reading is not None else None
        if rows is None:
            served = (f"has no labels of a group of {check.feature} in the last {check.window} (is feedback on?)"
                      if odds else f"served no row of a group of {check.feature} in the last {check.window}")
            return Measurement(
                FAIRNESS, "Inconclusive", canary.value,
                f"the {whose} {served} (is it an input the version's fairness record names?)",
            )  # fmt: skip
        if rows < check.min_group_rows:
            return Measurement(
                FAIRNESS, "Inconclusive", canary.value,
                f"the {whose}'s smallest group of {check.feature} has {rows:.0f} {unit} in the last "
                f"{check.window}, minGroupRows {check.min_group_rows}",
            )  # fmt: skip
    assert stable is not None
    if canary.value is None or stable.value is None:
        whose = "canary" if canary.value is None else "stable"
        missing = f"no {name} of the {whose} on {check.feature} in the window"
        return Measurement(FAIRNESS, "Inconclusive", canary.value, missing)
    increase = canary.value - stable.value
    gap = f"{name} on {check.feature} {_fmt(canary.value)}"
    if increase > check.max_increase + DROP_TOLERANCE:
        return Measurement(
            FAIRNESS, "Failed", canary.value,
            f"{gap} is {_fmt(increase)} above the stable's {_fmt(stable.value)}, more than maxIncrease "
            f"{_fmt(check.max_increase)}",
        )  # fmt: skip
    return Measurement(
        FAIRNESS, "Successful", canary.value,
        f"{gap} against the stable's {_fmt(stable.value)}, within maxIncrease {_fmt(check.max_increase)}",
    )


def judge_metric(check: MetricCheck, value: float | None) -> Measurement:
    """A user query's value against its success condition; no value is inconclusive."""
    try:
        condition = parse_condition(check.success_condition)
    except ValueError as error:
        # It can never pass, and holding would only delay the same answer.
        return Measurement(check.name, "Failed", None, str(error))
    if value is None or not math.isfinite(value):
        return Measurement(check.name, "Inconclusive", None, "the query returned no data")
    if condition.holds(value):
        return Measurement(check.name, "Successful", value, f"{_fmt(value)} meets '{condition}'")
    return Measurement(check.name, "Failed", value, f"{_fmt(value)} does not meet '{condition}'")


def check_names(spec: AnalysisSpec) -> list[str]:
    """The checks a spec asks for, in the order they are reported."""
    names: list[str] = []
    if spec.builtin.error_rate is not None:
        names.append(ERROR_RATE)
    if spec.builtin.latency is not None:
        names.append(LATENCY)
    if spec.builtin.prediction_shift is not None:
        names.append(PREDICTION_SHIFT)
    if spec.builtin.quality is not None:
        names.append(QUALITY)
    if spec.builtin.fairness is not None:
        names.append(FAIRNESS)
    names.extend(metric.name for metric in spec.metrics or ())
    return names


def all_inconclusive(spec: AnalysisSpec, message: str) -> list[Measurement]:
    """Every check inconclusive for the same reason (no Prometheus configured, say)."""
    return [Measurement(name, "Inconclusive", None, message) for name in check_names(spec)]


# --- the verdict -------------------------------------------------------------------------------


def decide(
    measurements: Sequence[Measurement],
    *,
    failure_limit: int,
    inconclusive_policy: Literal["Pause", "Pass", "Fail"],
    previous: Sequence[AnalysisResult] | None,
    now: str,
) -> Verdict:
    """Fold one round's measurements and the counts of earlier rounds into a verdict.

    Per check: a Failed measurement adds one to ``failures``; an Inconclusive one adds one to
    ``inconclusive`` and then counts by the policy — Pass as a success, Fail as a failure
    (``failures`` too), Pause as a hold that becomes a failure once ``inconclusive`` reaches
    ``failureLimit``. A check whose ``failures`` reach ``failureLimit`` fails the analysis
    (the first such check, in report order, is ``failing``). Otherwise any failure below the
    limit or any held check makes the round Inconclusive (measure again); else Successful.
    Counts are carried from ``previous`` by check name and are cumulative within a step.
    """
    earlier = {item.name: item for item in previous or ()}
    results: list[AnalysisResult] = []
    failing: tuple[str, float | None, str] | None = None
    hold = False
    for m in measurements:
        before = earlier.get(m.name)
        failures = before.failures if before is not None else 0
        inconclusive = before.inconclusive if before is not None else 0
        message = m.message
        if m.phase == "Failed":
            failures += 1
        elif m.phase == "Inconclusive":
            inconclusive += 1
            if inconclusive_policy == "Fail":
                failures += 1
                message += "; inconclusivePolicy Fail counts it as a failure"
            elif inconclusive_policy == "Pass":
                message += "; inconclusivePolicy Pass counts it as a success"
        failed = failures >= failure_limit
        held_too_long = m.phase == "Inconclusive" and inconclusive_policy == "Pause" and inconclusive >= failure_limit
        if held_too_long and not failed:
            message += f"; inconclusive {inconclusive} times, failureLimit {failure_limit} reached"
        if (failed or held_too_long) and failing is None:
            failing = (m.name, m.value, message)
        if m.phase == "Failed" or (m.phase == "Inconclusive" and inconclusive_policy != "Pass"):
            hold = True
        value = m.value if m.value is not None and math.isfinite(m.value) else None
        results.append(AnalysisResult(m.name, m.phase, now, message, value, failures, inconclusive))
    if failing is not None:
        return Verdict("Failed", tuple(results), failing)
    if hold:
        return Verdict("Inconclusive", tuple(results), None)
    return Verdict("Successful", tuple(results), None)
