"""The pure parts of ``modelops.serve.explain``: attribution, folding, the linear formula, the checks, the metrics.

The attribution is a property test: for any assignment of derived features to source columns
(several per column, some tied to none, over any number of columns), a preprocessing built from
that assignment is probed and the assignment comes back exactly; a derived feature made of two
columns is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelops.serve import explain, metrics
from modelops.train import reference

pytestmark = pytest.mark.slow  # explanations held to SHAP and exact sums over many trained models


def _preprocessing(sources: Sequence[int], probe: np.ndarray, seed: int):  # type: ignore[no-untyped-def]
    """A derive(rolled) function whose derived feature k is a nonlinear function of column sources[k] (or constant)."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 3, len(sources))
    cut = rng.uniform(-1, 1, len(sources))

    def derive(rolled: Sequence[int]) -> np.ndarray:
        x = probe.copy()
        for j in rolled:
            x[:, j] = np.roll(x[:, j], 1)
        out = np.empty((len(x), len(sources)))
        for k, (s, kind) in enumerate(zip(sources, kinds, strict=True)):
            if s < 0:
                out[:, k] = 7.0
            elif kind == 0:
                out[:, k] = 3.0 * x[:, s] - 1.0  # a scaler
            elif kind == 1:
                out[:, k] = (x[:, s] > cut[k]).astype(float)  # a one-hot column
            else:
                out[:, k] = np.where(np.isnan(x[:, s]), 1.0, 0.0) if k % 2 else np.nan_to_num(x[:, s])  # indicator
        return out

    return derive


@settings(max_examples=200, deadline=None, database=None)
@given(
    columns=st.integers(1, 40),
    data=st.data(),
    seed=st.integers(0, 2**16),
)
def test_attribution_recovers_any_assignment(columns: int, data: st.DataObject, seed: int) -> None:
    sources = data.draw(st.lists(st.integers(-1, columns - 1), min_size=1, max_size=60))
    rng = np.random.default_rng(seed)
    probe = rng.uniform(-2, 2, (64, columns))
    probe[rng.random(probe.shape) < 0.2] = np.nan
    derive = _preprocessing(sources, probe, seed)
    found = explain.attribute(derive, columns)
    # A derived feature that the probe rows do not move (a threshold outside their values) is tied to none.
    moved = [s if s >= 0 and len(np.unique(np.nan_to_num(derive([])[:, k], nan=9.0))) > 1 else -1
             for k, s in enumerate(sources)]  # fmt: skip
    assert found.tolist() == moved


def test_a_derived_feature_of_two_columns_is_refused() -> None:
    probe = np.random.default_rng(0).normal(size=(32, 5))

    def derive(rolled: Sequence[int]) -> np.ndarray:
        x = probe.copy()
        for j in rolled:
            x[:, j] = np.roll(x[:, j], 1)
        return np.column_stack([x[:, 0], x[:, 1] + x[:, 3], x[:, 4]])

    with pytest.raises(explain.ExplainError) as caught:
        explain.attribute(derive, 5)
    assert caught.value.status == 501
    assert "derived feature 1" in caught.value.message


def test_a_real_column_transformer_is_attributed_column_by_column() -> None:
    import pandas as pd

    frame = pd.DataFrame({
        "a": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0], "b": ["x", "y", "z", "x", None, "y"],
        "c": [0.5, 0.1, 0.2, 0.3, 0.9, 0.4],
    })  # fmt: skip
    transform = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(add_indicator=True)), ("scale", StandardScaler())]), ["a", "c"]),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["b"]),
    ]).fit(frame)  # fmt: skip
    names = list(frame.columns)

    def derive(rolled: Sequence[int]) -> np.ndarray:
        x = frame.copy()
        for j in rolled:
            x[names[j]] = np.roll(x[names[j]].to_numpy(), 1)
        return np.asarray(transform.transform(x), dtype=np.float64)

    # a (scaled), c (scaled), a's indicator, then b's four one-hot columns (x, y, z, missing).
    assert explain.attribute(derive, 3).tolist() == [0, 2, 0, 1, 1, 1, 1]


def test_fold_sums_derived_features_into_their_columns_and_refuses_a_stray_one() -> None:
    values = np.arange(2 * 4 * 2, dtype=float).reshape(2, 4, 2)
    values[:, 3] = 0.0  # tied to no column, and contributing nothing
    folded = explain.fold(values, np.array([1, 0, 1, -1]), 3)
    assert folded.shape == (2, 3, 2)
    np.testing.assert_array_equal(folded[:, 0], values[:, 1])
    np.testing.assert_array_equal(folded[:, 1], values[:, 0] + values[:, 2])
    np.testing.assert_array_equal(folded[:, 2], 0.0)
    with pytest.raises(explain.ExplainError) as caught:
        explain.fold(values, np.array([1, 0, -1, -1]), 3)  # derived feature 2 contributes and belongs to no column
    assert caught.value.status == 500


def test_the_linear_formula_is_coef_times_the_distance_from_the_reference() -> None:
    rng = np.random.default_rng(1)
    z, coef, intercept, mean = rng.normal(size=(5, 3)), rng.normal(size=(2, 3)), rng.normal(size=2), rng.normal(size=3)
    values, base = explain.linear_values(z, coef, intercept, mean)
    for n in range(5):
        for d in range(3):
            for k in range(2):
                assert values[n, d, k] == pytest.approx(coef[k, d] * (z[n, d] - mean[d]), abs=1e-15)
    np.testing.assert_allclose(base, coef @ mean + intercept)
    np.testing.assert_allclose(base + values.sum(axis=1), z @ coef.T + intercept)


def _explanation(contributions: np.ndarray, base: np.ndarray, output: np.ndarray) -> explain.Explanation:
    names = tuple(f"f{j}" for j in range(contributions.shape[1]))
    return explain.Explanation("linear", "prediction", names, (), base, contributions, output)


def test_an_explanation_that_does_not_add_up_is_refused() -> None:
    contributions = np.array([[[1.0], [2.0]], [[0.5], [-0.5]]])
    base = np.array([10.0])
    explain.check_adds_up(_explanation(contributions, base, np.array([[13.0], [10.0]])))
    for wrong in (np.array([[13.0], [10.001]]), np.array([[np.nan], [10.0]])):
        with pytest.raises(explain.ExplainError) as caught:
            explain.check_adds_up(_explanation(contributions, base, wrong))
        assert caught.value.status == 500
        assert "row 1" in caught.value.message or "row 0" in caught.value.message


def test_tensors_name_the_axes() -> None:
    contributions = np.zeros((2, 3, 1))
    outputs, parameters = explain.tensors(_explanation(contributions, np.array([1.0]), np.ones((2, 1))), binary=True)
    assert [(o.name, o.shape, o.binary) for o in outputs] == [
        ("contributions", [2, 3, 1], True), ("base_value", [1], True), ("output", [2, 1], True)]  # fmt: skip
    assert parameters == {"method": "linear", "space": "prediction", "features": ["f0", "f1", "f2"]}


def test_the_trainer_reference_is_the_derived_mean_over_the_training_rows() -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, 5.0], "b": ["x", "y", "x", "x"]})
    pipeline = Pipeline([
        ("pre", ColumnTransformer([("a", SimpleImputer(strategy="median"), ["a"]),
                                   ("b", OneHotEncoder(sparse_output=False), ["b"])])),
        ("estimator", Ridge()),
    ]).fit(frame, [1.0, 2.0, 3.0, 4.0])  # fmt: skip
    reference.attach(pipeline, frame)
    mean = reference.of(pipeline)
    assert mean is not None
    np.testing.assert_allclose(mean, [(1 + 2 + 2 + 5) / 4, 0.75, 0.25])
    pipeline.modelops_reference_mean_ = "not an array"
    assert reference.of(pipeline) is None
    assert reference.of(Ridge()) is None


def test_explanations_have_their_own_series_in_the_metric_array() -> None:
    layout = metrics.build_layout(model="m", version="1", classes=["a", "b"], numeric=[("x", 0, (1.0, 2.0))])
    explain_slots = {*layout.explain_code_offset.values(), layout.explain_latency_sum, layout.explain_rows,
                     *range(layout.explain_latency_offset,
                            layout.explain_latency_offset + len(metrics.EXPLAIN_LATENCY_BUCKETS) + 1)}  # fmt: skip
    recorder = metrics.Recorder(layout, np.zeros(layout.size))
    recorder.request(200, 0.01)
    recorder.one_class(1)
    recorder.flush()
    assert not any(recorder.values[sorted(explain_slots)])  # inference writes none of them
    before = recorder.values.copy()
    recorder.explain(200, 0.3, 7)
    recorder.explain(501, 0.001, 0)
    recorder.flush()
    touched = set(np.flatnonzero(recorder.values != before).tolist())
    assert touched <= explain_slots
    families = {f.name: f for f in metrics.families(layout, recorder.values)}
    codes = {s.labels["code"]: s.value for s in families["modelops_explain_requests"].samples}
    assert codes["200"] == 1
    assert codes["501"] == 1
    rows = families["modelops_explain_rows"].samples[0].value
    assert rows == 7
    latency = families["modelops_explain_request_duration_seconds"]
    count = next(s.value for s in latency.samples if s.name.endswith("_count"))
    assert count == 2
    # The model API's own series saw the one inference only.
    requests = {s.labels["code"]: s.value for s in families["modelops_requests"].samples}
    assert requests["200"] == 1
    assert sum(requests.values()) == 1
