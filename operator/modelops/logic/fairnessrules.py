"""Live fairness as recording rules: the ModelDeployment's ``fairness`` rule group.

The model server counts predictions by predicted class and by the group of each sensitive input
the version's fairness record names (``modelops_group_predictions_total{feature, group, class}``,
docs/fairness.md). For every window of ``spec.quality.windows`` this group records, per
``namespace``, ``deployment``, ``model`` and ``version`` (the pods summed first), with ``window``
set to the window as the spec spells it:

``modelops_fairness:group_predictions`` ``{feature, group, class}``
    rows of the group predicted as the class in the window;
``modelops_fairness:group_rows`` ``{feature, group}``
    rows of the group in the window: the evidence behind its selection rate;
``modelops_fairness:selection_rate`` ``{feature, group, class}``
    the share of the group's rows predicted as the class (not recorded for a group with no row);
``modelops_fairness:class_demographic_parity_difference`` ``{feature, class}``
    the largest minus the smallest selection rate of the class over the feature's known groups
    that served rows in the window (``__other__``, the values outside them, is left out);
``modelops_fairness:demographic_parity_difference`` ``{feature}``
    the largest of those over the classes: for two classes it is the gap of either class (their
    rates add up to 1 in every group), with more it is training's worst one-vs-rest gap — so it
    compares with ``spec.fairness``'s ``demographicParityDifference`` either way;
``modelops_fairness:min_group_rows`` ``{feature}``
    the fewest rows of a known group that served any in the window: the evidence behind the gap.

With labels fed back (docs/contracts.md, "POST /v2/models/NAME/feedback": the id names each row's
group, ``modelops_feedback_group_*_total``), per version that predicted:

``modelops_fairness:group_labels`` ``{feature, group}``
    labels of the group's rows counted in the window;
``modelops_fairness:group_correct``, ``…:group_labelled_predicted``, ``…:group_actual`` ``{feature, group, class}``
    of those, the right ones, those predicted as the class, those whose label is the class;
``modelops_fairness:recall`` ``{feature, group, class}``
    the group's true positive rate of the class (one-vs-rest): right / labelled the class (none
    without such a label);
``modelops_fairness:false_positive_rate`` ``{feature, group, class}``
    predicted as the class but labelled otherwise / labelled otherwise (none without such a label);
``modelops_fairness:class_recall_difference``, ``…:class_false_positive_rate_difference`` ``{feature, class}``
    the largest minus the smallest of each over the feature's known groups;
``modelops_fairness:class_equalized_odds_difference`` ``{feature, class}``
    the larger of the two: fairlearn's ``equalized_odds_difference`` of the class against the rest;
``modelops_fairness:equalized_odds_difference`` ``{feature}``
    the largest of those over the classes (for two classes either class's, as they are equal: one's
    recall is one minus the other's false positive rate) — training's ``equalizedOddsDifference``;
``modelops_fairness:min_group_labels`` ``{feature}``
    the fewest labels of a known group with any in the window: the evidence behind it;
``modelops_fairness:group_absolute_error``, ``…:group_mae`` ``{feature, group}``, ``…:mae_difference`` ``{feature}``
    a regression's: the group's summed and mean absolute error, and the largest minus the smallest
    mean over the known groups (training's ``maeDifference``).

As in the quality group, a ratio is ``x / (y > 0)`` (no series without evidence), every selector
pins ``namespace``, ``deployment`` and ``window``, and the rules read the counts recorded before
them in the same evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from modelops.logic.driftrules import prom_duration, quote
from modelops.logic.qualityrules import GROUP, WINDOW_LABEL, Scope, selector, windowed_group

JsonDict = dict[str, Any]

PREFIX: Final = "modelops_fairness:"
GROUP_PREDICTIONS: Final = PREFIX + "group_predictions"
GROUP_ROWS: Final = PREFIX + "group_rows"
SELECTION_RATE: Final = PREFIX + "selection_rate"
CLASS_DP_DIFFERENCE: Final = PREFIX + "class_demographic_parity_difference"
DP_DIFFERENCE: Final = PREFIX + "demographic_parity_difference"
MIN_GROUP_ROWS: Final = PREFIX + "min_group_rows"
GROUP_LABELS: Final = PREFIX + "group_labels"
GROUP_CORRECT: Final = PREFIX + "group_correct"
GROUP_LABELLED_PREDICTED: Final = PREFIX + "group_labelled_predicted"
GROUP_ACTUAL: Final = PREFIX + "group_actual"
RECALL: Final = PREFIX + "recall"
FALSE_POSITIVE_RATE: Final = PREFIX + "false_positive_rate"
CLASS_RECALL_DIFFERENCE: Final = PREFIX + "class_recall_difference"
CLASS_FPR_DIFFERENCE: Final = PREFIX + "class_false_positive_rate_difference"
CLASS_EO_DIFFERENCE: Final = PREFIX + "class_equalized_odds_difference"
EO_DIFFERENCE: Final = PREFIX + "equalized_odds_difference"
MIN_GROUP_LABELS: Final = PREFIX + "min_group_labels"
GROUP_MAE: Final = PREFIX + "group_mae"
MAE_DIFFERENCE: Final = PREFIX + "mae_difference"
#: The group of served values outside the version's recorded groups (modelops.serve.contract.OTHER_GROUP).
OTHER_GROUP: Final = "__other__"


def window_rules(scope: Scope, window: str) -> list[JsonDict]:
    """The rules of one window, in evaluation order."""
    rng = prom_duration(window)
    rec = selector(scope, f"{WINDOW_LABEL}={quote(window)}")
    known = selector(scope, f"{WINDOW_LABEL}={quote(window)}", f"group!={quote(OTHER_GROUP)}")
    labels = {WINDOW_LABEL: window}
    per_group = f"{GROUP}, {WINDOW_LABEL}, feature, group"
    per_class = f"{GROUP}, {WINDOW_LABEL}, feature, class"
    per_feature = f"{GROUP}, {WINDOW_LABEL}, feature"
    rules: list[JsonDict] = []

    def record(name: str, expr: str) -> None:
        rules.append({"record": name, "expr": expr, "labels": labels})

    classified = 'class!=""'  # a regression's counts carry no class: no selection rate
    counted = f"modelops_group_predictions_total{selector(scope, classified)}"
    record(GROUP_PREDICTIONS, f"sum by ({GROUP}, feature, group, class) (increase({counted}[{rng}]))")
    record(GROUP_ROWS, f"sum by ({per_group}) ({GROUP_PREDICTIONS}{rec})")
    record(SELECTION_RATE, f"{GROUP_PREDICTIONS}{rec} / on ({per_group}) group_left () ({GROUP_ROWS}{rec} > 0)")
    record(
        CLASS_DP_DIFFERENCE,
        f"max by ({per_class}) ({SELECTION_RATE}{known}) - min by ({per_class}) ({SELECTION_RATE}{known})",
    )
    record(DP_DIFFERENCE, f"max by ({per_feature}) ({CLASS_DP_DIFFERENCE}{rec})")
    record(MIN_GROUP_ROWS, f"min by ({per_feature}) ({GROUP_ROWS}{known} > 0)")

    def increase(family: str, by: str) -> str:
        return f"sum by ({GROUP}, {by}) (increase(modelops_feedback_{family}_total{selector(scope)}[{rng}]))"

    record(GROUP_LABELS, increase("group_labels", "feature, group"))
    for name, family in ((GROUP_CORRECT, "group_correct"), (GROUP_LABELLED_PREDICTED, "group_predicted"),
                         (GROUP_ACTUAL, "group_actual")):  # fmt: skip
        record(name, increase(family, "feature, group, class"))
    record(RECALL, f"{GROUP_CORRECT}{rec} / ({GROUP_ACTUAL}{rec} > 0)")
    negatives = f"({GROUP_LABELS}{rec} - on ({per_group}) group_right () {GROUP_ACTUAL}{rec})"
    wrong = f"({GROUP_LABELLED_PREDICTED}{rec} - {GROUP_CORRECT}{rec})"
    record(FALSE_POSITIVE_RATE, f"{wrong} / ({negatives} > 0)")
    for gap, rate in ((CLASS_RECALL_DIFFERENCE, RECALL), (CLASS_FPR_DIFFERENCE, FALSE_POSITIVE_RATE)):
        record(gap, f"max by ({per_class}) ({rate}{known}) - min by ({per_class}) ({rate}{known})")
    both = selector(
        scope, f"{WINDOW_LABEL}={quote(window)}",
        f"__name__=~{quote(f'{CLASS_RECALL_DIFFERENCE}|{CLASS_FPR_DIFFERENCE}')}",
    )  # fmt: skip
    record(CLASS_EO_DIFFERENCE, f"max by ({per_class}) ({both})")
    record(EO_DIFFERENCE, f"max by ({per_feature}) ({CLASS_EO_DIFFERENCE}{rec})")
    record(MIN_GROUP_LABELS, f"min by ({per_feature}) ({GROUP_LABELS}{known} > 0)")
    # A regression's: the group's mean absolute error, and the gap between its known groups.
    errors = f"{PREFIX}group_absolute_error"
    record(errors, increase("group_absolute_error", "feature, group"))
    record(GROUP_MAE, f"{errors}{rec} / ({GROUP_LABELS}{rec} > 0)")
    record(MAE_DIFFERENCE,
           f"max by ({per_feature}) ({GROUP_MAE}{known}) - min by ({per_feature}) ({GROUP_MAE}{known})")  # fmt: skip
    return rules


def rule_group(scope: Scope, windows: Sequence[str]) -> JsonDict:
    """The PrometheusRule group of a ModelDeployment's fairness rules, every window in turn."""
    return windowed_group("fairness", scope, windows, window_rules)
