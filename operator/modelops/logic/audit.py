"""The audit trail of governance: one structured record per transition, for logs that outlive objects.

A version's status holds its own trail (``history``, ``approvals``, ``rejected``), but it goes
when the object is deleted. So every governance transition is also written by the operator as one
JSON line on its log (``modelops.controller.audit``), which a cluster's log pipeline keeps:

- ``requested``: ``spec.stage`` asked for a stage (who asked: the webhook's ``stage-requested-by``);
- ``approved``: an approval record the webhook made from the authenticated identity;
- ``granted``: a stage granted, with the gates and approvals it was granted on;
- ``archived``: Archived granted on request, or Production superseded by another version;
- ``rejected``: Production withdrawn because a canary of the version failed;
- ``rolledBack``: a canary of the version rolled back by a ModelDeployment, with the failing metric;
- ``deleted``: a version that was ever in Production deleted, with the acknowledgement it needed
  (admitted by the validating webhook; its last status goes into the record).

The records are derived from what the operator writes, by comparing a version's governed status
before and after a write (:func:`version_events`), and are logged only once that write succeeded:
a write that meets a conflict is decided again and logs nothing. Each record's ``id`` is the same
whenever the same fact is derived again, so a pipeline can drop a duplicate. Pure functions.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from modelops.logic.conditions import parse_time
from modelops.logic.governance import REJECTED_PREFIX

SCHEMA = "modelops.io/audit/v1"
EVENTS = ("requested", "approved", "granted", "archived", "rejected", "rolledBack", "deleted")

Event = dict[str, Any]


def _subject(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    artifact = spec.get("artifact") or {}
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "model": spec.get("model"),
        "version": spec.get("version"),
        "sha256": artifact.get("sha256") if isinstance(artifact, Mapping) else None,
    }


def event(body: Mapping[str, Any], kind: str, *, at: Any, by: Any, **fields: Any) -> Event:
    """One record about the version ``body``: what, who, when, and the evidence in ``fields``."""
    record: Event = {"audit": SCHEMA, "event": kind, "at": at, "by": by, "kind": "ModelVersion", **_subject(body)}
    record.update({k: v for k, v in fields.items() if v is not None})
    identity = json.dumps([record["uid"], record["name"], kind, at, by, fields.get("stage"), fields.get("to")],
                          default=str)  # fmt: skip
    record["id"] = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return record


def _entries(value: Any) -> list[Mapping[str, Any]]:
    return [e for e in value or () if isinstance(e, Mapping)] if isinstance(value, list) else []


def _transition_kind(entry: Mapping[str, Any]) -> str:
    reason = str(entry.get("reason") or "")
    if entry.get("to") == "Archived":
        return "rejected" if reason.startswith(REJECTED_PREFIX) else "archived"
    return "granted"


def _grant_evidence(after: Mapping[str, Any], stage: Any) -> dict[str, Any]:
    gates = [
        {k: g.get(k) for k in ("metric", "op", "threshold", "value", "passed", "insufficientEvidence", "source")
         if g.get(k) is not None}
        for g in _entries(after.get("gates"))
        if g.get("stage") == stage
    ]  # fmt: skip
    approvals = [
        {k: a.get(k) for k in ("user", "reviewer", "assertedBy", "at") if a.get(k)}
        for a in _entries(after.get("approvals"))
        if a.get("stage") == stage
    ]
    return {"gates": gates, "approvals": approvals}


def version_events(body: Mapping[str, Any], before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[Event]:
    """The records of what a write of ``after`` over ``before`` (a version's status) did, in order.

    ``body`` is the version as read for the write (its spec and metadata name the subject).
    """
    before = before or {}
    out: list[Event] = []
    request, earlier = after.get("stageRequest"), before.get("stageRequest")
    if isinstance(request, Mapping) and request != earlier:
        # A version met for the first time that already holds what it asks for (an operator upgraded
        # under it) requested nothing now.
        settled = earlier is None and request.get("stage") in ("None", before.get("stage"))
        if not settled:
            out.append(event(body, "requested", at=request.get("at"), by=request.get("by"),
                             stage=request.get("stage")))  # fmt: skip
    known = {json.dumps(a, sort_keys=True) for a in _entries(before.get("approvals"))}
    for approval in _entries(after.get("approvals")):
        if json.dumps(approval, sort_keys=True) in known:
            continue
        who = {k: approval.get(k) for k in ("uid", "groups", "reviewer", "assertedBy") if approval.get(k)}
        out.append(event(body, "approved", at=approval.get("at"), by=approval.get("user"),
                         stage=approval.get("stage"), evidence=who or None))  # fmt: skip
    old_history = _entries(before.get("history"))
    for entry in _entries(after.get("history"))[len(old_history) :]:
        kind = _transition_kind(entry)
        evidence: dict[str, Any] | None = _grant_evidence(after, entry.get("to")) if kind == "granted" else None
        if kind == "rejected" and isinstance(after.get("rejected"), Mapping):
            evidence = {"rejection": dict(after["rejected"])}
        out.append(event(body, kind, at=entry.get("at"), by=entry.get("by"), **{"from": entry.get("from")},
                         to=entry.get("to"), reason=entry.get("reason"), evidence=evidence))  # fmt: skip
    return out


def rollback_event(body: Mapping[str, Any], rejection: Mapping[str, Any], by: str) -> Event:
    """The record of a canary of the version ``body`` rolled back (``status.rejected`` as written)."""
    evidence = {k: rejection.get(k) for k in ("metric", "value", "message") if rejection.get(k) is not None}
    return event(body, "rolledBack", at=rejection.get("at"), by=by, deployment=rejection.get("deployment"),
                 evidence=evidence)  # fmt: skip


def deleted_event(body: Mapping[str, Any], by: str, at: str, entered: str) -> Event:
    """The record of a delete of a version that was in Production, admitted with its acknowledgement."""
    status = body.get("status") or {}
    evidence = {
        "lastEnteredProduction": entered,
        "stage": status.get("stage"),
        "history": _entries(status.get("history")),
        "approvals": _entries(status.get("approvals")),
    }
    record = event(body, "deleted", at=at, by=by, evidence=evidence)
    # One uid is deleted once: an admission repeated (a client's retry, a re-sent request) is the same
    # fact, so its id does not depend on when it was admitted, and a log pipeline keeps one of them.
    identity = json.dumps([record["uid"], record["name"], "deleted", by], default=str)
    record["id"] = hashlib.sha256(identity.encode()).hexdigest()[:24]
    return record


def line(record: Mapping[str, Any]) -> str:
    """A record as one JSON line (keys sorted, no spaces: grep- and jq-friendly)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)


def trail(versions: Sequence[Mapping[str, Any]]) -> list[Event]:
    """A model's trail assembled from its versions' status (the plugin's ``audit``), oldest first.

    The same records as the log's (the same ids), as far as the objects still hold them: requests
    are only in the log (the status keeps the last one), so are the gates a grant passed then, and
    deleted versions are gone from the objects.
    """
    out: list[Event] = []
    for body in versions:
        status = body.get("status") or {}
        derived = version_events(body, {}, {k: v for k, v in status.items() if k != "stageRequest"})
        for record in derived:
            # status.gates are the gates of the stage asked for now, not of a grant made earlier: only
            # the log holds a grant's gates as they were.
            if record["event"] == "granted":
                record["evidence"].pop("gates", None)
        rejected = status.get("rejected")
        if isinstance(rejected, Mapping):
            derived.append(rollback_event(body, rejected, by=str(rejected.get("deployment"))))
        request = status.get("stageRequest")
        if isinstance(request, Mapping):
            derived.append(event(body, "requested", at=request.get("at"), by=request.get("by"),
                                 stage=request.get("stage")))  # fmt: skip
        out += derived
    far = datetime.datetime.max.replace(tzinfo=datetime.UTC)
    return sorted(out, key=lambda e: (parse_time(e.get("at")) or far, str(e.get("name"))))
