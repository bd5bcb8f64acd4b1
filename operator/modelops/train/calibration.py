"""How far a classifier's probabilities can be taken at their word: measured on the held-out split, fixed on request.

The model server estimates accuracy, precision, recall and F1 before labels arrive by taking the
predicted probabilities as the chance of each class (``docs/quality.md``). That is only right for a
calibrated model, so the trainer measures the **expected calibration error** of every classifier
with ``predict_proba`` on its held-out split (``docs/contracts.md``, "Calibration"):

- each row's top probability (its confidence) and whether the class with that probability is the
  row's label;
- the rows split into :data:`BINS` equal-width bins of confidence, ``(0, 0.1]``, ``(0.1, 0.2]``, …
  ``(0.9, 1]`` (edges written as ``i / 10``, so a confidence of exactly 0.3 is in the third bin);
- ECE = sum over bins of (rows in the bin / rows) * |accuracy in the bin - mean confidence in the bin|.

A TrainingRun may ask for calibration: the pipeline's final estimator is then wrapped in
scikit-learn's ``CalibratedClassifierCV`` (``sigmoid``, Platt's, or ``isotonic``; on ``cv`` folds of
the training split), which the server serves like any other classifier. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

BINS = 10
METHODS = ("sigmoid", "isotonic")
DEFAULT_FOLDS = 5
#: The bins' inner edges, 0.1 … 0.9, each exactly the float i / 10.
_EDGES = np.array([i / BINS for i in range(1, BINS)])


def expected_calibration_error(y_true: Any, proba: Any, classes: Sequence[Any]) -> float:
    """The top-label expected calibration error of ``proba`` (rows by ``classes``) against ``y_true``."""
    p = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(classes, dtype=object)
    confidence = p.max(axis=1)
    hit = labels[p.argmax(axis=1)] == np.asarray(y_true, dtype=object)
    bins = np.searchsorted(_EDGES, confidence, side="left")
    gap = np.bincount(bins, weights=hit.astype(np.float64) - confidence, minlength=BINS)
    return float(np.abs(gap).sum() / len(p))


def wrap(estimator: Any, method: str, folds: int) -> Any:
    """The estimator inside ``CalibratedClassifierCV`` (its probabilities fitted on held-out folds)."""
    from sklearn.calibration import CalibratedClassifierCV

    return CalibratedClassifierCV(estimator, method=method, cv=folds)
