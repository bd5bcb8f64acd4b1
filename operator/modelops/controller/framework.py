"""One idempotent reconcile per kind, bound to create, resume and update.

``register(info, reconcile)`` wires a kind's reconcile function to Kopf. The wrapper does
what every kind needs the same way: parse the spec (an invalid one becomes
``Ready=False``/``Stalled=True`` with the field named, never a crash), time and count the
reconcile, write status in one place (``observedGeneration`` as the object's own
generation, conditions in the standard shape), and post an Event when ``Ready`` changes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf
from pydantic import BaseModel

from modelops.api import GROUP, VERSION, KindInfo
from modelops.controller import metrics, requeue, runtime
from modelops.logic import conditions as cond
from modelops.logic.validation import parse


@dataclass
class Context:
    """What a kind's reconcile gets besides its parsed spec."""

    body: Mapping[str, Any]
    name: str
    namespace: str
    generation: int
    status: Mapping[str, Any]
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]


@dataclass
class Outcome:
    """What a reconcile decided: status fields, the summary, extra conditions, Events."""

    summary: cond.Summary
    status: dict[str, Any] = field(default_factory=dict)
    conditions: Sequence[tuple[str, bool | cond.Status, str, str]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after: float | None = None  # look again later: something outside this object may change
    # The reconcile wrote the whole status itself (a compare-and-swap on the resourceVersion): Kopf's
    # patch, which has no precondition, must not write it again over a newer state.
    status_written: bool = False


Reconcile = Callable[[Any, Context], Awaitable[Outcome]]


def invalid_outcome(message: str) -> Outcome:
    return Outcome(
        summary=cond.Summary(ready=False, reason=cond.Reason.INVALID_SPEC, message=message, stalled=True),
    )


def build_status(old_status: Mapping[str, Any], outcome: Outcome, generation: int, now: str) -> dict[str, Any]:
    """The status patch: the outcome's fields, conditions, and observedGeneration."""
    conditions = list(old_status.get("conditions") or [])
    for type_, status, reason, message in outcome.conditions:
        conditions = cond.set_condition(conditions, type_, status, reason, message, generation=generation, now=now)
    conditions = cond.apply_summary(conditions, outcome.summary, generation=generation, now=now)
    patch = dict(outcome.status)
    patch["conditions"] = conditions
    patch["observedGeneration"] = generation
    return patch


def _ready_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    before = cond.find(old.get("conditions"), cond.READY)
    after = cond.find(new.get("conditions"), cond.READY)
    if before is None or after is None:
        return True
    return (before.get("status"), before.get("reason")) != (after.get("status"), after.get("reason"))


def register(registry: kopf.OperatorRegistry, info: KindInfo, reconcile: Reconcile) -> None:
    """Bind one reconcile to create, resume and update of a kind."""
    spec_model: type[BaseModel] = info.spec

    async def handler(
        body: kopf.Body,
        meta: kopf.Meta,
        spec: kopf.Spec,
        status: kopf.Status,
        patch: kopf.Patch,
        logger: logging.Logger,
        **_: Any,
    ) -> None:
        generation = int(meta.get("generation") or 0)
        old_status = dict(status or {})
        with metrics.timed(info.kind):
            parsed = parse(spec_model, spec)
            if parsed.invalid is not None:
                outcome = invalid_outcome(parsed.invalid.message)
                result = "invalid"
            else:
                context = Context(
                    body=body,
                    name=str(meta.get("name")),
                    namespace=str(meta.get("namespace")),
                    generation=generation,
                    status=old_status,
                    logger=logger,
                )
                outcome = await reconcile(parsed.model, context)
                result = "ok"
            new_status = build_status(old_status, outcome, generation, cond.now_iso())
        metrics.RECONCILES.labels(info.kind, result).inc()
        if not outcome.status_written:
            for key, value in new_status.items():
                patch.status[key] = value
        if _ready_changed(old_status, new_status):
            summary = outcome.summary
            event_type = "Normal" if summary.ready or summary.reconciling else "Warning"
            kopf.event(body, type=event_type, reason=summary.reason, message=summary.message)
        for event_type, reason, message in outcome.events:
            kopf.event(body, type=event_type, reason=reason, message=message)
        # Another look later, without holding back changes meanwhile (see controller/requeue.py).
        name, namespace = str(meta.get("name")), str(meta.get("namespace"))
        if outcome.requeue_after is not None:
            requeue.schedule(info.kind, namespace, name, outcome.requeue_after)
        else:
            requeue.cancel(info.kind, namespace, name)

    async def forget(type: str, name: str, namespace: str | None, memo: Any, **_: Any) -> None:
        """A deleted object's lock and pending look go with it."""
        if type == "DELETED":
            runtime.of(memo).forget(info.kind, str(namespace), name)

    forget.__name__ = f"forget_{info.singular}"
    kopf.on.event(GROUP, VERSION, info.plural, id="forget-deleted", registry=registry)(runtime.bound(forget))
    handler.__name__ = f"reconcile_{info.singular}"
    handler.__qualname__ = handler.__name__
    for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
        decorator(GROUP, VERSION, info.plural, id="reconcile", registry=registry)(runtime.bound(handler))  # type: ignore[arg-type]
