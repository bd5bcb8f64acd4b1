"""The server's metrics: one flat float64 array per worker, binned with numpy, summed at scrape time.

Every series in ``docs/contracts.md`` (requests by code, the latency histogram, predictions by class
or a histogram of predicted values, the per-feature histograms whose buckets are each feature's
interior reference ``edges``, and the categorical counters) has a fixed slot in a flat array whose
:class:`Layout` is computed once from the model at load time, identically in every worker.

A request updates its worker's array in place: a handful of scalar adds, plus one
``np.bincount`` for a whole batch of feature values, so there is no lock and no per-value Python
call. With several workers, each one's array is a shared file mapping (:class:`Store`) named by
its slot and by the layout's fingerprint; a scrape, served by any worker, sums the files of all
slots. A restarted worker reopens its slot's file, so counters never go backwards.

:class:`Collector` renders the summed array as prometheus_client metric families, so the text
format (and its escaping) is prometheus_client's own.
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector as _CollectorBase
from prometheus_client.utils import floatToGoString

from modelops.serve.contract import MISSING_GROUP, OTHER_CATEGORY, OTHER_GROUP, SensitiveGroups

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

#: Every status code the server can answer with; each has its own ``modelops_requests_total`` slot.
STATUS_CODES: tuple[int, ...] = (200, 400, 404, 405, 413, 414, 431, 500, 503)
#: Why the HTTP layer closed a connection on its own (``modelops_connections_dropped_total{reason}``):
#: refused past the connection limit (answered 503), reclaimed to make room at the limit, or cut
#: at a deadline (request head, request body, a response the client does not read).
DROP_REASONS: tuple[str, ...] = ("over_limit", "reclaimed", "header_timeout", "body_timeout", "send_timeout")
#: What became of each label sent to ``/feedback`` (``modelops_feedback_items_total{result}``, docs/contracts.md).
FEEDBACK_RESULTS: tuple[str, ...] = (
    "counted", "duplicate", "malformed", "forged", "expired", "unknown_class", "bad_actual", "version_limit",
)  # fmt: skip
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Every status code ``/explain`` can answer with (``modelops_explain_requests_total{code}``). Explanations
#: have series of their own so that their cost never shows in the latency the canary analysis reads.
EXPLAIN_STATUS_CODES: tuple[int, ...] = (200, 400, 403, 404, 405, 413, 500, 501)
#: Explanations take longer than predictions (TreeSHAP on a forest: milliseconds per row).
EXPLAIN_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


@dataclass(frozen=True)
class NumericFeatureSlot:
    """A numeric feature's histogram: ``len(interior) + 1`` bins at ``offset``, its sum at ``sum_offset``."""

    name: str
    column: int
    interior: tuple[float, ...]
    offset: int
    sum_offset: int


@dataclass(frozen=True)
class CategoricalFeatureSlot:
    """A categorical feature's counters: one per category (the last is ``__other__``) at ``offset``."""

    name: str
    column: int
    categories: tuple[str, ...]
    offset: int
    index: dict[str, int] = field(compare=False, hash=False)


@dataclass(frozen=True)
class GroupSlot:
    """Predictions by (group, class) of one sensitive input: ``len(groups) x classes`` counters at ``offset``.

    ``numeric`` says where the served value is (the numeric matrix or the categorical labels) and
    ``column`` which of its columns; ``bins`` cut a numeric value into ``bin_names``; ``index`` maps
    a group name to its row. The last group is ``__other__``.
    """

    name: str
    numeric: bool
    column: int
    groups: tuple[str, ...]
    offset: int
    bins: tuple[float, ...] | None = None
    bin_names: tuple[str, ...] | None = None
    index: dict[str, int] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Layout:
    """Where each series lives in the flat array. Built by :func:`build_layout`."""

    model: str
    version: str
    codes: tuple[int, ...]
    code_offset: dict[int, int]
    latency_bounds: tuple[float, ...]
    latency_offset: int
    latency_sum: int
    classes: tuple[str, ...]
    classes_offset: int
    prediction_bounds: tuple[float, ...]
    prediction_offset: int
    prediction_sum: int
    numeric: tuple[NumericFeatureSlot, ...]
    categorical: tuple[CategoricalFeatureSlot, ...]
    size: int
    # Batch binning of the numeric features: the columns of the numeric matrix to bin, each feature's
    # first slot relative to the numeric section, and the slots of their sums.
    numeric_columns: IntArray = field(compare=False, hash=False, repr=False)
    numeric_base: IntArray = field(compare=False, hash=False, repr=False)
    numeric_sums: IntArray = field(compare=False, hash=False, repr=False)
    numeric_span: tuple[int, int] = (0, 0)
    drop_reasons: tuple[str, ...] = DROP_REASONS
    drop_offset: int = 0
    # /explain: requests by code, latency, rows explained.
    explain_code_offset: dict[int, int] = field(default_factory=dict, compare=False, hash=False)
    explain_latency_offset: int = 0
    explain_latency_sum: int = 0
    explain_rows: int = 0
    # The expected confusion matrix (classes x classes, row = predicted) of a classifier, at expected_offset.
    expected_offset: int = -1
    # With feedback on: one counter per FEEDBACK_RESULTS, then the dedup table's forgotten entries.
    feedback: bool = False
    feedback_offset: int = -1
    # Predictions by group of each sensitive input the fairness record names: by predicted class (a
    # classifier's), or one count per group (a regression's).
    sensitive: tuple[GroupSlot, ...] = ()

    @property
    def group_width(self) -> int:
        """Counters per group of a sensitive input: one per class, or one for a regression."""
        return max(len(self.classes), 1)

    def fingerprint(self) -> str:
        """A short hash of everything that decides the layout, so that stale files are never summed."""
        parts: list[Any] = [
            self.model, self.version, self.codes, self.latency_bounds, self.classes, self.prediction_bounds,
            [(s.name, s.interior) for s in self.numeric], [(s.name, s.categories) for s in self.categorical],
            self.drop_reasons, sorted(self.explain_code_offset), EXPLAIN_LATENCY_BUCKETS,
            self.expected_offset >= 0, self.feedback,
            [(g.name, g.numeric, g.column, g.groups, g.bins, g.bin_names) for g in self.sensitive],
        ]  # fmt: skip
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def build_layout(
    *,
    model: str,
    version: str,
    classes: Sequence[str] | None,
    expected: bool = True,
    prediction_bounds: Sequence[float] = (),
    numeric: Sequence[tuple[str, int, Sequence[float]]] = (),
    categorical: Sequence[tuple[str, int, Sequence[str]]] = (),
    feedback: bool = False,
    sensitive: Sequence[tuple[SensitiveGroups, bool, int]] = (),
) -> Layout:
    """Lay out the series of one model.

    ``numeric`` lists ``(feature, column in the numeric matrix, interior edges)``; ``categorical``
    lists ``(feature, column among the categorical columns, categories)``. ``classes`` is None for a
    regression, whose predicted values go into a histogram with ``prediction_bounds``. ``expected``
    lays out a classifier's expected confusion matrix (False for one without probabilities). ``feedback``
    lays out the counters of the ``/feedback`` route. ``sensitive`` lists ``(groups, numeric, column)``
    of each sensitive input, counted by group and predicted class (a regression's by group alone).
    """
    pos = 0
    code_offset = {}
    for code in STATUS_CODES:
        code_offset[code] = pos
        pos += 1
    latency_offset = pos
    pos += len(LATENCY_BUCKETS) + 1
    latency_sum = pos
    pos += 1
    class_labels = tuple(classes or ())
    classes_offset = pos
    pos += len(class_labels)
    bounds = tuple(float(b) for b in prediction_bounds) if classes is None else ()
    prediction_offset = pos
    prediction_sum = -1
    if classes is None:
        pos += len(bounds) + 1
        prediction_sum = pos
        pos += 1
    numeric_slots: list[NumericFeatureSlot] = []
    numeric_start = pos
    for name, column, interior in numeric:
        numeric_slots.append(NumericFeatureSlot(name, column, tuple(float(e) for e in interior), pos, -1))
        pos += len(interior) + 1
    numeric_end = pos
    with_sums: list[NumericFeatureSlot] = []
    for s in numeric_slots:
        with_sums.append(NumericFeatureSlot(s.name, s.column, s.interior, s.offset, pos))
        pos += 1
    categorical_slots: list[CategoricalFeatureSlot] = []
    for name, column, cats in categorical:
        labels = (*(c for c in cats if c != OTHER_CATEGORY), OTHER_CATEGORY)
        index = {c: i for i, c in enumerate(labels)}
        categorical_slots.append(CategoricalFeatureSlot(name, column, labels, pos, index))
        pos += len(labels)
    drop_offset = pos
    pos += len(DROP_REASONS)
    explain_code_offset = {code: pos + i for i, code in enumerate(EXPLAIN_STATUS_CODES)}
    pos += len(EXPLAIN_STATUS_CODES)
    explain_latency_offset = pos
    pos += len(EXPLAIN_LATENCY_BUCKETS) + 1
    explain_latency_sum = pos
    explain_rows = pos + 1
    pos += 2
    expected_offset = -1
    if classes is not None and expected:
        expected_offset = pos
        pos += len(class_labels) ** 2
    feedback_offset = -1
    if feedback:
        feedback_offset = pos
        pos += len(FEEDBACK_RESULTS) + 1
    group_slots: list[GroupSlot] = []
    for groups, numeric_column, column in sensitive:
        names = (*(g for g in dict.fromkeys(groups.groups) if g != OTHER_GROUP), OTHER_GROUP)
        index = {g: i for i, g in enumerate(names)}
        group_slots.append(
            GroupSlot(groups.name, numeric_column, column, names, pos, groups.bins, groups.bin_names, index)
        )
        pos += len(names) * max(len(class_labels), 1)

    return Layout(
        model=model,
        version=version,
        codes=STATUS_CODES,
        code_offset=code_offset,
        latency_bounds=LATENCY_BUCKETS,
        latency_offset=latency_offset,
        latency_sum=latency_sum,
        classes=class_labels,
        classes_offset=classes_offset,
        prediction_bounds=bounds,
        prediction_offset=prediction_offset,
        prediction_sum=prediction_sum,
        numeric=tuple(with_sums),
        categorical=tuple(categorical_slots),
        size=pos,
        numeric_columns=np.array([s.column for s in with_sums], dtype=np.intp),
        numeric_base=np.array([s.offset - numeric_start for s in with_sums], dtype=np.intp),
        numeric_sums=np.array([s.sum_offset for s in with_sums], dtype=np.intp),
        numeric_span=(numeric_start, numeric_end),
        drop_reasons=DROP_REASONS,
        drop_offset=drop_offset,
        explain_code_offset=explain_code_offset,
        explain_latency_offset=explain_latency_offset,
        explain_latency_sum=explain_latency_sum,
        explain_rows=explain_rows,
        expected_offset=expected_offset,
        feedback=feedback,
        feedback_offset=feedback_offset,
        sensitive=tuple(group_slots),
    )


# ---------------------------------------------------------------------------------------------
# Pure binning: each function adds one batch's observations into ``values`` in place.


def feature_bins(layout: Layout, numeric: FloatArray) -> IntArray:
    """The bin of every value, as an index into the numeric section: shape [N, features].

    Bin 0 holds ``x <= edges[1]``, bin i holds ``edges[i] < x <= edges[i+1]``, the last bin holds
    ``x > edges[-2]``: the count of interior edges strictly below x, which is
    ``searchsorted(interior, x, side="left")``.
    """
    # One binary search per feature over a column-major copy beats broadcasting every value against
    # every edge once batches are large (the recorder bins up to a thousand rows at a time).
    x = np.asfortranarray(numeric[:, layout.numeric_columns])
    bins = np.empty(x.shape, dtype=np.intp, order="F")
    for j, slot in enumerate(layout.numeric):
        bins[:, j] = np.searchsorted(slot.interior, x[:, j], side="left")
    bins += layout.numeric_base
    return bins


def observe_features(layout: Layout, values: FloatArray, numeric: FloatArray) -> None:
    """Add a batch of numeric rows (columns as in the layout's numeric matrix) to the feature histograms.

    Missing values (NaN, where the model takes them) are not counted, as in the reference bins; an
    infinity (where the model takes it) counts in the first or last bin but not in the sum, which
    would otherwise stay infinite for ever.
    """
    if not layout.numeric:
        return
    start, end = layout.numeric_span
    bins = feature_bins(layout, numeric)
    x = numeric[:, layout.numeric_columns]
    # Huge finite values may add up past float64; that is the sum's own overflow, not a warning to raise.
    with np.errstate(over="ignore", invalid="ignore"):
        sums = x.sum(axis=0)
        if np.isfinite(sums).all():
            values[start:end] += np.bincount(bins.ravel(), minlength=end - start)
        else:
            values[start:end] += np.bincount(bins[~np.isnan(x)], minlength=end - start)
            sums = np.where(np.isfinite(x), x, 0.0).sum(axis=0)
        values[layout.numeric_sums] += sums


def observe_categories(layout: Layout, values: FloatArray, columns: Sequence[Any]) -> None:
    """Count a batch of categorical values; anything not among the reference categories is ``__other__``.

    ``columns`` are sequences (or arrays) of values as the model got them; each is named by ``str()``,
    as the trainer named the reference categories. A missing value (None, NaN) is not counted, as in
    the reference counts.
    """
    for slot in layout.categorical:
        other = len(slot.categories) - 1
        index = slot.index
        for v in columns[slot.column]:
            if isinstance(v, str):
                values[slot.offset + index.get(v, other)] += 1
            elif v is not None and v == v:
                values[slot.offset + index.get(str(v), other)] += 1


def observe_classes(layout: Layout, values: FloatArray, class_index: IntArray) -> None:
    """Count predictions by class, given each row's index into the layout's classes."""
    n = len(layout.classes)
    if class_index.shape[0] == 1:
        values[layout.classes_offset + int(class_index[0])] += 1
        return
    values[layout.classes_offset : layout.classes_offset + n] += np.bincount(class_index, minlength=n)


def _group_name(value: Any) -> str:
    """A served value named as the trainer names a group: ``1.0`` is ``1``, a missing value ``(missing)``."""
    if value is None or (isinstance(value, float) and value != value):
        return MISSING_GROUP
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def group_of(slot: GroupSlot, value: Any) -> int:
    """The row of ``slot`` a served value counts in: its group, else ``__other__``."""
    other = len(slot.groups) - 1
    if slot.bins is not None and slot.bin_names is not None:
        if value is None or value != value:
            return slot.index.get(MISSING_GROUP, other)
        # A value equal to a cut point belongs to the interval above it, as in training.
        return slot.index.get(slot.bin_names[bisect.bisect_right(slot.bins, float(value))], other)
    return slot.index.get(_group_name(value), other)


def observe_groups(
    layout: Layout, values: FloatArray, numeric: FloatArray, labels: Sequence[Any], class_index: IntArray
) -> list[IntArray]:
    """Count a batch's predicted classes by the group of each sensitive input (``numeric`` and ``labels``
    as in :class:`~modelops.serve.codec.Decoded`; a regression's ``class_index`` all zeros); each input's
    rows' group indices, for the batch's id."""
    n = layout.group_width
    found = []
    for slot in layout.sensitive:
        column = numeric[:, slot.column].tolist() if slot.numeric else labels[slot.column]
        rows = np.fromiter((group_of(slot, v) for v in column), dtype=np.intp, count=len(class_index))
        size = len(slot.groups) * n
        values[slot.offset : slot.offset + size] += np.bincount(rows * n + class_index, minlength=size)
        found.append(rows)
    return found


def observe_expected(layout: Layout, values: FloatArray, class_index: IntArray, proba: FloatArray) -> None:
    """Add each row's probabilities to its predicted class's row of the expected confusion matrix."""
    if layout.expected_offset < 0:  # a classifier without probabilities has no such matrix
        return
    n = len(layout.classes)
    matrix = np.zeros((n, n))
    np.add.at(matrix, class_index, proba)
    values[layout.expected_offset : layout.expected_offset + n * n] += matrix.ravel()


def observe_predictions(layout: Layout, values: FloatArray, predicted: FloatArray) -> None:
    """Add predicted values (a regression) to the prediction histogram, ``le`` semantics."""
    bounds = np.asarray(layout.prediction_bounds, dtype=np.float64)
    bins = np.searchsorted(bounds, predicted, side="left")
    k = len(bounds) + 1
    values[layout.prediction_offset : layout.prediction_offset + k] += np.bincount(bins, minlength=k)
    values[layout.prediction_sum] += float(predicted.sum())


def observe_request(layout: Layout, values: FloatArray, code: int, seconds: float) -> None:
    """Count one request by status code and add its duration to the latency histogram."""
    values[layout.code_offset[code]] += 1
    values[layout.latency_offset + bisect.bisect_left(layout.latency_bounds, seconds)] += 1
    values[layout.latency_sum] += seconds


def prediction_bounds_from(predicted: FloatArray, n: int = 10) -> tuple[float, ...]:
    """Histogram bounds for a regression's predicted values: ``n`` inner quantiles, 4 significant digits.

    The contract carries no target statistics, so the server derives bounds from the model's own
    predictions on probe rows drawn from the features' reference bins.
    """
    finite = predicted[np.isfinite(predicted)]
    if finite.size == 0:
        return (0.0,)
    qs = np.quantile(finite, np.linspace(0.0, 1.0, n + 1)[1:-1])
    rounded = sorted({float(f"{q:.4g}") for q in qs})
    return tuple(rounded)


# ---------------------------------------------------------------------------------------------
# The hot path: cheap accumulation, flushed into the array in batches.


class Recorder:
    """Per-request bookkeeping at the cost of a few list adds and one row copy.

    Scalar counters (requests by code, latency, single-row classes) accumulate in a plain list;
    numeric rows are copied into a preallocated buffer and binned all at once by :meth:`flush`,
    which adds everything into ``values``. The server flushes on a full buffer, before every
    scrape it answers, once a second, and at shutdown; so another worker's series lag by at most
    about a second, and this worker's never lag in its own scrape.
    """

    def __init__(self, layout: Layout, values: FloatArray, rows: int = 1024) -> None:
        self.layout = layout
        self.values = values
        self.pending = [0.0] * layout.size
        self.dirty = False
        width = int(layout.numeric_columns.max()) + 1 if layout.numeric else 0
        self.buffer = np.empty((rows, width), dtype=np.float64)
        self.buffered = 0
        self._latency_bounds = layout.latency_bounds
        self._latency_offset = layout.latency_offset
        self._latency_sum = layout.latency_sum
        self._code_offset = layout.code_offset
        self._classes_offset = layout.classes_offset
        self._expected_offset = layout.expected_offset

    def request(self, code: int, seconds: float) -> None:
        p = self.pending
        p[self._code_offset[code]] += 1
        p[self._latency_offset + bisect.bisect_left(self._latency_bounds, seconds)] += 1
        p[self._latency_sum] += seconds
        self.dirty = True

    def rows(self, numeric: FloatArray) -> None:
        if not self.layout.numeric:
            return
        k = numeric.shape[0]
        if self.buffered + k > self.buffer.shape[0]:
            self.flush()
            if k > self.buffer.shape[0]:
                observe_features(self.layout, self.values, numeric)
                return
        width = self.buffer.shape[1]
        self.buffer[self.buffered : self.buffered + k] = numeric[:, :width]
        self.buffered += k

    def row(self, values: list[float]) -> None:
        """:meth:`rows` for one row given as a list (the single-row fast path)."""
        if not self.layout.numeric:
            return
        if self.buffered == self.buffer.shape[0]:
            self.flush()
        width = self.buffer.shape[1]
        self.buffer[self.buffered] = values if len(values) == width else values[:width]
        self.buffered += 1

    def one_class(self, index: int) -> None:
        """:meth:`classes` for one prediction."""
        self.pending[self._classes_offset + index] += 1
        self.dirty = True

    def expected(self, index: int, proba: Sequence[float]) -> None:
        """One row's probabilities into the expected confusion matrix (the single-row path)."""
        p = self.pending
        at = self._expected_offset + index * len(proba)
        for c, v in enumerate(proba):
            p[at + c] += v
        self.dirty = True

    def feedback(self, result: str, count: int = 1) -> None:
        """Labels sent to ``/feedback`` with one of :data:`FEEDBACK_RESULTS`."""
        self.pending[self.layout.feedback_offset + FEEDBACK_RESULTS.index(result)] += count
        self.dirty = True

    def forgotten(self, count: int) -> None:
        """Entries the dedup table forgot before their ids expired."""
        self.pending[self.layout.feedback_offset + len(FEEDBACK_RESULTS)] += count
        self.dirty = True

    def groups(self, row: list[float], index: int) -> list[int]:
        """One all-numeric row's prediction by the group of each sensitive input (the single-row path);
        the row's group index of each (a regression's ``index`` is 0)."""
        n = self.layout.group_width
        found = []
        for slot in self.layout.sensitive:
            group = group_of(slot, row[slot.column])
            self.pending[slot.offset + group * n + index] += 1
            found.append(group)
        self.dirty = True
        return found

    def prediction(self, value: float) -> None:
        """One predicted value (a regression) into the prediction histogram, ``le`` semantics."""
        layout = self.layout
        self.pending[layout.prediction_offset + bisect.bisect_left(layout.prediction_bounds, value)] += 1
        self.pending[layout.prediction_sum] += value
        self.dirty = True

    def classes(self, class_index: IntArray) -> None:
        if class_index.shape[0] == 1:
            self.pending[self._classes_offset + int(class_index[0])] += 1
            self.dirty = True
        else:
            observe_classes(self.layout, self.values, class_index)

    def explain(self, code: int, seconds: float, rows: int) -> None:
        """One ``/explain`` request, in its own series: by code, its latency, and the rows it explained."""
        layout, p = self.layout, self.pending
        p[layout.explain_code_offset[code]] += 1
        p[layout.explain_latency_offset + bisect.bisect_left(EXPLAIN_LATENCY_BUCKETS, seconds)] += 1
        p[layout.explain_latency_sum] += seconds
        p[layout.explain_rows] += rows
        self.dirty = True

    def dropped(self, reason: str) -> None:
        """One connection the HTTP layer closed on its own, for one of :data:`DROP_REASONS`."""
        self.pending[self.layout.drop_offset + self.layout.drop_reasons.index(reason)] += 1
        self.dirty = True

    def flush(self) -> None:
        if self.buffered:
            observe_features(self.layout, self.values, self.buffer[: self.buffered])
            self.buffered = 0
        if self.dirty:
            self.values += np.asarray(self.pending)
            self.pending = [0.0] * self.layout.size
            self.dirty = False


# ---------------------------------------------------------------------------------------------
# Storage: a worker's array, in memory or in a shared file mapping.


class Store:
    """One worker's metric array; :meth:`snapshot` sums the arrays of every worker sharing ``directory``."""

    def __init__(self, layout: Layout, directory: Path | None = None, slot: int = 0) -> None:
        self.layout = layout
        self.directory = directory
        self.slot = slot
        self._suffix = f"-{layout.fingerprint()}.f64"
        self._mmap: mmap.mmap | None = None
        if directory is None:
            self.values: FloatArray = np.zeros(layout.size, dtype=np.float64)
            return
        path = directory / f"worker-{slot}{self._suffix}"
        nbytes = layout.size * 8
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size != nbytes:
                os.ftruncate(fd, 0)
                os.ftruncate(fd, nbytes)
            self._mmap = mmap.mmap(fd, nbytes)
        finally:
            os.close(fd)
        self.values = np.frombuffer(self._mmap, dtype=np.float64)

    def snapshot(self) -> FloatArray:
        """The sum over all workers (only this worker's array when there is no directory)."""
        if self.directory is None:
            return self.values.copy()
        total = np.zeros(self.layout.size, dtype=np.float64)
        for path in sorted(self.directory.glob(f"worker-*{self._suffix}")):
            data = np.fromfile(path, dtype=np.float64)
            if data.shape == total.shape:
                total += data
        return total


# ---------------------------------------------------------------------------------------------
# Exposition.


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it (prometheus_client's own formatting)."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text


def _cumulative(counts: FloatArray, bounds: Sequence[float]) -> list[tuple[str, float]]:
    cum = np.cumsum(counts)
    buckets = [(_le(b), float(c)) for b, c in zip(bounds, cum[:-1], strict=True)]
    buckets.append(("+Inf", float(cum[-1])))
    return buckets


def families(layout: Layout, values: FloatArray) -> list[Metric]:
    """The metric families of ``docs/contracts.md`` from a (summed) array."""
    base = ["model", "version"]
    ids = [layout.model, layout.version]
    out: list[Metric] = []

    requests = CounterMetricFamily(
        "modelops_requests_total", "Requests to the model API, by HTTP status code.", labels=[*base, "code"]
    )
    for code in layout.codes:
        requests.add_metric([*ids, str(code)], float(values[layout.code_offset[code]]))
    out.append(requests)

    k = len(layout.latency_bounds) + 1
    latency = HistogramMetricFamily(
        "modelops_request_duration_seconds", "Time to answer a model API request.", labels=base
    )
    counts = values[layout.latency_offset : layout.latency_offset + k]
    latency.add_metric(ids, _cumulative(counts, layout.latency_bounds), float(values[layout.latency_sum]))
    out.append(latency)

    if layout.prediction_sum < 0:
        predictions = CounterMetricFamily(
            "modelops_predictions_total", "Predictions, by predicted class.", labels=[*base, "class"]
        )
        for i, label in enumerate(layout.classes):
            predictions.add_metric([*ids, label], float(values[layout.classes_offset + i]))
        out.append(predictions)
    else:
        k = len(layout.prediction_bounds) + 1
        value_hist = HistogramMetricFamily("modelops_prediction_value", "Predicted values.", labels=base)
        counts = values[layout.prediction_offset : layout.prediction_offset + k]
        value_hist.add_metric(ids, _cumulative(counts, layout.prediction_bounds), float(values[layout.prediction_sum]))
        out.append(value_hist)

    feature = HistogramMetricFamily(
        "modelops_feature",
        "Served values of each numeric feature; buckets are the feature's reference bin edges.",
        labels=[*base, "feature"],
    )
    for slot in layout.numeric:
        counts = values[slot.offset : slot.offset + len(slot.interior) + 1]
        feature.add_metric([*ids, slot.name], _cumulative(counts, slot.interior), float(values[slot.sum_offset]))
    out.append(feature)

    category = CounterMetricFamily(
        "modelops_feature_category_total",
        "Served values of each categorical feature; unseen categories count as __other__.",
        labels=[*base, "feature", "category"],
    )
    for cslot in layout.categorical:
        for i, label in enumerate(cslot.categories):
            category.add_metric([*ids, cslot.name, label], float(values[cslot.offset + i]))
    out.append(category)

    if layout.sensitive:
        out.append(_group_family(layout, values, base, ids))
    if layout.expected_offset >= 0:
        out += _expected_families(layout, values, base, ids)
    if layout.feedback:
        out += _feedback_families(layout, values, base, ids)

    dropped = CounterMetricFamily(
        "modelops_connections_dropped_total",
        "Connections the server closed on its own: over_limit (refused with 503), reclaimed (closed to make "
        "room at the limit), header_timeout, body_timeout, send_timeout.",
        labels=[*base, "reason"],
    )
    for i, reason in enumerate(layout.drop_reasons):
        dropped.add_metric([*ids, reason], float(values[layout.drop_offset + i]))
    out.append(dropped)
    out.extend(explain_families(layout, values))
    return out


def explain_families(layout: Layout, values: FloatArray) -> list[Metric]:
    """The ``/explain`` series: apart from ``modelops_requests_total`` and its latency, on purpose."""
    base, ids = ["model", "version"], [layout.model, layout.version]
    requests = CounterMetricFamily(
        "modelops_explain_requests_total", "Requests to /explain, by HTTP status code.", labels=[*base, "code"]
    )
    for code, offset in sorted(layout.explain_code_offset.items()):
        requests.add_metric([*ids, str(code)], float(values[offset]))
    latency = HistogramMetricFamily(
        "modelops_explain_request_duration_seconds", "Time to answer an /explain request.", labels=base
    )
    k = len(EXPLAIN_LATENCY_BUCKETS) + 1
    counts = values[layout.explain_latency_offset : layout.explain_latency_offset + k]
    latency.add_metric(ids, _cumulative(counts, EXPLAIN_LATENCY_BUCKETS), float(values[layout.explain_latency_sum]))
    rows = CounterMetricFamily("modelops_explain_rows_total", "Rows explained by /explain.", labels=base)
    rows.add_metric(ids, float(values[layout.explain_rows]))
    return [requests, latency, rows]


def _group_family(layout: Layout, values: FloatArray, base: list[str], ids: list[str]) -> Metric:
    classes: tuple[str | None, ...] = layout.classes or (None,)  # a regression's: no class label
    family = CounterMetricFamily(
        "modelops_group_predictions",
        "Predictions by predicted class (a classifier's) and by the group of a sensitive input "
        "(docs/fairness.md); a value outside the version's recorded groups counts as __other__.",
        labels=[*base, "feature", "group", *(["class"] if layout.classes else [])],
    )
    n = layout.group_width
    for slot in layout.sensitive:
        for g, group in enumerate(slot.groups):
            for c, label in enumerate(classes):
                named = [label] if label is not None else []
                family.add_metric([*ids, slot.name, group, *named], float(values[slot.offset + g * n + c]))
    return family


def _expected_families(layout: Layout, values: FloatArray, base: list[str], ids: list[str]) -> list[Metric]:
    n = len(layout.classes)
    matrix = values[layout.expected_offset : layout.expected_offset + n * n].reshape(n, n)
    confusion = CounterMetricFamily(
        "modelops_expected_confusion",
        "Sum of predicted probabilities: for each served row, P(actual = class) added to (predicted, actual).",
        labels=[*base, "predicted", "actual"],
    )
    correct = CounterMetricFamily(
        "modelops_expected_correct",
        "Sum over served rows predicted as class of P(actual = class): the expected confusion matrix's diagonal.",
        labels=[*base, "class"],
    )
    actual = CounterMetricFamily(
        "modelops_expected_actual",
        "Sum over served rows of P(actual = class): the expected confusion matrix's column sums.",
        labels=[*base, "class"],
    )
    columns = matrix.sum(axis=0)
    for i, predicted in enumerate(layout.classes):
        for j, label in enumerate(layout.classes):
            confusion.add_metric([*ids, predicted, label], float(matrix[i, j]))
        correct.add_metric([*ids, predicted], float(matrix[i, i]))
        actual.add_metric([*ids, predicted], float(columns[i]))
    return [confusion, correct, actual]


def _feedback_families(layout: Layout, values: FloatArray, base: list[str], ids: list[str]) -> list[Metric]:
    items = CounterMetricFamily(
        "modelops_feedback_items",
        "Labels sent to /feedback, by what became of them.",
        labels=[*base, "result"],
    )
    for i, result in enumerate(FEEDBACK_RESULTS):
        items.add_metric([*ids, result], float(values[layout.feedback_offset + i]))
    forgotten = CounterMetricFamily(
        "modelops_feedback_dedup_forgotten",
        "Labels the dedup table forgot before their ids expired (a repeat of one would count again).",
        labels=base,
    )
    forgotten.add_metric(ids, float(values[layout.feedback_offset + len(FEEDBACK_RESULTS)]))
    return [items, forgotten]


class Collector(_CollectorBase):
    """A prometheus_client collector over a :class:`Store`: every scrape sums all workers' arrays.

    ``extra`` adds families kept elsewhere (the label counters of :mod:`modelops.serve.labels`).
    """

    def __init__(self, store: Store, extra: Callable[[], Iterable[Metric]] | None = None) -> None:
        self.store = store
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from families(self.store.layout, self.store.snapshot())
        if self.extra is not None:
            yield from self.extra()
