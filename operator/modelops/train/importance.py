"""Global feature importance: scikit-learn's permutation importance on the held-out split.

Each source column of the table is shuffled in turn *before* the fitted Pipeline sees it, and the
drop of the held-out score is measured, ``repeats`` times per column: so a categorical column's
one-hot columns (and a numeric column's "was missing" indicator) count as the one column they came
from, by construction. The score is the estimator's usual one: ``accuracy`` for a classifier,
``r2`` for a regressor. Sorted most important first (ties by name); the record is
``{"method", "scoring", "baseline", "rows", "repeats", "seed", "features": [{"feature", "mean", "std"}]}``.

Cost: about ``columns * repeats`` predictions of ``rows`` rows (plus one for the baseline). It is
bounded by ``maxRows`` (a sample of the held-out rows, seeded, when there are more) and
``maxPermutations`` (a wide table gets fewer repeats, never fewer than 2, so the spread still
means something). Seeded by ``dataset.seed``: the same run gives the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

from modelops.api.trainingrun import FeatureImportanceSpec

MIN_REPEATS = 2


def repeats_for(columns: int, settings: FeatureImportanceSpec) -> int:
    """Shuffles per column: ``repeats``, fewer on a wide table (never below 2) to stay within ``maxPermutations``."""
    if columns * settings.repeats <= settings.max_permutations:
        return settings.repeats
    return max(MIN_REPEATS, settings.max_permutations // max(columns, 1))


def permutation(pipeline: Any, x_test: Any, y_test: Any, task: str, settings: FeatureImportanceSpec, seed: int) -> (
    dict[str, Any] | None
):
    """The importance record, or None when the held-out split cannot be scored (fewer than 2 rows, or a
    score that is not defined on it, such as r2 of a constant target)."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import get_scorer

    if len(x_test) < 2:
        return None
    if len(x_test) > settings.max_rows:
        x_test = x_test.sample(n=settings.max_rows, random_state=seed)
        y_test = y_test.loc[x_test.index]
    scoring = "accuracy" if task == "classification" else "r2"
    if scoring == "r2" and float(y_test.astype(float).std()) == 0.0:
        return None  # r2 divides by the target's variance
    baseline = float(get_scorer(scoring)(pipeline, x_test, y_test))
    if not math.isfinite(baseline):
        return None
    columns = [str(c) for c in x_test.columns]
    repeats = repeats_for(len(columns), settings)
    found = permutation_importance(pipeline, x_test, y_test, scoring=scoring, n_repeats=repeats, random_state=seed)
    ranked = sorted(
        ((_plain(mean), name, _plain(std))
         for name, mean, std in zip(columns, found.importances_mean, found.importances_std, strict=True)),
        key=lambda e: (-e[0], e[1]),
    )  # fmt: skip
    entries = [{"feature": name, "mean": mean, "std": std} for mean, name, std in ranked]
    return {"method": "permutation", "scoring": scoring, "baseline": _plain(baseline), "rows": len(x_test),
            "repeats": repeats, "seed": seed, "features": entries}  # fmt: skip


def _plain(value: Any) -> float:
    """Six significant digits: more than the spread of any shuffle supports, and a record that packs small
    (a 64-column table's importances still fit in the termination message beside its statistics)."""
    number = float(value)
    return float(f"{number:.6g}") if math.isfinite(number) else 0.0
