"""The drift methods: their names, defaults, decision rules and the statistics themselves.

Two families of kernels live here, both pure numpy/scipy:

* count kernels (``score_counts``) compare a reference and a current histogram over the
  same bins -- PSI, Jensen-Shannon, chi-squared, and the binned formulations of KS and
  Wasserstein that the operator needs for live traffic (only per-bin counts leave the
  model server);
* the sorted-sample kernel (``sorted_statistics``) computes the exact
  two-sample KS statistic and the exact 1-D Wasserstein distance for a block of columns
  whose values are already sorted, vectorised across the columns.

scipy is imported only by the functions that need it (``chi2``, the KS p-values): importing
``scipy.stats`` costs ~45 MB of RSS and a few hundred milliseconds, which PSI, Jensen-Shannon
and Wasserstein -- and every process that only imports the constants -- never pay.

Decision rule, the same everywhere: ``psi``, ``jsd`` and ``wasserstein`` are distances,
drifted when ``score >= threshold``; ``ks`` and ``chi2`` are tests whose score is the
p-value, drifted when ``score < threshold``. ``DRIFTED_WHEN`` spells this out per method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

NUMERIC: Final = "numeric"
CATEGORICAL: Final = "categorical"

METHODS: Final[tuple[str, ...]] = ("psi", "ks", "jsd", "wasserstein", "chi2")

DEFAULT_THRESHOLDS: Final[dict[str, float]] = {
    "psi": 0.2,
    "ks": 0.05,
    "jsd": 0.1,
    "wasserstein": 0.1,
    "chi2": 0.05,
}

# ">=": the score is a distance, drifted when score >= threshold.
# "<": the score is a p-value, drifted when score < threshold.
DRIFTED_WHEN: Final[dict[str, str]] = {
    "psi": ">=",
    "ks": "<",
    "jsd": ">=",
    "wasserstein": ">=",
    "chi2": "<",
}

METHOD_KINDS: Final[dict[str, frozenset[str]]] = {
    "psi": frozenset({NUMERIC, CATEGORICAL}),
    "ks": frozenset({NUMERIC}),
    "jsd": frozenset({NUMERIC, CATEGORICAL}),
    "wasserstein": frozenset({NUMERIC}),
    "chi2": frozenset({NUMERIC, CATEGORICAL}),
}

METHOD_DESCRIPTIONS: Final[dict[str, str]] = {
    "psi": (
        "Population Stability Index sum((c-r)*ln(c/r)) over the reference's bins (quantile bins "
        "for numeric features, categories for categorical), proportions floored at 1e-4; "
        "drifted when score >= 0.2."
    ),
    "ks": (
        "Two-sample Kolmogorov-Smirnov test, numeric features only; score is the p-value "
        "(scipy.stats.ks_2samp; from binned data the statistic is taken at the bin edges); "
        "drifted when p < 0.05."
    ),
    "jsd": (
        "Jensen-Shannon distance (base 2, the square root of the divergence, in [0, 1]) between "
        "the binned distributions; drifted when score >= 0.1."
    ),
    "wasserstein": (
        "First Wasserstein (earth mover's) distance divided by the reference's standard "
        "deviation, numeric features only (from binned data: values spread uniformly within "
        "each bin); drifted when score >= 0.1."
    ),
    "chi2": (
        "Chi-squared test of homogeneity on the 2 x k table of reference and current counts "
        "(scipy.stats.chi2_contingency); score is the p-value; drifted when p < 0.05."
    ),
}

# Proportions below this are raised to it before PSI's logarithm, so an empty bin on
# either side gives a large but finite term instead of an infinite one.
PSI_EPSILON: Final = 1e-4

# The Wasserstein score divides by the reference's standard deviation, floored here so a
# constant reference gives a large finite score (the floor Evidently uses too).
WASSERSTEIN_MIN_SCALE: Final = 1e-3

# scipy.stats.ks_2samp(method="auto") is exact up to this many values per sample and
# asymptotic (kstwo) above it; the vectorised kernel follows the same split.
KS_EXACT_MAX_N: Final = 10_000


def check_method(method: str) -> None:
    """Raise ``ValueError`` naming the known methods unless ``method`` is one of them."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


def is_drifted(method: str, score: float, threshold: float) -> bool:
    """Apply ``method``'s decision rule (see ``DRIFTED_WHEN``)."""
    if DRIFTED_WHEN[method] == "<":
        return score < threshold
    return score >= threshold


@dataclass(frozen=True)
class Score:
    """One method's outcome for one feature: the decision score and the raw statistic."""

    score: float
    statistic: float
    p_value: float | None = None


def psi(ref_counts: FloatArray, cur_counts: FloatArray) -> float:
    """Population Stability Index of two histograms over the same bins (PSI_EPSILON floor)."""
    p = np.maximum(ref_counts / ref_counts.sum(), PSI_EPSILON)
    q = np.maximum(cur_counts / cur_counts.sum(), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def _relative_entropy(p: FloatArray, m: FloatArray) -> float:
    """sum(p * ln(p / m)) with 0 * ln(0 / m) = 0, as ``scipy.special.rel_entr`` defines it."""
    positive = p > 0
    return float(np.sum(p[positive] * np.log(p[positive] / m[positive])))


def jsd(ref_counts: FloatArray, cur_counts: FloatArray) -> float:
    """Jensen-Shannon distance, base 2 -- ``scipy.spatial.distance.jensenshannon(p, q, 2)``."""
    p = ref_counts / ref_counts.sum()
    q = cur_counts / cur_counts.sum()
    m = (p + q) / 2.0
    divergence = (_relative_entropy(p, m) + _relative_entropy(q, m)) / 2.0
    # Rounding can leave a divergence of -1e-17 for identical histograms.
    return float(math.sqrt(max(float(divergence), 0.0) / math.log(2.0)))


def chi2(ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Chi-squared homogeneity test -> (statistic, p-value), via ``chi2_contingency``.

    Bins empty on both sides carry no information and would make an expected frequency
    zero, so they are dropped first; with a single non-empty bin the test has no degrees
    of freedom and scipy returns statistic 0, p-value 1.
    """
    from scipy import stats

    keep = (ref_counts + cur_counts) > 0
    table = np.vstack([ref_counts[keep], cur_counts[keep]])
    result = stats.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def ks_pvalue_asymptotic(statistic: FloatArray | float, n1: float, n2: float) -> FloatArray:
    """The p-value ``ks_2samp`` reports in its asymptotic mode: ``kstwo.sf(D, round(en))``."""
    from scipy import stats

    en = max(1.0, float(np.round(n1 * n2 / (n1 + n2))))
    return np.asarray(np.clip(stats.kstwo.sf(statistic, en), 0.0, 1.0), dtype=np.float64)


def ks_binned(ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """KS from histograms: the largest CDF gap at the bin edges -> (statistic, p-value).

    The empirical CDFs are known exactly at the interior edges, so the statistic is the
    exact KS statistic of the two samples coarsened to these bins; it is never larger than
    the statistic of the raw samples, so the p-value (asymptotic, as for large samples) errs
    on the side of "no drift".
    """
    n1, n2 = float(ref_counts.sum()), float(cur_counts.sum())
    gap = np.cumsum(ref_counts)[:-1] / n1 - np.cumsum(cur_counts)[:-1] / n2
    statistic = float(np.max(np.abs(gap))) if gap.size else 0.0
    return statistic, float(ks_pvalue_asymptotic(statistic, n1, n2))


def wasserstein_binned(edges: FloatArray, ref_counts: FloatArray, cur_counts: FloatArray) -> tuple[float, float]:
    """Wasserstein from histograms -> (distance, reference scale).

    Both samples are taken as spread uniformly within each bin, and the open-ended first and
    last bins as spanning ``[edges[0], edges[1]]`` and ``[edges[-2], edges[-1]]``; the CDFs
    are then piecewise linear and the integral of their absolute difference is exact for
    that model. The scale is the standard deviation of the reference under the same model.
    """
    p = ref_counts / ref_counts.sum()
    q = cur_counts / cur_counts.sum()
    widths = np.diff(edges)
    gap = np.concatenate([[0.0], np.cumsum(p - q)])
    gap[-1] = 0.0
    a, b = gap[:-1], gap[1:]
    same_sign = a * b >= 0
    total = np.abs(a) + np.abs(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(total > 0, (a * a + b * b) / (2.0 * total), 0.0)
    area = np.where(same_sign, total / 2.0, crossing) * widths
    mids = (edges[:-1] + edges[1:]) / 2.0
    mean = float(np.sum(p * mids))
    variance = float(np.sum(p * (widths**2 / 12.0 + (mids - mean) ** 2)))
    return float(np.sum(area)), math.sqrt(max(variance, 0.0))


def score_counts(method: str, ref_counts: FloatArray, cur_counts: FloatArray, edges: FloatArray | None) -> Score:
    """Score two histograms over the same bins with ``method``.

    ``edges`` (k+1 values) is needed by the binned Wasserstein only. Both histograms must
    have a positive total; the caller reports empty samples before getting here.
    """
    if method == "psi":
        value = psi(ref_counts, cur_counts)
        return Score(value, value)
    if method == "jsd":
        value = jsd(ref_counts, cur_counts)
        return Score(value, value)
    if method == "chi2":
        statistic, p_value = chi2(ref_counts, cur_counts)
        return Score(p_value, statistic, p_value)
    if method == "ks":
        statistic, p_value = ks_binned(ref_counts, cur_counts)
        return Score(p_value, statistic, p_value)
    if method == "wasserstein":
        if edges is None:
            raise ValueError("the binned Wasserstein distance needs the bin edges")
        distance, scale = wasserstein_binned(edges, ref_counts, cur_counts)
        return Score(distance / max(scale, WASSERSTEIN_MIN_SCALE), distance)
    check_method(method)
    raise AssertionError(method)  # pragma: no cover - check_method raised


def sorted_statistics(
    block: FloatArray, n1: int, *, ks: bool, wasserstein: bool
) -> tuple[FloatArray | None, FloatArray | None]:
    """KS statistics and Wasserstein distances for each row of a block of sorted samples.

    ``block`` is (k, n1 + n2): in each row the reference's n1 values, sorted ascending, then
    the current's n2 values, sorted ascending, all finite. Returns ``(ks_statistics,
    wasserstein_distances)``, each of shape (k,) or None when not asked for.

    With equal sizes the Wasserstein distance is the mean absolute difference of the sorted
    samples (the L1 distance between the quantile functions). Everything else comes from one
    merge of each row -- a stable argsort of two sorted runs, which numpy's timsort merges in
    linear time -- giving F_ref - F_cur after every merged position:

    * Wasserstein: the integral of |F_ref - F_cur| over the merged values, as
      ``scipy.stats.wasserstein_distance`` computes it;
    * KS: the largest |F_ref - F_cur| where ``scipy.stats.ks_2samp`` evaluates it, at the
      last position of every run of equal values. Inside a run of values tied across the
      two samples the partial CDFs are not real, so the extreme is taken over all positions
      and then checked: when it sits at a run's end (always, without cross-sample ties) it
      is the statistic; otherwise that row is recomputed with the runs masked.
    """
    n2 = block.shape[1] - n1
    ref, cur = block[:, :n1], block[:, n1:]
    distances = None
    if wasserstein and n1 == n2:
        distances = np.asarray(np.mean(np.abs(ref - cur), axis=1), dtype=np.float64)
    if not ks and (distances is not None or not wasserstein):
        return None, distances
    order = np.argsort(block, axis=1, kind="stable")
    from_ref = np.cumsum(order < n1, axis=1, dtype=np.int64 if n1 + n2 >= 2**31 else np.int32)
    # (F_ref - F_cur) * n1 * n2 after position k: from_ref * n2 - (k + 1 - from_ref) * n1.
    scaled = from_ref.astype(np.float64) * (n1 + n2) - np.arange(1, n1 + n2 + 1, dtype=np.float64) * n1
    del from_ref
    if wasserstein and distances is None:
        values = np.take_along_axis(block, order, axis=1)
        distances = np.sum(np.abs(scaled[:, :-1]) * np.diff(values, axis=1), axis=1) / (float(n1) * n2)
        del values
    statistics = None
    if ks:
        statistics = np.empty(block.shape[0])
        highest, lowest = np.argmax(scaled, axis=1), np.argmin(scaled, axis=1)
        for row in range(block.shape[0]):
            merged = block[row]
            ends = [
                position == n1 + n2 - 1 or merged[order[row, position]] != merged[order[row, position + 1]]
                for position in (int(highest[row]), int(lowest[row]))
            ]
            line = scaled[row]
            if not all(ends):
                values = merged[order[row]]
                line = np.where(np.append(values[1:] != values[:-1], True), line, 0.0)
            statistics[row] = max(float(line.max()), -float(line.min()), 0.0) / (float(n1) * n2)
    return statistics, distances
