"""The audit records of governance: each write logs what it changed, once, with its evidence; the
trail assembled later from the objects says the same as the log."""

from __future__ import annotations

import json
from typing import Any

from modelops.api import keys
from modelops.logic import audit, governance
from modelops.logic.policy import parse

POLICY = parse({"stages": {"Production": {"approvals": 1, "gates": [{"metric": "accuracy", "threshold": 0.9}]}}})
BODY: dict[str, Any] = {
    "metadata": {"name": "iris-v2", "namespace": "ml", "uid": "u-2"},
    "spec": {"model": "iris", "version": 2, "artifact": {"sha256": "ab" * 32}, "metrics": {"accuracy": 0.95}},
}
T0 = "2026-11-20T09:00:00Z"
T1, T2, T3, T4 = "2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z", "2026-11-20T12:00:00Z", "2026-11-20T13:00:00Z"


def write(before: dict[str, Any], *, desired: str, request: str | None, records: list[dict[str, Any]],
          now: str) -> dict[str, Any]:  # fmt: skip
    """What the reconcile writes on this evidence (logic only), merged over ``before``."""
    decision = governance.decide(
        desired=desired, granted=before.get("stage", "None"), policy=POLICY, metrics=BODY["spec"]["metrics"],
        version_gates=[], records=records, creators=[], history=before.get("history") or [],
        rejected=before.get("rejected"), sha256="ab" * 32, now=now,
        requested_by=governance.parse_requester(request, desired),
    )  # fmt: skip
    patch: dict[str, Any] = {"stage": decision.stage, "gates": decision.gates, "approvals": records,
                             "stageRequest": governance.stage_request(desired, request)}  # fmt: skip
    if decision.transition is not None:
        patch["history"] = governance.append_history(before.get("history"), decision.transition)
    return {**before, **patch}


def test_a_request_an_approval_and_a_grant_are_logged_once_each_with_their_evidence() -> None:
    request = json.dumps({"user": "alice", "stage": "Production", "at": T1})
    step1 = write({}, desired="Production", request=request, records=[], now=T1)
    events = audit.version_events(BODY, {}, step1)
    assert [(e["event"], e["by"], e["stage"]) for e in events] == [("requested", "alice", "Production")]
    assert events[0]["at"] == T1
    assert (events[0]["model"], events[0]["version"], events[0]["uid"]) == ("iris", 2, "u-2")
    assert audit.version_events(BODY, step1, step1) == []  # the same status written again says nothing new

    bob = {"stage": "Production", "user": "bob", "uid": "uid-bob", "groups": ["ml"], "at": T2}
    step2 = write(step1, desired="Production", request=request, records=[bob], now=T2)
    events = audit.version_events(BODY, step1, step2)
    assert [(e["event"], e["by"]) for e in events] == [("approved", "bob"), ("granted", "bob")]
    assert events[0]["evidence"] == {"uid": "uid-bob", "groups": ["ml"]}
    granted = events[1]
    assert (granted["from"], granted["to"], granted["at"]) == ("None", "Production", T2)
    assert granted["evidence"]["gates"] == [
        {"metric": "accuracy", "op": ">=", "threshold": 0.9, "value": 0.95, "passed": True, "source": "policy"}
    ]
    assert granted["evidence"]["approvals"] == [{"user": "bob", "at": T2}]
    assert "asked by alice" in granted["reason"]


def test_archived_by_a_successor_and_rejected_by_a_canary_are_told_apart() -> None:
    production = {"stage": "Production", "history": [{"from": "None", "to": "Production", "by": "bob", "at": T1}]}
    superseded = {**production, "stage": "Archived",
                  "history": governance.append_history(production["history"], governance.supersede("iris-v3", T2))}
    # Archived on request is an archive by whoever asked.
    asked = write(production, desired="Archived", request=json.dumps({"user": "dave", "stage": "Archived", "at": T2}),
                  records=[], now=T2)  # fmt: skip
    events = audit.version_events(BODY, production, asked)
    assert [(e["event"], e["by"], e.get("stage") or e["to"]) for e in events] == [
        ("requested", "dave", "Archived"), ("archived", "dave", "Archived")]
    [archived] = audit.version_events(BODY, production, superseded)
    assert (archived["event"], archived["to"], archived["by"]) == ("archived", "Archived", governance.OPERATOR_IDENTITY)
    assert "superseded: iris-v3" in archived["reason"]

    rejection = {"deployment": "ml/iris", "metric": "error-rate", "value": 0.2, "message": "too many 5xx", "at": T3}
    with_rejection = {**production, "rejected": rejection}
    after = write(with_rejection, desired="Production", request=None, records=[], now=T4)
    events = audit.version_events(BODY, with_rejection, after)
    assert [e["event"] for e in events] == ["rejected"]  # Production was asked for before: no new request
    assert events[0]["evidence"] == {"rejection": rejection}
    rolled = audit.rollback_event(BODY, rejection, by=governance.OPERATOR_IDENTITY)
    assert (rolled["event"], rolled["deployment"], rolled["at"]) == ("rolledBack", "ml/iris", T3)
    assert rolled["evidence"] == {"metric": "error-rate", "value": 0.2, "message": "too many 5xx"}


def test_an_operator_upgraded_under_a_settled_version_logs_no_request() -> None:
    settled = {"stage": "Production", "history": [{"from": "None", "to": "Production", "by": "bob", "at": T1}]}
    assert audit.version_events(BODY, settled, {**settled, "stageRequest": {"stage": "Production"}}) == []
    new = {"stage": "None"}
    assert audit.version_events(BODY, new, {**new, "stageRequest": {"stage": "None"}}) == []
    [asked] = audit.version_events(BODY, new, {**new, "stageRequest": {"stage": "Staging"}})
    assert (asked["event"], asked["by"], asked["stage"]) == ("requested", None, "Staging")


def test_a_record_is_one_json_line_whatever_the_strings_and_its_id_is_stable() -> None:
    hostile = {**BODY, "metadata": {**BODY["metadata"], "name": 'x"\n{"event":"granted"}'}}
    status = {"history": [{"from": "None", "to": "Staging", "by": "a\nb", "at": T1, "reason": "line\nbreak"}]}
    [record] = audit.version_events(hostile, {}, status)
    text = audit.line(record)
    assert "\n" not in text
    assert json.loads(text) == record
    assert audit.version_events(hostile, {}, status)[0]["id"] == record["id"]
    other = {"history": [{**status["history"][0], "at": T2}]}
    assert audit.version_events(hostile, {}, other)[0]["id"] != record["id"]


def test_the_trail_from_the_objects_says_what_the_log_said() -> None:
    request = json.dumps({"user": "alice", "stage": "Production", "at": T1})
    bob = {"stage": "Production", "user": "bob", "at": T2}
    step1 = write({}, desired="Production", request=request, records=[], now=T1)
    step2 = write(step1, desired="Production", request=request, records=[bob], now=T2)
    logged = audit.version_events(BODY, {}, step1) + audit.version_events(BODY, step1, step2)
    final = {**BODY, "status": step2}
    assembled = audit.trail([final])
    assert [r["id"] for r in assembled] == [r["id"] for r in logged]
    # A grant's gates are the log's alone: the status holds the gates of the stage asked for now.
    for record in logged:
        if record["event"] == "granted":
            del record["evidence"]["gates"]
    assert assembled == logged


def test_a_version_ever_in_production_is_deleted_only_when_acknowledged_by_its_name() -> None:
    identity = governance.Identity(user="carol")
    history = [{"from": "Staging", "to": "Production", "by": "bob", "at": T1},
               {"from": "Production", "to": "Archived", "by": "op", "at": T2}]  # fmt: skip
    archived = {"metadata": {"name": "iris-v1", "namespace": "ml"}, "status": {"stage": "Archived", "history": history}}
    try:
        governance.validate_delete(archived, identity)
        raise AssertionError("a delete without the acknowledgement was admitted")
    except governance.DeniedError as error:
        message = str(error)
    assert "ModelVersion ml/iris-v1 was in Production (last entered 2026-11-20T10:00:00Z)" in message
    assert "modelops.io/acknowledge-delete=iris-v1" in message
    wrong = {**archived, "metadata": {**archived["metadata"], "annotations": {keys.ACKNOWLEDGE_DELETE: "yes"}}}
    try:
        governance.validate_delete(wrong, identity)
        raise AssertionError("an acknowledgement that is not the version's name was accepted")
    except governance.DeniedError:
        pass
    acknowledged = {**archived, "metadata": {**archived["metadata"],
                                             "annotations": {keys.ACKNOWLEDGE_DELETE: "iris-v1"}}}  # fmt: skip
    assert governance.validate_delete(acknowledged, identity) == T1
    # A namespace being deleted takes it along (else the namespace stays Terminating for ever).
    assert governance.validate_delete(archived, identity, namespace_terminating=True) == T1
    never = {"metadata": {"name": "iris-v9"}, "status": {"stage": "Staging"}}
    assert governance.validate_delete(never, identity) is None
    # Production held without a history entry (written by hand, or by an old operator) counts too.
    assert governance.ever_in_production({"stage": "Production"}) == "now"
    record = audit.deleted_event({**acknowledged, "spec": BODY["spec"]}, "carol", T3, T1)
    assert (record["event"], record["by"], record["at"]) == ("deleted", "carol", T3)
    assert record["evidence"]["history"] == history
    assert record["evidence"]["lastEnteredProduction"] == T1


def test_a_request_without_the_webhooks_record_is_dated_when_first_seen_and_keeps_that_date() -> None:
    first = governance.stage_request("Staging", None, None, T1)
    assert first == {"stage": "Staging", "at": T1}
    assert governance.stage_request("Staging", None, first, T2) == first  # the same request, seen again
    again = governance.stage_request("Staging", None, {"stage": "None", "at": T2}, T3)
    assert again == {"stage": "Staging", "at": T3}
    # Asked for twice, the same stage makes two records with two ids.
    ids = {audit.version_events(BODY, {"stage": "None", "stageRequest": before}, {"stageRequest": after})[0]["id"]
           for before, after in (({"stage": "None", "at": T0}, first), ({"stage": "None", "at": T2}, again))}
    assert len(ids) == 2
    # The webhook's record wins, with its own time; a record of another stage is not this request's.
    webhook = json.dumps({"user": "alice", "stage": "Staging", "at": T2})
    assert governance.stage_request("Staging", webhook, first, T3) == {"stage": "Staging", "by": "alice", "at": T2}
    other = json.dumps({"user": "alice", "stage": "Production", "at": T2})
    assert governance.stage_request("Staging", other, first, T3) == first
