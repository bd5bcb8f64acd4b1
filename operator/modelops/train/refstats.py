"""Reference statistics and the model's v2 signature (pure: DataFrames in, dicts out).

Numeric features (see ``docs/contracts.md``): ``edges`` are the 0, 10, …, 100 % quantiles of
the training split (linear interpolation), de-duplicated, built by the drift library's own
:func:`modelops.drift.bins.quantile_edges` so that the trainer, ``modelops drift`` and the model
server agree on them: always strictly increasing, a constant column ``c`` getting the bins
``x < c``, ``x == c``, ``x > c``. The interior edges are Prometheus ``le`` bounds: bin 0 holds
``x <= edges[1]``, bin i ``edges[i] < x <= edges[i+1]``, the last ``x > edges[-2]``; missing
values (NaN) are not counted. A column without a finite value gets no entry (the trainer
refuses such columns before it gets here).

Categorical features: the (at most) 50 most frequent values as strings, ties broken by the
string, then ``__other__`` (always present, possibly 0) counting the rest. Missing values are
not counted, as for numeric features and in ``modelops drift``: a gap is not a category that
live traffic could be compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

BINS = 10
TOP_CATEGORIES = 50
OTHER = "__other__"


def _number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def numeric_bins(values: Any, bins: int = BINS) -> dict[str, Any] | None:
    """``{"edges", "counts"}`` of one numeric column per the contract's bin convention (None: no finite value)."""
    from modelops.drift import bins as drift_bins

    data = np.asarray(values, dtype=np.float64)
    ordered = np.sort(data[np.isfinite(data)])
    if ordered.size == 0:
        return None
    edges = drift_bins.quantile_edges(ordered[np.newaxis, :], bins)[0]
    counts = drift_bins.sorted_counts(ordered, edges)
    return {"edges": [_number(e) for e in edges], "counts": [int(c) for c in counts]}


def categorical_counts(values: Any, top: int = TOP_CATEGORIES) -> dict[str, Any]:
    """``{"categories", "counts"}`` with the ``top`` most frequent values and ``__other__``."""
    import pandas as pd

    series = pd.Series(values)
    counts = series.dropna().astype(str).value_counts(sort=False)
    ranked = sorted(((int(n), str(c)) for c, n in counts.items()), key=lambda item: (-item[0], item[1]))
    kept = [item for item in ranked[:top] if item[1] != OTHER]
    other = int(series.notna().sum()) - sum(n for n, _ in kept)  # the rest; missing values are not counted
    return {
        "categories": [c for _, c in kept] + [OTHER],
        "counts": [n for n, _ in kept] + [other],
    }


def reference_stats(frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> dict[str, Any]:
    """The ``referenceStats`` block for the training split ``frame``, features in frame order."""
    cat = set(categorical)
    features: list[dict[str, Any]] = []
    for name in frame.columns:
        if name in cat:
            features.append({"name": name, "kind": "categorical", **categorical_counts(frame[name])})
        elif name in numeric:
            binned = numeric_bins(frame[name])
            if binned is not None:
                features.append({"name": name, "kind": "numeric", **binned})
    return {"sampleSize": len(frame), "features": features}


def datatype(dtype: Any) -> str:
    """The Open Inference Protocol v2 datatype of a pandas/numpy dtype."""
    kind = getattr(dtype, "kind", "O")
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64"
    if kind == "f":
        return "FP32" if getattr(dtype, "itemsize", 8) == 4 else "FP64"
    return "BYTES"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def signature(features: pd.DataFrame, task: str, classes: Sequence[Any] | None, output_dtype: Any) -> dict[str, Any]:
    """``{"inputs", "outputs", "classes"?}``: one input per feature column, one ``predict`` output."""
    inputs = [{"name": name, "datatype": datatype(features[name].dtype)} for name in features.columns]
    if task == "classification" and classes is not None:
        values = [_plain(c) for c in classes]
        return {
            "inputs": inputs,
            "outputs": [{"name": "predict", "datatype": datatype(np.asarray(classes).dtype)}],
            "classes": values,
        }
    return {"inputs": inputs, "outputs": [{"name": "predict", "datatype": datatype(output_dtype)}]}
