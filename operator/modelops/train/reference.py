"""The training reference a per-row explanation is measured from, carried inside the artifact.

A linear model's explanation (``modelops.serve.explain``) gives each source column the part of
``coef · (x_derived - reference)`` that comes from its derived features, and the base value is the
model's output at the reference. The reference is the mean of every derived feature (what the
final estimator takes, after imputation, scaling and one-hot encoding) over the training split,
so the base value is the model's output at the average training row, as the model sees it.

It travels as a fitted attribute of the pipeline (:data:`ATTRIBUTE`, a float64 array): inside the
artifact, so it is covered by the artifact's sha256 and loads with the same trusted types (a
numpy array) — no second file to fetch and verify — and it holds one number per derived feature,
never a training row.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

#: The pipeline attribute that holds the reference (a trailing underscore: a fitted attribute).
ATTRIBUTE = "modelops_reference_mean_"


def derived(pipeline: Any, x: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    """What the final estimator of ``pipeline`` takes for rows ``x``, as a float64 matrix."""
    from sklearn.pipeline import Pipeline

    out: Any = x
    if isinstance(pipeline, Pipeline) and len(pipeline.steps) > 1:
        out = pipeline[:-1].transform(x)
    if hasattr(out, "toarray"):  # a sparse matrix from a hand-made pipeline
        out = out.toarray()
    return np.asarray(out, dtype=np.float64)


def attach(pipeline: Any, x_train: Any) -> None:
    """Set :data:`ATTRIBUTE` on a fitted ``pipeline``: its derived features' mean over ``x_train``.

    Missing values (which only reach estimators that take them, never a linear one) are left out
    of a column's mean; a column with no value at all gets 0.
    """
    z = derived(pipeline, x_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice" for an all-missing column
        mean = np.nanmean(z, axis=0) if z.shape[0] else np.zeros(z.shape[1])
    setattr(pipeline, ATTRIBUTE, np.where(np.isnan(mean), 0.0, mean).astype(np.float64))


def of(model: Any) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """The reference a loaded model carries, or None (an artifact from before, or not from our trainer)."""
    value = getattr(model, ATTRIBUTE, None)
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind != "f":
        return None
    return value.astype(np.float64, copy=False)
