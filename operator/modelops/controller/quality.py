"""A ModelDeployment's live quality in its status: a timer reads the recorded series from Prometheus.

Every ``MODELOPS_QUALITY_SECONDS`` (default 60) the timer asks Prometheus (the deployment's
``spec.analysis.prometheus.address``, else the operator's ``MODELOPS_PROMETHEUS_URL``) for the
``modelops_quality:*`` series its PrometheusRule records (``logic.qualityrules``) over the first
window of ``spec.quality.windows``, and writes them per stable and canary version into
``status.quality`` with ``status.qualityMeasuredAt`` (when they were read, written only when they
changed); ``kubectl modelops status`` shows them. No
Prometheus configured, or no answer: the status keeps what it had (the time says how old it is),
and an unanswered query is logged. Only status is written, which no reconcile watches.

The deployments of a namespace share their reads (:class:`Reads`, kept for the operator run in its
Runtime): the first timer in an interval asks for the whole namespace's series of one window, the
timers of the other deployments reading the same Prometheus and window wait for that one answer
and pick their own series out of it, so 300 deployments cost one query a minute per namespace, not
300. An address that gives no answer at all (its name does not resolve, the connection is refused,
the deadline passes) is not asked again by anyone until the interval has passed, and is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from pydantic import ValidationError

from modelops.api import GROUP, VERSION
from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.controller import prometheus, runtime
from modelops.logic import conditions as cond
from modelops.logic import qualityrules as logic

QUERY_DEADLINE = 10.0
_LOG = logging.getLogger(__name__)


def interval_seconds() -> float:
    """How often the timer reads quality (``MODELOPS_QUALITY_SECONDS``)."""
    return float(os.environ.get("MODELOPS_QUALITY_SECONDS") or 60.0)


@dataclass(frozen=True)
class Answer:
    """A namespace's series of one window as one query read them, by deployment, and when
    (``qualityMeasuredAt``)."""

    series: dict[logic.Scope, logic.Samples]
    measured_at: str


@dataclass
class _Read:
    at: float  # Reads.clock() when it was asked
    task: asyncio.Task[Answer | None]


@dataclass
class Reads:
    """The run's one read per (Prometheus URL, namespace, window) and interval, shared by the timers.

    ``clock`` is monotonic seconds; every record older than an interval counts for nothing."""

    clock: Callable[[], float] = time.monotonic
    _reads: dict[tuple[str, str, str], _Read] = field(default_factory=dict)
    # URL → when it last answered / last gave no answer at all.
    _answered: dict[str, float] = field(default_factory=dict)
    _down: dict[str, float] = field(default_factory=dict)
    # URL → the read in flight that will tell whether an address not heard from this interval answers.
    _probes: dict[str, asyncio.Task[Answer | None]] = field(default_factory=dict)

    def _fresh(self, at: float | None) -> bool:
        return at is not None and self.clock() - at < interval_seconds()

    def down(self, url: str) -> bool:
        """``url`` gave no answer at all less than an interval ago."""
        return self._fresh(self._down.get(url))

    async def answer(self, url: str, namespace: str, window: str, logger: Any = _LOG) -> Answer | None:
        """The namespace's series of ``window`` from this interval's one read (made now by whoever asks first,
        awaited by the others); None when Prometheus gave no answer (``logger`` of whoever asked first has it)."""
        key = (url, namespace, window)
        read = self._reads.get(key)
        if read is None or not self._fresh(read.at):
            if self.down(url):
                return None
            self._prune()
            task = asyncio.create_task(self._ask(url, namespace, window, logger), name=f"live quality {key}")
            read = self._reads[key] = _Read(self.clock(), task)
        # Shielded: a timer cancelled while it waits (its deployment deleted) leaves the read to the others.
        return await asyncio.shield(read.task)

    async def _ask(self, url: str, namespace: str, window: str, logger: Any) -> Answer | None:
        probe = self._probes.get(url)
        if probe is not None and not probe.done():
            await asyncio.wait([probe])  # learn whether the address answers before asking it again
        elif not self._fresh(self._answered.get(url)) and (me := asyncio.current_task()) is not None:
            self._probes[url] = me
        try:
            if self.down(url):
                return None
            measured_at = cond.now_iso()
            promql = logic.namespace_status_query(namespace, window)
            samples = await prometheus.query(url, promql, deadline=QUERY_DEADLINE)
            self._answered[url] = self.clock()
            return Answer(logic.by_scope((s.labels, s.value) for s in samples), measured_at)
        except prometheus.UnreachableError as error:
            if not self.down(url):
                self._down[url] = self.clock()
                logger.warning(f"live quality not read, nor asked of that address for {interval_seconds():g}s by "
                               f"any deployment: {error}")  # fmt: skip
            return None
        except prometheus.PrometheusError as error:
            self._answered[url] = self.clock()  # it answered, though not with figures: the address is fine
            logger.warning(f"live quality of the deployments of {namespace} not read: {error}")
            return None
        finally:
            if self._probes.get(url) is asyncio.current_task():
                del self._probes[url]

    def _prune(self) -> None:
        """Forget what an interval made worthless (namespaces and addresses no deployment reads any more)."""
        for key, read in list(self._reads.items()):
            if read.task.done() and not self._fresh(read.at):
                del self._reads[key]
        for times in (self._answered, self._down):
            for url, at in list(times.items()):
                if not self._fresh(at):
                    del times[url]


def shared_reads(memo: Any) -> Reads:
    """The timers' shared reads (one per operator run, in its Runtime)."""
    reads: Reads = runtime.of(memo).kept("live-quality-reads", Reads)
    return reads


@dataclass(frozen=True)
class Measured:
    """A deployment's status.quality and when its figures were read."""

    entries: list[dict[str, Any]]
    measured_at: str


async def read(
    url: str, scope: logic.Scope, window: str, versions: Mapping[str, str], *,
    reads: Reads | None = None, logger: Any = _LOG,
) -> Measured | None:  # fmt: skip
    """status.quality for ``versions`` (name → role), picked out of the namespace's read; None on no answer."""
    answer = await (reads if reads is not None else Reads()).answer(url, scope.namespace, window, logger)
    if answer is None:
        return None
    mine = answer.series.get(scope, [])
    return Measured(logic.version_quality(mine, versions, window), answer.measured_at)


async def refresh(
    name: str, namespace: str | None, spec: kopf.Spec, status: kopf.Status, patch: kopf.Patch, logger: Any,
    memo: kopf.Memo, **_: Any,
) -> None:  # fmt: skip
    """The timer: read the figures and write them into status (nothing on no Prometheus or no answer)."""
    try:
        parsed = ModelDeploymentSpec.model_validate(dict(spec))
    except ValidationError:
        return  # the reconcile says what is wrong with the spec
    versions = logic.shown_versions(status)
    url = (parsed.analysis.prometheus.address if parsed.analysis.prometheus else None) or prometheus.default_url()
    if not namespace or not versions or url is None:
        return
    scope = logic.Scope(namespace, name, parsed.model)
    measured = await read(url, scope, parsed.quality.windows[0], versions, reads=shared_reads(memo), logger=logger)
    if measured is None or measured.entries == status.get("quality"):
        return  # no answer, or unchanged: no write, no watch event for every deployment every interval
    patch.status["quality"] = measured.entries
    patch.status["qualityMeasuredAt"] = measured.measured_at


def setup(registry: kopf.OperatorRegistry) -> None:
    kopf.on.timer(
        GROUP, VERSION, "modeldeployments", id="live-quality", registry=registry,
        interval=interval_seconds(), initial_delay=min(interval_seconds(), 5.0),
    )(runtime.bound(refresh))  # fmt: skip
