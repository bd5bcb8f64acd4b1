"""Governance of ModelVersions: gates, approvals, stage grants, and the admission rules.

Pure functions only. The admission webhooks (``modelops.controller.webhooks``) call the
``admit_*``/``mutate_*`` functions with the request's authenticated identity and raise
their :class:`DeniedError` as a refusal; the ModelVersion reconcile calls :func:`decide` with the
version's evidence and writes what it returns. The records an approval leaves live in the
object's ``modelops.io/approvals`` annotation (written only by the mutating webhook), so an
operator restart can neither lose nor duplicate one: the status is a copy made again on
every reconcile.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelops.api.keys import (
    ACKNOWLEDGE_DELETE,
    APPROVALS,
    APPROVE,
    CREATED_BY,
    REVIEWER,
    STAGE_REQUESTED_BY,
)
from modelops.api.modelversion import TRAINED_BY_IMMUTABLE
from modelops.logic import fairness
from modelops.logic.conditions import Condition, Reason
from modelops.logic.conditions import parse_time as _parse_time
from modelops.logic.policy import GOVERNED_STAGES, Policy

OPERATOR_IDENTITY = "system:serviceaccount:modelops-system:modelops-operator"

PROTECTED_ANNOTATIONS = (APPROVALS, CREATED_BY, STAGE_REQUESTED_BY)
IMMUTABLE_FIELDS = ("artifact", "metrics", "lineage", "fairness", "featureImportance")
GOVERNED_STATUS = ("stage", "approvals", "history", "rejected", "stageRequest")
# How the reasons of the operator's own transitions begin (the audit log tells them apart by these).
REJECTED_PREFIX = "rejected: "
SUPERSEDED_PREFIX = "superseded: "
STAGES = ("None", "Staging", "Production", "Archived")

Record = dict[str, Any]


class DeniedError(Exception):
    """An admission request breaks a governance rule; the message says which and how to fix it."""


@dataclass(frozen=True)
class Identity:
    """An identity the API server authenticated (admission ``userInfo``)."""

    user: str
    uid: str | None = None
    groups: tuple[str, ...] = ()

    @classmethod
    def from_userinfo(cls, info: Mapping[str, Any] | None) -> Identity:
        info = info or {}
        return cls(
            user=str(info.get("username") or ""),
            uid=str(info["uid"]) if info.get("uid") else None,
            groups=tuple(str(g) for g in info.get("groups") or ()),
        )

    def as_json(self) -> dict[str, Any]:
        return {"user": self.user, "uid": self.uid, "groups": list(self.groups)}


# --- records in annotations -----------------------------------------------------------------------


def parse_records(text: str | None) -> tuple[list[Record], list[str]]:
    """The approval records in the annotation, and a problem per malformed one (never raises)."""
    if not text:
        return [], []
    try:
        data = json.loads(text)
    except ValueError as error:
        return [], [f"annotation {APPROVALS} is not JSON: {error}"]
    if not isinstance(data, list):
        return [], [f"annotation {APPROVALS} is not a JSON list"]
    records: list[Record] = []
    problems: list[str] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            problems.append(f"{APPROVALS}[{index}] is not an object")
            continue
        if item.get("stage") not in GOVERNED_STAGES:
            problems.append(f"{APPROVALS}[{index}].stage must be Staging or Production")
            continue
        if not isinstance(item.get("user"), str) or not item["user"]:
            problems.append(f"{APPROVALS}[{index}].user is missing")
            continue
        if _parse_time(item.get("at")) is None:
            problems.append(f"{APPROVALS}[{index}].at is not a timestamp")
            continue
        record: Record = {"stage": item["stage"], "user": item["user"], "at": item["at"]}
        if isinstance(item.get("uid"), str):
            record["uid"] = item["uid"]
        if isinstance(item.get("groups"), list):
            record["groups"] = [str(g) for g in item["groups"]]
        for key in ("reviewer", "assertedBy"):
            if isinstance(item.get(key), str) and item[key]:
                record[key] = item[key]
        records.append(record)
    return records, problems


def parse_requester(text: str | None, stage: str) -> str | None:
    """Who asked for ``stage`` (from ``modelops.io/stage-requested-by``); None if unknown or another stage."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("stage") != stage or not isinstance(data.get("user"), str):
        return None
    return str(data["user"])


def stage_request(
    stage: str, text: str | None, previous: Mapping[str, Any] | None = None, now: str | None = None
) -> dict[str, Any]:
    """The stage ``spec.stage`` asks for, with who asked and when where the webhook recorded it (never raises).

    Kept in ``status.stageRequest``: a change of it is a request the audit log records once. Without
    the webhook's record (no webhook, or written before it) the request is dated when the operator
    first saw it (``now``), and that date is kept while the stage asked for stays the same.
    """
    request: dict[str, Any] = {"stage": stage}
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("stage") == stage and isinstance(data.get("user"), str):
        request["by"] = data["user"]
        if _parse_time(data.get("at")) is not None:
            request["at"] = data["at"]
            return request
    if isinstance(previous, Mapping) and previous.get("stage") == stage and previous.get("by") == request.get("by"):
        return dict(previous)
    if now is not None:
        request["at"] = now
    return request


def parse_creator(text: str | None) -> tuple[str | None, str | None]:
    """The creator's username from ``modelops.io/created-by``, and a problem if it is malformed."""
    if not text:
        return None, None
    try:
        data = json.loads(text)
    except ValueError:
        return None, f"annotation {CREATED_BY} is not JSON"
    if not isinstance(data, dict) or not isinstance(data.get("user"), str):
        return None, f"annotation {CREATED_BY} has no user"
    return str(data["user"]), None


def trainers(spec: Mapping[str, Any] | None) -> list[str]:
    """The users in a version's ``spec.trainedBy`` (recorded at registration; never raises)."""
    entries = (spec or {}).get("trainedBy")
    if not isinstance(entries, list):
        return []
    found = [str(e["user"]) for e in entries if isinstance(e, Mapping) and isinstance(e.get("user"), str) and e["user"]]
    return list(dict.fromkeys(found))


def approver(record: Mapping[str, Any]) -> str:
    """Who approved in substance: the asserted reviewer, else the authenticated user."""
    return str(record.get("reviewer") or record["user"])


def _key(record: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(record.get("stage")), str(record.get("user")), str(record.get("reviewer") or ""))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# --- admission: ModelVersion ---------------------------------------------------------------------


def requested_approval(operation: str, old: Mapping[str, str], new: Mapping[str, str]) -> str | None:
    """The stage a request asks to approve: the approve annotation set, changed, or present on CREATE."""
    value = new.get(APPROVE)
    if value is None:
        return None
    if operation == "CREATE" or old.get(APPROVE) != value:
        return value
    return None


def mutate_version(
    operation: str,
    old: Mapping[str, str],
    new: Mapping[str, str],
    identity: Identity,
    policy: Policy,
    now: str,
    upstream_creators: Sequence[str] = (),
    stages: tuple[str | None, str | None] = (None, None),
) -> dict[str, str]:
    """The annotations the mutating webhook sets; raises :class:`DeniedError` for a forbidden request.

    ``old`` and ``new`` are the annotations before and as sent; ``upstream_creators`` who created
    the version's TrainingRun; ``stages`` the old and new ``spec.stage`` (a change, or a stage
    asked for on CREATE, records who asked). The caller has already checked (by
    SubjectAccessReview) that the user may approve when :func:`requested_approval` says so.
    """
    result: dict[str, str] = {}
    for key in PROTECTED_ANNOTATIONS:
        if key not in new:
            if key in old:  # a replace from a manifest that lacks it: keep the record
                result[key] = old[key]
            continue
        if operation == "CREATE" or new[key] != old.get(key):
            raise DeniedError(
                f"annotation {key} is written by the modelops admission webhook only; remove it from the request"
            )
    if operation == "CREATE":
        result[CREATED_BY] = dumps(identity.as_json())
    old_stage, new_stage = stages
    if new_stage is not None and new_stage != "None" and (operation == "CREATE" or new_stage != old_stage):
        result[STAGE_REQUESTED_BY] = dumps({"user": identity.user, "stage": new_stage, "at": now})
    trusted = identity.user in policy.trusted_appliers
    reviewer = new.get(REVIEWER)
    if reviewer is not None and (operation == "CREATE" or reviewer != old.get(REVIEWER)) and not trusted:
        raise DeniedError(
            f"annotation {REVIEWER} may only be set by a trusted applier of the governance policy "
            f"(trustedAppliers); {identity.user} is not one"
        )
    stage = requested_approval(operation, old, new)
    if stage is None:
        return result
    if stage not in GOVERNED_STAGES:
        raise DeniedError(f"annotation {APPROVE} must be Staging or Production, not {stage!r}")
    asserted = reviewer if (trusted and reviewer) else None
    if policy.stage(stage).four_eyes:
        creator = identity.user if operation == "CREATE" else parse_creator(old.get(CREATED_BY))[0]
        effective = asserted or identity.user
        if creator is not None and effective == creator:
            raise DeniedError(
                f"four eyes: {effective} created this ModelVersion and cannot approve it for {stage}; "
                "another person with the approve permission must"
            )
        if effective in upstream_creators:
            raise DeniedError(
                f"four eyes: {effective} created the TrainingRun of this ModelVersion or of a version it was "
                f"retrained from (spec.trainedBy) and cannot approve it for {stage}; another person with the approve "
                "permission must"
            )
    records, _ = parse_records(old.get(APPROVALS))
    record: Record = {"stage": stage, **{k: v for k, v in identity.as_json().items() if v}, "at": now}
    if asserted:
        record["reviewer"] = asserted
        record["assertedBy"] = identity.user
    # The same identity approving the same stage again is one record, with the newer time.
    records = [r for r in records if _key(r) != _key(record)] + [record]
    result[APPROVALS] = dumps(records)
    return result


def mutate_trainingrun(
    operation: str, old: Mapping[str, str], new: Mapping[str, str], identity: Identity
) -> dict[str, str]:
    """The creator of a TrainingRun, recorded on CREATE (four eyes reaches the versions it registers)."""
    if CREATED_BY in new and (operation == "CREATE" or new[CREATED_BY] != old.get(CREATED_BY)):
        raise DeniedError(
            f"annotation {CREATED_BY} is written by the modelops admission webhook only; remove it from the request"
        )
    if operation == "CREATE":
        return {CREATED_BY: dumps(identity.as_json())}
    if CREATED_BY not in new and CREATED_BY in old:
        return {CREATED_BY: old[CREATED_BY]}
    return {}


def _immutable_message(name: str) -> str:
    # The same words as the CRD's CEL rule (api/modelversion.py).
    return f"spec.{name} is immutable once set: register a new ModelVersion instead"


def ever_in_production(status: Mapping[str, Any] | None) -> str | None:
    """When a version (by its status) last entered Production, if it ever did ('now' if it holds it unrecorded)."""
    status = status or {}
    entries = [e for e in status.get("history") or () if isinstance(e, Mapping) and e.get("to") == "Production"]
    if entries:
        return str(entries[-1].get("at"))
    return "now" if status.get("stage") == "Production" else None


def validate_delete(old: Mapping[str, Any], identity: Identity, namespace_terminating: bool = False) -> str | None:
    """A DELETE of a version: refused unless acknowledged when it was ever in Production; raises :class:`DeniedError`.

    Returns when it last entered Production for an admitted delete (the audit log records it), else None.
    A namespace being deleted takes its versions with it: refusing would leave it Terminating for ever,
    so the namespace's deletion counts as the acknowledgement (and is audited the same way).
    """
    meta = old.get("metadata") or {}
    name = str(meta.get("name") or "")
    entered = ever_in_production(old.get("status"))
    if entered is None:
        return None
    if namespace_terminating or (meta.get("annotations") or {}).get(ACKNOWLEDGE_DELETE) == name:
        return entered
    raise DeniedError(
        f"ModelVersion {meta.get('namespace')}/{name} was in Production (last entered {entered}): deleting it removes "
        f"its evidence (gates, approvals, history) from the cluster; {identity.user or 'you'} must first set the "
        f"annotation {ACKNOWLEDGE_DELETE}={name} (kubectl annotate modelversion {name} {ACKNOWLEDGE_DELETE}={name}); "
        "the operator's audit log keeps its trail"
    )


def validate_version(
    operation: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    identity: Identity,
    policy: Policy | None = None,
) -> None:
    """The validating webhook's checks on the object as it will be stored; raises :class:`DeniedError`."""
    old_spec = (old or {}).get("spec") or {}
    new_spec = new.get("spec") or {}
    if operation == "UPDATE" and old_spec.get("trainedBy") != new_spec.get("trainedBy"):
        raise DeniedError(TRAINED_BY_IMMUTABLE)
    recorders = (*policy.operator_users, *policy.trusted_appliers) if policy is not None else ()
    if operation == "CREATE" and new_spec.get("trainedBy") is not None and identity.user not in recorders:
        raise DeniedError(
            f"spec.trainedBy is written by the operator when it registers a version from a TrainingRun (or by a "
            f"trusted applier of the governance policy); {identity.user} is neither: remove it"
        )
    if operation == "UPDATE":
        for name in IMMUTABLE_FIELDS:
            if name in old_spec and old_spec.get(name) != new_spec.get(name):
                raise DeniedError(_immutable_message(name))
        for name in ("model", "version"):
            if old_spec.get(name) != new_spec.get(name):
                raise DeniedError("spec.model and spec.version are immutable: register a new ModelVersion instead")
    old_ann = ((old or {}).get("metadata") or {}).get("annotations") or {}
    new_ann = (new.get("metadata") or {}).get("annotations") or {}
    records, problems = parse_records(new_ann.get(APPROVALS))
    if problems:
        raise DeniedError(problems[0])
    if operation == "CREATE":
        creator, _ = parse_creator(new_ann.get(CREATED_BY))
        if creator is not None and creator != identity.user:
            raise DeniedError(
                f"annotation {CREATED_BY} must name the authenticated creator; it is written by the webhook"
            )
    elif new_ann.get(CREATED_BY) != old_ann.get(CREATED_BY):
        raise DeniedError(f"annotation {CREATED_BY} cannot change")
    before, _ = parse_records(old_ann.get(APPROVALS)) if operation == "UPDATE" else ([], [])
    after_keys = {_key(r) for r in records}
    for record in before:
        if _key(record) not in after_keys:
            raise DeniedError(
                f"annotation {APPROVALS}: the approval of {record['stage']} by {record['user']} cannot be removed"
            )
    unchanged = [dumps(r) for r in before]
    for record in records:
        if dumps(record) not in unchanged and record["user"] != identity.user:
            raise DeniedError(
                f"annotation {APPROVALS}: a record by {record['user']} cannot be written by {identity.user}; "
                f"ask for an approval with the {APPROVE} annotation"
            )


def validate_status(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, identity: Identity, policy: Policy
) -> None:
    """Governed status fields are written by the operator's identities only; raises :class:`DeniedError`."""
    if identity.user in policy.operator_users:
        return
    old = old or {}
    new = new or {}
    for name in GOVERNED_STATUS:
        if old.get(name) != new.get(name):
            raise DeniedError(
                f"status.{name} is written by the modelops operator only ({identity.user} is not one of the "
                "policy's operatorUsers); ask for a stage with spec.stage and the approve annotation"
            )


# --- admission: ModelDeployment -------------------------------------------------------------------


def admit_deployment(
    *,
    production_namespace: bool,
    namespace: str,
    version: str | None,
    version_stage: str | None,
    track: str | None,
) -> None:
    """Which versions a namespace may serve; raises :class:`DeniedError` naming the version and its stage."""
    allowed = allowed_stages(production_namespace)
    where = f"namespace {namespace} is labelled as production" if production_namespace else f"namespace {namespace}"
    if track is not None and track not in allowed:
        raise DeniedError(f"spec.track: {where} and may only track {' or '.join(allowed)}, not {track}")
    if version is None:
        return
    if version_stage is None:
        raise DeniedError(f"spec.modelVersion: ModelVersion {namespace}/{version} does not exist")
    if version_stage not in allowed:
        raise DeniedError(
            f"spec.modelVersion: ModelVersion {version} has granted stage {version_stage}; "
            f"{where} and may only serve {' or '.join(allowed)}"
        )


def allowed_stages(production_namespace: bool) -> tuple[str, ...]:
    return ("Production",) if production_namespace else ("Staging", "Production")


def rollout_blocked(*, production_namespace: bool, namespace: str, version: str, stage: str | None) -> str | None:
    """Why ``version`` may not roll out in this namespace (a production one: only Production), or None.

    Checked at every reconcile, not only at admission: a version re-created under a pinned name, or
    one whose stage changed, is judged as it is now. Outside production namespaces the admission
    webhook's rule stays the only gate (serving a version there ahead of its grant is how it is tried).
    """
    if not production_namespace or stage == "Production":
        return None
    held = f"holds stage {stage}" if stage not in (None, "None") else "has no stage granted yet"
    return f"namespace {namespace} is labelled as production and {version} {held}, not Production"


@dataclass(frozen=True)
class Serving:
    """What a ModelDeployment serves, as governance sees it (one reconcile's reading)."""

    namespace: str
    production_namespace: bool
    stable: str | None  # the stable version's name
    stable_stage: str | None  # its granted stage now; None when its bound object is gone
    replaced: Sequence[str] = ()  # roles whose bound version was deleted or replaced under its name
    blocked: str | None = None  # why the wanted version may not roll out (rollout_blocked)


def serving_condition(serving: Serving) -> tuple[bool, str, str]:
    """The ``Governed`` condition of a ModelDeployment: (status, reason, message).

    What keeps serving: always the stable as it was promoted (an outage is not a governance
    decision). The condition says when that is no longer what governance allows: its version was
    deleted or replaced under its name, left the stages the namespace serves (archived, rejected), or
    the version wanted may not roll out here.
    """
    keep = "it keeps serving the digest it was promoted with"
    stop = "scale spec.replicas to 0 or delete the ModelDeployment to stop it"
    if serving.replaced:
        return False, Reason.VERSION_REPLACED, f"{'; '.join(serving.replaced)}: {keep} ({stop})"
    if serving.blocked is not None:
        return False, Reason.VERSION_NOT_ALLOWED, serving.blocked
    allowed = allowed_stages(serving.production_namespace)
    where = (
        f"namespace {serving.namespace} is labelled as production and serves"
        if serving.production_namespace
        else f"namespace {serving.namespace} serves"
    )
    if serving.stable is not None and serving.stable_stage not in allowed:
        return False, Reason.STABLE_NOT_ALLOWED, (
            f"stable {serving.stable} holds stage {serving.stable_stage}; {where} only {' or '.join(allowed)}: "
            f"{keep} until a version that does replaces it ({stop})"
        )
    if serving.stable is None:
        return True, Reason.ALLOWED, "nothing is served yet"
    return True, Reason.ALLOWED, f"stable {serving.stable} holds stage {serving.stable_stage}"


# --- the reconcile's decision --------------------------------------------------------------------


def _passes(value: float, op: str, threshold: float) -> bool:
    if op == ">=":
        return value >= threshold
    if op == ">":
        return value > threshold
    if op == "<=":
        return value <= threshold
    return value < threshold


def evaluate_gates(
    policy: Policy,
    version_gates: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, float] | None,
    stage: str,
    fairness_record: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each gate guarding ``stage`` (the policy's, then the version's own) with its verdict.

    A metric named ``fairness.…`` is read from the version's fairness record (:mod:`modelops.logic.fairness`).
    """
    gates: list[tuple[str, Mapping[str, Any]]] = [("policy", g.model_dump()) for g in policy.stage(stage).gates]
    gates += [("version", g) for g in version_gates if g.get("stage") == stage]
    results = []
    rules = policy.stage(stage)
    for source, gate in gates:
        reading = (
            fairness.read(str(gate["metric"]), fairness_record, rules.min_group_size)
            if fairness.names_fairness(str(gate["metric"])) else None
        )  # fmt: skip
        value = reading.value if reading is not None else (metrics or {}).get(str(gate["metric"]))
        number = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
        op = str(gate.get("op") or ">=")
        threshold = float(gate["threshold"])
        results.append(
            {
                "stage": stage,
                "metric": str(gate["metric"]),
                "op": op,
                "threshold": threshold,
                "value": number,
                "passed": number is not None and _passes(number, op, threshold),
                "source": source,
            }
        )
        if reading is not None:
            fairness.judge(results[-1], reading, rules.allow_insufficient_evidence)
    return results


def gate_problem(gate: Mapping[str, Any]) -> str:
    if fairness.names_fairness(str(gate["metric"])):
        return fairness.problem(gate)
    want = f"{gate['op']} {gate['threshold']:g}"
    if gate["value"] is None:
        return f"{gate['metric']} is missing from spec.metrics (needs {want})"
    return f"{gate['metric']} {gate['value']:g} is not {want}"


def production_floor(
    history: Sequence[Mapping[str, Any]], rejected: Mapping[str, Any] | None
) -> datetime.datetime | None:
    """Approvals of Production older than this do not count: the last rejection or exit from Production."""
    moments = [_parse_time(entry.get("at")) for entry in history if entry.get("from") == "Production"]
    if rejected:
        moments.append(_parse_time(rejected.get("at")))
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def count_approvals(
    records: Sequence[Record],
    stage: str,
    policy: Policy,
    creators: Sequence[str],
    not_before: datetime.datetime | None,
) -> tuple[list[Record], list[str]]:
    """The approvals that count for a stage, and why each other approval of it does not."""
    counted: list[Record] = []
    ignored: list[str] = []
    seen: set[str] = set()
    four_eyes = policy.stage(stage).four_eyes
    for record in records:
        if record["stage"] != stage:
            continue
        who = approver(record)
        at = _parse_time(record["at"])
        if four_eyes and who in creators:
            ignored.append(f"{who} (four eyes: created or trained the version)")
        elif record.get("reviewer") and (
            record.get("assertedBy") != record["user"] or record["user"] not in policy.trusted_appliers
        ):
            ignored.append(f"{who} (asserted by {record.get('assertedBy')}, not a trusted applier)")
        elif not_before is not None and (at is None or at <= not_before):
            ignored.append(f"{who} (given before the version was rejected or left Production)")
        elif who in seen:
            continue
        else:
            seen.add(who)
            counted.append(record)
    return counted, ignored


def last_entry(history: Sequence[Mapping[str, Any]], stage: str) -> datetime.datetime | None:
    """When the version last entered ``stage`` (its history), if it ever did."""
    moments = [_parse_time(entry.get("at")) for entry in history if entry.get("to") == stage]
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def rejected_in_production(history: Sequence[Mapping[str, Any]], rejected: Mapping[str, Any] | None) -> bool:
    """Whether a canary's rejection arrived after the version last entered Production.

    Such evidence demotes a Production version (see :func:`decide`); an older rejection was
    answered by the approval that granted Production again.
    """
    at = _parse_time((rejected or {}).get("at"))
    if at is None:
        return False
    entered = last_entry(history, "Production")
    return entered is None or at > entered


def rejection_text(rejected: Mapping[str, Any]) -> str:
    value = rejected.get("value")
    shown = f" = {value:g}" if isinstance(value, (int, float)) else ""
    detail = f": {rejected['message']}" if rejected.get("message") else ""
    return f"a canary in {rejected.get('deployment')} failed on {rejected.get('metric')}{shown}{detail}"


def production_winner(versions: Sequence[Mapping[str, Any]]) -> str:
    """Of several versions of a model holding Production, the one that keeps it: the last granted.

    Only two operators acting at once (a window of Kopf peering, see docs/governance.md) can leave
    two; every replica applies this rule to what it lists, so they agree on the one to keep.
    Ties (the same second) go to the greater name.
    """
    floor = datetime.datetime.min.replace(tzinfo=datetime.UTC)

    def key(version: Mapping[str, Any]) -> tuple[datetime.datetime, str]:
        history = (version.get("status") or {}).get("history") or []
        entered = last_entry([h for h in history if isinstance(h, Mapping)], "Production")
        return entered or floor, str((version.get("metadata") or {}).get("name"))

    return key(max(versions, key=key))[1]


@dataclass(frozen=True)
class Decision:
    """The stage to hold after a reconcile, the evidence for it, and what to tell."""

    stage: str
    transition: dict[str, Any] | None
    ready: bool
    reason: str
    message: str
    gates: list[dict[str, Any]]
    conditions: list[Condition] = field(default_factory=list)


def decide(
    *,
    desired: str,
    granted: str,
    policy: Policy,
    metrics: Mapping[str, float] | None,
    version_gates: Sequence[Mapping[str, Any]],
    records: Sequence[Record],
    creators: Sequence[str],
    history: Sequence[Mapping[str, Any]],
    rejected: Mapping[str, Any] | None,
    sha256: str,
    now: str,
    requested_by: str | None = None,
    fairness_record: Mapping[str, Any] | None = None,
) -> Decision:
    """Grant the desired stage when its gates pass and its approvals suffice; else say what is missing.

    ``requested_by`` is who asked for the desired stage (recorded by the webhook): a grant that
    needs no approval is theirs in the history, and every grant's reason names them.
    """
    integrity = Condition(
        "IntegrityVerified",
        True,
        Reason.DIGEST_RECORDED,
        f"artifact pinned by sha256 {sha256[:12]}…; the model server verifies it before loading "
        "(the operator itself does not read the artifact)",
    )
    governed = desired in GOVERNED_STAGES
    gates = evaluate_gates(policy, version_gates, metrics, desired, fairness_record) if governed else []
    failing = [g for g in gates if not g["passed"]]
    if failing:
        validated = Condition(
            "Validated",
            False,
            Reason.GATES_FAILED,
            f"gates for {desired}: " + "; ".join(map(gate_problem, failing)),
        )
    elif gates:
        validated = Condition("Validated", True, Reason.GATES_PASSED, f"all {len(gates)} gate(s) for {desired} pass")
    else:
        validated = Condition("Validated", True, Reason.SPEC_VALID, f"spec is valid; no gates for {desired}")
    need = policy.stage(desired).approvals if governed else 0
    floor = production_floor(history, rejected) if desired == "Production" else None
    counted, ignored = count_approvals(records, desired, policy, creators, floor) if governed else ([], [])
    names = ", ".join(approver(r) for r in counted)
    if need == 0:
        approved = Condition("Approved", True, Reason.NOT_REQUIRED, f"{desired} needs no approval")
    elif len(counted) >= need:
        approved = Condition(
            "Approved", True, Reason.APPROVED, f"{len(counted)}/{need} approval(s) for {desired}: {names}"
        )
    else:
        text = f"{desired} needs {need} approval(s), has {len(counted)}"
        if ignored:
            text += "; not counted: " + ", ".join(ignored)
        approved = Condition("Approved", False, Reason.AWAITING_APPROVAL, text)
    conditions = [validated, integrity, approved]
    if granted == "Production" and rejected is not None and rejected_in_production(history, rejected):
        # Evidence from production traffic withdraws the grant: no new deployment picks the version up,
        # and Production comes back only with an approval given after the rejection.
        why = f"{REJECTED_PREFIX}{rejection_text(rejected)}; approve Production again to bring it back"
        transition = {"from": "Production", "to": "Archived", "by": OPERATOR_IDENTITY, "at": now, "reason": why}
        message = f"stage Production withdrawn: {why}"
        return Decision("Archived", transition, False, Reason.REJECTED, message, gates, conditions)
    if desired == granted:
        return Decision(granted, None, True, Reason.RECONCILED, f"stage {granted} granted", gates, conditions)
    if failing or not approved[1]:
        reason = Reason.GATES_FAILED if failing else Reason.AWAITING_APPROVAL
        missing = validated[3] if failing else approved[3]
        message = f"stage {granted} held, {desired} not granted: {missing}"
        return Decision(granted, None, False, reason, message, gates, conditions)
    asked = f" (asked by {requested_by})" if requested_by else ""
    if governed:
        evidence = [f"{len(gates)} gate(s) passed" if gates else "no gates"]
        evidence.append(f"approved by {names}" if counted and need else "no approval needed")
        why = f"{desired} granted{asked}: " + ", ".join(evidence)
        by = names if counted and need else (requested_by or OPERATOR_IDENTITY)
    else:
        why = f"spec.stage asks for {desired}{asked}"
        by = requested_by or OPERATOR_IDENTITY
    transition = {"from": granted, "to": desired, "by": by, "at": now, "reason": why}
    return Decision(desired, transition, True, Reason.RECONCILED, f"stage {desired} granted", gates, conditions)


def supersede(successor: str, now: str) -> dict[str, Any]:
    """The history entry of a Production version archived because another was granted Production."""
    return {
        "from": "Production",
        "to": "Archived",
        "by": OPERATOR_IDENTITY,
        "at": now,
        "reason": f"{SUPERSEDED_PREFIX}{successor} was granted Production (one Production version per model)",
    }


def append_history(history: Sequence[Mapping[str, Any]] | None, entry: Mapping[str, Any] | None) -> list[Any]:
    """History with an entry appended (history is append-only)."""
    result = [dict(item) for item in history or ()]
    if entry is not None:
        result.append(dict(entry))
    return result
