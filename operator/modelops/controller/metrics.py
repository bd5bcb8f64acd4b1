"""The operator's own Prometheus metrics: reconciles, errors and durations per kind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram, start_http_server

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
