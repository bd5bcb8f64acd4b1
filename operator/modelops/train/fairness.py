"""Fairness on the held-out split: groups from sensitive columns, per-group metrics and the gaps
between groups, computed with fairlearn (``docs/fairness.md``).

Two steps, split around the fit:

- :func:`groupings` (before fitting, on the whole table) turns each of ``evaluation.sensitiveFeatures``
  and ``evaluation.intersections`` into a group label per row, or refuses the run with one line
  naming ``spec.evaluation.sensitiveFeatures[i]`` (a column the dataset lacks, bins on text, more
  groups than ``maxGroups``). Groups: a column's distinct values as text (a missing value is the
  group ``(missing)``), or for ``bins`` ``<a``, ``[a, b)``, ``>=b`` (or the ``labels`` given); an
  intersection's are the pairs of values that occur, ``F&White``. Every group seen anywhere in the
  table is listed, so a group the held-out split lacks is reported with count 0, never dropped.
- :func:`evaluate` (after predicting the held-out split) measures every group with fairlearn's
  ``MetricFrame`` and each feature's gaps with fairlearn's ``demographic_parity_difference``,
  ``demographic_parity_ratio`` and ``equalized_odds_difference``. A group with fewer held-out rows
  than ``minGroupSize`` is marked ``insufficient``, its numbers kept.

The positive class, whose prediction is a "selection": ``positiveClass`` when named, else the
greater of two sorted classes (as the metrics' ``pos_label``). With more classes and none named,
each group gets a selection rate per class and each gap is the worst over the one-vs-rest gaps of
the classes. Regression: per group count, MAE and mean prediction; the gaps ``maeDifference`` and
``meanPredictionDifference`` (largest minus smallest over the groups).

Precision, recall and the false positive rate of a group are left out when undefined (no predicted
positive, no positive label, no negative label); fairlearn's equalized odds counts such a rate as
0, which is why the record keeps each group's ``positives`` and ``negatives`` (a gate reads them).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from modelops.api.trainingrun import EvaluationSpec, intersection_name
from modelops.serve.contract import MISSING_GROUP, default_bin_names
from modelops.train.errors import TrainError, preview

if TYPE_CHECKING:
    import pandas as pd

MISSING = MISSING_GROUP
PACKAGE_HINT = "the Python package fairlearn (pip install 'fairlearn>=0.10'; the modelops image has it)"


def require() -> None:
    """Refuse a run that asks for fairness where fairlearn cannot be imported, in one line, before fitting."""
    try:
        import fairlearn.metrics  # noqa: F401
    except ImportError:
        raise TrainError(f"spec.evaluation.sensitiveFeatures needs {PACKAGE_HINT}, which is not installed") from None


@dataclass(frozen=True)
class Grouping:
    """One sensitive feature or intersection: its group label for every row of the table."""

    name: str
    kind: str  # categorical, binned or intersection
    used_as_input: bool
    labels: pd.Series  # the group of each row, indexed like the table
    groups: tuple[str, ...]  # every group seen in the table, in a stable order
    bins: tuple[float, ...] | None = None
    of: tuple[str, str] | None = None
    bin_labels: tuple[str, ...] | None = None  # binned: the name of every interval, rows or not


def _text(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer() and abs(float(value)) < 2**53:
        return str(int(value))
    return str(value)


def _categorical(column: pd.Series) -> tuple[pd.Series, tuple[str, ...]]:
    labels = column.map(_text, na_action="ignore").astype(object).where(column.notna(), MISSING)
    present = set(labels.unique().tolist())
    ordered = sorted(present - {MISSING}) + ([MISSING] if MISSING in present else [])
    return labels.astype(object), tuple(ordered)


def _binned(column: pd.Series, bins: Sequence[float], names: Sequence[str] | None) -> tuple[pd.Series, tuple[str, ...]]:
    import pandas as pd

    names = list(names) if names else list(default_bin_names(bins))
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    # right=False intervals: [a, b); searchsorted(side="right") puts a value equal to a cut point above it.
    positions = np.searchsorted(np.asarray(bins, dtype=float), values, side="right")
    labels = np.where(np.isnan(values), MISSING, np.asarray(names, dtype=object)[np.minimum(positions, len(names) - 1)])
    series = pd.Series(labels, index=column.index, dtype=object)
    present = set(series.unique().tolist())
    ordered = [n for n in names if n in present] + ([MISSING] if MISSING in present else [])
    return series, tuple(ordered)


def groupings(frame: pd.DataFrame, evaluation: EvaluationSpec, inputs: Sequence[str], uri: str) -> list[Grouping]:
    """The groups of every sensitive feature and intersection, or :class:`TrainError` naming the field."""
    import pandas as pd

    result: dict[str, Grouping] = {}
    columns = [str(c) for c in frame.columns]
    for index, feature in enumerate(evaluation.sensitive_features or ()):
        where = f"spec.evaluation.sensitiveFeatures[{index}]"
        if feature.name not in frame.columns:
            raise TrainError(
                f"{where}.name: column {feature.name!r} is not in dataset {uri}; columns are: {preview(columns)}"
            )
        column = frame[feature.name]
        if feature.bins is not None:
            if not pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
                raise TrainError(
                    f"{where}.bins: column {feature.name!r} is not numeric (dtype {column.dtype}); bins cut numbers"
                )
            labels, groups = _binned(column, feature.bins, feature.labels)
            kind = "binned"
        else:
            labels, groups = _categorical(column)
            kind = "categorical"
        if len(groups) > evaluation.max_groups:
            hint = "give bins" if pd.api.types.is_numeric_dtype(column.dtype) else "choose a coarser column"
            raise TrainError(
                f"{where}.name: column {feature.name!r} has {len(groups)} groups, more than "
                f"spec.evaluation.maxGroups ({evaluation.max_groups}); {hint}"
            )
        result[feature.name] = Grouping(
            feature.name, kind, feature.name in inputs, labels, groups,
            bins=tuple(feature.bins) if feature.bins is not None else None,
            bin_labels=(tuple(feature.labels or default_bin_names(feature.bins)) if feature.bins is not None
                        else None),
        )  # fmt: skip
    for index, pair in enumerate(evaluation.intersections or ()):
        first, second = result[pair[0]], result[pair[1]]
        name = intersection_name(pair)
        labels = (first.labels.astype(str) + "&" + second.labels.astype(str)).astype(object)
        order = {f"{a}&{b}": (i, j) for i, a in enumerate(first.groups) for j, b in enumerate(second.groups)}
        groups = tuple(sorted(set(labels.unique().tolist()), key=lambda g: order.get(g, (len(order), 0))))
        if len(groups) > evaluation.max_groups:
            raise TrainError(
                f"spec.evaluation.intersections[{index}]: {name} has {len(groups)} groups, more than "
                f"spec.evaluation.maxGroups ({evaluation.max_groups})"
            )
        result[name] = Grouping(name, "intersection", first.used_as_input and second.used_as_input, labels, groups,
                                of=(pair[0], pair[1]))  # fmt: skip
    return list(result.values())


def positive_class(classes: Sequence[Any], named: str | None) -> Any | None:
    """The class a selection is: the one named (matched as text), else the greater of two; None: per class."""
    if named is not None:
        for label in classes:
            if _text(label) == named or str(label) == named:
                return label
        shown = ", ".join(_text(c) for c in classes[:20])
        raise TrainError(f"spec.evaluation.positiveClass: {named!r} is not one of the target's classes ({shown})")
    return classes[1] if len(classes) == 2 else None


# --- measuring -------------------------------------------------------------------------------------


def _finite(values: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        if value is None:
            continue
        number = float(value)
        if math.isfinite(number):
            out[key] = number
    return out


def _binary(metric: Callable[..., Any], positive: Any, **kwargs: Any) -> Callable[[Any, Any], float]:
    """A metric of (y_true, y_pred) on the one-vs-rest labels of ``positive``."""

    def measured(y_true: Any, y_pred: Any) -> float:
        return float(metric(np.asarray(y_true) == positive, np.asarray(y_pred) == positive, **kwargs))

    return measured


def _label_count(positive: Any, want: bool) -> Callable[[Any, Any], float]:
    def counted(y_true: Any, _y_pred: Any) -> float:
        return float(np.sum((np.asarray(y_true) == positive) == want))

    return counted


def _rate_of(label: Any) -> Callable[[Any, Any], float]:
    def rate(_y_true: Any, y_pred: Any) -> float:
        predicted = np.asarray(y_pred)
        return float(np.mean(predicted == label)) if predicted.size else math.nan

    return rate


def _classification_metrics(positive: Any | None, classes: Sequence[Any]) -> dict[str, Callable[..., Any]]:
    from fairlearn import metrics as fl
    from sklearn import metrics as sk

    chosen: dict[str, Callable[..., Any]] = {"count": fl.count, "accuracy": sk.accuracy_score}
    if positive is None:
        chosen["precision"] = functools.partial(sk.precision_score, labels=list(classes), average="macro",
                                                zero_division=0)  # fmt: skip
        chosen["recall"] = functools.partial(sk.recall_score, labels=list(classes), average="macro", zero_division=0)
        for index, label in enumerate(classes):
            chosen[f"rate:{index}"] = _rate_of(label)
        return chosen
    chosen.update(
        selectionRate=_rate_of(positive),
        precision=_binary(sk.precision_score, positive, zero_division=np.nan),
        recall=_binary(sk.recall_score, positive, zero_division=np.nan),
        falsePositiveRate=_binary(fl.false_positive_rate, positive),
        positives=_label_count(positive, True),
        negatives=_label_count(positive, False),
    )
    return chosen


def _gaps(y_true: Any, y_pred: Any, labels: Any, positive: Any | None, classes: Sequence[Any]) -> dict[str, float]:
    """Demographic parity difference and ratio and equalized odds difference (the worst class's, per class)."""
    from fairlearn import metrics as fl

    def one(label: Any) -> dict[str, float]:
        truth, predicted = np.asarray(y_true) == label, np.asarray(y_pred) == label
        by = {"sensitive_features": labels}
        gaps = {
            "demographicParityDifference": fl.demographic_parity_difference(truth, predicted, **by),
            "demographicParityRatio": fl.demographic_parity_ratio(truth, predicted, **by),
        }
        # Both labels must occur for true and false positive rates to mean anything at all.
        if truth.any() and not truth.all():
            gaps["equalizedOddsDifference"] = fl.equalized_odds_difference(truth, predicted, **by)
        return _finite(gaps)

    if positive is not None:
        return one(positive)
    per_class = [one(label) for label in classes]
    worst: dict[str, float] = {}
    for name, pick in (("demographicParityDifference", max), ("demographicParityRatio", min),
                       ("equalizedOddsDifference", max)):  # fmt: skip
        values = [gaps[name] for gaps in per_class if name in gaps]
        if values:
            worst[name] = float(pick(values))
    return worst


def _regression_metrics() -> dict[str, Callable[..., Any]]:
    from fairlearn import metrics as fl
    from sklearn import metrics as sk

    def mean_prediction(_y_true: Any, y_pred: Any) -> float:
        return float(np.mean(np.asarray(y_pred, dtype=float)))

    return {"count": fl.count, "mae": sk.mean_absolute_error, "meanPrediction": mean_prediction}


def _group_record(group: str, values: dict[str, float], classes: Sequence[Any], minimum: int) -> dict[str, Any]:
    count = int(values.pop("count", 0))
    record: dict[str, Any] = {"group": group, "count": count, "insufficient": count < minimum}
    for key in ("positives", "negatives"):
        if key in values:
            record[key] = int(values.pop(key))
    by_class = {_text(classes[int(k.split(":", 1)[1])]): v for k, v in values.items() if k.startswith("rate:")}
    if by_class:
        record["selectionRateByClass"] = by_class
    record.update({k: v for k, v in values.items() if not k.startswith("rate:")})
    return record


def evaluate(
    groups: Sequence[Grouping],
    test_index: Any,
    y_true: Any,
    y_pred: Any,
    task: str,
    classes: Sequence[Any] | None,
    evaluation: EvaluationSpec,
) -> dict[str, Any]:
    """The fairness record of the held-out split (``spec.fairness`` of the version)."""
    import fairlearn
    import pandas as pd
    from fairlearn.metrics import MetricFrame

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = list(classes or [])
    positive = positive_class(classes, evaluation.positive_class) if task == "classification" else None
    chosen = _classification_metrics(positive, classes) if task == "classification" else _regression_metrics()
    record: dict[str, Any] = {
        "library": f"fairlearn {fairlearn.__version__}",
        "rows": len(y_true),
        "minGroupSize": evaluation.min_group_size,
    }
    if positive is not None:
        record["positiveClass"] = _text(positive)
    features: list[dict[str, Any]] = []
    overall: dict[str, float] | None = None
    for grouping in groups:
        # A named Series, not an array: fairlearn squeezes arrays, and one held-out row would lose its dimension.
        labels = pd.Series(grouping.labels.loc[test_index].to_numpy(dtype=object), name=grouping.name, dtype=object)
        frame = MetricFrame(metrics=chosen, y_true=y_true, y_pred=y_pred, sensitive_features=labels)
        if overall is None:
            overall = {k: v for k, v in _finite(frame.overall.to_dict()).items()
                       if not k.startswith("rate:") and k not in ("count", "positives", "negatives")}  # fmt: skip
        by_group = {str(g): _finite(row) for g, row in frame.by_group.to_dict(orient="index").items()}
        entry: dict[str, Any] = {"name": grouping.name, "kind": grouping.kind, "usedAsInput": grouping.used_as_input}
        if grouping.bins is not None:
            entry["bins"] = list(grouping.bins)
        if grouping.bin_labels is not None:
            entry["binLabels"] = list(grouping.bin_labels)  # so a server can name an interval that held no row
        if grouping.of is not None:
            entry["of"] = list(grouping.of)
        if task == "classification":
            entry["metrics"] = _gaps(y_true, y_pred, labels, positive, classes)
        else:
            entry["metrics"] = _finite({
                "maeDifference": frame.difference(method="between_groups")["mae"],
                "meanPredictionDifference": frame.difference(method="between_groups")["meanPrediction"],
            })  # fmt: skip
        entry["groups"] = [
            _group_record(group, dict(by_group.get(group, {})), classes, evaluation.min_group_size)
            for group in grouping.groups
        ]
        features.append(entry)
    if overall:
        record["overall"] = overall
    record["features"] = features
    return record

