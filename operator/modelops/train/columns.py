"""What training does to each feature column, decided before fitting (pure: DataFrames in, plans out).

:func:`plan_columns` looks at the training split once and either refuses a column it cannot
turn into a servable model, naming it, or decides per column: kind, imputation, missing-value
indicator, scaling and encoding. :func:`build_pipeline` turns the plans into the scikit-learn
Pipeline; :meth:`ColumnPlan.record` is what the result (and the ModelVersion's
``lineage.columns``) records and ``kubectl modelops card`` shows.

The rules (``docs/contracts.md``, "Messy tables"):

- A column with no value in the training split (all missing) is refused: it carries nothing
  to learn, and there would be nothing to bin for drift. So is a numeric column holding
  infinities (no estimator takes them, and no bin edge can be infinite) or values beyond
  float32's range (±3.4e38; tree estimators cast to float32, and such values are sentinels).
- Constant columns, columns with fewer distinct values than bins, and columns with only a
  handful of values train and serve as any other (their reference bins are built to always
  be strictly increasing, :func:`modelops.drift.bins.quantile_edges`).
- Missing numeric values: imputed per ``preprocessing.impute`` (``auto``: the median, for
  columns with missing values, when the estimator cannot take NaN; estimators that take NaN
  get it as it is). Missing categorical values are a category of their own unless imputed.
  ``indicators`` adds a 0/1 "was missing" column for every imputed column.
- Text columns that look like dates (at least 95 % of their distinct values shaped like a
  date or a timestamp) are refused unless listed in ``dataset.categoricalFeatures``: one-hot
  encoding dates teaches a model the days it saw, nothing about the days to come.
- Text columns that look like identifiers (more distinct values than ``maxCategories`` and at
  least half as many distinct values as rows) are refused unless listed in
  ``dataset.categoricalFeatures``.
- Any categorical column with more than ``maxCategories`` distinct values keeps its
  ``maxCategories - 1`` most frequent values as one-hot columns and buckets the long tail, and
  unseen values at serving time, into one "infrequent" column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelops.train.config import Preprocessing
from modelops.train.errors import TrainError, preview

if TYPE_CHECKING:
    import pandas as pd

#: A value shaped like a date or a timestamp: ISO 8601, d/m/y or m/d/y, "5 Jan 2024", "Jan 5, 2024".
DATE_SHAPE = re.compile(
    r"^\s*("
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
    r"|\d{1,2}[-/]\d{1,2}[-/]\d{2,4}"
    r"|\d{1,2}\.\d{1,2}\.\d{4}"
    r"|\d{1,2}\s+[A-Za-z]{3,9}\.?,?\s+\d{2,4}"
    r"|[A-Za-z]{3,9}\.?\s+\d{1,2},?\s+\d{2,4}"
    r")([T\s]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2}|[A-Z]{3})?)?\s*$"
)
DATE_SHARE = 0.95
IDENTIFIER_SHARE = 0.5
DATE_SAMPLE = 2000
FLOAT32_MAX = 3.4028234663852886e38

NUMERIC, CATEGORICAL = "numeric", "categorical"


@dataclass(frozen=True)
class ColumnPlan:
    """What is done to one feature column, in the order the pipeline does it."""

    name: str
    kind: str
    missing: int
    distinct: int
    impute: str = "none"
    fill: float | str | None = None
    indicator: bool = False
    scale: bool = False
    #: categorical: the one-hot columns kept (the long tail beyond them is bucketed as infrequent).
    categories: int | None = None
    bucketed: bool = False

    def record(self) -> dict[str, Any]:
        """The column's entry in ``result.json``'s ``preprocessing.columns`` (camelCase, no nulls)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "missing": self.missing, "distinct": self.distinct}
        out["impute"] = self.impute
        if self.fill is not None:
            out["fillValue"] = str(self.fill)
        out["indicator"] = self.indicator
        out["scaled"] = self.scale
        if self.kind == CATEGORICAL:
            out["encoding"] = "one-hot, long tail bucketed" if self.bucketed else "one-hot"
            out["categories"] = self.categories
        else:
            out["encoding"] = "none"
        return out


def looks_like_dates(values: pd.Series) -> bool:
    """Whether a text column's distinct values are (at least 95 %) shaped like dates or timestamps."""
    distinct = values.dropna().astype(str).unique()[:DATE_SAMPLE]
    if len(distinct) == 0:
        return False
    shaped = sum(1 for value in distinct if DATE_SHAPE.match(value))
    return shaped >= DATE_SHARE * len(distinct)


def _impute_for(
    name: str, kind: str, missing: int, preprocessing: Preprocessing, allows_nan: bool, overrides: dict[str, str]
) -> str:
    impute = preprocessing.impute
    if name in overrides:
        strategy = overrides[name]
        if kind == CATEGORICAL and strategy in ("mean", "median"):
            raise TrainError(
                f"config estimator.preprocessing.impute.columns.{name}: {strategy!r} needs numbers but "
                f"{name!r} is categorical; use most_frequent or constant"
            )
        return strategy
    if kind == CATEGORICAL:
        return impute.categorical
    if impute.numeric == "auto":
        return "median" if missing and not allows_nan else "none"
    return impute.numeric


def plan_columns(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    declared: Sequence[str],
    preprocessing: Preprocessing,
    allows_nan: bool,
    estimator_name: str,
) -> list[ColumnPlan]:
    """One plan per feature column of the training split ``frame`` (in frame order); see the module doc.

    ``declared`` are the columns listed in ``dataset.categoricalFeatures``: never refused as dates
    or identifiers. ``allows_nan``: whether the estimator takes missing values itself.
    """
    import numpy as np

    overrides = dict(preprocessing.impute.columns)
    unknown = [c for c in overrides if c not in frame.columns]
    if unknown:
        raise TrainError(f"config estimator.preprocessing.impute.columns.{unknown[0]}: not a feature column")
    max_categories = preprocessing.max_categories
    rows = len(frame)
    plans: list[ColumnPlan] = []
    refused: list[str] = []  # every column's problem at once: one run tells the whole story
    cannot_take_nan: list[str] = []
    numeric_set = set(numeric)
    for name in frame.columns:
        column = frame[name]
        missing = int(column.isna().sum())
        present = rows - missing
        if present == 0:
            refused.append(
                f"feature column {name!r} has no values in the training split (all {rows} missing): "
                "leave it out of dataset.features"
            )
            continue
        if name in numeric_set:
            values = np.asarray(column, dtype=np.float64)
            infinite = int(np.isinf(values).sum())
            if infinite:
                refused.append(
                    f"feature column {name!r} has {infinite} infinite values in the training split: "
                    "replace or drop them (no estimator takes them)"
                )
                continue
            huge = int((np.abs(values[np.isfinite(values)]) > FLOAT32_MAX).sum())
            if huge:
                refused.append(
                    f"feature column {name!r} has {huge} values beyond ±{FLOAT32_MAX:.3g} in the training split "
                    "(tree estimators work in float32, which cannot hold them): rescale or drop them"
                )
                continue
            distinct = int(column.nunique(dropna=True))
            impute = _impute_for(name, NUMERIC, missing, preprocessing, allows_nan, overrides)
            if missing and impute == "none" and not allows_nan:
                cannot_take_nan.append(name)
            imputed = impute != "none"
            plans.append(
                ColumnPlan(
                    name, NUMERIC, missing, distinct, impute,
                    fill=preprocessing.impute.fill_value if impute == "constant" else None,
                    indicator=imputed and preprocessing.impute.indicators and missing > 0,
                    scale=preprocessing.scale_numeric,
                )
            )  # fmt: skip
            continue
        distinct = int(column.astype(object).where(column.notna()).nunique(dropna=True))
        auto = name not in declared
        if auto and looks_like_dates(column):
            refused.append(
                f"feature column {name!r} holds dates (one-hot encoded dates teach the days seen, not the days to "
                "come): derive numbers from it before training (days since an event, month, weekday), leave it out "
                "of dataset.features, or list it in dataset.categoricalFeatures to encode it as categories"
            )
            continue
        if auto and distinct > max_categories and distinct >= IDENTIFIER_SHARE * present:
            refused.append(
                f"feature column {name!r} looks like an identifier ({distinct} distinct values in {present} rows): "
                "leave it out of dataset.features, or list it in dataset.categoricalFeatures to keep its "
                f"{max_categories - 1} most frequent values and bucket the rest"
            )
            continue
        impute = _impute_for(name, CATEGORICAL, missing, preprocessing, allows_nan, overrides)
        imputed = impute != "none"
        # A missing value is a category of its own unless imputed; the encoder counts it as one.
        seen = distinct + (1 if missing and not imputed else 0)
        bucketed = seen > max_categories
        plans.append(
            ColumnPlan(
                name, CATEGORICAL, missing, distinct, impute,
                fill=preprocessing.impute.fill_category if impute == "constant" else None,
                indicator=imputed and preprocessing.impute.indicators and missing > 0,
                categories=max_categories - 1 if bucketed else seen,
                bucketed=bucketed,
            )
        )  # fmt: skip
    if refused:
        raise TrainError("; ".join(refused))
    if cannot_take_nan:
        raise TrainError(
            f"columns with missing values (NaN) that {estimator_name.rsplit('.', 1)[-1]} cannot take: "
            f"{preview(cannot_take_nan)}; set estimator.preprocessing.impute (e.g. numeric: median, or per column), "
            "or use an estimator that accepts NaN (e.g. HistGradientBoostingClassifier/Regressor, RandomForest*, "
            "DecisionTree*)"
        )
    return plans


def _imputer(plan: ColumnPlan) -> Any:
    from sklearn.impute import SimpleImputer

    # A categorical column's indicator is a separate part: the encoder must not one-hot it.
    indicator = plan.indicator and plan.kind == NUMERIC
    kwargs: dict[str, Any] = {"strategy": plan.impute, "add_indicator": indicator, "keep_empty_features": True}
    if plan.impute == "constant":
        kwargs["fill_value"] = plan.fill
    return SimpleImputer(**kwargs)


def build_pipeline(estimator: Any, plans: Sequence[ColumnPlan], preprocessing: Preprocessing) -> Any:
    """The Pipeline for ``plans``: column transforms grouped by what they do, then the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [p for p in plans if p.kind == CATEGORICAL]
    if not categorical and all(p.impute == "none" for p in plans):
        # All numeric, nothing imputed: plain steps (no column selection by name), so a server can
        # call them on a matrix in signature order without building a DataFrame per request.
        steps: list[tuple[str, Any]] = [("scale", StandardScaler())] if preprocessing.scale_numeric else []
        return Pipeline([*steps, ("estimator", estimator)])
    if categorical and not preprocessing.one_hot_categorical:
        raise TrainError(
            f"categorical feature columns {preview([p.name for p in categorical], 3)} need "
            "estimator.preprocessing.oneHotCategorical: true"
        )
    groups: dict[tuple[Any, ...], list[ColumnPlan]] = {}
    for plan in plans:
        key = (plan.kind, plan.impute, plan.fill, plan.indicator and plan.kind == NUMERIC)
        groups.setdefault(key, []).append(plan)
    parts: list[tuple[str, Any, list[str]]] = []
    for (kind, impute, _, _), members in groups.items():
        names = [p.name for p in members]
        label = f"{kind}" if impute == "none" else f"{kind}-{impute}-{len(parts)}"
        steps = [("impute", _imputer(members[0]))] if impute != "none" else []
        if kind == NUMERIC:
            if preprocessing.scale_numeric:
                steps.append(("scale", StandardScaler()))
        else:
            encoder = OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                max_categories=preprocessing.max_categories,
                sparse_output=False,
            )
            steps.append(("encode", encoder))
        transform: Any = Pipeline(steps) if len(steps) > 1 else (steps[0][1] if steps else "passthrough")
        parts.append((label, transform, names))
        if kind == CATEGORICAL:
            flagged = [p.name for p in members if p.indicator]
            if flagged:
                parts.append((f"{label}-missing", MissingIndicator(features="all"), flagged))
    transformer = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("preprocess", transformer), ("estimator", estimator)])
