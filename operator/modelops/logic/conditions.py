"""Conditions in the standard Kubernetes shape, and the summary that kstatus reads.

Rules kept here, in one place:
- conditions are a list keyed by ``type``;
- ``lastTransitionTime`` changes only when a condition's ``status`` changes;
- ``Ready`` is always present and summarises the object;
- ``Reconciling`` and ``Stalled`` appear only while they are true (kstatus' convention:
  an absent abnormal-true condition means "no");
- reasons are CamelCase constants from :class:`Reason`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ConditionDict = dict[str, Any]
Status = Literal["True", "False", "Unknown"]

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"


class Reason:
    """Condition reasons, shared by all kinds (CamelCase, as the API conventions ask)."""

    RECONCILED = "Reconciled"
    INVALID_SPEC = "InvalidSpec"
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    NOT_FOUND = "NotFound"
    WAITING = "Waiting"
    NOT_IMPLEMENTED = "NotImplemented"
    AWAITING_APPROVAL = "AwaitingApproval"
    GATES_FAILED = "GatesFailed"
    ROLLED_BACK = "RolledBack"
    INTERNAL_ERROR = "InternalError"
    STATUS_REPAIRED = "StatusRepaired"


def now_iso(now: datetime.datetime | None = None) -> str:
    """A timestamp in the API's RFC 3339 form, to the second, in UTC."""
    moment = now or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 timestamp as an aware datetime (UTC when it names no zone); None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def find(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    """The condition of a type, or None."""
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> bool:
    condition = find(conditions, type_)
    return condition is not None and condition.get("status") == "True"


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: bool | Status,
    reason: str,
    message: str,
    *,
    generation: int,
    now: str,
) -> list[ConditionDict]:
    """A new list with one condition set; the transition time moves only on a status change."""
    status_text: Status = ("True" if status else "False") if isinstance(status, bool) else status
    result: list[ConditionDict] = []
    replaced = False
    for condition in conditions or ():
        if condition.get("type") != type_:
            result.append(dict(condition))
            continue
        replaced = True
        changed = condition.get("status") != status_text
        result.append(
            {
                "type": type_,
                "status": status_text,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now if changed else condition.get("lastTransitionTime", now),
                "observedGeneration": generation,
            }
        )
    if not replaced:
        result.append(
            {
                "type": type_,
                "status": status_text,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
                "observedGeneration": generation,
            }
        )
    return result


def remove_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> list[ConditionDict]:
    """A new list without the condition of that type."""
    return [dict(c) for c in conditions or () if c.get("type") != type_]


@dataclass(frozen=True)
class Summary:
    """How an object is, in kstatus terms: ready, still working, or stuck until someone acts."""

    ready: bool
    reason: str
    message: str
    reconciling: bool = False
    stalled: bool = False


def apply_summary(
    conditions: Sequence[Mapping[str, Any]] | None,
    summary: Summary,
    *,
    generation: int,
    now: str,
) -> list[ConditionDict]:
    """Set Ready from the summary; add Reconciling/Stalled while true, drop them otherwise."""
    result = set_condition(
        conditions, READY, summary.ready, summary.reason, summary.message, generation=generation, now=now
    )
    for type_, active in ((RECONCILING, summary.reconciling), (STALLED, summary.stalled)):
        if active:
            result = set_condition(result, type_, True, summary.reason, summary.message, generation=generation, now=now)
        else:
            result = remove_condition(result, type_)
    return result
