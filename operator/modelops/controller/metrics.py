"""The operator's own Prometheus metrics: reconciles, errors and durations per kind, and each rollout's
state as the ModelDeployment's status holds it (traffic weights, step, analysis verdicts).

The rollout series carry the ModelDeployment's ``namespace`` and ``deployment``: the chart's
ServiceMonitor scrapes them with ``honorLabels`` so the operator pod's own namespace does not replace
them. They are what the chart's canary dashboard shows beside the servers' own series.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
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


class RolloutCollector(Collector):
    """Each ModelDeployment's last written status, exported at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the reconciles write on the event loop; scrapes read in a thread
        self._rollouts: dict[tuple[str, str], Mapping[str, Any]] = {}

    def observe(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        with self._lock:
            self._rollouts[(namespace, name)] = dict(status)

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._rollouts.pop((namespace, name), None)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            rollouts = dict(self._rollouts)
        return rollout_families(rollouts)


ROLLOUTS = RolloutCollector()
REGISTRY.register(ROLLOUTS)
