"""Classifiers that make bad canaries, pickled into real model artifacts for ``modelops serve``.

The server process unpickles them, so this module must be importable there under the same
name (``analysis.canary_estimators``: the tests start the servers with ``tests/`` on
PYTHONPATH). At load time the server calls ``predict``/``predict_proba`` on a few hundred
probe rows to choose its prediction path; the faults below fire only for batches smaller
than ``PROBE_ROWS`` — the requests of real clients — so the model loads and then misbehaves
in service, as a broken release does.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

# Fewer rows than the server's load-time probe (256): a live request, not the probe.
PROBE_ROWS = 100


class _Wrapped(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A LogisticRegression behind a hook that runs before each live prediction."""

    def fit(self, x: Any, y: Any) -> _Wrapped:
        self.inner_ = LogisticRegression(max_iter=2000).fit(x, y)
        self.classes_ = self.inner_.classes_
        self.n_features_in_ = self.inner_.n_features_in_
        return self

    def _live(self, x: Any) -> None:
        """Called before predicting a live request's rows."""

    def predict(self, x: Any) -> Any:
        if len(x) < PROBE_ROWS:
            self._live(x)
        return self.inner_.predict(x)

    def predict_proba(self, x: Any) -> Any:
        if len(x) < PROBE_ROWS:
            self._live(x)
        return self.inner_.predict_proba(x)


class Broken(_Wrapped):
    """Raises on every live request: the server answers 500."""

    def _live(self, x: Any) -> None:
        raise RuntimeError("canary bug: cannot predict")


class Slow(_Wrapped):
    """Sleeps ``seconds`` in every live request: p99 latency goes up.

    The server asks a classifier for ``predict`` and ``predict_proba`` of every live row (the expected
    confusion matrix needs the probabilities), so only ``predict`` sleeps: once per request.
    """

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = seconds

    def _live(self, x: Any) -> None:
        time.sleep(self.seconds)

    def predict_proba(self, x: Any) -> Any:
        return self.inner_.predict_proba(x)


class Constant(_Wrapped):
    """Answers the first class for every live row: healthy HTTP, a shifted prediction distribution."""

    def predict(self, x: Any) -> Any:
        if len(x) < PROBE_ROWS:
            return np.full(len(x), self.classes_[0])
        return self.inner_.predict(x)

    def predict_proba(self, x: Any) -> Any:
        if len(x) < PROBE_ROWS:
            proba = np.zeros((len(x), len(self.classes_)))
            proba[:, 0] = 1.0
            return proba
        return self.inner_.predict_proba(x)
