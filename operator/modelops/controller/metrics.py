"""The operator's own Prometheus metrics: reconciles, errors and durations per kind, each rollout's
state as the ModelDeployment's status holds it (traffic weights, step, analysis verdicts), and each
ModelVersion's training metrics.

These series carry the object's ``namespace``: the chart's ServiceMonitor scrapes them with
``honorLabels`` so the operator pod's own namespace does not replace it. They are what the chart's
canary and quality dashboards show beside the servers' own series.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RECONCILES = Counter(
    "modelops_operator_reconciles_total",
    "Reconciles by kind and result (ok, invalid, error).",
    ["kind", "result"],
)
ERRORS = Counter(
    "modelops_operator_reconcile_errors_total",
    "Reconciles that raised an error, by kind.",
    ["kind"],
)
DURATION = Histogram(
    "modelops_operator_reconcile_duration_seconds",
    "Time spent in one reconcile, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


@contextmanager
def timed(kind: str) -> Iterator[None]:
    """Count and time one reconcile; an exception counts as an error and propagates."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        ERRORS.labels(kind).inc()
        RECONCILES.labels(kind, "error").inc()
        raise
    finally:
        DURATION.labels(kind).observe(time.perf_counter() - started)


def serve(port: int, address: str = "0.0.0.0") -> None:
    """Expose /metrics on a port, in a background thread."""
    start_http_server(port, addr=address)


TRAFFIC_WEIGHT: Final = "modelops_rollout_traffic_weight"
STEP: Final = "modelops_rollout_step"
ANALYSIS: Final = "modelops_rollout_analysis"
ANALYSIS_VALUE: Final = "modelops_rollout_analysis_value"
ROLLOUT_SERIES: Final = (TRAFFIC_WEIGHT, STEP, ANALYSIS, ANALYSIS_VALUE)
PHASES: Final = ("Successful", "Failed", "Inconclusive", "Running")


def rollout_families(rollouts: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[GaugeMetricFamily]:
    """The rollout series of every (namespace, name) → ModelDeployment status."""
    weight = GaugeMetricFamily(TRAFFIC_WEIGHT, "Traffic percentage the operator routes to a version, by role.",
                               labels=["namespace", "deployment", "version", "role"])  # fmt: skip
    step = GaugeMetricFamily(STEP, "The canary step the rollout is at (index into spec.strategy.canary.steps).",
                             labels=["namespace", "deployment"])  # fmt: skip
    verdict = GaugeMetricFamily(ANALYSIS, "The latest verdict of each analysis check: 1 for its phase, else 0.",
                                labels=["namespace", "deployment", "version", "check", "phase"])  # fmt: skip
    value = GaugeMetricFamily(ANALYSIS_VALUE, "The value the latest measurement of each analysis check read.",
                              labels=["namespace", "deployment", "version", "check"])  # fmt: skip
    for (namespace, name), status in sorted(rollouts.items()):
        stable, canary = status.get("stableVersion"), status.get("canaryVersion")
        share = int(status.get("canaryWeight") or 0) if canary else 0
        if stable:
            weight.add_metric([namespace, name, str(stable), "stable"], 100 - share)
        if canary:
            weight.add_metric([namespace, name, str(canary), "canary"], share)
        if status.get("step") is not None:
            step.add_metric([namespace, name], float(status["step"]))
        for result in status.get("analysis") or []:
            version = str(canary or stable or "")
            for phase in PHASES:
                verdict.add_metric([namespace, name, version, result["name"], phase], float(result["phase"] == phase))
            if result.get("value") is not None:
                value.add_metric([namespace, name, version, result["name"]], float(result["value"]))
    return [weight, step, verdict, value]


TRAINING_METRIC: Final = "modelops_version_training_metric"


def training_families(versions: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[GaugeMetricFamily]:
    """``modelops_version_training_metric`` of every (namespace, name) → {model, metrics} of a ModelVersion."""
    family = GaugeMetricFamily(TRAINING_METRIC, "A ModelVersion's metric on its held-out split (spec.metrics).",
                               labels=["namespace", "model", "version", "metric"])  # fmt: skip
    for (namespace, name), version in sorted(versions.items()):
        for metric, value in sorted((version.get("metrics") or {}).items()):
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                family.add_metric([namespace, str(version.get("model") or ""), name, metric], float(value))
    return [family]


class ObjectCollector(Collector):
    """What the last reconcile of each object (namespace, name) saw, turned into families at scrape time."""

    def __init__(self, families: Callable[[Mapping[tuple[str, str], Mapping[str, Any]]], list[GaugeMetricFamily]]):
        self._families = families
        self._lock = threading.Lock()  # the reconciles write on the event loop; scrapes read in a thread
        self._objects: dict[tuple[str, str], Mapping[str, Any]] = {}

    def observe(self, namespace: str, name: str, state: Mapping[str, Any]) -> None:
        with self._lock:
            self._objects[(namespace, name)] = dict(state)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._objects.pop((namespace, name), None)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            objects = dict(self._objects)
        return self._families(objects)


def forget_deleted(collector: ObjectCollector) -> Callable[..., Awaitable[None]]:
    """A Kopf event handler that drops a deleted object's series (no finalizer: a missed event costs only
    a stale series until the operator restarts)."""

    async def on_event(event: Mapping[str, Any], **_: Any) -> None:
        if event.get("type") == "DELETED":
            meta = (event.get("object") or {}).get("metadata") or {}
            collector.forget(str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    return on_event


ROLLOUTS = ObjectCollector(rollout_families)  # ModelDeployment → its status
VERSIONS = ObjectCollector(training_families)  # ModelVersion → {model, metrics}
REGISTRY.register(ROLLOUTS)
REGISTRY.register(VERSIONS)
