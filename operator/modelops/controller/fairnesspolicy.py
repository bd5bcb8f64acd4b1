"""A DriftPolicy's ``spec.fairness``: its readings from the Prometheus HTTP API (the I/O; the verdict is
``logic.fairnessloop``'s, asked by ``logic.driftplan``)."""

from __future__ import annotations

from modelops.api.driftpolicy import DriftPolicySpec
from modelops.controller import prometheus as prom
from modelops.logic import driftrules as rules
from modelops.logic import fairnessloop as fairness


async def read(spec: DriftPolicySpec, target: rules.Target, url: str) -> tuple[fairness.Readings | None, str | None]:
    """Each threshold's gap and evidence, or (None, why) when Prometheus does not answer."""
    assert spec.fairness is not None
    readings: dict[tuple[str, str], tuple[float | None, float | None]] = {}
    where = (target.namespace, target.deployment, target.model, target.version)
    try:
        for item in spec.fairness.thresholds:
            value, evidence = fairness.queries(spec.fairness, item, *where)
            readings[fairness.key(item)] = (await prom.query_one(url, value), await prom.query_one(url, evidence))
    except prom.PrometheusError as error:
        return None, str(error)
    return readings, None
