"""The Prometheus HTTP API, as canary analysis and drift evaluation use it: instant queries.

``query`` answers the samples of an instant vector (or a scalar as one sample without
labels). Anything that is not a clean answer — Prometheus unreachable, a timeout, an HTTP
error, a query error, an unexpected result type — raises :class:`PrometheusError`, which
callers treat as *inconclusive*, never as a pass or a failure. An empty result is not an
error: it means no data, and the caller decides what that is worth.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import aiohttp


class PrometheusError(Exception):
    """Prometheus gave no usable answer (unreachable, timed out, or rejected the query)."""


class UnreachableError(PrometheusError):
    """No answer from the address at all: its name did not resolve, the connection was refused or lost, or
    the deadline passed (an answer to another query would likely fail the same way)."""


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: its labels and value (NaN stays NaN)."""

    value: float
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)


def default_url() -> str | None:
    """The operator's configured Prometheus (``MODELOPS_PROMETHEUS_URL``), read at each use."""
    return os.environ.get("MODELOPS_PROMETHEUS_URL") or None


async def query(base_url: str, promql: str, *, at: float | None = None, deadline: float = 10.0) -> list[Sample]:
    """Evaluate ``promql`` at ``at`` (default: now) through ``/api/v1/query``, within ``deadline`` seconds."""
    params = {"query": promql, "timeout": f"{max(int((deadline - 0.5) * 1000), 500)}ms"}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = base_url.rstrip("/") + "/api/v1/query"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session,
            session.post(url, data=params) as response,
        ):
            text = await response.text()
            try:
                body = await response.json(content_type=None)
            except ValueError:
                raise PrometheusError(f"{url}: HTTP {response.status}, not JSON: {text[:200]}") from None
    except (TimeoutError, aiohttp.ClientConnectionError, OSError) as error:
        raise UnreachableError(f"{url}: {type(error).__name__}: {error}") from None
    except aiohttp.ClientError as error:
        raise PrometheusError(f"{url}: {type(error).__name__}: {error}") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        detail = body.get("error") if isinstance(body, dict) else None
        raise PrometheusError(f"{url}: query failed: {detail or text[:200]}")
    data = body.get("data") or {}
    result_type = data.get("resultType")
    result = data.get("result")
    try:
        if result_type == "scalar" and isinstance(result, list) and len(result) == 2:
            return [Sample(value=float(result[1]))]
        if result_type != "vector" or not isinstance(result, list):
            raise PrometheusError(f"{url}: expected an instant vector, got {result_type}")
        return [
            Sample(
                value=float(item["value"][1]), labels={str(k): str(v) for k, v in (item.get("metric") or {}).items()}
            )
            for item in result
        ]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise PrometheusError(f"{url}: a malformed {result_type}: {type(error).__name__}: {error}") from None


async def query_one(base_url: str, promql: str, *, at: float | None = None, deadline: float = 10.0) -> float | None:
    """The single value of ``promql``; None when there is no data (empty or NaN)."""
    samples = await query(base_url, promql, at=at, deadline=deadline)
    if not samples:
        return None
    if len(samples) > 1:
        raise PrometheusError(f"expected one series from {promql!r}, got {len(samples)}")
    return samples[0].value if samples[0].finite else None
