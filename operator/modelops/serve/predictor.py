"""Loading a verified model and predicting with as little per-call overhead as is safe.

Three paths, chosen once at load time:

- ``compiled``: a pipeline made only of ``StandardScaler`` steps (and ``passthrough``) ending in a
  linear model (``LogisticRegression``, ``LinearRegression``, ``Ridge``, …) is folded into one
  affine map, column order included: predicting a row is one matrix product. It is used only if it
  reproduces the pipeline's own ``predict`` exactly and ``predict_proba`` to 1e-9 on probe rows drawn
  from the features' reference bins; otherwise the next path is used.
- ``steps``: a numeric model is called step by step (each ``transform``, then the final estimator)
  on a float64 matrix in the model's column order, with scikit-learn's finiteness and parameter
  checks switched off (the codec lets a missing value or an infinity through only where the model
  takes it). Also checked against ``predict`` at load, on rows with missing values too where the
  model takes them.
- ``frame``: a model with categorical inputs gets a pandas DataFrame, each column in the dtype it
  was trained on (:mod:`modelops.serve.codec` converts the values).

A classifier's every batch is asked for probabilities too (the expected confusion matrix needs them):
its preprocessing runs once, and only the final estimator is asked twice, for ``predict`` and
``predict_proba`` -- once, where scikit-learn defines ``predict`` as the class of the highest
probability (:data:`ARGMAX_PREDICTORS`). A classifier whose estimator has no ``predict_proba`` (a
Perceptron, a LinearSVC, an SVC without ``probability=True``) is served its labels only
(:attr:`Predictor.has_proba`); the contract then says why there is no ``predict_proba`` output.

Before choosing, the inputs are settled against the artifact itself (:func:`resolve_features`): how
each categorical column's encoder holds its categories (integers, floats, booleans or strings), and,
by asking the model on probe rows (:func:`modelops.train.signature.columns_taking`), in which columns it
takes a missing value or an infinity. The codec refuses those values everywhere else.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import operator
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelops.serve import artifact, codec, loading, metrics
from modelops.serve.codec import Decoded
from modelops.serve.contract import Feature, ModelContract, kind_of, parse_result
from modelops.train import signature

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

_PROBE_ROWS = 256
#: Final estimators whose ``predict`` is, in scikit-learn's own code, ``classes_[argmax(predict_proba)]``:
#: asked for probabilities, they are asked once.
ARGMAX_PREDICTORS = frozenset(
    {
        ("sklearn.ensemble._forest", "RandomForestClassifier"),
        ("sklearn.ensemble._forest", "ExtraTreesClassifier"),
        ("sklearn.calibration", "CalibratedClassifierCV"),
    }
)
_LINEAR_REGRESSORS = frozenset(
    {"LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet", "ElasticNetCV", "BayesianRidge"}
)


class LoadError(Exception):
    """The model cannot be served: a contract, artifact or compatibility problem."""


@dataclass
class Prediction:
    """One batch's outputs: labels or values, probabilities if asked, and class indices for metrics."""

    predict: npt.NDArray[Any]
    proba: FloatArray | None
    class_index: IntArray | None


def _expit(d: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-d))
    return out


def _softmax(d: FloatArray) -> FloatArray:
    e = np.exp(d - d.max(axis=1, keepdims=True))
    out: FloatArray = e / e.sum(axis=1, keepdims=True)
    return out


@dataclass
class RowPrediction:
    """One row's outputs as plain Python values, ready for JSON (the single-row fast path)."""

    label: Any
    proba: list[float] | None
    class_index: int | None


def _exp(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:  # np.exp gives inf here
        return math.inf


class _Compiled:
    """An affine map ``x @ w + b`` equal to a scaler-and-linear-model pipeline."""

    def __init__(self, w: FloatArray, b: FloatArray, classes: npt.NDArray[Any] | None) -> None:
        self.w = np.ascontiguousarray(w)
        self.b = b
        self.classes = classes
        self.binary = classes is not None and w.shape[1] == 1
        # The same map for one row in plain Python floats: a numpy call costs more than the
        # arithmetic of one row, and a request makes several.
        self._columns: list[list[float]] = [[float(v) for v in column] for column in self.w.T]
        self._intercepts: list[float] = [float(v) for v in b]
        labels = classes.tolist() if classes is not None else []
        if classes is not None and classes.dtype.kind in "OUS":
            labels = [str(v) for v in labels]
        self._labels: list[Any] = labels

    def row(self, x: list[float], want_proba: bool) -> RowPrediction:
        """One row: the same outputs as ``self(np.array([x]), want_proba)``, up to rounding."""
        d = [sum(map(operator.mul, x, column), b) for column, b in zip(self._columns, self._intercepts, strict=True)]
        if self.classes is None:
            return RowPrediction(d[0], None, None)
        if self.binary:
            score = d[0]
            index = 1 if score > 0 else 0
            proba = None
            if want_proba:
                p = 1.0 / (1.0 + _exp(-score))
                proba = [1.0 - p, p]
            return RowPrediction(self._labels[index], proba, index)
        top = max(d)
        index = d.index(top)
        proba = None
        if want_proba:
            e = [_exp(v - top) for v in d]
            total = sum(e)
            proba = [v / total for v in e]
        return RowPrediction(self._labels[index], proba, index)

    def __call__(self, x: FloatArray, want_proba: bool) -> Prediction:
        d = x @ self.w
        d += self.b
        if self.classes is None:
            return Prediction(d[:, 0], None, None)
        if self.binary:
            score = d[:, 0]
            idx = (score > 0).astype(np.intp)
            proba = None
            if want_proba:
                p = _expit(score)
                proba = np.empty((x.shape[0], 2))
                proba[:, 0] = 1.0 - p
                proba[:, 1] = p
            return Prediction(self.classes[idx], proba, idx)
        idx = d.argmax(axis=1)
        return Prediction(self.classes[idx], _softmax(d) if want_proba else None, idx)


def _steps_of(model: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        return [step for _, step in model.steps if step is not None and step != "passthrough"]
    return [model]


def _compile(model: Any, order: IntArray, width: int) -> _Compiled | None:
    """Fold scalers and a linear final estimator into one affine map over the request's column order."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    steps = _steps_of(model)
    *transforms, final = steps
    n = len(order)
    # The affine map from model-order input columns: y = x_model @ a + c.
    a = np.eye(n)
    c = np.zeros(n)
    for step in transforms:
        if type(step) is not StandardScaler:
            return None
        mean = step.mean_ if step.with_mean else np.zeros(n)
        scale = step.scale_ if step.with_std else np.ones(n)
        if mean is None or scale is None:
            return None
        a = a / scale
        c = (c - mean) / scale
    if type(final) is LogisticRegression:
        coef = np.asarray(final.coef_, dtype=np.float64)
        classes = np.asarray(final.classes_)
    elif type(final).__name__ in _LINEAR_REGRESSORS and type(final).__module__.startswith("sklearn.linear_model"):
        coef = np.atleast_2d(np.asarray(final.coef_, dtype=np.float64))
        classes = None
        if coef.shape[0] != 1:
            return None
    else:
        return None
    intercept = np.atleast_1d(np.asarray(final.intercept_, dtype=np.float64))
    w_model = a @ coef.T  # [n, k]
    b = c @ coef.T + intercept
    # Scatter model-order rows to request-order rows: request column order[j] is model column j.
    w = np.zeros((width, w_model.shape[1]))
    w[order] = w_model
    return _Compiled(w, b, classes)


def _probe(contract: ModelContract, names: Sequence[str], rows: int = _PROBE_ROWS) -> FloatArray:
    """Rows drawn from each numeric feature's reference range (standard normal without stats)."""
    rng = np.random.default_rng(0)
    stats = {s.name: s.edges for s in contract.numeric_stats}
    out = np.empty((rows, len(names)))
    for j, name in enumerate(names):
        edges = stats.get(name)
        if edges is None:
            out[:, j] = rng.standard_normal(rows)
            continue
        out[:, j] = rng.uniform(edges[0], edges[-1], rows)
        k = min(rows, len(edges))
        out[:k, j] = edges[:k]
    return out


def _same(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> bool:
    return a.shape == b.shape and bool(np.all(a == b))


def _close(a: FloatArray, b: FloatArray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=1e-12))


# -- what the artifact says about its inputs ---------------------------------------------------------


def encoder_categories(model: Any) -> dict[str, npt.NDArray[Any]]:
    """Column name -> the categories a fitted one-hot (or ordinal) encoder holds for it, where findable.

    Looks through a Pipeline, the ColumnTransformers in it, and pipelines inside those (an imputer
    before the encoder, say); columns selected by name only.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    found: dict[str, npt.NDArray[Any]] = {}

    def visit(step: Any, columns: Sequence[str] | None) -> None:
        if isinstance(step, Pipeline):
            for _, inner in step.steps:
                visit(inner, columns)
        elif isinstance(step, ColumnTransformer):
            for _, inner, selected in getattr(step, "transformers_", []):
                if isinstance(selected, list | tuple) and all(isinstance(c, str) for c in selected):
                    visit(inner, list(selected))
        elif isinstance(step, OneHotEncoder | OrdinalEncoder):
            names = columns if columns is not None else getattr(step, "feature_names_in_", None)
            categories = getattr(step, "categories_", None)
            if names is not None and categories is not None and len(names) == len(categories):
                found.update({str(n): np.asarray(c) for n, c in zip(names, categories, strict=True)})

    visit(model, None)
    return found


def _encoder_kind(categories: npt.NDArray[Any]) -> str:
    """The value kind (``contract.KINDS``) of an encoder's categories."""
    if categories.dtype.kind in "iu":
        return "int"
    if categories.dtype.kind == "f":
        return "float"
    if categories.dtype.kind == "b":
        return "bool"
    present = [v for v in categories.tolist() if v is not None and v == v]
    return kind_of("BYTES", True, present) if present else "string"


def _family(kind: str) -> str:
    """Kinds that can stand for one another (an imputer turns integer categories into floats)."""
    return {"int": "number", "float": "number", "number": "number"}.get(kind, kind)


def resolve_features(contract: ModelContract, encoders: Mapping[str, npt.NDArray[Any]]) -> tuple[Feature, ...]:
    """The contract's inputs, checked against (and, for old records, completed from) the artifact's encoders.

    A record without ``categorical`` whose model one-hot encodes the column is made categorical; a
    BYTES column recorded without ``categories`` takes its kind from the encoder (booleans, mixed);
    a record that says strings where the encoder holds numbers (or the reverse) is a
    :class:`LoadError`, never a silent guess.
    """
    stats = {s.name for s in contract.numeric_stats}
    out: list[Feature] = []
    for f in contract.features:
        held = encoders.get(f.name)
        if held is None:
            out.append(f)
            continue
        kind = _encoder_kind(held)
        if not f.categorical:
            if f.name in stats:
                raise LoadError(
                    f"feature {f.name!r} has numeric referenceStats in result.json but the model encodes it "
                    "as categories"
                )
            f = dataclasses.replace(f, categorical=True, kind=kind)
        elif f.categories is None and f.datatype == "BYTES":
            f = dataclasses.replace(f, kind=kind)
        elif "mixed" not in (kind, f.kind) and _family(kind) != _family(f.kind):
            raise LoadError(
                f"feature {f.name!r}: result.json says the model was trained on {f.kind} values but its encoder "
                f"holds {kind} categories"
            )
        out.append(f)
    return tuple(out)


class Predictor:
    """A loaded model with the fastest verified way to call it; see the module docstring."""

    def __init__(self, contract: ModelContract, model: Any) -> None:
        import sklearn

        # Parameter and finiteness checks off: they cost on every call (a fifth of a 100-row batch on the
        # steps path), and the codec lets NaN and infinities through only to columns where the model,
        # asked with its checks on (signature.model_takes), took them.
        sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
        self.model = model
        fitted_names = getattr(model, "feature_names_in_", None)
        self._fitted_with_names = fitted_names is not None
        self.model_columns: tuple[str, ...] = (
            tuple(str(n) for n in fitted_names) if fitted_names is not None else contract.feature_names
        )
        if sorted(self.model_columns) != sorted(contract.feature_names):
            raise LoadError(
                f"the model was fitted on columns {list(self.model_columns)} but result.json's signature "
                f"names {list(contract.feature_names)}"
            )
        n_in = getattr(model, "n_features_in_", len(self.model_columns))
        if n_in != len(self.model_columns):
            raise LoadError(f"the model expects {n_in} features; the signature has {len(self.model_columns)}")
        self._encoders = encoder_categories(model)
        contract = dataclasses.replace(contract, features=resolve_features(contract, self._encoders))
        self.contract = contract
        self.numeric_names = tuple(f.name for f in contract.features if not f.categorical)
        self.categorical_names = tuple(f.name for f in contract.features if f.categorical)
        classes = getattr(model, "classes_", None)
        if contract.is_classifier:
            if classes is None:
                raise LoadError("result.json says classification but the model has no classes_")
            self.classes: npt.NDArray[Any] | None = np.asarray(classes)
        else:
            self.classes = None
        #: Whether the model gives probabilities: a classifier whose estimator has ``predict_proba``
        #: (a Pipeline has it exactly when its final step does). One without is served its labels
        #: only: no ``predict_proba`` output, no expected confusion matrix.
        self.has_proba = self.classes is not None and hasattr(model, "predict_proba")
        if self.classes is not None and not self.has_proba:
            final_name = type(_steps_of(model)[-1]).__name__
            contract = dataclasses.replace(
                contract,
                no_probabilities=f"this model ({final_name}) has no probabilities, only labels; ask for 'predict'",
            )
        self.class_labels = tuple(str(c) for c in self.classes) if self.classes is not None else None
        self.predict_datatype = contract.predict_datatype
        self.contract = contract = self._settle_values(contract)
        self._compiled: _Compiled | None = None
        self._row: _Compiled | None = None
        self.path = "frame"
        self._steps = _steps_of(model)
        final = self._steps[-1]
        self._argmax_predicts = (type(final).__module__, type(final).__name__) in ARGMAX_PREDICTORS and (
            self.classes is not None and np.ndim(getattr(final, "classes_", ())) == 1
        )
        if not self.categorical_names:
            index = {n: j for j, n in enumerate(self.numeric_names)}
            self._order = np.array([index[n] for n in self.model_columns], dtype=np.intp)
            self._identity = bool(np.all(self._order == np.arange(len(self._order))))
            self.path = "steps"
            probe = self._with_missing(_probe(contract, self.numeric_names))
            reference = self._reference(probe)
            finite_only = not any(f.accepts_missing or f.accepts_infinite for f in contract.features)
            if not self._agrees(self._predict_steps, probe, reference):
                # E.g. a ColumnTransformer that selects columns by name: call the whole pipeline on a
                # DataFrame, as it was trained (slower, always right).
                self.path = "frame"
            elif finite_only:
                compiled = _compile(model, self._order, len(self.numeric_names))
                if compiled is not None and self._agrees(compiled, probe, reference):
                    self._compiled = compiled
                    self.path = "compiled"
                    if self._agrees(self._rows_of(compiled), probe, reference):
                        self._row = compiled
        self.prediction_bounds: tuple[float, ...] = ()
        if self.classes is None:
            self.prediction_bounds = self._regression_bounds()

    # -- what the model takes ---------------------------------------------------------------------

    def _examples(self, feature: Feature, count: int, rng: np.random.Generator) -> npt.NDArray[Any]:
        """``count`` known values of a categorical feature, converted as a request's would be."""
        known: list[Any] = [c for c in feature.categories or () if c is not None]
        if not known and feature.name in self._encoders:
            known = [v for v in self._encoders[feature.name].tolist() if v is not None and v == v]
        if not known:
            stats = {s.name: s.categories for s in self.contract.categorical_stats}
            known = [c for c in stats.get(feature.name, ()) if c != "__other__"]
        fallback = [{"int": 0, "float": 0.0, "bool": False}.get(feature.kind, "")] * count
        picked = [known[i] for i in rng.integers(0, len(known), count)] if known else fallback
        accepting = dataclasses.replace(feature, accepts_missing=True, accepts_infinite=True)
        datatype = "BYTES" if feature.kind in ("string", "mixed") else feature.datatype
        try:
            return codec.column(picked, datatype, accepting, lambda i: "")[0]
        except codec.RequestError:  # reference categories that do not parse as the kind: any value will do
            return codec.column(fallback, datatype, accepting, lambda i: "")[0]

    def _base_frame(self, contract: ModelContract) -> Any:
        """One plausible row in the model's dtypes: reference midpoints and known categories."""
        rng = np.random.default_rng(0)
        stats = {s.name: s.edges for s in contract.numeric_stats}
        numeric = np.array(
            [[(stats[n][0] + stats[n][-1]) / 2 if n in stats else 0.0 for n in self.numeric_names]], dtype=np.float64
        )
        by_name = {f.name: f for f in contract.features}
        categorical = [self._examples(by_name[n], 1, rng) for n in self.categorical_names]
        return self._frame(numeric, categorical)

    def _model_input(self, frame: Any) -> Any:
        """A frame in model column order as the model was fitted: itself, or its matrix."""
        return frame if self._fitted_with_names else frame.to_numpy(dtype=np.float64)

    def _settle_values(self, contract: ModelContract) -> ModelContract:
        """Ask the model in which columns it takes a missing value, and an infinity; record the answers.

        Only what the record does not refuse is asked (refusing is always safe, and the trainer asked
        the same question); infinities only in columns that take NaN, since every scikit-learn check
        that lets an infinity through lets NaN through too. A wide table recorded before
        ``acceptsMissing`` costs a model call per column, once, at start-up.
        """
        base = self._base_frame(contract)
        as_input, taken = signature.probe_input(self.model, base, numeric=not self.categorical_names)
        if not taken:
            log.warning("the model refuses a probe row built from result.json; missing values are refused everywhere")
        refused = {f.name for f in contract.features if f.accepts_missing is False}
        columns = [c for c in self.model_columns if c not in refused]

        def taking(value: float, names: list[str]) -> set[str]:
            return signature.columns_taking(self.model, as_input(signature.probe_frame(base, names, value)), names)

        missing = taking(math.nan, columns)
        numbers = [f.name for f in contract.features if f.kind in ("number", "float") and f.name in missing]
        infinite = taking(math.inf, numbers)
        features: list[Feature] = []
        for f in contract.features:
            takes = f.name in missing
            if f.accepts_missing and not takes:
                log.warning(
                    "result.json says feature %r accepts missing values but the model refuses them; refusing them",
                    f.name,
                )
            features.append(
                dataclasses.replace(
                    f, accepts_missing=takes and f.accepts_missing is not False, accepts_infinite=f.name in infinite
                )
            )
        return dataclasses.replace(contract, features=tuple(features))

    def _with_missing(self, probe: FloatArray) -> FloatArray:
        """The probe rows plus copies with NaN in each numeric column that takes it, to verify shortcuts on."""
        takes = [j for j, n in enumerate(self.numeric_names) if self._feature(n).accepts_missing]
        if not takes:
            return probe
        gaps = probe[: len(takes) * 4].copy()
        for i in range(gaps.shape[0]):
            gaps[i, takes[i % len(takes)]] = np.nan
        return np.vstack([probe, gaps])

    def _feature(self, name: str) -> Feature:
        return next(f for f in self.contract.features if f.name == name)

    # -- reference and verification -------------------------------------------------------------

    def _frame(self, numeric: FloatArray, categorical: Sequence[Any]) -> Any:
        import pandas as pd

        columns: dict[str, Any] = {}
        for j, name in enumerate(self.numeric_names):
            columns[name] = numeric[:, j]
        for j, name in enumerate(self.categorical_names):
            columns[name] = categorical[j]
        return pd.DataFrame({name: columns[name] for name in self.model_columns})

    def _reference(self, probe: FloatArray) -> tuple[npt.NDArray[Any], FloatArray | None]:
        """The pipeline's own outputs on the probe rows, called the way it was trained."""
        x: Any = self._frame(probe, []) if hasattr(self.model, "feature_names_in_") else probe[:, self._order]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = np.asarray(self.model.predict(x))
            proba = np.asarray(self.model.predict_proba(x), dtype=np.float64) if self.has_proba else None
        return predicted, proba

    def _agrees(self, fn: Any, probe: FloatArray, reference: tuple[npt.NDArray[Any], FloatArray | None]) -> bool:
        predicted, proba = reference
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours: Prediction = fn(probe, self.has_proba)
        except Exception:  # any failure of a shortcut just means "do not use it"
            return False
        if self.classes is None:
            return _close(np.asarray(ours.predict, dtype=np.float64), predicted.astype(np.float64))
        if not self.has_proba:
            return _same(np.asarray(ours.predict), predicted)
        return (
            _same(np.asarray(ours.predict), predicted)
            and ours.proba is not None
            and proba is not None
            and _close(ours.proba, proba)
        )

    def _rows_of(self, compiled: _Compiled) -> Any:
        """The single-row path of ``compiled`` as a batch function, to verify it like the others."""

        def batch(x: FloatArray, want_proba: bool) -> Prediction:
            rows = [compiled.row(r, want_proba) for r in x.tolist()]
            predict = np.array([r.label for r in rows]) if rows else np.empty(0)
            if compiled.classes is not None:
                predict = compiled.classes[np.array([r.class_index for r in rows], dtype=np.intp)]
            proba = np.array([r.proba for r in rows], dtype=np.float64) if want_proba else None
            return Prediction(predict, proba, None)

        return batch

    def _regression_bounds(self) -> tuple[float, ...]:
        try:
            if self.categorical_names:
                rng = np.random.default_rng(0)
                categorical = [self._examples(self._feature(n), _PROBE_ROWS, rng) for n in self.categorical_names]
                numeric = _probe(self.contract, self.numeric_names)
                values = self.predict_batch(numeric, categorical, want_proba=False).predict
            else:
                values = self.predict_batch(_probe(self.contract, self.numeric_names), [], want_proba=False).predict
            return metrics.prediction_bounds_from(np.asarray(values, dtype=np.float64))
        except Exception:  # a model that cannot score synthetic rows still serves; coarse default bounds
            return (-1000.0, -100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0)

    # -- prediction --------------------------------------------------------------------------------

    def _predict_steps(self, x: FloatArray, want_proba: bool) -> Prediction:
        if not self._identity:
            x = x[:, self._order]
        if self._fitted_with_names:
            # The matrix is in the fitted column order (proven at load time); only the warning differs.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                return self._call_steps(x, want_proba)
        return self._call_steps(x, want_proba)

    def _call_steps(self, x: Any, want_proba: bool) -> Prediction:
        """The pipeline's steps one by one (what ``Pipeline.predict`` does), the final one asked once or twice."""
        *transforms, final = self._steps
        for step in transforms:
            x = step.transform(x)
        if want_proba and self._argmax_predicts:
            assert self.classes is not None
            probabilities = np.asarray(final.predict_proba(x), dtype=np.float64)
            index: IntArray = probabilities.argmax(axis=1)
            return Prediction(self.classes.take(index), probabilities, index)
        predicted = np.asarray(final.predict(x))
        proba = np.asarray(final.predict_proba(x), dtype=np.float64) if want_proba else None
        return Prediction(predicted, proba, self._class_index(predicted))

    def _class_index(self, predicted: npt.NDArray[Any]) -> IntArray | None:
        if self.classes is None:
            return None
        idx: IntArray = np.searchsorted(self.classes, predicted).astype(np.intp)
        return idx

    def predict_batch(self, numeric: FloatArray, categorical: Sequence[Any], want_proba: bool) -> Prediction:
        """Predict one batch: numeric columns in signature order, categorical columns as the codec makes them.

        ``want_proba`` is ignored by a model without probabilities (:attr:`has_proba`): its ``proba`` is None.
        """
        want_proba = want_proba and self.has_proba
        if self._compiled is not None:
            return self._compiled(numeric, want_proba)
        if self.path == "steps":
            return self._predict_steps(numeric, want_proba)
        frame = self._model_input(self._frame(numeric, categorical))
        if want_proba:  # the preprocessing once, not once for each question
            return self._call_steps(frame, True)
        predicted = np.asarray(self.model.predict(frame))
        return Prediction(predicted, None, self._class_index(predicted))

    def model_input(self, numeric: FloatArray, categorical: Sequence[Any]) -> Any:
        """What the whole model is called on for a batch (numeric columns in signature order, categorical
        columns as the codec makes them): a frame in the model's column order, or its matrix."""
        return self._model_input(self._frame(numeric, categorical))

    @property
    def has_row_path(self) -> bool:
        """Whether :meth:`predict_row` can be used (a compiled model whose row path was verified at load)."""
        return self._row is not None

    def predict_row(self, row: list[float], want_proba: bool) -> RowPrediction:
        """Predict one row of numeric features in signature order; only when :attr:`has_row_path`."""
        assert self._row is not None
        return self._row.row(row, want_proba and self.has_proba)

    def predict(self, decoded: Decoded) -> Prediction:
        return self.predict_batch(decoded.numeric, decoded.categorical, "predict_proba" in decoded.outputs)


def load_contract(model_dir: Path) -> ModelContract:
    """Read and parse ``model_dir/result.json``."""
    path = model_dir / "result.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise LoadError(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read {path}: {exc}") from None
    try:
        return parse_result(doc)
    except ValueError as exc:
        raise LoadError(str(exc)) from None


def load(model_dir: Path, contract: ModelContract, trusted_sha256: str, *, allow_pickle: bool = False) -> Predictor:
    """Verify the artifact against the trusted sha256, then load it and build a :class:`Predictor`.

    The check comes first on purpose, and loading follows :mod:`modelops.serve.loading`: a skops
    archive only with trusted types, a joblib pickle only when ``allow_pickle``.
    """
    path = model_dir / contract.artifact_path
    # Hash the very bytes that get loaded, so the file cannot change between check and load.
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise artifact.ArtifactError(f"cannot read artifact {path}: {exc.strerror}") from None
    artifact.verify_bytes(data, trusted_sha256, str(path))
    model = loading.load_model(data, contract.artifact_format, str(path), allow_pickle=allow_pickle)
    return Predictor(contract, model)
