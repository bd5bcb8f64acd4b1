"""Per-row explanations (``POST /v2/models/{name}/explain``): each source column's contribution to the output.

For every row, ``base[k] + sum_j contributions[row, j, k] == output[row, k]`` (checked on every
answer), where ``j`` runs over the model's *source* columns (the request's inputs, in signature
order) and ``k`` over the explained outputs. How, by the final estimator of the pipeline:

- ``linear`` (``coef_``/``intercept_`` whose affine map is proven, on probe rows at start, to be the
  model's own ``decision_function`` or ``predict``): the derived feature ``d`` (what the estimator
  takes after imputation, scaling, one-hot encoding) contributes ``coef[k, d] * (z[d] - mean[d])``,
  where ``mean`` is the derived features' mean over the training split that the trainer stores in
  the artifact (:mod:`modelops.train.reference`); the base value is the output at that mean. Exact.
- ``tree_shap`` (random forests, extra trees, gradient boosting, histogram gradient boosting,
  single trees): SHAP values of the derived features by shap's TreeExplainer (the optional extra
  ``explain``) with its ``tree_path_dependent`` perturbation, which needs no background data: the
  base value is the expected output under the training data as the trees' node counts record it.
  Multi-class ``GradientBoostingClassifier``, which shap does not take, is explained one class at a
  time from its own trees.
- ``constant`` (``DummyClassifier``/``DummyRegressor`` with a deterministic strategy): every
  contribution is 0 and the base value is the output.
- anything else: :class:`ExplainError` 501 naming the estimator.

The space of ``output`` (``space``) is found, not assumed: ``probability`` (``predict_proba``, one
entry per class), ``decision_function`` (one entry per class, or one for the second class of a
binary classifier: log-odds for a logistic regression or a gradient boosting), ``prediction``, or
``log_prediction`` (a Poisson or Gamma histogram gradient boosting).

Derived features are folded back into the source column they come from. Which one is found by
asking the preprocessing itself at start (:func:`attribute`), on probe rows that hold every known
category, an unseen one and a gap where the model takes them: a derived feature belongs to the one
source column whose values move it. A preprocessing that mixes several source columns into one
derived feature (a PCA, say) cannot be folded: 501.

Everything is prepared on the first explanation, not at start-up (importing shap alone takes
seconds), and kept; pure maths apart from the model calls.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from modelops.serve import codec
from modelops.serve.codec import Output
from modelops.train import reference

if TYPE_CHECKING:
    from modelops.serve.contract import Feature
    from modelops.serve.predictor import Predictor

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

#: Rows one explain request may hold unless ``--explain-max-rows`` says otherwise.
#: (TreeSHAP on a 100-tree forest grown to full depth: about 30 ms a row, so about a second; bench/explain)
DEFAULT_MAX_ROWS = 32
#: The optional extra that brings shap, as a user installs it.
EXTRA = "pip install 'modelops-operator[explain]'"
#: Tree estimators whose explanations come from TreeSHAP (scikit-learn class names).
TREE_ESTIMATORS = frozenset(
    {"RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
     "GradientBoostingClassifier", "GradientBoostingRegressor", "HistGradientBoostingClassifier",
     "HistGradientBoostingRegressor", "DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier",
     "ExtraTreeRegressor"}
)  # fmt: skip
_CONSTANT_ESTIMATORS = frozenset({"DummyClassifier", "DummyRegressor"})
_PROBE_ROWS = 64
#: The most an answer may be off before it is refused as a bug, relative to the size of its terms.
_ADDS_UP = 1e-6


class ExplainError(codec.RequestError):
    """An explanation the server cannot give: ``status`` is the HTTP code, ``message`` says why."""


@dataclass(frozen=True)
class Explanation:
    """The explanation of ``N`` rows over ``F`` source columns and ``K`` outputs."""

    method: str
    space: str
    features: tuple[str, ...]
    #: the class of each of the K outputs (empty for a regression)
    classes: tuple[str, ...]
    base: FloatArray  # [K]
    contributions: FloatArray  # [N, F, K]
    output: FloatArray  # [N, K]


# -- pure maths ----------------------------------------------------------------------------------


def changed(a: FloatArray, b: FloatArray) -> npt.NDArray[np.bool_]:
    """Per column of two equal-shaped matrices: whether any row differs (NaN equals NaN)."""
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    out: npt.NDArray[np.bool_] = ~same.all(axis=0)
    return out


def attribute(derive: Callable[[Sequence[int]], FloatArray], columns: int) -> IntArray:
    """The source column of each derived feature, -1 where none moves it.

    ``derive(rolled)`` gives the derived features of the probe rows with the source columns
    ``rolled`` shifted by one row (``derive([])``: the probe rows as they are). Source columns are
    split by each bit of their index: a derived feature that moves when the columns with the bit set
    are shifted, and not when the others are, has that bit set in its source's index; one that moves
    both times depends on two columns (:class:`ExplainError` 501). So ``2 * ceil(log2(columns))``
    transforms settle a table of any width. A derived feature that depends on one column moves when
    it is shifted unless it is constant over the probe rows, which then also leaves it unattributed.
    """
    base = derive([])
    bits = max(1, math.ceil(math.log2(columns))) if columns > 1 else 1
    ones = np.zeros((bits, base.shape[1]), dtype=bool)
    zeros = np.zeros((bits, base.shape[1]), dtype=bool)
    for b in range(bits):
        with_bit = [j for j in range(columns) if j >> b & 1]
        without = [j for j in range(columns) if not j >> b & 1]
        if with_bit:
            ones[b] = changed(derive(with_bit), base)
        if without:
            zeros[b] = changed(derive(without), base)
    mixed = (ones & zeros).any(axis=0)
    moved = (ones | zeros).any(axis=0)
    index = (ones.astype(np.intp) << np.arange(bits, dtype=np.intp)[:, None]).sum(axis=0)
    mixed |= moved & (index >= columns)
    if mixed.any():
        raise ExplainError(
            501,
            f"the model's preprocessing mixes several input columns into derived feature {int(np.argmax(mixed))}; "
            "contributions cannot be given per input column",
        )
    sources: IntArray = np.where(moved, index, -1).astype(np.intp)
    return sources


def fold(values: FloatArray, sources: IntArray, columns: int) -> FloatArray:
    """Contributions of derived features ``[N, D, K]`` summed into their source columns: ``[N, columns, K]``.

    Unattributed derived features (``sources == -1``) must contribute nothing: a derived feature no
    input moves is the same in every row, the training rows included, so its deviation from the
    reference is 0; anything else means a dependency the probe rows missed (:class:`ExplainError` 500).
    """
    loose = sources < 0
    if loose.any():
        stray = np.abs(values[:, loose, :])
        if stray.size and float(stray.max()) > _ADDS_UP * (1.0 + float(np.abs(values).sum(axis=1).max())):
            raise ExplainError(500, "a derived feature the server could not tie to an input column contributes")
    indicator = np.zeros((len(sources), columns))
    kept = np.flatnonzero(~loose)
    indicator[kept, sources[kept]] = 1.0
    out: FloatArray = np.einsum("ndk,df->nfk", values, indicator)
    return out


def linear_values(
    z: FloatArray, coef: FloatArray, intercept: FloatArray, mean: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """A linear model's contributions ``coef[k, d] * (z[n, d] - mean[d])`` ``[N, D, K]`` and base value ``[K]``."""
    values: FloatArray = (z - mean)[:, :, None] * coef.T[None, :, :]
    base: FloatArray = mean @ coef.T + intercept
    return values, base


def check_adds_up(explanation: Explanation) -> None:
    """Refuse (500) an explanation whose contributions and base value do not add up to the output."""
    terms = explanation.contributions
    total = explanation.base[None, :] + terms.sum(axis=1)
    scale = 1.0 + np.abs(explanation.base)[None, :] + np.abs(terms).sum(axis=1) + np.abs(explanation.output)
    off = np.abs(total - explanation.output) / scale
    bad = ~(off <= _ADDS_UP)  # NaN is bad too
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ExplainError(
            500, f"the explanation of row {row} does not add up to the model's output (a bug: please report it)"
        )


def tensors(explanation: Explanation, binary: bool) -> tuple[list[Output], dict[str, Any]]:
    """The response's output tensors (``contributions``, ``base_value``, ``output``) and parameters."""
    n, f, k = explanation.contributions.shape
    outputs = [
        Output("contributions", "FP64", [n, f, k], explanation.contributions.ravel(), binary),
        Output("base_value", "FP64", [k], explanation.base, binary),
        Output("output", "FP64", [n, k], explanation.output.ravel(), binary),
    ]
    parameters: dict[str, Any] = {
        "method": explanation.method,
        "space": explanation.space,
        "features": list(explanation.features),
    }
    if explanation.classes:
        parameters["classes"] = list(explanation.classes)
    return outputs, parameters


# -- the model's outputs ---------------------------------------------------------------------------


def _quiet(call: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call()


class _Final:
    """The final estimator, called on derived features the way it was fitted (a frame if it was)."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator
        self.name = type(estimator).__name__
        names = getattr(estimator, "feature_names_in_", None)
        self._names = list(names) if names is not None else None
        classes = getattr(estimator, "classes_", None)  # classifiers only
        self.classes = tuple(str(c) for c in classes) if classes is not None else None

    def _input(self, z: FloatArray) -> Any:
        if self._names is None:
            return z
        import pandas as pd

        return pd.DataFrame(z, columns=self._names)

    def output(self, space: str, z: FloatArray) -> FloatArray:
        """The model's own output in ``space`` for derived rows ``z``: ``[N, K]``."""
        x = self._input(z)
        if space == "probability":
            out = _quiet(lambda: self.estimator.predict_proba(x))
        elif space == "decision_function":
            out = _quiet(lambda: self.estimator.decision_function(x))
        else:
            out = _quiet(lambda: self.estimator.predict(x))
        values = np.asarray(out, dtype=np.float64)
        if space == "log_prediction":
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.log(values)
        return values.reshape(len(z), -1)

    def spaces(self) -> list[str]:
        if self.classes is None:
            return ["prediction", "log_prediction"]
        return [s for s, m in (("probability", "predict_proba"), ("decision_function", "decision_function"))
                if hasattr(self.estimator, m)]  # fmt: skip

    def labels(self, k: int) -> tuple[str, ...]:
        """The class of each of ``k`` outputs: every class, or the second of two (a binary decision)."""
        if self.classes is None:
            return ()
        if k == len(self.classes):
            return self.classes
        if k == 1 and len(self.classes) == 2:
            return (self.classes[1],)
        raise ExplainError(501, f"{self.name} explains {k} outputs for {len(self.classes)} classes")


def _close(a: FloatArray, b: FloatArray, tolerance: float) -> bool:
    if a.shape != b.shape:
        return False
    scale = 1.0 + np.abs(a) + np.abs(b)
    return bool(np.all(np.abs(a - b) <= tolerance * scale))


# -- methods ---------------------------------------------------------------------------------------

#: (contributions of derived features [N, D, K], base value [K], output [N, K]) of derived rows
Values = tuple[FloatArray, FloatArray, FloatArray]


@dataclass(frozen=True)
class _Method:
    name: str
    space: str
    classes: tuple[str, ...]
    values: Callable[[FloatArray], Values]


def _constant(final: _Final, probe: FloatArray) -> _Method:
    space = "probability" if final.classes is not None else "prediction"
    out = final.output(space, probe)
    if not _close(out, np.broadcast_to(out[:1], out.shape), 1e-12):
        strategy = getattr(final.estimator, "strategy", "?")
        raise ExplainError(501, f"{final.name} with strategy={strategy!r} answers at random: nothing to explain")

    def values(z: FloatArray) -> Values:
        output = final.output(space, z)
        return np.zeros((len(z), z.shape[1], output.shape[1])), output[0].copy(), output

    return _Method("constant", space, final.labels(out.shape[1]), values)


def _linear(final: _Final, probe: FloatArray, mean: FloatArray | None) -> _Method:
    estimator = final.estimator
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(estimator.intercept_, dtype=np.float64))
    space = "decision_function" if final.classes is not None else "prediction"
    affine = probe @ coef.T + intercept
    if not _close(final.output(space, probe), affine, 1e-9):
        raise ExplainError(
            501, f"{final.name}'s {space.replace('_', ' ')} is not linear in its inputs: no exact explanation"
        )
    if mean is None or mean.shape != (coef.shape[1],):
        raise ExplainError(
            501,
            f"{final.name} is explained from the mean of its inputs over the training split, which modelops train "
            "stores in the artifact; this artifact has none (trained before explanations, or elsewhere): retrain it",
        )
    reference_mean = mean

    def values(z: FloatArray) -> Values:
        terms, base = linear_values(z, coef, intercept, reference_mean)
        return terms, base, final.output(space, z)

    return _Method("linear", space, final.labels(coef.shape[0]), values)


def _import_shap(name: str) -> Any:
    try:
        import shap
    except ImportError:
        raise ExplainError(
            501, f"explanations of {name} (TreeSHAP) need the optional extra 'explain', which installs shap: {EXTRA}"
        ) from None
    return shap


def _class_trees(estimator: Any, k: int, probe: FloatArray) -> dict[str, Any]:
    """Class ``k``'s trees of a multi-class GradientBoostingClassifier in shap's dictionary format.

    The class's raw score is its initial score plus ``learning_rate`` times the sum of its trees;
    the initial score is read off the model's own ``decision_function`` (public API only).
    """
    stages = estimator.estimators_[:, k]
    rate = float(estimator.learning_rate)
    trees = []
    for stage in stages:
        t = stage.tree_
        left, right = t.children_left, t.children_right
        go_left = getattr(t, "missing_go_to_left", None)
        default = np.where(np.asarray(go_left, dtype=bool), left, right) if go_left is not None else left.copy()
        trees.append({
            "children_left": left, "children_right": right, "children_default": default, "features": t.feature,
            "thresholds": t.threshold, "values": t.value[:, 0, :] * rate,
            "node_sample_weight": t.weighted_n_node_samples,
        })  # fmt: skip
    row = probe[:1]
    summed = rate * sum(float(stage.predict(row)[0]) for stage in stages)
    initial = float(np.asarray(_quiet(lambda: estimator.decision_function(row)))[0, k]) - summed
    return {"trees": trees, "base_offset": initial}


def _tree_shap(final: _Final, probe: FloatArray) -> _Method:
    shap = _import_shap(final.name)
    estimator = final.estimator
    per_class = final.name == "GradientBoostingClassifier" and final.classes is not None and len(final.classes) > 2
    try:
        if per_class:
            assert final.classes is not None
            explainers = [shap.TreeExplainer(_class_trees(estimator, k, probe)) for k in range(len(final.classes))]
        else:
            explainers = [shap.TreeExplainer(estimator)]
    except Exception as exc:  # shap's InvalidModelError, or anything its conversion raises
        raise ExplainError(501, f"shap's TreeExplainer does not take this {final.name}: {exc}") from None

    def shap_values(z: FloatArray) -> tuple[FloatArray, FloatArray]:
        parts, bases = [], []
        for explainer in explainers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = explainer.shap_values(z, check_additivity=False)
            values = np.stack(found, axis=-1) if isinstance(found, list) else np.asarray(found, dtype=np.float64)
            parts.append(values.reshape(len(z), z.shape[1], -1))
            bases.append(np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64)).ravel())
        return np.concatenate(parts, axis=2), np.concatenate(bases)

    terms, base = shap_values(probe)
    total = base[None, :] + terms.sum(axis=1)
    for space in final.spaces():
        if _close(final.output(space, probe), total, 1e-6):
            break
    else:
        raise ExplainError(501, f"shap's explanation of {final.name} adds up to none of its outputs")
    chosen = space

    def values(z: FloatArray) -> Values:
        terms, base = shap_values(z)
        return terms, base, final.output(chosen, z)

    return _Method("tree_shap", chosen, final.labels(terms.shape[2]), values)


def choose(estimator: Any, probe: FloatArray, mean: FloatArray | None) -> _Method:
    """How ``estimator`` (a pipeline's final step) is explained, proven on derived probe rows ``probe``."""
    final = _Final(estimator)
    if final.name in _CONSTANT_ESTIMATORS:
        return _constant(final, probe)
    if getattr(estimator, "coef_", None) is not None and getattr(estimator, "intercept_", None) is not None:
        return _linear(final, probe, mean)
    if final.name in TREE_ESTIMATORS:
        return _tree_shap(final, probe)
    raise ExplainError(
        501,
        f"explanations are not available for {final.name}: they are exact for linear models and tree ensembles "
        "(TreeSHAP) only",
    )


# -- probe rows ------------------------------------------------------------------------------------


def _unseen(kind: str, known: Sequence[Any]) -> Any:
    """A value of ``kind`` that is none of ``known`` (None for booleans: there is no third one)."""
    numbers = [v for v in known if isinstance(v, int | float) and not isinstance(v, bool) and v == v]
    if kind == "int":
        return int(max(numbers, default=0)) + 1
    if kind == "float":
        return float(max(numbers, default=0.0)) + 0.5
    if kind == "bool":
        return None
    return "\x00modelops-unseen"


def _nowhere(i: int) -> str:
    return ""


def _converts(value: Any, datatype: str, feature: Feature) -> bool:
    """Whether the codec takes ``value`` for ``feature`` (a recorded category of another kind may not)."""
    try:
        codec.column([value], datatype, feature, _nowhere)
    except codec.RequestError:
        return False
    return True


class Explainer:
    """The explanations of one loaded model; prepared on first use (see the module docstring)."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self._method: _Method | None = None
        self._sources: IntArray | None = None
        self._error: ExplainError | None = None

    def _probe(self, with_unseen: bool) -> tuple[FloatArray, list[npt.NDArray[Any]]]:
        """Probe rows in the request's columns: numbers over each reference range with gaps where the
        model takes them, every known category (and an unseen one) of each categorical column."""
        from modelops.serve import predictor as predictor_mod

        p = self.predictor
        contract = p.contract
        by_name = {f.name: f for f in contract.features}
        encoders = predictor_mod.encoder_categories(p.model)
        stats = {s.name: s for s in contract.categorical_stats}
        columns: list[list[Any]] = []
        for name in p.categorical_names:
            feature = by_name[name]
            known: list[Any] = [v for v in (feature.categories or ()) if v is not None]
            if name in encoders:
                known += [v for v in encoders[name].tolist() if v is not None and v == v]
            if not known and name in stats:
                known = [c for c in stats[name].categories if c != "__other__"]
            known = list(dict.fromkeys(known))
            extra = _unseen(feature.kind, known) if with_unseen else None
            columns.append(known + ([extra] if extra is not None else []) + ([None] if feature.accepts_missing else []))
        rows = max([_PROBE_ROWS, *(len(c) + 1 for c in columns)])
        rng = np.random.default_rng(0)
        edges = {s.name: s.edges for s in contract.numeric_stats}
        numeric = np.empty((rows, len(p.numeric_names)))
        for j, name in enumerate(p.numeric_names):
            e = edges.get(name)
            numeric[:, j] = rng.uniform(e[0], e[-1], rows) if e else rng.standard_normal(rows)
            if e:
                numeric[: min(rows, len(e)), j] = e[:rows]
            if by_name[name].accepts_missing:
                numeric[j % 5 :: 5, j] = np.nan
        categorical: list[npt.NDArray[Any]] = []
        for j, name in enumerate(p.categorical_names):
            feature = replace(by_name[name], accepts_missing=True, accepts_infinite=True)
            datatype = "BYTES" if feature.kind in ("string", "mixed") else feature.datatype
            values = [v for v in columns[j] if _converts(v, datatype, feature)]
            values = values or [{"int": 0, "float": 0.0, "bool": False}.get(feature.kind, "")]
            cycled = [values[(i + j) % len(values)] for i in range(rows)]
            categorical.append(codec.column(cycled, datatype, feature, _nowhere)[0])
        return numeric, categorical

    def _derive(self, numeric: FloatArray, categorical: Sequence[npt.NDArray[Any]]) -> FloatArray:
        p = self.predictor
        return _quiet(lambda: reference.derived(p.model, p.model_input(numeric, categorical)))  # type: ignore[no-any-return]

    def _prepare(self) -> tuple[_Method, IntArray]:
        if self._error is not None:
            raise self._error
        if self._method is not None and self._sources is not None:
            return self._method, self._sources
        try:
            self._method, self._sources = self._build()
        except ExplainError as exc:
            self._error = exc
            raise
        return self._method, self._sources

    def _build(self) -> tuple[_Method, IntArray]:
        from sklearn.pipeline import Pipeline

        p = self.predictor
        model = p.model
        final = model.steps[-1][1] if isinstance(model, Pipeline) else model
        try:
            numeric, categorical = self._probe(with_unseen=True)
            self._derive(numeric, categorical)
        except ValueError:  # an encoder that refuses unseen categories: requests cannot send them either
            numeric, categorical = self._probe(with_unseen=False)
        names = p.contract.feature_names
        slots = {n: (False, j) for j, n in enumerate(p.numeric_names)}
        slots.update({n: (True, j) for j, n in enumerate(p.categorical_names)})

        def derive(rolled: Sequence[int]) -> FloatArray:
            num = numeric.copy() if rolled else numeric
            cat = list(categorical)
            for j in rolled:
                is_cat, slot = slots[names[j]]
                if is_cat:
                    cat[slot] = np.roll(cat[slot], 1)
                else:
                    num[:, slot] = np.roll(num[:, slot], 1)
            return self._derive(num, cat)

        sources = attribute(derive, len(names))
        method = choose(final, derive([]), reference.of(model))
        return method, sources

    def explain(self, numeric: FloatArray, categorical: Sequence[npt.NDArray[Any]]) -> Explanation:
        """Explain decoded rows (the codec's numeric matrix and categorical columns)."""
        method, sources = self._prepare()
        z = self._derive(numeric, categorical)
        values, base, output = method.values(z)
        names = self.predictor.contract.feature_names
        explanation = Explanation(
            method=method.name, space=method.space, features=names, classes=method.classes, base=base,
            contributions=fold(values, sources, len(names)), output=output,
        )  # fmt: skip
        check_adds_up(explanation)
        return explanation
