"""Reading raw samples: columns out of DataFrames, mappings or arrays, kinds, clean values.

The library never imports pandas: a DataFrame is recognised by its ``columns`` attribute
and its columns are read with ``to_numpy``, so pandas (or any DataFrame-like object with
that surface) works without being a dependency of the statistics.

Missing values are dropped before any statistic: ``NaN`` and ``+-inf`` for numeric
features, ``None``/``NaN``/``pd.NA`` for categorical ones. The number dropped is reported
in the feature's note, never silently folded into a bin.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelops.drift import methods

# Numpy dtype kinds read as numeric features: signed, unsigned, float. Booleans, strings,
# objects and pandas categoricals are categorical.
_NUMERIC_DTYPE_KINDS = frozenset("iuf")


def as_columns(data: object, what: str) -> dict[str, Any]:
    """Name -> column for a DataFrame(-like), a mapping of name -> values, or an array.

    A 1-D array is one feature named ``value``; a 2-D array's columns are named ``"0"``,
    ``"1"``, ... . ``what`` ("reference" or "current") names the argument in errors.
    """
    columns = getattr(data, "columns", None)
    if columns is not None and not isinstance(data, Mapping):
        names = [str(name) for name in columns]
        if len(set(names)) != len(names):
            raise ValueError(f"the {what} data has duplicate column names")
        return {str(name): data[name] for name in columns}  # type: ignore[index]
    if isinstance(data, Mapping):
        return {str(name): values for name, values in data.items()}
    array = np.asarray(data)
    if array.ndim == 1:
        return {"value": array}
    if array.ndim == 2:
        return {str(index): array[:, index] for index in range(array.shape[1])}
    raise ValueError(f"the {what} data must be a DataFrame, a mapping of columns or a 1-D/2-D array")


def column_kind(column: object) -> str:
    """``numeric`` for integer and float columns, ``categorical`` for everything else."""
    dtype = getattr(column, "dtype", None)
    if dtype is None:
        dtype = np.asarray(column).dtype
    kind = getattr(dtype, "kind", "O")
    return methods.NUMERIC if kind in _NUMERIC_DTYPE_KINDS else methods.CATEGORICAL


def numeric_values(column: object, name: str, what: str) -> tuple[methods.FloatArray, int]:
    """The finite values of a numeric column as float64 -> (values, number dropped).

    No copy is made when the column already is a finite float64 array.
    """
    try:
        to_numpy = getattr(column, "to_numpy", None)
        if to_numpy is not None:
            array = np.asarray(to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            array = np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"feature {name!r} is numeric in the reference but the {what} values are not numbers"
        ) from None
    array = array.reshape(-1)
    finite = np.isfinite(array)
    if bool(finite.all()):
        return array, 0
    return array[finite], int(array.size - np.count_nonzero(finite))


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    # pandas' NA and NaT singletons, without importing pandas.
    return type(value).__name__ in {"NAType", "NaTType"}


def category_name(value: object) -> str:
    """Categories are compared as strings: the form they take in referenceStats JSON."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def category_counts(column: object) -> tuple[Counter[str], int]:
    """Count a categorical column's values by name -> (counts, number of missing values)."""
    to_numpy = getattr(column, "to_numpy", None)
    array = np.asarray(to_numpy(dtype=object) if to_numpy is not None else np.asarray(column, dtype=object))
    raw: Counter[Any] = Counter(array.reshape(-1).tolist())
    counts: Counter[str] = Counter()
    missing = 0
    for value, count in raw.items():
        if _is_missing(value):
            missing += count
        else:
            counts[category_name(value)] += count
    return counts, missing
