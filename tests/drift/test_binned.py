"""The binned form: referenceStats (docs/contracts.md) vs per-bin counts or raw current samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelops import drift


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(21)
    reference = pd.DataFrame(
        {
            "age": rng.normal(40, 10, size=3000).round(),
            "income": rng.lognormal(10, 1, size=3000),
            "colour": rng.choice(["red", "green", "blue", "grey"], size=3000, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
    current = pd.DataFrame(
        {
            "age": rng.normal(43, 10, size=2000).round(),
            "income": rng.lognormal(10, 1, size=2000),
            "colour": rng.choice(["red", "green", "blue", "pink"], size=2000, p=[0.3, 0.3, 0.2, 0.2]),
        }
    )
    return reference, current


@pytest.mark.parametrize("method", ["psi", "jsd", "chi2"])
def test_identical_bins_give_identical_scores(frames: tuple[pd.DataFrame, pd.DataFrame], method: str) -> None:
    reference, current = frames
    raw = drift.compare(reference, current, method=method)
    stats_ = drift.reference_stats(reference)
    counts = {feature["name"]: drift.bin_counts(feature, current[feature["name"]]) for feature in stats_["features"]}
    binned = drift.compare_binned(stats_, counts, method=method)
    from_samples = drift.compare_to_reference(stats_, current, method=method)
    # Same scores; only the raw forms can say how many current categories were unseen.
    assert [f.score for f in binned.features] == [f.score for f in from_samples.features]
    assert from_samples.features[2].note == raw.features[2].note
    assert raw.features[2].note is not None
    assert "unseen" in raw.features[2].note
    for expected, got in zip(raw.features, binned.features, strict=True):
        assert got.score == pytest.approx(expected.score, rel=1e-12)
        assert (got.drifted, got.reference_size, got.current_size) == (
            expected.drifted,
            expected.reference_size,
            expected.current_size,
        )


def test_bin_counts_follow_the_le_convention() -> None:
    feature = {"name": "x", "kind": "numeric", "edges": [0.0, 1.0, 2.0, 3.0], "counts": [1, 1, 1]}
    # bin 0: x <= 1; bin 1: 1 < x <= 2; bin 2: x > 2; outside [0, 3] -> first or last bin
    assert drift.bin_counts(feature, [-5.0, 0.5, 1.0, 1.0001, 2.0, 2.5, 3.0, 99.0, np.nan]) == [3, 2, 3]


def test_categorical_counts_as_mapping_or_list() -> None:
    stats_ = {"features": [{"name": "c", "kind": "categorical", "categories": ["a", "b"], "counts": [50, 50]}]}
    by_name = drift.compare_binned(stats_, {"c": {"a": 20, "b": 20, "zzz": 60}}, method="chi2")
    as_list = drift.compare_binned(stats_, {"c": [20, 20, 60]}, method="chi2")
    assert by_name.features[0].p_value == as_list.features[0].p_value
    assert by_name.features[0].drifted
    assert "60 current values in categories unseen" in str(by_name.features[0].note)
    # referenceStats without __other__: a k-long list is accepted too.
    assert drift.compare_binned(stats_, {"c": [40, 40]}, method="chi2").features[0].p_value == pytest.approx(1.0)


def test_fractional_prometheus_counts_are_accepted() -> None:
    stats_ = {"features": [{"name": "x", "edges": [0, 1, 2, 3], "counts": [100, 100, 100]}]}
    feature = drift.compare_binned(stats_, {"x": [33.4, 33.3, 33.3]}).features[0]
    assert feature.score == pytest.approx(0.0, abs=1e-4)
    assert feature.current_size == 100


def test_binned_ks_approximates_the_raw_statistic_from_below() -> None:
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(size=20_000), rng.normal(0.05, 1.0, size=20_000)
    stats_ = drift.reference_stats({"x": ref}, bins=50)
    binned = drift.compare_to_reference(stats_, {"x": cur}, method="ks").features[0]
    raw = stats.ks_2samp(ref, cur)
    assert binned.statistic is not None
    assert binned.statistic <= raw.statistic + 1e-12
    assert binned.statistic == pytest.approx(raw.statistic, abs=0.005)
    assert binned.note == "binned approximation over 50 bins"


def test_binned_wasserstein_approximates_the_raw_distance() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.uniform(0, 10, size=20_000), rng.uniform(1, 11, size=20_000)
    stats_ = drift.reference_stats({"x": ref}, bins=20)
    binned = drift.compare_to_reference(stats_, {"x": cur}, method="wasserstein").features[0]
    raw = drift.compare({"x": ref}, {"x": cur}, method="wasserstein").features[0]
    # Current mass above the reference's maximum is squeezed into the last bin: an underestimate.
    assert binned.statistic is not None
    assert raw.statistic is not None
    assert 0.8 * raw.statistic <= binned.statistic <= raw.statistic + 1e-9
    assert binned.score == pytest.approx(raw.score, rel=0.2)


def test_model_version_and_result_json_are_unwrapped() -> None:
    stats_ = {"features": [{"name": "x", "edges": [0, 1, 2], "counts": [40, 40]}]}
    for document in (stats_, {"referenceStats": stats_}, {"kind": "ModelVersion", "spec": {"referenceStats": stats_}}):
        assert drift.compare_binned(document, {"x": [30, 30]}).features[0].score == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("stats_", "counts", "message"),
    [
        (
            {"features": [{"name": "x", "edges": [0, 1, 2], "counts": [1, 1]}]},
            {"x": [1, 2, 3]},
            "has 3 counts, expected 2",
        ),
        ({"features": [{"name": "x", "edges": [0, 1, 2], "counts": [1, 1]}]}, {"x": [1, -2]}, "non-negative"),
        (
            {"features": [{"name": "x", "edges": [0, 2, 1], "counts": [1, 1]}]},
            {"x": [1, 1]},
            "edges must be increasing",
        ),
        ({"features": [{"name": "x", "edges": [0, 1, 2], "counts": [1]}]}, {"x": [1, 1]}, "has 1 counts, expected 2"),
        ({"features": [{"name": "x", "edges": [0, 1, 2], "counts": [1, 1]}]}, {"y": [1, 1]}, "no column 'x'"),
        ({"spec": {}}, {}, "no referenceStats found"),
    ],
)
def test_bad_binned_input_is_named(stats_: dict[str, object], counts: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        drift.compare_binned(stats_, counts)  # type: ignore[arg-type]


def test_empty_current_counts_are_reported_not_scored() -> None:
    stats_ = {"features": [{"name": "x", "edges": [0, 1, 2], "counts": [10, 10]}]}
    feature = drift.compare_binned(stats_, {"x": [0, 0]}, method="ks").features[0]
    assert feature.score is None
    assert feature.note == "the current sample is empty"
