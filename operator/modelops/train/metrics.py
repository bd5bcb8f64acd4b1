"""Held-out metrics (pure: arrays in, a dict of floats out).

Classification: ``accuracy``, ``precision``, ``recall``, ``f1`` -- with ``average="binary"``
(the positive class is the greater of the two sorted labels, ``classes[1]``) for two
classes, ``average="macro"`` for more; ``zero_division=0``. ``roc_auc``: binary from
``predict_proba[:, 1]`` or ``decision_function``; multiclass one-vs-rest, macro-averaged,
from ``predict_proba`` only (it needs probabilities that sum to one); left out when the
estimator has no scores or the test split lacks a class. ``ece``: the expected calibration error of
``predict_proba`` (:mod:`modelops.train.calibration`), for classifiers that have it.

Regression: ``rmse``, ``mae``, ``r2``. Non-finite values (e.g. ``r2`` on a single test row)
are left out, so the result is always valid JSON.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelops.train import calibration


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    classes: Any,
    proba: Any | None = None,
    decision: Any | None = None,
) -> dict[str, float]:
    """Metrics of a classifier; ``proba``/``decision`` are its scores on the test split."""
    from sklearn import metrics

    labels = list(classes)
    binary = len(labels) == 2
    common: dict[str, Any] = (
        {"average": "binary", "pos_label": labels[1]} if binary else {"average": "macro", "labels": labels}
    )
    out = {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision": metrics.precision_score(y_true, y_pred, zero_division=0, **common),
        "recall": metrics.recall_score(y_true, y_pred, zero_division=0, **common),
        "f1": metrics.f1_score(y_true, y_pred, zero_division=0, **common),
    }
    if proba is not None:
        out["ece"] = calibration.expected_calibration_error(y_true, proba, labels)
    present = set(np.unique(np.asarray(y_true)).tolist())
    if len(present) == len(labels) and len(labels) >= 2:
        if binary and (proba is not None or decision is not None):
            scores = np.asarray(proba)[:, 1] if proba is not None else np.asarray(decision)
            out["roc_auc"] = metrics.roc_auc_score(np.asarray(y_true) == labels[1], scores)
        elif not binary and proba is not None:
            out["roc_auc"] = metrics.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
    return _finite(out)


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """``rmse``, ``mae`` and ``r2`` of a regressor on the test split."""
    from sklearn import metrics

    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    out = {
        "rmse": math.sqrt(metrics.mean_squared_error(y_true, y_pred)),
        "mae": metrics.mean_absolute_error(y_true, y_pred),
    }
    if len(y_true) >= 2:
        out["r2"] = metrics.r2_score(y_true, y_pred)
    return _finite(out)
