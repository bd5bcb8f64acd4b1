"""A ModelDeployment's live quality in its status: a timer reads the recorded series from Prometheus.

Every ``MODELOPS_QUALITY_SECONDS`` (default 60) the timer asks Prometheus (the deployment's
``spec.analysis.prometheus.address``, else the operator's ``MODELOPS_PROMETHEUS_URL``) for the
``modelops_quality:*`` series its PrometheusRule records (``logic.qualityrules``) over the first
window of ``spec.quality.windows``, and writes them per stable and canary version into
``status.quality`` with ``status.qualityMeasuredAt`` (when they were read, written only when they
changed); ``kubectl modelops status`` shows them. No
Prometheus configured, or no answer: the status keeps what it had (the time says how old it is),
and an unanswered query is logged. Only status is written, which no reconcile watches.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from modelops.api import GROUP, VERSION
from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.controller import prometheus
from modelops.logic import conditions as cond
from modelops.logic import qualityrules as logic

QUERY_DEADLINE = 10.0


def interval_seconds() -> float:
    """How often the timer reads quality (``MODELOPS_QUALITY_SECONDS``)."""
    return float(os.environ.get("MODELOPS_QUALITY_SECONDS") or 60.0)


async def read(url: str, scope: logic.Scope, window: str, versions: Mapping[str, str]) -> list[dict[str, Any]]:
    """status.quality for ``versions`` (name → role); PrometheusError when Prometheus gives no answer."""
    samples = await prometheus.query(url, logic.status_query(scope, window), deadline=QUERY_DEADLINE)
    return logic.version_quality(((s.labels, s.value) for s in samples), versions, window)


async def refresh(
    name: str, namespace: str | None, spec: kopf.Spec, status: kopf.Status, patch: kopf.Patch, logger: Any, **_: Any
) -> None:
    """The timer: read the figures and write them into status (nothing on no Prometheus or no answer)."""
    try:
        parsed = ModelDeploymentSpec.model_validate(dict(spec))
    except ValidationError:
        return  # the reconcile says what is wrong with the spec
    versions = logic.shown_versions(status)
    url = (parsed.analysis.prometheus.address if parsed.analysis.prometheus else None) or prometheus.default_url()
    if not namespace or not versions or url is None:
        return
    window = parsed.quality.windows[0]
    try:
        entries = await read(url, logic.Scope(namespace, name, parsed.model), window, versions)
    except prometheus.PrometheusError as error:
        logger.warning(f"live quality not read: {error}")
        return
    if entries == status.get("quality"):
        return  # unchanged: no write, no watch event for every deployment every interval
    patch.status["quality"] = entries
    patch.status["qualityMeasuredAt"] = cond.now_iso()


def setup(registry: kopf.OperatorRegistry) -> None:
    kopf.on.timer(
        GROUP, VERSION, "modeldeployments", id="live-quality", registry=registry,
        interval=interval_seconds(), initial_delay=min(interval_seconds(), 5.0),
    )(refresh)  # fmt: skip
