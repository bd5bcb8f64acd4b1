"""Bins as docs/contracts.md defines them: referenceStats, and counting values into them.

Numeric features: ``edges`` has k+1 values, ``counts`` has k. The interior edges
``edges[1:-1]`` are Prometheus ``le`` bounds: bin 0 holds ``x <= edges[1]``, bin i holds
``edges[i] < x <= edges[i+1]``, the last bin ``x > edges[-2]``; values outside
``[edges[0], edges[-1]]`` fall into the first or last bin. In numpy terms the bin of ``x``
is ``searchsorted(edges[1:-1], x, side="left")``.

Categorical features: the most frequent categories (at most 50) and their counts; the
rest, and any category unseen in the reference, count as ``__other__``. A feature parsed
without an ``__other__`` category gets one appended with a reference count of 0, so
unseen categories always have somewhere to go.

Edges built here (``quantile_edges``, ``reference_stats``) are the reference's quantiles
(numpy's default linear interpolation) de-duplicated; when a repeated quantile equals the
minimum or maximum, the outer edge moves one float outward (``np.nextafter``) so that edges
stay strictly increasing and the mass at that value keeps its own bin; a constant
reference ``c`` gets bins ``x < c``, ``x == c``, ``x > c`` so any departure shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from modelops.drift import data, methods
from modelops.drift.methods import FloatArray

OTHER: Final = "__other__"
DEFAULT_BINS: Final = 10
DEFAULT_MAX_CATEGORIES: Final = 50


@dataclass(frozen=True)
class NumericBins:
    """A numeric feature's bins: k+1 ``edges`` and k reference ``counts``."""

    name: str
    edges: FloatArray
    counts: FloatArray
    kind: str = field(default=methods.NUMERIC, init=False)

    @property
    def interior(self) -> FloatArray:
        return self.edges[1:-1]

    def count(self, values: FloatArray) -> FloatArray:
        """Count finite values into these bins (the contract's ``le`` convention)."""
        index = np.searchsorted(self.interior, values, side="left")
        return np.bincount(index, minlength=self.counts.size).astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "edges": [float(edge) for edge in self.edges],
            "counts": [_plain_count(count) for count in self.counts],
        }


@dataclass(frozen=True)
class CategoricalBins:
    """A categorical feature's ``categories`` (ending with ``__other__``) and ``counts``."""

    name: str
    categories: tuple[str, ...]
    counts: FloatArray
    # True when referenceStats had no __other__ and parse_feature appended one.
    appended_other: bool = False
    kind: str = field(default=methods.CATEGORICAL, init=False)

    def count(self, counts: Mapping[str, float]) -> tuple[FloatArray, float]:
        """Counts by category name -> (counts over these categories, how many were unseen)."""
        index = {category: position for position, category in enumerate(self.categories)}
        other = index[OTHER]
        result = np.zeros(len(self.categories))
        unseen = 0.0
        for category, count in counts.items():
            position = index.get(category)
            if position is None or position == other:
                if position is None:
                    unseen += count
                result[other] += count
            else:
                result[position] += count
        return result, unseen

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "categories": list(self.categories),
            "counts": [_plain_count(count) for count in self.counts],
        }


FeatureBins = NumericBins | CategoricalBins


def _plain_count(count: float) -> int | float:
    return int(count) if float(count).is_integer() else float(count)


def counts_array(raw: object, expected: int, feature: str, what: str) -> FloatArray:
    """Validate counts: a flat list of ``expected`` finite non-negative numbers."""
    try:
        counts = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"feature {feature!r}: {what} counts must be numbers") from None
    if counts.ndim != 1 or counts.size != expected:
        raise ValueError(f"feature {feature!r}: {what} has {counts.size} counts, expected {expected}")
    if not bool(np.all(np.isfinite(counts))) or bool(np.any(counts < 0)):
        raise ValueError(f"feature {feature!r}: {what} counts must be finite and non-negative")
    return counts


def parse_feature(feature: Mapping[str, Any]) -> FeatureBins:
    """Validate one entry of ``referenceStats.features`` and turn it into bins."""
    name = feature.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("a referenceStats feature has no name")
    kind = feature.get("kind")
    if kind is None:
        kind = methods.CATEGORICAL if "categories" in feature else methods.NUMERIC
    if kind == methods.NUMERIC:
        try:
            edges = np.asarray(feature.get("edges"), dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"feature {name!r}: edges must be numbers") from None
        if edges.ndim != 1 or edges.size < 2 or not bool(np.all(np.isfinite(edges))):
            raise ValueError(f"feature {name!r}: edges must be at least two finite numbers")
        if bool(np.any(np.diff(edges) < 0)) or bool(np.any(np.diff(edges[1:-1]) <= 0)):
            raise ValueError(f"feature {name!r}: edges must be increasing")
        counts = counts_array(feature.get("counts"), edges.size - 1, name, "the reference")
        return NumericBins(name, edges, counts)
    if kind == methods.CATEGORICAL:
        categories = feature.get("categories")
        if not isinstance(categories, Sequence) or isinstance(categories, str) or not categories:
            raise ValueError(f"feature {name!r}: categories must be a non-empty list")
        names = tuple(data.category_name(category) for category in categories)
        if len(set(names)) != len(names):
            raise ValueError(f"feature {name!r}: categories must be unique")
        counts = counts_array(feature.get("counts"), len(names), name, "the reference")
        names_given = names
        if OTHER not in names:
            names += (OTHER,)
            counts = np.append(counts, 0.0)
        return CategoricalBins(name, names, counts, appended_other=OTHER not in names_given)
    raise ValueError(f"feature {name!r}: unknown kind {kind!r}; expected numeric or categorical")


def unwrap_reference_stats(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """referenceStats from itself, a trainer result.json, or a whole ModelVersion object."""
    if "features" in document:
        return document
    if isinstance(document.get("referenceStats"), Mapping):
        return document["referenceStats"]  # type: ignore[no-any-return]
    spec = document.get("spec")
    if isinstance(spec, Mapping) and isinstance(spec.get("referenceStats"), Mapping):
        return spec["referenceStats"]  # type: ignore[no-any-return]
    raise ValueError("no referenceStats found (expected 'features', 'referenceStats' or 'spec.referenceStats')")


def parse_reference_stats(document: Mapping[str, Any]) -> dict[str, FeatureBins]:
    """Feature name -> bins, from referenceStats, a result.json or a ModelVersion."""
    stats = unwrap_reference_stats(document)
    features = stats.get("features")
    if not isinstance(features, Sequence) or isinstance(features, str):
        raise ValueError("referenceStats.features must be a list")
    parsed: dict[str, FeatureBins] = {}
    for feature in features:
        if not isinstance(feature, Mapping):
            raise ValueError("every referenceStats feature must be an object")
        bins = parse_feature(feature)
        if bins.name in parsed:
            raise ValueError(f"feature {bins.name!r} appears twice in referenceStats")
        parsed[bins.name] = bins
    return parsed


def quantile_edges(sorted_rows: FloatArray, bins: int) -> list[FloatArray]:
    """Quantile bin edges for each row of a (k, n) block of sorted finite values (n >= 1).

    The quantiles are ``np.quantile``'s default (linear) ones, read by index from the sorted
    rows for all rows at once; de-duplication then works row by row (see the module doc).
    """
    n = sorted_rows.shape[1]
    position = np.linspace(0.0, 1.0, bins + 1) * (n - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, n - 1)
    fraction = position - low
    below, above = sorted_rows[:, low], sorted_rows[:, high]
    with np.errstate(over="ignore", invalid="ignore"):
        quantiles = below + (above - below) * fraction
    overflowed = ~np.isfinite(quantiles)
    if bool(overflowed.any()):  # values near the float limits: interpolate without the difference
        quantiles = np.where(overflowed, below * (1.0 - fraction) + above * fraction, quantiles)
    result = []
    for row, row_quantiles in zip(sorted_rows, quantiles, strict=True):
        result.append(_edges(float(row[0]), float(row[-1]), row_quantiles[1:-1]))
    return result


def _edges(minimum: float, maximum: float, interior_quantiles: FloatArray) -> FloatArray:
    """Strictly increasing finite edges (see the module doc); at the float limits a bin is given up
    rather than an edge made infinite."""
    with np.errstate(over="ignore"):  # nextafter past the largest float is inf, handled below
        return _edges_unchecked(minimum, maximum, interior_quantiles)


def _edges_unchecked(minimum: float, maximum: float, interior_quantiles: FloatArray) -> FloatArray:
    if minimum == maximum:
        below = np.nextafter(minimum, -np.inf)
        edges = np.array([np.nextafter(below, -np.inf), below, minimum, np.nextafter(maximum, np.inf)])
        finite: FloatArray = edges[np.isfinite(edges)]
        if finite.size >= 3:
            return finite
        above = np.nextafter(minimum, np.inf)
        return np.array([minimum, above, np.nextafter(above, np.inf)], dtype=np.float64)
    interior = np.unique(interior_quantiles)
    interior = interior[(interior >= minimum) & (interior <= maximum)]
    low, high = minimum, maximum
    if interior.size and interior[0] <= low:
        low = float(np.nextafter(interior[0], -np.inf))
        if not np.isfinite(low):  # the minimum is the lowest float: its mass shares bin 0
            low, interior = float(interior[0]), interior[1:]
    if interior.size and interior[-1] >= high:
        high = float(np.nextafter(interior[-1], np.inf))
        if not np.isfinite(high):
            high, interior = float(interior[-1]), interior[:-1]
    return np.concatenate([[low], interior, [high]])


def sorted_counts(sorted_row: FloatArray, edges: FloatArray) -> FloatArray:
    """Counts of an already sorted row in the contract's bins (no pass over the values)."""
    at_or_below = np.searchsorted(sorted_row, edges[1:-1], side="right")
    return np.diff(np.concatenate([[0], at_or_below, [sorted_row.size]])).astype(np.float64)


def top_categories(counts: Counter[str], max_categories: int) -> CategoricalBins:
    """The contract's categorical reference: the most frequent categories, the rest as __other__.

    Ties in frequency go to the alphabetically first category, so the result is stable.
    """
    ranked = sorted(
        ((category, count) for category, count in counts.items() if category != OTHER),
        key=lambda item: (-item[1], item[0]),
    )
    kept = ranked[:max_categories]
    other = float(sum(counts.values()) - sum(count for _, count in kept))
    names = (*(category for category, _ in kept), OTHER)
    values = np.array([float(count) for _, count in kept] + [other])
    return CategoricalBins("", names, values)


def bin_counts(reference_feature: Mapping[str, Any] | FeatureBins, values: object) -> list[int]:
    """Count raw values into a referenceStats feature's bins, as the model server does.

    Numeric: the contract's ``le`` convention; NaN and infinities are not counted.
    Categorical: by category name (compared as strings); unseen categories count as
    ``__other__``; missing values are not counted. The result is aligned with the
    feature's categories, plus a trailing ``__other__`` when the feature had none.
    """
    bins = (
        reference_feature
        if isinstance(reference_feature, NumericBins | CategoricalBins)
        else (parse_feature(reference_feature))
    )
    if isinstance(bins, NumericBins):
        finite, _ = data.numeric_values(values, bins.name, "current")
        return [int(count) for count in bins.count(finite)]
    counts, _ = data.category_counts(values)
    result, _ = bins.count(counts)
    return [int(count) for count in result]


def reference_stats(
    reference: object,
    *,
    features: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    categorical: Sequence[str] = (),
) -> dict[str, Any]:
    """Build the contract's ``referenceStats`` object from raw reference samples.

    Numeric features get ``bins`` quantile bins (fewer after de-duplication), categorical
    features (non-numeric dtypes, or the names in ``categorical``) their ``max_categories``
    most frequent categories plus ``__other__``. ``sampleSize`` is the number of rows.
    Missing values are left out of the counts.
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    columns = data.as_columns(reference, "reference")
    names = list(columns) if features is None else list(features)
    rows = 0
    result: list[dict[str, Any]] = []
    for name in names:
        if name not in columns:
            raise ValueError(f"unknown feature {name!r}: not a column of the reference")
        column = columns[name]
        rows = max(rows, len(column))
        if name not in categorical and data.column_kind(column) == methods.NUMERIC:
            values, _ = data.numeric_values(column, name, "reference")
            if values.size == 0:
                raise ValueError(f"feature {name!r} has no finite reference values")
            ordered = np.sort(values)[np.newaxis, :]
            edges = quantile_edges(ordered, bins)[0]
            result.append(NumericBins(name, edges, sorted_counts(ordered[0], edges)).to_dict())
        else:
            counts, _ = data.category_counts(column)
            top = top_categories(counts, max_categories)
            result.append(CategoricalBins(name, top.categories, top.counts).to_dict())
    return {"sampleSize": rows, "features": result}
