"""Governance decisions as tables: gates, approvals, four eyes, rejection, admission rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelops.logic import governance as gov
from modelops.logic.governance import DeniedError, Identity
from modelops.logic.policy import Policy, parse

NOW = "2026-01-02T00:00:00Z"
ALICE = Identity("alice", "u-alice", ("team",))
BOB = Identity("bob", "u-bob")
ARGO = "system:serviceaccount:argocd:argocd-application-controller"
STRICT = parse(
    {
        "stages": {
            "Staging": {"gates": [{"metric": "accuracy", "threshold": 0.8}]},
            "Production": {"approvals": 1, "fourEyes": True, "gates": [{"metric": "accuracy", "threshold": 0.9}]},
        },
        "trustedAppliers": [ARGO],
        "operatorUsers": ["operator"],
    }
)


def record(stage: str, user: str, at: str = "2026-01-01T00:00:00Z", **extra: str) -> dict[str, Any]:
    return {"stage": stage, "user": user, "at": at, **extra}


def decide(**overrides: Any) -> gov.Decision:
    args: dict[str, Any] = {
        "desired": "Production",
        "granted": "Staging",
        "policy": STRICT,
        "metrics": {"accuracy": 0.95},
        "version_gates": [],
        "records": [],
        "creators": ["alice"],
        "history": [],
        "rejected": None,
        "sha256": "ab" * 32,
        "now": NOW,
    }
    args.update(overrides)
    return gov.decide(**args)


def conditions(decision: gov.Decision) -> dict[str, tuple[bool, str, str]]:
    return {type_: (status, reason, message) for type_, status, reason, message in decision.conditions}


# --- decisions ------------------------------------------------------------------------------------


def test_production_is_held_without_an_approval_and_says_so() -> None:
    decision = decide()
    assert decision.stage == "Staging"
    assert decision.transition is None
    assert not decision.ready
    assert decision.reason == "AwaitingApproval"
    approved = conditions(decision)["Approved"]
    assert approved[:2] == (False, "AwaitingApproval")
    assert "Production needs 1 approval(s), has 0" in approved[2]
    assert conditions(decision)["Validated"][:2] == (True, "GatesPassed")


def test_production_is_granted_with_gates_passing_and_an_approval() -> None:
    decision = decide(records=[record("Production", "bob")])
    assert decision.stage == "Production"
    assert decision.transition is not None
    assert decision.transition["from"] == "Staging"
    assert decision.transition["to"] == "Production"
    assert decision.transition["by"] == "bob"
    assert "approved by bob" in decision.transition["reason"]
    assert decision.ready
    assert conditions(decision)["IntegrityVerified"][0] is True
    assert "does not read the artifact" in conditions(decision)["IntegrityVerified"][2]


@pytest.mark.parametrize(
    ("metrics", "version_gates", "problem"),
    [
        ({"accuracy": 0.85}, [], "accuracy 0.85 is not >= 0.9"),
        ({}, [], "accuracy is missing from spec.metrics"),
        ({"accuracy": float("nan")}, [], "accuracy is missing"),
        (
            {"accuracy": 0.95, "f1": 0.5},
            [{"stage": "Production", "metric": "f1", "op": ">=", "threshold": 0.9}],
            "f1 0.5 is not >= 0.9",
        ),
        (
            {"accuracy": 0.95, "latency": 30.0},
            [{"stage": "Production", "metric": "latency", "op": "<", "threshold": 20}],
            "latency 30 is not < 20",
        ),
    ],
)
def test_failing_gates_hold_the_stage_naming_the_metric(
    metrics: dict[str, float], version_gates: list[dict[str, Any]], problem: str
) -> None:
    decision = decide(metrics=metrics, version_gates=version_gates, records=[record("Production", "bob")])
    assert decision.stage == "Staging"
    assert decision.reason == "GatesFailed"
    validated = conditions(decision)["Validated"]
    assert validated[:2] == (False, "GatesFailed")
    assert problem in validated[2]
    assert problem in decision.message


def test_version_gates_for_another_stage_do_not_apply_and_status_lists_every_gate() -> None:
    gates = [{"stage": "Staging", "metric": "f1", "op": ">=", "threshold": 0.99}]
    decision = decide(version_gates=gates, records=[record("Production", "bob")], metrics={"accuracy": 0.95, "f1": 0.1})
    assert decision.stage == "Production"
    assert decision.gates == [
        {
            "stage": "Production",
            "metric": "accuracy",
            "op": ">=",
            "threshold": 0.9,
            "value": 0.95,
            "passed": True,
            "source": "policy",
        }
    ]


@pytest.mark.parametrize(
    ("records", "creators", "rejected", "history", "granted", "why"),
    [
        ([record("Production", "alice")], ["alice"], None, [], False, "four eyes"),
        ([record("Production", "carol")], ["alice", "carol"], None, [], False, "four eyes"),
        ([record("Staging", "bob")], ["alice"], None, [], False, "has 0"),
        (
            [record("Production", "bob", at="2026-01-01T00:00:00Z")],
            ["alice"],
            {"deployment": "ml/d", "metric": "error_rate", "value": 0.2, "at": "2026-01-01T12:00:00Z"},
            [],
            False,
            "rejected",
        ),
        (
            [record("Production", "bob", at="2026-01-01T13:00:00Z")],
            ["alice"],
            {"deployment": "ml/d", "metric": "error_rate", "value": 0.2, "at": "2026-01-01T12:00:00Z"},
            [],
            True,
            "",
        ),
        (
            [record("Production", "bob", at="2026-01-01T00:00:00Z")],
            ["alice"],
            None,
            [{"from": "Production", "to": "Archived", "by": "op", "at": "2026-01-01T06:00:00Z"}],
            False,
            "left Production",
        ),
        ([record("Production", ARGO, reviewer="alice", assertedBy=ARGO)], ["alice"], None, [], False, "four eyes"),
        ([record("Production", ARGO, reviewer="dave", assertedBy=ARGO)], [ARGO], None, [], True, ""),
        (
            [record("Production", "mallory", reviewer="dave", assertedBy="mallory")],
            ["alice"],
            None,
            [],
            False,
            "not a trusted applier",
        ),
    ],
)
def test_which_approvals_count(
    records: list[dict[str, Any]],
    creators: list[str],
    rejected: dict[str, Any] | None,
    history: list[dict[str, Any]],
    granted: bool,
    why: str,
) -> None:
    decision = decide(records=records, creators=creators, rejected=rejected, history=history)
    assert (decision.stage == "Production") is granted
    assert why in conditions(decision)["Approved"][2]


def test_two_records_of_one_person_count_once() -> None:
    policy = parse({"stages": {"Production": {"approvals": 2}}})
    decision = decide(policy=policy, records=[record("Production", "bob"), record("Production", "bob", reviewer="x")])
    # bob by himself and "x" asserted by bob (not trusted): neither is a second person.
    assert decision.stage == "Staging"
    assert "has 1" in conditions(decision)["Approved"][2]


@pytest.mark.parametrize(("desired", "granted"), [("Archived", "Production"), ("None", "Staging")])
def test_moves_out_of_governed_stages_are_granted_at_once(desired: str, granted: str) -> None:
    decision = decide(desired=desired, granted=granted)
    assert decision.stage == desired
    assert decision.transition is not None
    assert decision.transition["by"] == gov.OPERATOR_IDENTITY


def test_a_granted_stage_is_idempotent() -> None:
    decision = decide(desired="Staging", granted="Staging")
    assert decision.transition is None
    assert decision.ready
    assert decide(desired="Staging", granted="Staging") == decision


def test_default_policy_grants_staging_without_approval() -> None:
    decision = decide(policy=Policy(), desired="Staging", granted="None")
    assert decision.stage == "Staging"
    assert conditions(decision)["Approved"][1] == "NotRequired"


def test_supersede_entry_and_history_append() -> None:
    entry = gov.supersede("v2", NOW)
    assert (entry["from"], entry["to"], entry["at"]) == ("Production", "Archived", NOW)
    assert "v2" in entry["reason"]
    history = [{"from": "None", "to": "Staging"}]
    assert gov.append_history(history, entry) == [*history, entry]
    assert gov.append_history(history, None) == history


# --- records --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count", "problem"),
    [
        (None, 0, None),
        ("not json", 0, "not JSON"),
        ('{"a": 1}', 0, "not a JSON list"),
        ('[1, {"stage": "Prod", "user": "x", "at": "2026-01-01T00:00:00Z"}]', 0, "not an object"),
        ('[{"stage": "Production", "user": "x", "at": "yesterday"}]', 0, "not a timestamp"),
        ('[{"stage": "Production", "user": "", "at": "2026-01-01T00:00:00Z"}]', 0, "user is missing"),
        ('[{"stage": "Production", "user": "x", "at": "2026-01-01T00:00:00Z", "odd": 1}]', 1, None),
    ],
)
def test_records_are_parsed_defensively(text: str | None, count: int, problem: str | None) -> None:
    records, problems = gov.parse_records(text)
    assert len(records) == count
    if problem is None:
        assert problems == []
    else:
        assert problem in problems[0]
    assert all("odd" not in r for r in records)


def test_creator_is_parsed_defensively() -> None:
    assert gov.parse_creator(None) == (None, None)
    assert gov.parse_creator('{"user": "alice"}') == ("alice", None)
    assert gov.parse_creator("{")[1] is not None
    assert gov.parse_creator("[]")[1] is not None


# --- admission: mutation --------------------------------------------------------------------------


def test_create_records_the_creator() -> None:
    result = gov.mutate_version("CREATE", {}, {}, ALICE, STRICT, NOW)
    assert json.loads(result[gov.CREATED_BY]) == {"user": "alice", "uid": "u-alice", "groups": ["team"]}
    assert gov.APPROVALS not in result


def test_an_approval_is_recorded_from_the_authenticated_identity() -> None:
    old = {gov.CREATED_BY: '{"user":"alice"}'}
    result = gov.mutate_version("UPDATE", old, {**old, gov.APPROVE: "Production"}, BOB, STRICT, NOW)
    records = json.loads(result[gov.APPROVALS])
    assert records == [{"stage": "Production", "user": "bob", "uid": "u-bob", "at": NOW}]
    assert gov.CREATED_BY not in result  # unchanged, nothing to set


def test_approving_again_is_one_record_with_the_newer_time() -> None:
    old = {
        gov.CREATED_BY: '{"user":"alice"}',
        gov.APPROVE: "Staging",
        gov.APPROVALS: json.dumps([record("Production", "bob", at="2026-01-01T00:00:00Z")]),
    }
    result = gov.mutate_version("UPDATE", old, {**old, gov.APPROVE: "Production"}, BOB, STRICT, NOW)
    assert [(r["user"], r["at"]) for r in json.loads(result[gov.APPROVALS])] == [("bob", NOW)]


def test_an_unchanged_approve_annotation_records_nothing() -> None:
    old = {gov.CREATED_BY: '{"user":"alice"}', gov.APPROVE: "Production"}
    assert gov.requested_approval("UPDATE", old, dict(old)) is None
    assert gov.mutate_version("UPDATE", old, dict(old), BOB, STRICT, NOW) == {}


def test_a_replace_without_the_records_keeps_them() -> None:
    old = {gov.CREATED_BY: '{"user":"alice"}', gov.APPROVALS: "[]"}
    assert gov.mutate_version("UPDATE", old, {}, BOB, STRICT, NOW) == old


@pytest.mark.parametrize(
    ("operation", "old", "new", "identity", "message"),
    [
        ("CREATE", {}, {gov.APPROVALS: "[]"}, BOB, "written by the modelops admission webhook only"),
        ("CREATE", {}, {gov.CREATED_BY: '{"user":"x"}'}, BOB, "written by the modelops admission webhook only"),
        ("UPDATE", {gov.APPROVALS: "[]"}, {gov.APPROVALS: "[{}]"}, BOB, gov.APPROVALS),
        ("UPDATE", {gov.CREATED_BY: '{"user":"a"}'}, {gov.CREATED_BY: '{"user":"b"}'}, BOB, gov.CREATED_BY),
        ("UPDATE", {}, {gov.APPROVE: "Prod"}, BOB, "must be Staging or Production"),
        (
            "UPDATE",
            {gov.CREATED_BY: '{"user":"bob"}'},
            {gov.CREATED_BY: '{"user":"bob"}', gov.APPROVE: "Production"},
            BOB,
            "four eyes: bob created this ModelVersion",
        ),
        ("CREATE", {}, {gov.APPROVE: "Production"}, BOB, "four eyes"),
        ("UPDATE", {}, {gov.REVIEWER: "alice", gov.APPROVE: "Production"}, BOB, "trusted applier"),
    ],
)
def test_forbidden_requests_are_denied_with_a_reason(
    operation: str, old: dict[str, str], new: dict[str, str], identity: Identity, message: str
) -> None:
    with pytest.raises(DeniedError, match=message):
        gov.mutate_version(operation, old, new, identity, STRICT, NOW)


def test_a_trusted_applier_asserts_the_reviewer() -> None:
    argo = Identity(ARGO)
    new = {gov.APPROVE: "Production", gov.REVIEWER: "dave"}
    result = gov.mutate_version("CREATE", {}, new, argo, STRICT, NOW)
    [rec] = json.loads(result[gov.APPROVALS])
    assert rec["user"] == ARGO
    assert rec["reviewer"] == "dave"
    assert rec["assertedBy"] == ARGO
    # The applier's own creation does not block the asserted reviewer (four eyes is about people).
    with pytest.raises(DeniedError, match="four eyes"):
        gov.mutate_version("CREATE", {}, {gov.APPROVE: "Production"}, argo, STRICT, NOW)


# --- admission: validation ------------------------------------------------------------------------


def version(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    base = {"model": "m", "version": 1, "artifact": {"uri": "s3://b/k", "sha256": "a" * 64}, "metrics": {"f1": 0.9}}
    return {"metadata": {"annotations": annotations or {}}, "spec": {**base, **spec}}


@pytest.mark.parametrize("field", ["artifact", "metrics", "lineage"])
def test_immutable_fields_get_the_cel_message(field: str) -> None:
    old = version(lineage={"image": "a"})
    new = version(lineage={"image": "a"})
    new["spec"][field] = {"changed": 1}
    with pytest.raises(DeniedError) as caught:
        gov.validate_version("UPDATE", old, new, BOB)
    assert str(caught.value) == f"spec.{field} is immutable once set: register a new ModelVersion instead"


def test_setting_an_unset_field_and_other_edits_are_allowed() -> None:
    gov.validate_version("UPDATE", version(), version(lineage={"image": "a"}, stage="Production"), BOB)


def test_records_are_append_only_and_only_the_requester_adds() -> None:
    mine = json.dumps([record("Production", "bob")])
    with pytest.raises(DeniedError, match="cannot be removed"):
        gov.validate_version("UPDATE", version({gov.APPROVALS: mine}), version({gov.APPROVALS: "[]"}), ALICE)
    with pytest.raises(DeniedError, match="a record by bob cannot be written by alice"):
        gov.validate_version("UPDATE", version(), version({gov.APPROVALS: mine}), ALICE)
    gov.validate_version("UPDATE", version(), version({gov.APPROVALS: mine}), BOB)
    gov.validate_version("UPDATE", version({gov.APPROVALS: mine}), version({gov.APPROVALS: mine}), ALICE)
    with pytest.raises(DeniedError, match="must name the authenticated creator"):
        gov.validate_version("CREATE", None, version({gov.CREATED_BY: '{"user":"bob"}'}), ALICE)


@pytest.mark.parametrize("field", ["stage", "approvals", "history", "rejected"])
def test_governed_status_is_written_by_operator_users_only(field: str) -> None:
    old = {"stage": "Staging", "message": "x"}
    new = {**old, field: "Production" if field == "stage" else [{"x": 1}]}
    with pytest.raises(DeniedError, match=f"status.{field} is written by the modelops operator only"):
        gov.validate_status(old, new, BOB, STRICT)
    gov.validate_status(old, new, Identity("operator"), STRICT)
    gov.validate_status(old, {**old, "message": "y"}, BOB, STRICT)


# --- admission: deployments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("production", "version", "stage", "track", "message"),
    [
        (True, "v1", "Production", None, None),
        (True, "v1", "Staging", None, "ModelVersion v1 has granted stage Staging"),
        (False, "v1", "Staging", None, None),
        (False, "v1", "None", None, "ModelVersion v1 has granted stage None"),
        (False, "v1", "Archived", None, "may only serve Staging or Production"),
        (False, "v1", None, None, "does not exist"),
        (True, None, None, "Staging", "may only track Production, not Staging"),
        (True, None, None, "Production", None),
        (False, None, None, "Staging", None),
    ],
)
def test_deployments_serve_only_granted_stages(
    production: bool, version: str | None, stage: str | None, track: str | None, message: str | None
) -> None:
    def admit() -> None:
        gov.admit_deployment(
            production_namespace=production, namespace="ml", version=version, version_stage=stage, track=track
        )

    if message is None:
        admit()
    else:
        with pytest.raises(DeniedError, match=message):
            admit()


def test_trainingrun_creation_records_the_creator_and_protects_it() -> None:
    created = gov.mutate_trainingrun("CREATE", {}, {}, ALICE)
    assert json.loads(created[gov.CREATED_BY])["user"] == "alice"
    assert gov.mutate_trainingrun("UPDATE", created, dict(created), BOB) == {}
    assert gov.mutate_trainingrun("UPDATE", created, {}, BOB) == created
    with pytest.raises(DeniedError, match="written by the modelops admission webhook only"):
        gov.mutate_trainingrun("UPDATE", created, {gov.CREATED_BY: '{"user":"bob"}'}, BOB)
    with pytest.raises(DeniedError, match="written by the modelops admission webhook only"):
        gov.mutate_trainingrun("CREATE", {}, {gov.CREATED_BY: '{"user":"bob"}'}, BOB)


def test_the_creator_of_the_trainingrun_cannot_approve_its_version() -> None:
    old = {gov.CREATED_BY: '{"user":"system:serviceaccount:modelops-system:modelops-operator"}'}
    new = {**old, gov.APPROVE: "Production"}
    with pytest.raises(DeniedError, match="alice created the TrainingRun"):
        gov.mutate_version("UPDATE", old, new, ALICE, STRICT, NOW, ["alice"])
    assert gov.mutate_version("UPDATE", old, new, BOB, STRICT, NOW, ["alice"])[gov.APPROVALS]


# --- who asked for a stage ------------------------------------------------------------------------


def test_asking_for_a_stage_is_recorded_from_the_authenticated_identity() -> None:
    created = gov.mutate_version("CREATE", {}, {}, ALICE, STRICT, NOW, stages=(None, "Staging"))
    assert json.loads(created[gov.STAGE_REQUESTED_BY]) == {"user": "alice", "stage": "Staging", "at": NOW}
    old = {gov.CREATED_BY: '{"user":"alice"}', gov.STAGE_REQUESTED_BY: created[gov.STAGE_REQUESTED_BY]}
    moved = gov.mutate_version("UPDATE", old, dict(old), BOB, STRICT, NOW, stages=("Staging", "Production"))
    assert json.loads(moved[gov.STAGE_REQUESTED_BY])["user"] == "bob"
    # Another edit that leaves spec.stage alone records nobody new.
    assert gov.STAGE_REQUESTED_BY not in gov.mutate_version(
        "UPDATE", old, dict(old), BOB, STRICT, NOW, stages=("Staging", "Staging")
    )
    assert gov.STAGE_REQUESTED_BY not in gov.mutate_version("CREATE", {}, {}, ALICE, STRICT, NOW, stages=(None, "None"))


def test_the_stage_request_record_cannot_be_forged() -> None:
    forged = {gov.STAGE_REQUESTED_BY: '{"user":"ceo","stage":"Production","at":"2026-01-01T00:00:00Z"}'}
    with pytest.raises(gov.DeniedError, match="written by the modelops admission webhook only"):
        gov.mutate_version("CREATE", {}, forged, ALICE, STRICT, NOW, stages=(None, "Production"))


def test_a_grant_without_approval_is_by_whoever_asked() -> None:
    asked = decide(desired="Staging", granted="None", requested_by="alice")
    assert asked.transition is not None
    assert asked.transition["by"] == "alice"
    assert "asked by alice" in asked.transition["reason"]
    unknown = decide(desired="Staging", granted="None")
    assert unknown.transition is not None
    assert unknown.transition["by"] == gov.OPERATOR_IDENTITY
    approved = decide(records=[record("Production", "bob", at=NOW)], requested_by="alice")
    assert approved.transition is not None
    assert approved.transition["by"] == "bob"  # the approver answers for a governed grant
    assert "asked by alice" in approved.transition["reason"]
    assert gov.parse_requester('{"user":"alice","stage":"Staging"}', "Production") is None  # another stage's ask
    assert gov.parse_requester("not json", "Staging") is None


# --- who trained a version (spec.trainedBy) --------------------------------------------------------


def test_trainers_are_read_defensively() -> None:
    spec = {"trainedBy": [{"user": "alice", "via": "created TrainingRun ml/t"}, {"user": ""}, "bob", {"uid": "x"},
                          {"user": "alice"}, {"user": "carol"}]}  # fmt: skip
    assert gov.trainers(spec) == ["alice", "carol"]
    assert gov.trainers({"trainedBy": "alice"}) == []
    assert gov.trainers(None) == []


def test_trained_by_is_recorded_at_registration_and_never_changed() -> None:
    stored = {"spec": {"model": "iris", "version": 1, "trainedBy": [{"user": "alice"}]}}
    for changed in ([{"user": "bob"}], [], None):
        with pytest.raises(DeniedError, match=r"spec\.trainedBy is recorded when the version is registered"):
            gov.validate_version("UPDATE", stored, {"spec": {**stored["spec"], "trainedBy": changed}}, ALICE, STRICT)
    added = {"spec": {"model": "iris", "version": 1, "trainedBy": [{"user": "alice"}]}}
    with pytest.raises(DeniedError, match="cannot be set or changed later"):
        gov.validate_version("UPDATE", {"spec": {"model": "iris", "version": 1}}, added, Identity("operator"), STRICT)
    gov.validate_version("UPDATE", stored, {"spec": dict(stored["spec"])}, ALICE, STRICT)


@pytest.mark.parametrize(("who", "allowed"), [("operator", True), (ARGO, True), ("alice", False)])
def test_only_the_operator_or_a_trusted_applier_writes_trained_by(who: str, allowed: bool) -> None:
    new = {"spec": {"model": "iris", "version": 1, "trainedBy": [{"user": "carol"}]}, "metadata": {}}
    if allowed:
        gov.validate_version("CREATE", None, new, Identity(who), STRICT)
    else:
        with pytest.raises(DeniedError, match="alice is neither: remove it"):
            gov.validate_version("CREATE", None, new, Identity(who), STRICT)


def test_a_trainer_recorded_on_the_version_cannot_approve_it() -> None:
    """The run may be gone: trainedBy on the version is enough (webhook and reconcile both)."""
    old = {gov.CREATED_BY: '{"user":"operator"}'}
    new = {**old, gov.APPROVE: "Production"}
    upstream = gov.trainers({"trainedBy": [{"user": "alice"}]})
    with pytest.raises(DeniedError, match="four eyes: alice created the TrainingRun"):
        gov.mutate_version("UPDATE", old, new, ALICE, STRICT, NOW, upstream)
    decision = decide(records=[record("Production", "alice")], creators=["operator", *upstream])
    assert decision.stage == "Staging"
    assert "alice (four eyes: created or trained the version)" in conditions(decision)["Approved"][2]


# --- a rejection of a version in Production ---------------------------------------------------------

GRANTED = [{"from": "Staging", "to": "Production", "by": "bob", "at": "2026-01-01T12:00:00Z"}]
REJECTED = {"deployment": "ml/iris", "metric": "error_rate", "value": 0.4, "message": "5xx",
            "at": "2026-01-01T13:00:00Z"}


def test_a_rejection_after_the_grant_withdraws_production() -> None:
    decision = decide(granted="Production", history=GRANTED, rejected=REJECTED,
                      records=[record("Production", "bob", "2026-01-01T11:00:00Z")])  # fmt: skip
    assert decision.stage == "Archived"
    assert not decision.ready
    assert decision.reason == "Rejected"
    assert decision.transition is not None
    assert (decision.transition["from"], decision.transition["to"]) == ("Production", "Archived")
    assert decision.transition["by"] == gov.OPERATOR_IDENTITY
    assert "a canary in ml/iris failed on error_rate = 0.4: 5xx" in decision.transition["reason"]
    assert "approve Production again" in decision.message


def test_after_the_withdrawal_only_a_newer_approval_brings_production_back() -> None:
    history = [*GRANTED, {"from": "Production", "to": "Archived", "by": "op", "at": "2026-01-01T13:00:05Z"}]
    old = record("Production", "bob", "2026-01-01T11:00:00Z")
    held = decide(granted="Archived", history=history, rejected=REJECTED, records=[old])
    assert held.stage == "Archived"
    assert "given before the version was rejected or left Production" in conditions(held)["Approved"][2]
    again = decide(granted="Archived", history=history, rejected=REJECTED,
                   records=[old, record("Production", "carol", "2026-01-01T14:00:00Z")])  # fmt: skip
    assert again.stage == "Production"
    # Granted again after the rejection: that rejection is answered and withdraws nothing any more.
    regranted = [*history, {"from": "Archived", "to": "Production", "by": "carol", "at": "2026-01-01T14:00:01Z"}]
    kept = decide(granted="Production", history=regranted, rejected=REJECTED, records=[old])
    assert kept.stage == "Production"
    assert kept.transition is None


def test_a_rejection_of_a_staging_version_only_blocks_production() -> None:
    decision = decide(desired="Staging", granted="Staging", history=[], rejected=REJECTED)
    assert decision.stage == "Staging"
    assert decision.ready
    assert gov.rejected_in_production([], None) is False
    assert gov.rejected_in_production([], {"at": "not a time"}) is False


# --- one Production version: the one that keeps it --------------------------------------------------


def holder(name: str, *entered: str) -> dict[str, Any]:
    history = [{"from": "Staging", "to": "Production", "by": "op", "at": at} for at in entered]
    return {"metadata": {"name": name}, "status": {"stage": "Production", "history": history}}


def test_the_version_granted_last_keeps_production() -> None:
    assert gov.production_winner([holder("iris-v1", "2026-01-01T10:00:00Z"),
                                  holder("iris-v2", "2026-01-01T09:00:00Z")]) == "iris-v1"  # fmt: skip
    # The last entry counts, not the first; the same second goes to the greater name; none counts least.
    assert gov.production_winner([holder("iris-v1", "2026-01-01T08:00:00Z", "2026-01-01T11:00:00Z"),
                                  holder("iris-v2", "2026-01-01T10:00:00Z")]) == "iris-v1"  # fmt: skip
    assert gov.production_winner([holder("iris-a", "2026-01-01T10:00:00Z"),
                                  holder("iris-b", "2026-01-01T10:00:00Z")]) == "iris-b"  # fmt: skip
    assert gov.production_winner([holder("iris-z"), holder("iris-a", "2026-01-01T10:00:00Z")]) == "iris-a"


def test_every_replica_picks_the_same_winner_whatever_order_it_lists() -> None:
    versions = [holder(f"iris-v{i}", f"2026-01-01T10:00:0{i % 3}Z") for i in range(1, 7)]
    winners = {gov.production_winner(versions[i:] + versions[:i]) for i in range(len(versions))}
    assert winners == {"iris-v5"}


# --- what a ModelDeployment serves, at every reconcile ----------------------------------------------


@pytest.mark.parametrize(
    ("production", "stage", "blocked"),
    [
        (True, "Production", None),
        (True, "Staging", "namespace ml is labelled as production and iris-v2 holds stage Staging, not Production"),
        (True, "None", "namespace ml is labelled as production and iris-v2 has no stage granted yet, not Production"),
        (True, None, "namespace ml is labelled as production and iris-v2 has no stage granted yet, not Production"),
        (False, "None", None),  # outside production the admission webhook's rule is the only gate
        (False, "Archived", None),
    ],
)
def test_only_production_rolls_out_in_a_production_namespace(production: bool, stage: str | None,
                                                             blocked: str | None) -> None:
    assert gov.rollout_blocked(production_namespace=production, namespace="ml", version="iris-v2",
                               stage=stage) == blocked  # fmt: skip


@pytest.mark.parametrize(
    ("serving", "expected"),
    [
        (gov.Serving("ml", True, "iris-v1", "Production"), (True, "Allowed", "stable iris-v1 holds stage Production")),
        (gov.Serving("ml", False, "iris-v1", "Staging"), (True, "Allowed", "stable iris-v1 holds stage Staging")),
        (gov.Serving("ml", True, None, None), (True, "Allowed", "nothing is served yet")),
        (gov.Serving("ml", True, "iris-v1", "Archived"),
         (False, "StableNotAllowed", "stable iris-v1 holds stage Archived; namespace ml is labelled as production "
                                     "and serves only Production: it keeps serving the digest it was promoted with "
                                     "until a version that does replaces it (scale spec.replicas to 0 or delete the "
                                     "ModelDeployment to stop it)")),
        (gov.Serving("ml", False, "iris-v1", "None"),
         (False, "StableNotAllowed", "stable iris-v1 holds stage None; namespace ml serves only Staging or "
                                     "Production: it keeps serving the digest it was promoted with until a version "
                                     "that does replaces it (scale spec.replicas to 0 or delete the ModelDeployment "
                                     "to stop it)")),
        (gov.Serving("ml", True, "iris-v1", "Production", blocked="no"), (False, "VersionNotAllowed", "no")),
        (gov.Serving("ml", True, "iris-v1", None, replaced=["the stable's version iris-v1 was deleted"],
                     blocked="no"),
         (False, "VersionReplaced", "the stable's version iris-v1 was deleted: it keeps serving the digest it was "
                                    "promoted with (scale spec.replicas to 0 or delete the ModelDeployment to stop "
                                    "it)")),
    ],
)
def test_the_governed_condition_says_what_serves_and_what_may_not(
    serving: gov.Serving, expected: tuple[bool, str, str]
) -> None:
    assert gov.serving_condition(serving) == expected
