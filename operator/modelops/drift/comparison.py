"""Comparing a reference with a current sample: the public entry points and their reports.

Two forms:

* raw samples vs raw samples (``compare``, ``compare_methods``): numeric columns are
  copied in chunks of ``COLUMN_CHUNK`` into one (k, n) block per side, sorted once along
  the rows, and every statistic is read from the sorted blocks -- quantile edges by index,
  bin counts by ``searchsorted`` on the edges, KS and Wasserstein from one merge;
* binned reference (a ModelVersion's ``referenceStats``) vs current per-bin counts
  (``compare_binned``, what the model server's Prometheus histograms give) or vs raw
  current samples counted into the same bins (``compare_to_reference``).

A feature that cannot be scored -- fewer than ``min_samples`` values on a side, an empty
current sample -- gets ``score=None``, ``drifted=False`` and a ``note`` saying why: never a
NaN, never an infinity, never an exception for the whole report.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from modelops.drift import bins as binning
from modelops.drift import data
from modelops.drift import methods as drift_methods
from modelops.drift.methods import FloatArray

DEFAULT_MIN_SAMPLES: Final = 30

# Numeric columns scored together: large enough to vectorise, small enough that the merge
# for KS (a few (k, n1+n2) arrays) stays a few tens of MB at 100k rows.
COLUMN_CHUNK: Final = 6

_BINNED_METHODS = frozenset({"psi", "jsd", "chi2"})


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift under one method.

    ``score`` is what ``threshold`` is compared with (a distance for psi, jsd and
    wasserstein; the p-value for ks and chi2), ``statistic`` the method's raw statistic
    (PSI, JS distance, KS D, the unnormalised Wasserstein distance, the chi-squared
    statistic). Sizes count the values used, after missing values were dropped.
    """

    name: str
    kind: str
    method: str
    score: float | None
    threshold: float
    drifted: bool
    reference_size: int
    current_size: int
    note: str | None = None
    statistic: float | None = None
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "referenceSize": self.reference_size,
            "currentSize": self.current_size,
            "statistic": self.statistic,
            "pValue": self.p_value,
            "note": self.note,
        }


@dataclass(frozen=True)
class DriftReport:
    """Every selected feature's drift under one method, in the reference's column order."""

    method: str
    threshold: float
    features: tuple[FeatureDrift, ...]

    @property
    def drifted(self) -> bool:
        """Whether any feature drifted."""
        return any(feature.drifted for feature in self.features)

    @property
    def drifted_features(self) -> list[str]:
        return [feature.name for feature in self.features if feature.drifted]

    def feature(self, name: str) -> FeatureDrift:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "driftedFeatures": self.drifted_features,
            "features": [feature.to_dict() for feature in self.features],
        }


def _threshold(method: str, threshold: float | None) -> float:
    if threshold is None:
        return drift_methods.DEFAULT_THRESHOLDS[method]
    value = float(threshold)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"threshold must be a finite non-negative number, got {threshold!r}")
    if drift_methods.DRIFTED_WHEN[method] == "<" and not 0 < value <= 1:
        raise ValueError(f"the {method} threshold is a p-value and must be in (0, 1], got {threshold!r}")
    return value


def _check_min_samples(min_samples: int) -> None:
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, got {min_samples}")


def _check_kinds(wanted: Iterable[str], kinds: Mapping[str, str]) -> None:
    for method in wanted:
        for name, kind in kinds.items():
            if kind not in drift_methods.METHOD_KINDS[method]:
                usable = ", ".join(m for m in drift_methods.METHODS if kind in drift_methods.METHOD_KINDS[m])
                raise ValueError(
                    f"method {method!r} applies to numeric features only; feature {name!r} is {kind} (use {usable})"
                )


@dataclass
class _Feature:
    """A feature on its way to being scored: sizes and notes gathered while reading it."""

    name: str
    kind: str
    reference_size: int = 0
    current_size: int = 0
    notes: list[str] = field(default_factory=list)

    def too_small(self, min_samples: int) -> str | None:
        if self.current_size == 0:
            return "the current sample is empty"
        if self.reference_size == 0:
            return "the reference sample is empty"
        for side, size in (("reference", self.reference_size), ("current", self.current_size)):
            if size < min_samples:
                return f"fewer than {min_samples} {side} values ({size})"
        return None

    def result(
        self, method: str, threshold: float, score: drift_methods.Score | None, extra: str | None = None
    ) -> FeatureDrift:
        notes = list(self.notes)
        if extra:
            notes.append(extra)
        if score is not None and not math.isfinite(score.score):
            notes.append(f"the {method} score is not finite")
            score = None
        if score is None:
            return FeatureDrift(
                self.name,
                self.kind,
                method,
                None,
                threshold,
                False,
                self.reference_size,
                self.current_size,
                "; ".join(notes) or None,
            )
        return FeatureDrift(
            self.name,
            self.kind,
            method,
            score.score,
            threshold,
            drift_methods.is_drifted(method, score.score, threshold),
            self.reference_size,
            self.current_size,
            "; ".join(notes) or None,
            score.statistic,
            score.p_value,
        )


def _dropped_note(count: int, side: str) -> str:
    return f"{count} missing {side} value{'s' if count != 1 else ''} dropped"


def _unseen_note(count: float) -> str:
    return f"{_plain(count)} current values in categories unseen in the reference counted as {binning.OTHER}"


def _plain(count: float) -> str:
    return str(int(count)) if float(count).is_integer() else f"{count:g}"


def compare(
    reference: object,
    current: object,
    *,
    method: str = "psi",
    features: Sequence[str] | None = None,
    threshold: float | None = None,
    bins: int = binning.DEFAULT_BINS,
    max_categories: int = binning.DEFAULT_MAX_CATEGORIES,
    categorical: Sequence[str] = (),
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftReport:
    """Compare raw reference samples with raw current samples, feature by feature.

    ``reference`` and ``current`` are DataFrames, mappings of name -> values, or arrays
    (see ``data.as_columns``). ``features`` defaults to every reference column; each must
    be a column of both. Integer and float columns are numeric, the rest categorical
    (``categorical`` forces names to categorical). psi, jsd and chi2 bin numeric features
    into ``bins`` quantile bins of the reference (the contract's convention) and categorical
    ones into the reference's ``max_categories`` most frequent categories plus __other__;
    ks and wasserstein use the raw values and apply to numeric features only (a
    ``ValueError`` otherwise). ``threshold`` defaults to ``DEFAULT_THRESHOLDS[method]``.
    """
    thresholds = None if threshold is None else {method: threshold}
    return compare_methods(
        reference,
        current,
        methods=(method,),
        features=features,
        thresholds=thresholds,
        bins=bins,
        max_categories=max_categories,
        categorical=categorical,
        min_samples=min_samples,
    )[method]


def compare_methods(
    reference: object,
    current: object,
    *,
    methods: Sequence[str] = drift_methods.METHODS,
    features: Sequence[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    bins: int = binning.DEFAULT_BINS,
    max_categories: int = binning.DEFAULT_MAX_CATEGORIES,
    categorical: Sequence[str] = (),
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> dict[str, DriftReport]:
    """``compare`` for several methods at once: each column is read and sorted only once.

    Returns method -> report. ``thresholds`` maps a method to its threshold (default
    ``DEFAULT_THRESHOLDS``).
    """
    wanted = _wanted_methods(methods)
    limits = {method: _threshold(method, (thresholds or {}).get(method)) for method in wanted}
    _check_min_samples(min_samples)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    ref_columns = data.as_columns(reference, "reference")
    cur_columns = data.as_columns(current, "current")
    names = _select(features, ref_columns, cur_columns)
    for name in categorical:
        if name not in ref_columns:
            raise ValueError(f"unknown feature {name!r}: not a column of the reference")
    forced = set(categorical)
    kinds = {
        name: drift_methods.CATEGORICAL if name in forced else data.column_kind(ref_columns[name]) for name in names
    }
    _check_kinds(wanted, kinds)

    results: dict[str, dict[str, FeatureDrift]] = {method: {} for method in wanted}
    # Numeric columns of equal sizes are scored together, COLUMN_CHUNK at a time. Each column
    # is copied into its chunk's block as soon as it is read and not kept otherwise, and a
    # full chunk is scored (and freed) at once: a lazily read table (``files.Table``) never
    # has more than one chunk of columns in memory.
    pending: dict[tuple[int, int], _Chunk] = {}
    for name in names:
        feature = _Feature(name, kinds[name])
        if feature.kind == drift_methods.CATEGORICAL:
            _score_categorical(
                feature,
                ref_columns[name],
                cur_columns[name],
                wanted,
                limits,
                max_categories,
                min_samples,
                results,
            )
            continue
        ref_values, ref_dropped = data.numeric_values(ref_columns[name], name, "reference")
        cur_values, cur_dropped = data.numeric_values(cur_columns[name], name, "current")
        feature.reference_size, feature.current_size = ref_values.size, cur_values.size
        if ref_dropped:
            feature.notes.append(_dropped_note(ref_dropped, "reference"))
        if cur_dropped:
            feature.notes.append(_dropped_note(cur_dropped, "current"))
        reason = feature.too_small(min_samples)
        if reason is not None:
            for method in wanted:
                results[method][name] = feature.result(method, limits[method], None, reason)
            continue
        sizes = (ref_values.size, cur_values.size)
        chunk = pending.get(sizes)
        if chunk is None:
            chunk = pending[sizes] = _Chunk(*sizes)
        chunk.add(feature, ref_values, cur_values)
        del ref_values, cur_values
        if chunk.full:
            del pending[sizes]
            _score_numeric_chunk(chunk, wanted, limits, bins, results)
            del chunk

    for chunk in pending.values():
        _score_numeric_chunk(chunk, wanted, limits, bins, results)

    return {
        method: DriftReport(method, limits[method], tuple(results[method][name] for name in names)) for method in wanted
    }


def _wanted_methods(requested: Sequence[str] | str) -> list[str]:
    if isinstance(requested, str):
        requested = [requested]
    wanted: list[str] = []
    for method in requested:
        drift_methods.check_method(method)
        if method not in wanted:
            wanted.append(method)
    if not wanted:
        raise ValueError("no method given")
    return wanted


def _select(
    features: Sequence[str] | None, ref_columns: Mapping[str, Any], cur_columns: Mapping[str, Any]
) -> list[str]:
    if isinstance(features, str):
        features = [features]
    names = list(ref_columns) if features is None else list(dict.fromkeys(features))
    if not names:
        raise ValueError("no features to compare")
    for name in names:
        if name not in ref_columns:
            raise ValueError(f"unknown feature {name!r}: not a column of the reference")
    missing = [name for name in names if name not in cur_columns]
    if missing:
        raise ValueError(f"the current data has no column {', '.join(repr(n) for n in missing)} of the reference")
    return names


def _score_categorical(
    feature: _Feature,
    ref_column: object,
    cur_column: object,
    wanted: Sequence[str],
    limits: Mapping[str, float],
    max_categories: int,
    min_samples: int,
    results: dict[str, dict[str, FeatureDrift]],
) -> None:
    ref_counter, ref_missing = data.category_counts(ref_column)
    cur_counter, cur_missing = data.category_counts(cur_column)
    feature.reference_size = sum(ref_counter.values())
    feature.current_size = sum(cur_counter.values())
    if ref_missing:
        feature.notes.append(_dropped_note(ref_missing, "reference"))
    if cur_missing:
        feature.notes.append(_dropped_note(cur_missing, "current"))
    top = binning.top_categories(ref_counter, max_categories)
    cur_counts, unseen = top.count(cur_counter)
    if unseen:
        feature.notes.append(_unseen_note(unseen))
    reason = feature.too_small(min_samples)
    for method in wanted:
        if reason is not None:
            results[method][feature.name] = feature.result(method, limits[method], None, reason)
        else:
            score = drift_methods.score_counts(method, top.counts, cur_counts, None)
            results[method][feature.name] = feature.result(method, limits[method], score)


class _Chunk:
    """Up to COLUMN_CHUNK numeric columns of equal sizes in one (k, n1 + n2) block.

    Each row holds a feature's reference values, then its current values.
    """

    def __init__(self, n1: int, n2: int) -> None:
        self.n1, self.n2 = n1, n2
        # np.empty reserves address space only: rows never filled cost no memory.
        self.block = np.empty((COLUMN_CHUNK, n1 + n2))
        self.features: list[_Feature] = []

    def add(self, feature: _Feature, ref_values: FloatArray, cur_values: FloatArray) -> None:
        row = len(self.features)
        self.block[row, : self.n1] = ref_values
        self.block[row, self.n1 :] = cur_values
        self.features.append(feature)

    @property
    def full(self) -> bool:
        return len(self.features) == COLUMN_CHUNK


def _score_numeric_chunk(
    chunk: _Chunk,
    wanted: Sequence[str],
    limits: Mapping[str, float],
    bins: int,
    results: dict[str, dict[str, FeatureDrift]],
) -> None:
    """Score numeric columns of equal sizes together, from one sort of each side."""
    n1, n2 = chunk.n1, chunk.n2
    members = chunk.features
    # Each half of each row is sorted in place: the merge for KS and Wasserstein then needs no
    # further copy.
    block = chunk.block[: len(members)]
    ref, cur = block[:, :n1], block[:, n1:]
    ref.sort(axis=1)
    cur.sort(axis=1)

    counted: list[tuple[FloatArray, FloatArray, FloatArray]] = []
    if _BINNED_METHODS.intersection(wanted):
        for row, edges in enumerate(binning.quantile_edges(ref, bins)):
            counted.append((edges, binning.sorted_counts(ref[row], edges), binning.sorted_counts(cur[row], edges)))

    exact_ks = max(n1, n2) <= drift_methods.KS_EXACT_MAX_N
    want_ks, want_wasserstein = "ks" in wanted, "wasserstein" in wanted
    ks_statistics, distances = drift_methods.sorted_statistics(
        block, n1, ks=want_ks and not exact_ks, wasserstein=want_wasserstein
    )
    ks_scores: list[tuple[drift_methods.Score, str | None]] = []
    if want_ks and exact_ks:
        ks_scores = [_ks_exact(ref[row], cur[row]) for row in range(len(members))]
    elif want_ks and ks_statistics is not None:
        p_values = drift_methods.ks_pvalue_asymptotic(ks_statistics, n1, n2)
        ks_scores = [
            (drift_methods.Score(float(p), float(d), float(p)), None)
            for d, p in zip(ks_statistics, p_values, strict=True)
        ]
    scales = np.std(ref, axis=1) if want_wasserstein else None

    for row, feature in enumerate(members):
        for method in wanted:
            extra = None
            if method in _BINNED_METHODS:
                edges, ref_counts, cur_counts = counted[row]
                score = drift_methods.score_counts(method, ref_counts, cur_counts, edges)
            elif method == "ks":
                score, extra = ks_scores[row]
            else:
                assert distances is not None
                assert scales is not None
                distance = float(distances[row])
                scale = max(float(scales[row]), drift_methods.WASSERSTEIN_MIN_SCALE)
                score = drift_methods.Score(distance / scale, distance)
            results[method][feature.name] = feature.result(method, limits[method], score, extra)


def _ks_exact(ref: FloatArray, cur: FloatArray) -> tuple[drift_methods.Score, str | None]:
    """``ks_2samp`` itself for samples up to KS_EXACT_MAX_N: its exact p-value."""
    from scipy import stats

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = stats.ks_2samp(ref, cur)
    note = None
    if caught:
        # scipy falls back to the asymptotic p-value when the exact one does not converge.
        note = "ks: exact p-value unavailable, asymptotic one used"
    p_value = float(result.pvalue)
    return drift_methods.Score(p_value, float(result.statistic), p_value), note


def compare_binned(
    reference_stats: Mapping[str, Any],
    current_counts: Mapping[str, Sequence[float] | Mapping[str, float]],
    *,
    method: str = "psi",
    features: Sequence[str] | None = None,
    threshold: float | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftReport:
    """Compare a binned reference with current per-bin counts in the same bins.

    ``reference_stats`` is referenceStats (or a trainer result.json or a ModelVersion
    object holding it). ``current_counts`` maps a feature to its current counts: for a
    numeric feature one count per bin (k, where the reference has k+1 edges) -- the
    differences of a Prometheus histogram's cumulative buckets over a window; for a
    categorical feature one count per reference category, or a mapping category -> count
    in which unseen categories count as __other__. Counts may be fractional (Prometheus'
    ``increase()`` extrapolates). ``features`` defaults to every reference feature.

    ks and wasserstein are binned approximations here (see ``methods.ks_binned`` and
    ``methods.wasserstein_binned``); their results carry a note saying so.
    """
    wanted = _wanted_methods(method)[0]
    limit = _threshold(wanted, threshold)
    _check_min_samples(min_samples)
    reference = binning.parse_reference_stats(reference_stats)
    names = _select(features, reference, current_counts)
    _check_kinds([wanted], {name: reference[name].kind for name in names})
    results = []
    for name in names:
        bins = reference[name]
        feature = _Feature(name, bins.kind)
        counts = _current_counts(bins, current_counts[name], feature)
        results.append(_score_binned(feature, bins, counts, wanted, limit, min_samples))
    return DriftReport(wanted, limit, tuple(results))


def compare_to_reference(
    reference_stats: Mapping[str, Any],
    current: object,
    *,
    method: str = "psi",
    features: Sequence[str] | None = None,
    threshold: float | None = None,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftReport:
    """Compare a binned reference with raw current samples, counted into its bins.

    The counting is the model server's (``bin_counts``): the contract's ``le`` convention
    for numeric features, unseen categories as __other__; missing values are dropped.
    Everything else is as ``compare_binned``.
    """
    wanted = _wanted_methods(method)[0]
    limit = _threshold(wanted, threshold)
    _check_min_samples(min_samples)
    reference = binning.parse_reference_stats(reference_stats)
    cur_columns = data.as_columns(current, "current")
    names = _select(features, reference, cur_columns)
    _check_kinds([wanted], {name: reference[name].kind for name in names})
    results = []
    for name in names:
        bins = reference[name]
        feature = _Feature(name, bins.kind)
        if isinstance(bins, binning.NumericBins):
            values, dropped = data.numeric_values(cur_columns[name], name, "current")
            counts = bins.count(values)
        else:
            counter, dropped = data.category_counts(cur_columns[name])
            counts, unseen = bins.count(counter)
            if unseen:
                feature.notes.append(_unseen_note(unseen))
        if dropped:
            feature.notes.insert(0, _dropped_note(dropped, "current"))
        results.append(_score_binned(feature, bins, counts, wanted, limit, min_samples))
    return DriftReport(wanted, limit, tuple(results))


def _current_counts(
    bins: binning.FeatureBins, raw: Sequence[float] | Mapping[str, float], feature: _Feature
) -> FloatArray:
    if isinstance(bins, binning.CategoricalBins) and isinstance(raw, Mapping):
        for category, count in raw.items():
            if not isinstance(count, int | float) or not math.isfinite(count) or count < 0:
                raise ValueError(f"feature {bins.name!r}: the count of {category!r} must be a non-negative number")
        counts, unseen = bins.count({data.category_name(k): float(v) for k, v in raw.items()})
        if unseen:
            feature.notes.append(_unseen_note(unseen))
        return counts
    if isinstance(raw, Mapping):
        raise ValueError(f"feature {bins.name!r} is numeric: its current counts must be a list, one per bin")
    expected = bins.counts.size
    if isinstance(bins, binning.CategoricalBins) and bins.appended_other and len(raw) == expected - 1:
        raw = [*raw, 0.0]
    return binning.counts_array(raw, expected, bins.name, "the current data")


def _score_binned(
    feature: _Feature,
    bins: binning.FeatureBins,
    counts: FloatArray,
    method: str,
    limit: float,
    min_samples: int,
) -> FeatureDrift:
    feature.reference_size = round(float(bins.counts.sum()))
    feature.current_size = round(float(counts.sum()))
    reason = _too_small_binned(feature, bins.counts, counts, min_samples)
    if reason is not None:
        return feature.result(method, limit, None, reason)
    edges = bins.edges if isinstance(bins, binning.NumericBins) else None
    extra = None
    if method in {"ks", "wasserstein"}:
        extra = f"binned approximation over {bins.counts.size} bins"
    return feature.result(method, limit, drift_methods.score_counts(method, bins.counts, counts, edges), extra)


def _too_small_binned(
    feature: _Feature, ref_counts: FloatArray, cur_counts: FloatArray, min_samples: int
) -> str | None:
    # Fractional counts (Prometheus' increase()) are judged by their sum, not its rounding.
    if float(cur_counts.sum()) <= 0:
        return "the current sample is empty"
    if float(ref_counts.sum()) <= 0:
        return "the reference sample is empty"
    return feature.too_small(min_samples)
