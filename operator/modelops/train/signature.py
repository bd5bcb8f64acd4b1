"""What the model server must know about each input to hand it to the model exactly as it was trained.

Recorded at training beside each signature input's ``name`` and ``datatype`` (``docs/contracts.md``):

- ``categorical: true`` when the pipeline encodes the column as categories rather than as a number
  (a column of integers listed in ``categoricalFeatures`` stays ``INT64`` but is categorical);
- ``categories``, for a categorical input: the distinct values of the training split in the type
  the pipeline saw them (numbers stay JSON numbers, booleans JSON booleans, ``null`` last when the
  column had missing values), left out above :data:`MAX_CATEGORIES` or when a value is not a
  string, number or boolean;
- ``acceptsMissing``: whether the fitted pipeline takes a missing value in this input, found by
  asking it (:func:`columns_taking`): an imputer, or an estimator that handles NaN itself, or a
  one-hot encoder that ignores what it has not seen, makes it ``true``.

The probe is shared with the model server, which runs it on a loaded pipeline whose record has no
``acceptsMissing`` (artifacts trained before it existed) and checks it against the record otherwise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

MAX_CATEGORIES = 100


def model_takes(model: Any, x: Any) -> bool:
    """Whether ``model`` predicts on ``x`` with scikit-learn's input checks on, giving finite outputs.

    Any exception means "no": a step that refuses NaN or infinity raises a ValueError, and nothing
    else can go wrong on rows that differ from accepted rows only in the probed values.
    """
    import sklearn

    try:
        with warnings.catch_warnings(), sklearn.config_context(assume_finite=False):
            warnings.simplefilter("ignore")
            # A classifier's probabilities go through the same input checks as its labels, and show a
            # NaN that got through; one call per question keeps a slow model's start-up short.
            if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
                output = np.asarray(model.predict_proba(x))
            else:
                output = np.asarray(model.predict(x))
    except Exception:  # the model's own refusal, whatever its type
        return False
    # A model that lets NaN through to its output "takes" nothing: its answer is no answer.
    return output.dtype.kind not in "fc" or bool(np.all(np.isfinite(output)))


def columns_taking(model: Any, probes: Any, columns: Sequence[str]) -> set[str]:
    """The columns in which ``model`` takes the probed value.

    ``probes`` (a DataFrame or a matrix, as the model takes its input) has one row per column in
    ``columns``: row i holds the value in ``columns[i]`` and is otherwise a row the model takes.
    Every row stands alone in prediction, so one question about all rows is enough when the answer
    is yes (a model that takes missing values everywhere); otherwise each row is asked on its own.
    """
    if not columns:
        return set()
    if model_takes(model, probes):
        return set(columns)
    if len(columns) == 1:
        return set()
    rows = probes.iloc if hasattr(probes, "iloc") else probes
    return {c for i, c in enumerate(columns) if model_takes(model, rows[i : i + 1])}


def probe_input(model: Any, base: pd.DataFrame, numeric: bool) -> tuple[Callable[[pd.DataFrame], Any], bool]:
    """How to hand probe frames to ``model``, and whether it takes the ``base`` row at all.

    A numeric model that takes a matrix gets matrices: scikit-learn checks each column of a
    DataFrame on every call, which on a wide table costs more than the question, and a matrix in
    the same column order gets the same answers. Anything else gets the frames as they are.
    """
    if numeric and model_takes(model, base.to_numpy(dtype=np.float64)):
        return (lambda frame: frame.to_numpy(dtype=np.float64)), True
    return (lambda frame: frame), model_takes(model, base)


def probe_frame(base: pd.DataFrame, columns: Sequence[str], value: float) -> pd.DataFrame:
    """One copy of ``base``'s single row per column in ``columns``, with ``value`` in that column.

    A column of integers or booleans that receives NaN becomes what pandas makes of such a column
    when it reads one with gaps (float64, or object), so the model sees what it would see from a file.
    """
    import pandas as pd

    n = len(columns)
    where = {c: i for i, c in enumerate(columns)}
    data: dict[str, Any] = {}
    for name in base.columns:
        column = base[name]
        repeated = pd.Series(np.repeat(column.to_numpy(), n), dtype=column.dtype)
        if name in where:
            if column.dtype.kind in "iu":
                repeated = repeated.astype(np.float64)
            elif column.dtype.kind == "b":
                repeated = repeated.astype(object)
            repeated.iloc[where[name]] = value
        data[name] = repeated
    return pd.DataFrame(data)


def _json_value(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise TypeError(type(value).__name__)


def known_categories(column: pd.Series) -> list[Any] | None:
    """The distinct non-missing values of ``column`` as JSON values, sorted, ``None`` last if any were missing."""
    present = column.dropna()
    distinct = present.unique()
    if len(distinct) > MAX_CATEGORIES:
        return None
    try:
        values = [_json_value(v) for v in distinct]
    except TypeError:
        return None
    values.sort(key=lambda v: (type(v).__name__, v))
    if len(present) < len(column):
        values.append(None)
    return values


def _base_row(frame: pd.DataFrame) -> pd.DataFrame:
    """One row with every column's first non-missing value, in the column's own dtype."""
    import pandas as pd

    data = {}
    for name in frame.columns:
        column = frame[name]
        present = column.dropna()
        data[name] = (present if len(present) else column).iloc[:1].reset_index(drop=True)
    return pd.DataFrame(data)


def annotate(inputs: list[dict[str, Any]], frame: pd.DataFrame, categorical: Sequence[str], model: Any) -> None:
    """Add ``categorical``, ``categories`` and ``acceptsMissing`` to the signature ``inputs`` (in place).

    ``frame`` is the training split the fitted ``model`` was trained on, columns in signature order.
    """
    cat = set(categorical)
    names = [str(c) for c in frame.columns]
    base = _base_row(frame)
    as_input, _ = probe_input(model, base, numeric=not cat)
    missing = columns_taking(model, as_input(probe_frame(base, names, math.nan)), names)
    for spec in inputs:
        name = spec["name"]
        if name in cat:
            spec["categorical"] = True
            categories = known_categories(frame[name])
            if categories is not None:
                spec["categories"] = categories
        spec["acceptsMissing"] = name in missing
