"""Live and estimated model quality as recording rules: the ModelDeployment's ``quality`` rule group.

The model server counts labels sent back by prediction id (``modelops_feedback_*``) and, for a
classifier with ``predict_proba``, the confusion matrix its own probabilities expect
(``modelops_expected_*``), per ``version`` (docs/contracts.md, "Quality series"). For every window
of ``spec.quality.windows`` this group records, per ``namespace``, ``deployment``, ``model`` and
``version`` (the pods summed first), with the label ``window`` set to the window as the spec
spells it:

``modelops_quality:labels``
    labels counted in the window (both tasks): the evidence behind every live figure;
``modelops_quality:class_correct`` / ``:class_predicted`` / ``:class_actual`` ``{class}``
    the confusion matrix's diagonal and margins over the window;
``modelops_quality:accuracy``
    Σ correct / labels;
``modelops_quality:precision`` / ``:recall`` / ``:f1`` ``{class}``
    correct / predicted, correct / actual, 2·correct / (predicted + actual);
``modelops_quality:macro_f1``
    the mean of ``f1`` over the classes that were predicted or labelled in the window, which is
    scikit-learn's ``f1_score(average="macro")`` on the same rows (it averages over the labels
    present in either);
``modelops_quality:mae`` / ``:rmse``
    Σ|e| / labels and √(Σe² / labels) (regression);
``modelops_quality:predictions`` and ``:class_predictions`` / ``:class_expected_correct`` /
``:class_expected_actual`` ``{class}``
    rows served in the window and the expected confusion matrix's diagonal and column sums (the
    evidence behind the estimate);
``modelops_quality:estimated_accuracy``, ``:estimated_precision`` / ``:estimated_recall`` /
``:estimated_f1`` ``{class}``, ``:estimated_macro_f1``
    the same formulas on expected counts (NannyML's CBPE); for a binary task the precision,
    recall and F1 of the positive class are the series of ``class`` = ``signature.classes[1]``.

A ratio whose denominator is zero in the window is not recorded (scikit-learn would warn and say
0; an absent series says "no evidence" without inventing a number). Counters are read with
``increase``, which extrapolates each pod's counters to the window's edges by that pod's own
scrape times: within one pod numerator and denominator scale alike, so a ratio of one pod's
counts is exact; across pods scraped at different moments, each pod's share is weighted by a
factor within about one scrape interval / window of 1.

Rules run in order within the group, so the ratios read the counts recorded just before them in
the same evaluation; every selector pins ``namespace``, ``deployment`` and ``window``, so two
ModelDeployments' rules never write each other's series.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from modelops.logic.driftrules import prom_duration, quote

JsonDict = dict[str, Any]

PREFIX: Final = "modelops_quality:"
LABELS: Final = PREFIX + "labels"
ACCURACY: Final = PREFIX + "accuracy"
PRECISION: Final = PREFIX + "precision"
RECALL: Final = PREFIX + "recall"
F1: Final = PREFIX + "f1"
MACRO_F1: Final = PREFIX + "macro_f1"
MAE: Final = PREFIX + "mae"
RMSE: Final = PREFIX + "rmse"
PREDICTIONS: Final = PREFIX + "predictions"
ESTIMATED_ACCURACY: Final = PREFIX + "estimated_accuracy"
ESTIMATED_PRECISION: Final = PREFIX + "estimated_precision"
ESTIMATED_RECALL: Final = PREFIX + "estimated_recall"
ESTIMATED_F1: Final = PREFIX + "estimated_f1"
ESTIMATED_MACRO_F1: Final = PREFIX + "estimated_macro_f1"
CLASS_CORRECT: Final = PREFIX + "class_correct"
CLASS_PREDICTED: Final = PREFIX + "class_predicted"
CLASS_ACTUAL: Final = PREFIX + "class_actual"
CLASS_PREDICTIONS: Final = PREFIX + "class_predictions"
CLASS_EXPECTED_CORRECT: Final = PREFIX + "class_expected_correct"
CLASS_EXPECTED_ACTUAL: Final = PREFIX + "class_expected_actual"

# What a recorded series is grouped by: one figure per version of one deployment's model.
GROUP: Final = "namespace, deployment, model, version"
WINDOW_LABEL: Final = "window"


@dataclass(frozen=True)
class Scope:
    """Whose series: one ModelDeployment serving one model."""

    namespace: str
    deployment: str
    model: str


def selector(scope: Scope, *extra: str) -> str:
    """The matchers of one deployment's series of its model, plus ``extra``."""
    parts = [f"namespace={quote(scope.namespace)}", f"deployment={quote(scope.deployment)}",
             f"model={quote(scope.model)}", *extra]  # fmt: skip
    return "{" + ", ".join(parts) + "}"


def _recorded(scope: Scope, window: str) -> str:
    return selector(scope, f"{WINDOW_LABEL}={quote(window)}")


def window_rules(scope: Scope, window: str) -> list[JsonDict]:
    """The rules of one window, in evaluation order (counts first, then the ratios that read them)."""
    rng = prom_duration(window)
    raw = selector(scope)
    rec = _recorded(scope, window)
    labels = {WINDOW_LABEL: window}
    by = f"sum by ({GROUP}, {WINDOW_LABEL})"
    by_class = f"sum by ({GROUP}, class)"
    rules: list[JsonDict] = []

    def record(name: str, expr: str) -> None:
        rules.append({"record": name, "expr": expr, "labels": labels})

    def increase(metric: str, grouping: str) -> str:
        return f"{grouping} (increase({metric}{raw}[{rng}]))"

    # Counts over the window: the evidence, and what every ratio below divides.
    record(LABELS, increase("modelops_feedback_labels_total", f"sum by ({GROUP})"))
    record(CLASS_CORRECT, increase("modelops_feedback_correct_total", by_class))
    record(CLASS_PREDICTED, increase("modelops_feedback_predicted_total", by_class))
    record(CLASS_ACTUAL, increase("modelops_feedback_actual_total", by_class))
    record(CLASS_PREDICTIONS, increase("modelops_predictions_total", by_class))
    record(CLASS_EXPECTED_CORRECT, increase("modelops_expected_correct_total", by_class))
    record(CLASS_EXPECTED_ACTUAL, increase("modelops_expected_actual_total", by_class))
    record(PREDICTIONS, f"{by} ({CLASS_PREDICTIONS}{rec}) and on ({GROUP}) {by} ({CLASS_EXPECTED_CORRECT}{rec})")

    # Live quality from labels. "x / (y > 0)": no series where the window holds no evidence.
    record(ACCURACY, f"{by} ({CLASS_CORRECT}{rec}) / ({LABELS}{rec} > 0)")
    record(PRECISION, f"{CLASS_CORRECT}{rec} / ({CLASS_PREDICTED}{rec} > 0)")
    record(RECALL, f"{CLASS_CORRECT}{rec} / ({CLASS_ACTUAL}{rec} > 0)")
    record(F1, f"2 * {CLASS_CORRECT}{rec} / (({CLASS_PREDICTED}{rec} + {CLASS_ACTUAL}{rec}) > 0)")
    record(MACRO_F1, f"avg by ({GROUP}, {WINDOW_LABEL}) ({F1}{rec})")
    per_version = f"sum by ({GROUP})"
    labelled = f"on ({GROUP}) ({LABELS}{rec} > 0)"
    record(MAE, f"{increase('modelops_feedback_absolute_error_total', per_version)} / {labelled}")
    record(RMSE, f"sqrt({increase('modelops_feedback_squared_error_total', per_version)} / {labelled})")

    # The estimate before labels: the same formulas on the expected confusion matrix.
    record(ESTIMATED_ACCURACY, f"{by} ({CLASS_EXPECTED_CORRECT}{rec}) / ({PREDICTIONS}{rec} > 0)")
    record(ESTIMATED_PRECISION, f"{CLASS_EXPECTED_CORRECT}{rec} / ({CLASS_PREDICTIONS}{rec} > 0)")
    record(ESTIMATED_RECALL, f"{CLASS_EXPECTED_CORRECT}{rec} / ({CLASS_EXPECTED_ACTUAL}{rec} > 0)")
    record(
        ESTIMATED_F1,
        f"2 * {CLASS_EXPECTED_CORRECT}{rec} / (({CLASS_PREDICTIONS}{rec} + {CLASS_EXPECTED_ACTUAL}{rec}) > 0)",
    )
    record(ESTIMATED_MACRO_F1, f"avg by ({GROUP}, {WINDOW_LABEL}) ({ESTIMATED_F1}{rec})")
    return rules


def windowed_group(
    kind: str, scope: Scope, windows: Sequence[str], rules_of: Callable[[Scope, str], list[JsonDict]]
) -> JsonDict:
    """A PrometheusRule group ``modelops-<kind>-<namespace>-<deployment>``: each window's rules in turn."""
    rules: list[JsonDict] = []
    for window in windows:
        rules += rules_of(scope, window)
    return {"name": f"modelops-{kind}-{scope.namespace}-{scope.deployment}", "rules": rules}


def rule_group(scope: Scope, windows: Sequence[str]) -> JsonDict:
    """The PrometheusRule group of a ModelDeployment's quality rules, every window in turn."""
    return windowed_group("quality", scope, windows, window_rules)


# What a ModelDeployment's status.quality shows per version: recorded series → status field.
STATUS_FIGURES: Final = {
    LABELS: "labels", ACCURACY: "accuracy", MACRO_F1: "macroF1", MAE: "mae", RMSE: "rmse",
    PREDICTIONS: "predictions", ESTIMATED_ACCURACY: "estimatedAccuracy", ESTIMATED_MACRO_F1: "estimatedMacroF1",
}  # fmt: skip


def _status_matchers(window: str) -> list[str]:
    names = "|".join(re.escape(name) for name in STATUS_FIGURES)
    return [f"__name__=~{quote(names)}", f"{WINDOW_LABEL}={quote(window)}"]


def status_query(scope: Scope, window: str) -> str:
    """One instant query for every figure of status.quality: the recorded series of one window."""
    return selector(scope, *_status_matchers(window))


def namespace_status_query(namespace: str, window: str) -> str:
    """:func:`status_query` for every deployment of ``namespace`` at once: the answer holds each deployment's
    series, which :func:`by_scope` sorts by deployment (the timers of one namespace share one query)."""
    return "{" + ", ".join([f"namespace={quote(namespace)}", *_status_matchers(window)]) + "}"


Samples = list[tuple[Mapping[str, str], float]]


def by_scope(samples: Iterable[tuple[Mapping[str, str], float]]) -> dict[Scope, Samples]:
    """The answer to :func:`namespace_status_query` by whose series each is: under a deployment's Scope, what
    :func:`status_query` for it answers (a label a series lacks is ``""``, as PromQL matches it)."""
    out: dict[Scope, Samples] = {}
    for labels, value in samples:
        scope = Scope(labels.get("namespace", ""), labels.get("deployment", ""), labels.get("model", ""))
        out.setdefault(scope, []).append((labels, value))
    return out


def shown_versions(status: Mapping[str, Any]) -> dict[str, str]:
    """The versions status.quality shows (name → role): the stable, and the canary while one differs from it."""
    out: dict[str, str] = {}
    stable, canary = status.get("stableVersion"), status.get("canaryVersion")
    if isinstance(stable, str) and stable:
        out[stable] = "stable"
    if isinstance(canary, str) and canary and canary != stable:
        out[canary] = "canary"
    return out


def version_quality(
    samples: Iterable[tuple[Mapping[str, str], float]], roles: Mapping[str, str], window: str
) -> list[JsonDict]:
    """status.quality from the answer to :func:`status_query`: one entry per role's version (stable
    first), its figures where Prometheus has them (finite), the others left out."""
    figures: dict[str, JsonDict] = {version: {} for version in roles}
    for labels, value in samples:
        field = STATUS_FIGURES.get(labels.get("__name__", ""))
        version = labels.get("version", "")
        if field is None or version not in figures or not math.isfinite(value):
            continue
        figures[version][field] = value
    order = {"stable": 0, "canary": 1}
    return [
        {"version": version, "role": role, "window": window, **figures[version]}
        for version, role in sorted(roles.items(), key=lambda item: order.get(item[1], 2))
    ]
