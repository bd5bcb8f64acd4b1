"""Canary analysis, the I/O part: one round of checks through the Prometheus HTTP API.

:func:`measure` builds each check's PromQL with ``modelops.logic.analysis``, runs the queries
concurrently through :mod:`modelops.controller.prometheus`, judges the answers, and lets
:func:`modelops.logic.analysis.decide` fold them — with the counts of the step's earlier
rounds — into a verdict. A query that gets no usable answer (Prometheus unreachable, timed
out, or the query rejected) makes its check inconclusive, never a pass or a failure; so does
no Prometheus address at all.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from modelops.api.modeldeployment import AnalysisSpec, FairnessCheck, MetricCheck, QualityCheck
from modelops.controller import prometheus
from modelops.logic import analysis as logic
from modelops.logic.analysis import AnalysisTarget, Measurement, Verdict
from modelops.logic.rolloutstate import AnalysisResult

__all__ = ["AnalysisTarget", "Verdict", "measure"]

# Each query's deadline; the queries of a round run concurrently, so a hung Prometheus costs
# one deadline per round, not one per query.
QUERY_DEADLINE = 5.0

T = TypeVar("T")


class _UnansweredError(Exception):
    """A query of a check got no usable answer; the message says why."""


async def _answer(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except prometheus.PrometheusError as error:
        raise _UnansweredError(f"Prometheus gave no answer: {error}") from None


async def _one(url: str, promql: str) -> float | None:
    return await _answer(prometheus.query_one(url, promql, deadline=QUERY_DEADLINE))


async def _distribution(url: str, target: AnalysisTarget, version: str, window: str) -> dict[str, float]:
    """A version's predictions per class, or per bin of predicted values for a regressor."""
    by_class = await _answer(
        prometheus.query(url, logic.class_counts_query(target, version, window), deadline=QUERY_DEADLINE)
    )
    counts = {s.labels.get("class", ""): s.value for s in by_class if s.finite}
    if counts:
        return counts
    buckets = await _answer(
        prometheus.query(url, logic.value_buckets_query(target, version, window), deadline=QUERY_DEADLINE)
    )
    return logic.bins_from_buckets({s.labels["le"]: s.value for s in buckets if s.finite and "le" in s.labels})


def _unanswered(name: str, error: _UnansweredError) -> Measurement:
    return Measurement(name, "Inconclusive", None, str(error))


async def _error_rate(spec: AnalysisSpec, url: str, target: AnalysisTarget, window: str) -> Measurement:
    check = spec.builtin.error_rate
    assert check is not None
    try:
        canary = await _one(url, logic.error_rate_query(target, target.canary_version, window))
        stable = None
        if check.max_increase_over_stable is not None and target.stable_version is not None:
            stable = await _one(url, logic.error_rate_query(target, target.stable_version, window))
    except _UnansweredError as error:
        return _unanswered(logic.ERROR_RATE, error)
    return logic.judge_error_rate(check, canary, stable)


async def _latency(spec: AnalysisSpec, url: str, target: AnalysisTarget, window: str) -> Measurement:
    check = spec.builtin.latency
    assert check is not None
    try:
        canary = await _one(url, logic.latency_query(target, target.canary_version, window))
        stable = None
        if check.max_ratio_to_stable is not None and target.stable_version is not None:
            stable = await _one(url, logic.latency_query(target, target.stable_version, window))
    except _UnansweredError as error:
        return _unanswered(logic.LATENCY, error)
    return logic.judge_latency(check, canary, stable)


async def _canary_against_stable(
    name: str,
    target: AnalysisTarget,
    read: Callable[[str], Awaitable[T]],
    judge: Callable[..., Measurement],
    nothing: T,
) -> Measurement:
    """A builtin check that compares the canary's reading with the stable's: ``judge(canary, stable)``;
    without a stable, ``judge(nothing, None, has_stable=False)``; Prometheus not answering, inconclusive."""
    if target.stable_version is None:
        return judge(nothing, None, has_stable=False)
    try:
        canary = await read(target.canary_version)
        stable = await read(target.stable_version)
    except _UnansweredError as error:
        return _unanswered(name, error)
    return judge(canary, stable)


async def _prediction_shift(spec: AnalysisSpec, url: str, target: AnalysisTarget, window: str) -> Measurement:
    check = spec.builtin.prediction_shift
    assert check is not None
    return await _canary_against_stable(
        logic.PREDICTION_SHIFT, target, lambda version: _distribution(url, target, version, window),
        functools.partial(logic.judge_prediction_shift, check), None,
    )  # fmt: skip


async def _quality_reading(
    check: QualityCheck, url: str, target: AnalysisTarget, version: str
) -> logic.QualityReading:
    window = logic.promql_range(check.window)
    labels = await _one(url, logic.evidence_query(check, target, version, window))
    value = await _one(url, logic.quality_query(check, target, version, window))
    return logic.QualityReading(value, labels or 0.0)


async def _quality(spec: AnalysisSpec, url: str, target: AnalysisTarget) -> Measurement:
    check = spec.builtin.quality
    assert check is not None
    return await _canary_against_stable(
        logic.QUALITY, target, lambda version: _quality_reading(check, url, target, version),
        functools.partial(logic.judge_quality, check), logic.QualityReading(None, 0.0),
    )  # fmt: skip


async def _fairness_reading(
    check: FairnessCheck, url: str, target: AnalysisTarget, version: str
) -> logic.FairnessReading:
    rows = await _one(url, logic.fairness_evidence_query(check, target, version))
    value = await _one(url, logic.fairness_query(check, target, version))
    return logic.FairnessReading(value, rows)


async def _fairness(spec: AnalysisSpec, url: str, target: AnalysisTarget) -> Measurement:
    check = spec.builtin.fairness
    assert check is not None
    return await _canary_against_stable(
        logic.FAIRNESS, target, lambda version: _fairness_reading(check, url, target, version),
        functools.partial(logic.judge_fairness, check), logic.FairnessReading(None, None),
    )  # fmt: skip


async def _metric(check: MetricCheck, url: str, target: AnalysisTarget) -> Measurement:
    try:
        promql = logic.render_query(check.query, target)
    except ValueError as error:
        return Measurement(check.name, "Inconclusive", None, str(error))
    try:
        value = await _one(url, promql)
    except _UnansweredError as error:
        return _unanswered(check.name, error)
    return logic.judge_metric(check, value)


async def measure(
    spec: AnalysisSpec,
    target: AnalysisTarget,
    previous: Sequence[AnalysisResult] | None,
    *,
    now: str,
) -> Verdict:
    """Run every check once and decide, carrying ``previous`` (the step's last ``status.analysis``)."""
    url = (spec.prometheus.address if spec.prometheus else None) or prometheus.default_url()
    if url is None:
        measurements = logic.all_inconclusive(spec, logic.NO_PROMETHEUS)
    else:
        window = logic.promql_range(spec.interval)
        rounds: list[Awaitable[Measurement]] = []
        if spec.builtin.error_rate is not None:
            rounds.append(_error_rate(spec, url, target, window))
        if spec.builtin.latency is not None:
            rounds.append(_latency(spec, url, target, window))
        if spec.builtin.prediction_shift is not None:
            rounds.append(_prediction_shift(spec, url, target, window))
        if spec.builtin.quality is not None:
            rounds.append(_quality(spec, url, target))
        if spec.builtin.fairness is not None:
            rounds.append(_fairness(spec, url, target))
        rounds.extend(_metric(check, url, target) for check in spec.metrics or ())
        measurements = list(await asyncio.gather(*rounds))
    return logic.decide(
        measurements,
        failure_limit=spec.failure_limit,
        inconclusive_policy=spec.inconclusive_policy,
        previous=previous,
        now=now,
    )
