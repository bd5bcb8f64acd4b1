"""Edge cases are handled explicitly: never a NaN, never an infinity, a note instead."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelops import drift


def _finite_or_none(report: drift.DriftReport) -> None:
    for feature in report.features:
        assert feature.score is None or math.isfinite(feature.score)
        assert feature.statistic is None or math.isfinite(feature.statistic)


def test_empty_bins_give_a_large_finite_psi() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=1000)
    cur = np.full(500, 10.0)  # every current value in the last bin
    feature = drift.compare(ref, cur, method="psi").features[0]
    assert feature.score is not None
    assert math.isfinite(feature.score)
    assert feature.score > 5
    assert feature.drifted


@pytest.mark.parametrize("method", drift.METHODS)
def test_constant_reference_and_current_are_not_drift(method: str) -> None:
    report = drift.compare({"x": np.full(100, 3.0)}, {"x": np.full(80, 3.0)}, method=method)
    _finite_or_none(report)
    feature = report.features[0]
    assert feature.score is not None
    assert not feature.drifted


@pytest.mark.parametrize("method", drift.METHODS)
def test_a_constant_that_moves_is_drift(method: str) -> None:
    report = drift.compare({"x": np.full(100, 3.0)}, {"x": np.full(80, 2.0)}, method=method)
    _finite_or_none(report)
    assert report.features[0].drifted


def test_constant_reference_gets_below_equal_above_bins() -> None:
    stats_ = drift.reference_stats({"x": np.full(10, 3.0)})
    edges = stats_["features"][0]["edges"]
    assert edges[2] == 3.0
    assert edges[1] < 3.0 < edges[3]
    assert stats_["features"][0]["counts"] == [0, 10, 0]
    assert drift.bin_counts(stats_["features"][0], [2.0, 3.0, 3.0, 4.0]) == [1, 2, 1]


def test_mass_at_the_minimum_keeps_its_own_bin() -> None:
    values = np.concatenate([np.zeros(950), np.arange(1, 51, dtype=float)])
    feature = drift.reference_stats({"x": values})["features"][0]
    assert feature["edges"][1] == 0.0
    assert feature["edges"][0] < 0.0
    assert feature["counts"] == [950, 50]


def test_unseen_categories_count_as_other() -> None:
    ref = {"c": ["a"] * 60 + ["b"] * 40}
    cur = {"c": ["a"] * 30 + ["b"] * 20 + ["z"] * 10}
    feature = drift.compare(ref, cur, method="chi2").features[0]
    assert feature.note == "10 current values in categories unseen in the reference counted as __other__"
    expected = stats.chi2_contingency(np.array([[60, 40, 0], [30, 20, 10]]))
    assert feature.p_value == pytest.approx(expected.pvalue)


def test_only_the_most_frequent_categories_are_kept() -> None:
    ref = {"c": [f"k{i}" for i in range(60) for _ in range(60 - i)]}
    feature = drift.reference_stats(ref, max_categories=50)["features"][0]
    assert len(feature["categories"]) == 51
    assert feature["categories"][-1] == "__other__"
    assert feature["counts"][-1] == sum(60 - i for i in range(50, 60))


@pytest.mark.parametrize("method", drift.METHODS)
def test_empty_current_sample_is_reported_not_scored(method: str) -> None:
    ref = {"x": np.arange(100.0)}
    feature = drift.compare(ref, {"x": np.array([])}, method=method).features[0]
    assert feature.score is None
    assert not feature.drifted
    assert feature.note == "the current sample is empty"
    assert feature.current_size == 0


def test_tiny_samples_are_reported_not_scored() -> None:
    feature = drift.compare({"x": np.arange(100.0)}, {"x": [1.0, 2.0, 3.0]}).features[0]
    assert feature.score is None
    assert not feature.drifted
    assert feature.note == "fewer than 30 current values (3)"


def test_tiny_samples_can_be_scored_on_request_and_agree_with_scipy() -> None:
    ref, cur = [1.0, 2.0, 5.0], [2.5, 3.0]
    feature = drift.compare({"x": ref}, {"x": cur}, method="ks", min_samples=1).features[0]
    expected = stats.ks_2samp(ref, cur)
    assert (feature.statistic, feature.p_value) == pytest.approx((expected.statistic, expected.pvalue))
    feature = drift.compare({"x": ref}, {"x": cur}, method="wasserstein", min_samples=1).features[0]
    assert feature.statistic == pytest.approx(stats.wasserstein_distance(ref, cur))


def test_missing_values_are_dropped_and_noted() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=200), "c": rng.choice(["a", "b"], 200)})
    cur = ref.copy()
    cur.loc[:9, "x"] = np.nan
    cur.loc[10, "x"] = np.inf
    cur.loc[:4, "c"] = None
    report = drift.compare(ref, cur, method="psi")
    x, c = report.features
    assert x.current_size == 189
    assert x.note == "11 missing current values dropped"
    assert c.current_size == 195
    assert c.note == "5 missing current values dropped"
    _finite_or_none(report)


@pytest.mark.parametrize("method", ["ks", "wasserstein"])
def test_numeric_only_methods_refuse_categorical_features(method: str) -> None:
    with pytest.raises(ValueError, match=f"method '{method}' applies to numeric features only; feature 'c'"):
        drift.compare({"c": ["a", "b"] * 50}, {"c": ["a"] * 100}, method=method)


def test_categorical_override_for_integer_codes() -> None:
    ref, cur = {"code": [1, 2, 3] * 40}, {"code": [1, 2, 3, 4] * 30}
    feature = drift.compare(ref, cur, categorical=["code"]).features[0]
    assert feature.kind == "categorical"
    assert "30 current values in categories unseen" in (feature.note or "")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "mmd"}, "unknown method 'mmd'"),
        ({"features": ["nope"]}, "unknown feature 'nope'"),
        ({"threshold": -1.0}, "threshold must be a finite non-negative number"),
        ({"method": "ks", "threshold": 5.0}, "p-value and must be in"),
        ({"min_samples": 0}, "min_samples must be at least 1"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        drift.compare({"x": np.arange(50.0)}, {"x": np.arange(50.0)}, **kwargs)  # type: ignore[arg-type]


def test_a_column_missing_from_the_current_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="the current data has no column 'y'"):
        drift.compare({"x": np.arange(50.0), "y": np.arange(50.0)}, {"x": np.arange(50.0)})


def test_non_numeric_current_values_for_a_numeric_feature() -> None:
    with pytest.raises(ValueError, match="feature 'x' is numeric in the reference but the current values"):
        drift.compare(pd.DataFrame({"x": np.arange(50.0)}), pd.DataFrame({"x": ["a"] * 50}))


def test_threshold_override_changes_the_verdict() -> None:
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=2000), rng.normal(0.3, 1, size=2000)
    default = drift.compare(ref, cur).features[0]
    assert default.score is not None
    assert default.score < 0.2
    assert not default.drifted
    strict = drift.compare(ref, cur, threshold=default.score / 2).features[0]
    assert strict.drifted
    assert strict.threshold == default.score / 2


def test_report_serialises_to_plain_json_types() -> None:
    import json

    report = drift.compare({"x": np.arange(100.0)}, {"x": np.arange(100.0) + 50})
    document = json.loads(json.dumps(report.to_dict()))
    assert document["driftedFeatures"] == ["x"]
    assert document["features"][0]["referenceSize"] == 100
