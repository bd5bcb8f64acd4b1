"""Each drift method agrees with scipy's own function or the textbook formula.

Data are generated with seeded numpy generators (no hypothesis): shifted and unshifted
normals, unequal sizes, integer data with many ties, sizes on both sides of scipy's
exact/asymptotic KS switch.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from modelops import drift
from modelops.drift import bins, methods

CASES = [
    # (seed, n_ref, n_cur, shift, integer data)
    (0, 2_000, 2_000, 0.0, False),
    (1, 3_000, 1_700, 0.3, False),
    (2, 12_000, 15_000, 0.05, False),
    (3, 20_000, 11_000, 0.0, True),
    (4, 500, 800, 0.5, True),
    (5, 40, 35, 0.0, False),
]


def _samples(seed: int, n_ref: int, n_cur: int, shift: float, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n_ref, 3))
    cur = rng.normal(shift, 1.0, size=(n_cur, 3))
    if integer:
        ref, cur = np.round(ref * 3), np.round(cur * 3)
    return ref, cur


def _textbook_bins(ref: np.ndarray, cur: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Quantile edges checked against np.quantile, counts by the contract's le convention."""
    edges = bins.quantile_edges(np.sort(ref)[np.newaxis, :], k)[0]
    np.testing.assert_allclose(edges[1:-1], np.unique(np.quantile(ref, np.linspace(0, 1, k + 1))[1:-1]))
    interior = edges[1:-1]

    def count(values: np.ndarray) -> np.ndarray:
        # bin index = how many interior edges lie strictly below the value (no searchsorted)
        index = (interior[np.newaxis, :] < values[:, np.newaxis]).sum(axis=1)
        return np.bincount(index, minlength=interior.size + 1).astype(float)

    return count(ref), count(cur)


@pytest.mark.parametrize("case", CASES)
def test_ks_agrees_with_ks_2samp(case: tuple[int, int, int, float, bool]) -> None:
    ref, cur = _samples(*case)
    report = drift.compare(ref, cur, method="ks")
    for column, feature in enumerate(report.features):
        expected = stats.ks_2samp(ref[:, column], cur[:, column])
        assert feature.statistic == pytest.approx(expected.statistic, rel=1e-12, abs=1e-15)
        assert feature.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
        assert feature.score == feature.p_value
        assert feature.drifted == (expected.pvalue < 0.05)


@pytest.mark.parametrize("case", CASES)
def test_wasserstein_agrees_with_scipy(case: tuple[int, int, int, float, bool]) -> None:
    ref, cur = _samples(*case)
    report = drift.compare(ref, cur, method="wasserstein")
    for column, feature in enumerate(report.features):
        expected = stats.wasserstein_distance(ref[:, column], cur[:, column])
        assert feature.statistic == pytest.approx(expected, rel=1e-9)
        assert feature.score == pytest.approx(expected / np.std(ref[:, column]), rel=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_psi_agrees_with_the_textbook_formula(case: tuple[int, int, int, float, bool]) -> None:
    ref, cur = _samples(*case)
    report = drift.compare(ref, cur, method="psi", min_samples=1)
    for column, feature in enumerate(report.features):
        ref_counts, cur_counts = _textbook_bins(ref[:, column], cur[:, column])
        expected = 0.0
        for r, c in zip(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum(), strict=True):
            r, c = max(r, drift.PSI_EPSILON), max(c, drift.PSI_EPSILON)
            expected += (c - r) * np.log(c / r)
        assert feature.score == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("case", CASES)
def test_jsd_agrees_with_scipy_jensenshannon_base_2(case: tuple[int, int, int, float, bool]) -> None:
    ref, cur = _samples(*case)
    report = drift.compare(ref, cur, method="jsd", min_samples=1)
    for column, feature in enumerate(report.features):
        ref_counts, cur_counts = _textbook_bins(ref[:, column], cur[:, column])
        expected = distance.jensenshannon(ref_counts, cur_counts, base=2)
        assert feature.score == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_chi2_agrees_with_chi2_contingency(case: tuple[int, int, int, float, bool]) -> None:
    ref, cur = _samples(*case)
    report = drift.compare(ref, cur, method="chi2", min_samples=1)
    for column, feature in enumerate(report.features):
        ref_counts, cur_counts = _textbook_bins(ref[:, column], cur[:, column])
        keep = ref_counts + cur_counts > 0
        expected = stats.chi2_contingency(np.vstack([ref_counts[keep], cur_counts[keep]]))
        assert feature.statistic == pytest.approx(expected.statistic, rel=1e-9)
        assert feature.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


def test_categorical_methods_agree_with_scipy() -> None:
    rng = np.random.default_rng(7)
    ref = {"colour": rng.choice(["red", "green", "blue"], size=900, p=[0.5, 0.3, 0.2])}
    cur = {"colour": rng.choice(["red", "green", "blue"], size=700, p=[0.4, 0.3, 0.3])}
    reports = drift.compare_methods(ref, cur, methods=["psi", "jsd", "chi2"])
    categories = ["red", "green", "blue"]
    r = np.array([np.sum(ref["colour"] == c) for c in categories] + [0.0])
    c = np.array([np.sum(cur["colour"] == c) for c in categories] + [0.0])
    p, q = np.maximum(r / r.sum(), 1e-4), np.maximum(c / c.sum(), 1e-4)
    assert reports["psi"].features[0].score == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert reports["jsd"].features[0].score == pytest.approx(distance.jensenshannon(r, c, base=2))
    expected = stats.chi2_contingency(np.vstack([r[:3], c[:3]]))
    assert reports["chi2"].features[0].p_value == pytest.approx(expected.pvalue)
    assert all(report.features[0].kind == "categorical" for report in reports.values())


def test_ks_over_many_columns_uses_one_sort_and_stays_exact() -> None:
    """Above 10k values (the asymptotic p-value), vectorised over a chunk, with cross ties."""
    rng = np.random.default_rng(11)
    ref = rng.integers(0, 50, size=(12_000, 8)).astype(float)
    cur = rng.integers(0, 52, size=(13_000, 8)).astype(float)
    ref[:, 0], cur[:, 0] = rng.normal(size=12_000), rng.normal(0.02, 1, size=13_000)
    reports = drift.compare_methods(ref, cur, methods=["ks", "wasserstein"])
    for column in range(8):
        expected = stats.ks_2samp(ref[:, column], cur[:, column])
        feature = reports["ks"].features[column]
        assert feature.statistic == pytest.approx(expected.statistic, rel=1e-12)
        assert feature.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
        w = stats.wasserstein_distance(ref[:, column], cur[:, column])
        assert reports["wasserstein"].features[column].statistic == pytest.approx(w, rel=1e-9)


def test_compare_methods_matches_single_method_calls() -> None:
    ref, cur = _samples(1, 3_000, 1_700, 0.3, False)
    together = drift.compare_methods(ref, cur)
    for method in drift.METHODS:
        assert together[method] == drift.compare(ref, cur, method=method)


def test_constants_describe_every_method() -> None:
    assert set(drift.DEFAULT_THRESHOLDS) == set(drift.METHODS) == set(drift.METHOD_DESCRIPTIONS)
    assert set(drift.METHOD_KINDS) == set(drift.DRIFTED_WHEN) == set(drift.METHODS)
    assert drift.DEFAULT_THRESHOLDS == {"psi": 0.2, "ks": 0.05, "jsd": 0.1, "wasserstein": 0.1, "chi2": 0.05}
    for method, description in drift.METHOD_DESCRIPTIONS.items():
        assert "\n" not in description
        assert f"{drift.DRIFTED_WHEN[method]} {drift.DEFAULT_THRESHOLDS[method]:g}" in description


@pytest.mark.parametrize(
    ("method", "score", "drifted"),
    [
        ("psi", 0.2, True),
        ("psi", 0.19, False),
        ("jsd", 0.1, True),
        ("wasserstein", 0.09, False),
        ("ks", 0.049, True),
        ("ks", 0.05, False),
        ("chi2", 0.01, True),
        ("chi2", 0.5, False),
    ],
)
def test_decision_rule(method: str, score: float, drifted: bool) -> None:
    assert drift.is_drifted(method, score, drift.DEFAULT_THRESHOLDS[method]) is drifted


def test_binned_wasserstein_is_exact_for_uniform_bins() -> None:
    """Uniform within bins is the model: two uniforms on [0, 1] and [0.5, 1.5] are 0.5 apart."""
    edges = np.linspace(0.0, 1.5, 4)  # bins [0, .5], [.5, 1], [1, 1.5]
    distance_, scale = methods.wasserstein_binned(edges, np.array([1.0, 1.0, 0.0]), np.array([0.0, 1.0, 1.0]))
    assert distance_ == pytest.approx(0.5)
    assert scale == pytest.approx(np.sqrt(1 / 12))
