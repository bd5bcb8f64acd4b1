"""Conditions keep the standard shape and kstatus' rules."""

from __future__ import annotations

from modelops.logic import conditions as cond

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def test_new_condition_has_the_standard_fields() -> None:
    result = cond.set_condition([], "Ready", True, "Reconciled", "fine", generation=3, now=T0)
    assert result == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Reconciled",
            "message": "fine",
            "lastTransitionTime": T0,
            "observedGeneration": 3,
        }
    ]


def test_transition_time_moves_only_when_status_changes() -> None:
    first = cond.set_condition([], "Ready", False, "Pending", "wait", generation=1, now=T0)
    same = cond.set_condition(first, "Ready", False, "Waiting", "still", generation=2, now=T1)
    assert same[0]["lastTransitionTime"] == T0
    assert same[0]["reason"] == "Waiting"
    assert same[0]["observedGeneration"] == 2
    flipped = cond.set_condition(same, "Ready", True, "Reconciled", "ok", generation=2, now=T1)
    assert flipped[0]["lastTransitionTime"] == T1


def test_list_is_keyed_by_type() -> None:
    conditions = cond.set_condition([], "Ready", True, "A", "", generation=1, now=T0)
    conditions = cond.set_condition(conditions, "Validated", True, "B", "", generation=1, now=T0)
    conditions = cond.set_condition(conditions, "Ready", False, "C", "", generation=1, now=T1)
    assert [c["type"] for c in conditions] == ["Ready", "Validated"]
    assert cond.find(conditions, "Ready") is not None
    assert not cond.is_true(conditions, "Ready")
    assert cond.is_true(conditions, "Validated")


def test_reconciling_and_stalled_appear_only_while_true() -> None:
    working = cond.apply_summary(
        [], cond.Summary(ready=False, reason="Pending", message="m", reconciling=True), generation=1, now=T0
    )
    assert {c["type"] for c in working} == {"Ready", "Reconciling"}
    stuck = cond.apply_summary(
        working, cond.Summary(ready=False, reason="InvalidSpec", message="m", stalled=True), generation=2, now=T1
    )
    assert {c["type"] for c in stuck} == {"Ready", "Stalled"}
    done = cond.apply_summary(stuck, cond.Summary(ready=True, reason="Reconciled", message="ok"), generation=3, now=T1)
    assert [c["type"] for c in done] == ["Ready"]
    assert done[0]["status"] == "True"


def test_now_iso_is_rfc3339_utc() -> None:
    import datetime

    moment = datetime.datetime(2026, 5, 4, 3, 2, 1, 999, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert cond.now_iso(moment) == "2026-05-04T01:02:01Z"
