"""Conditions in the standard Kubernetes shape, and the summary that kstatus reads.

Rules kept here, in one place:
- conditions are a list keyed by ``type``;
- ``lastTransitionTime`` changes only when a condition's ``status`` changes;
- ``Ready`` is always present and summarises the object;
- ``Reconciling`` and ``Stalled`` appear only while they are true (kstatus' convention:
  an absent abnormal-true condition means "no");
- reasons are CamelCase members of :class:`Reason`, the one table of reasons and their meanings;
- a condition to set is a :class:`Condition` (type, status, reason, message).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, NamedTuple

ConditionDict = dict[str, Any]
Status = Literal["True", "False", "Unknown"]

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"


class Reason(StrEnum):
    """Every condition and Event reason the operator writes, with what it means: the one table.

    CamelCase, as the API conventions ask. ``docs/reasons.md`` lists the same reasons with the same
    meanings (a unit test keeps both and the code in step). The one exception is a training Job's
    failure reason (``BackoffLimitExceeded``, ``DeadlineExceeded``, ...), relayed from the Job as the
    Kubernetes Job controller wrote it.
    """

    meaning: str

    def __new__(cls, value: str, meaning: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    # --- every kind ------------------------------------------------------------------------------
    RECONCILED = "Reconciled", "the object is as its spec asks"
    INVALID_SPEC = "InvalidSpec", "the spec cannot be acted on; the message names the field"
    NOT_FOUND = "NotFound", "an object the spec names does not exist (yet)"
    STATUS_REPAIRED = "StatusRepaired", "status fields were not understood and were reset to their defaults"
    SUCCEEDED = "Succeeded", "the work finished successfully"
    FAILED = "Failed", "the work failed"
    # --- ModelDeployment: the rollout ---------------------------------------------------------
    ROLLED_BACK = "RolledBack", "the canary was rolled back; the stable keeps serving"
    ANALYSIS_FAILED = "AnalysisFailed", "a canary analysis failed (or the canary never became available)"
    ABORTED = "Aborted", "the canary was aborted by the modelops.io/action annotation"
    CANARY_PROGRESSING = "CanaryProgressing", "a canary is walking its steps"
    PAUSED = "Paused", "the canary waits at a pause step"
    ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive", "the canary's analysis had too little data; the step holds"
    ROLLOUT_COMPLETE = "RolloutComplete", "no rollout is running"
    HEALTHY = "Healthy", "the rollout is not degraded"
    UNAVAILABLE = "Unavailable", "the stable Deployment is not available yet"
    SCALED_TO_ZERO = "ScaledToZero", "ready with spec.replicas 0: no pod answers"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded", "the stable Deployment's progress deadline passed"
    CANARY_UNAVAILABLE = "CanaryUnavailable", "the canary Deployment is not available; the rollout holds"
    VERSION_NOT_ALLOWED = "VersionNotAllowed", "governance does not allow the wanted version here"
    CHILDREN_FAILED = "ChildrenFailed", "a child object could not be applied"
    INVALID_VERSION = "InvalidVersion", "the wanted ModelVersion cannot be served as it is"
    WORKLOAD_NOT_ALLOWED = "WorkloadNotAllowed", "the pod template asks for what the namespace's policy forbids"
    PICKLE_NOT_ALLOWED = "PickleNotAllowed", "the artifact is a pickle and the namespace does not allow pickles"
    # --- ModelDeployment: Events ------------------------------------------------------------------
    DEPLOYED = "Deployed", "the first version was deployed as stable"
    ROLLOUT_STARTED = "RolloutStarted", "a canary of the wanted version started"
    PROMOTED = "Promoted", "the canary became stable"
    REPLACED = "Replaced", "the wanted version replaced the stable at once (Recreate, rollback window, promote)"
    CANARY_CANCELLED = "CanaryCancelled", "a running canary was stopped: another version is wanted or not allowed"
    RETRY = "Retry", "the canary of a rolled-back version starts again (modelops.io/action=retry)"
    UNKNOWN_ACTION = "UnknownAction", "the modelops.io/action annotation is not abort, promote or retry"
    ACTION_IGNORED = "ActionIgnored", "the modelops.io/action annotation has nothing to act on"
    PROMOTE_REFUSED = "PromoteRefused", "a promote was refused: the canary is not available"
    CHILD_REPAIRED = "ChildRepaired", "a child object that differed from the desired one was put back"
    # --- ModelDeployment: governance --------------------------------------------------------------
    ALLOWED = "Allowed", "the stable version holds a stage this namespace serves"
    VERSION_REPLACED = "VersionReplaced", "a served version was deleted or replaced by another object of its name"
    STABLE_NOT_ALLOWED = "StableNotAllowed", "the stable version no longer holds a stage this namespace serves"
    # --- ModelVersion -----------------------------------------------------------------------------
    AWAITING_APPROVAL = "AwaitingApproval", "the stage asked for needs more approvals"
    APPROVED = "Approved", "the stage asked for has its approvals"
    NOT_REQUIRED = "NotRequired", "the stage asked for needs no approval"
    GATES_FAILED = "GatesFailed", "a gate of the stage asked for fails"
    GATES_PASSED = "GatesPassed", "every gate of the stage asked for passes"
    SPEC_VALID = "SpecValid", "the spec is valid and the stage has no gates"
    DIGEST_RECORDED = "DigestRecorded", "the artifact is pinned by its sha256"
    REJECTED = "Rejected", "a canary of this version failed in production: Production was withdrawn"
    SUPERSEDED = "Superseded", "another version of the model was granted Production"
    STAGE_CHANGED = "StageChanged", "the granted stage changed"
    MALFORMED_APPROVAL = "MalformedApproval", "an approval annotation could not be read and was ignored"
    FEEDBACK_KEYS_RESET = "FeedbackKeysReset", "the namespace's feedback keys Secret was malformed and was reset"
    # --- TrainingRun ------------------------------------------------------------------------------
    JOB_PENDING = "JobPending", "the training Job is being created or waits for its pods"
    RUNNING = "Running", "the training Job runs"
    UNSUPPORTED = "Unsupported", "the training spec asks for what this operator cannot run"
    NO_RESULT = "NoResult", "the Job succeeded without a result to register"
    RESULT_UNAVAILABLE = "ResultUnavailable", "the training result could not be read yet"
    REGISTRATION_REFUSED = "RegistrationRefused", "the result cannot be registered as a ModelVersion"
    MODEL_VERSION_CREATED = "ModelVersionCreated", "the result was registered as a ModelVersion"
    # --- DriftPolicy ------------------------------------------------------------------------------
    DRIFT_DETECTED = "DriftDetected", "a feature or the predictions drifted past the threshold"
    NO_DRIFT = "NoDrift", "no drift past the threshold (or none to retrain on)"
    TOO_FEW_SAMPLES = "TooFewSamples", "too few samples in the window to judge drift"
    PROMETHEUS_UNREACHABLE = "PrometheusUnreachable", "Prometheus could not be queried"
    NO_PROMETHEUS = "NoPrometheus", "no Prometheus address is configured"
    NOT_EVALUATED = "NotEvaluated", "not evaluated yet"
    NO_REFERENCE_STATS = "NoReferenceStats", "the served version has no reference statistics to compare with"
    SYNCED = "Synced", "the PrometheusRule is applied"
    SYNCED_WITHOUT_ALERTS = "SyncedWithoutAlerts", "the PrometheusRule is applied but alerts cannot fire"
    INVALID_RULE_LABELS = "InvalidRuleLabels", "the labels selected for the PrometheusRule are not valid"
    PROMETHEUS_RULE_UNAVAILABLE = "PrometheusRuleUnavailable", "the PrometheusRule kind is not installed"
    APPLY_FAILED = "ApplyFailed", "the PrometheusRule could not be applied"
    LABELS_MISSING = "LabelsMissing", "the PrometheusRule lacks the labels Prometheus selects rules by"
    DRIFT_STARTED = "DriftStarted", "drift began (Event)"
    DRIFT_ENDED = "DriftEnded", "drift ended (Event)"
    RETRAIN_STARTED = "RetrainStarted", "a retraining TrainingRun was created"
    IN_FLIGHT = "InFlight", "a retraining TrainingRun is still running"
    DISABLED = "Disabled", "retraining is disabled"
    FINISHED = "Finished", "the last retraining finished"
    COOLING_DOWN = "CoolingDown", "the cooldown after the last retraining has not passed"
    BUDGET_USED = "BudgetUsed", "the retraining budget of the period is used up"
    LIST_FAILED = "ListFailed", "the retraining TrainingRuns could not be listed"
    PROMOTE_FAILED = "PromoteFailed", "the stage of a retrained version could not be requested"
    CANNOT_RETRAIN = "CannotRetrain", "the served version's TrainingRun cannot be copied for a retraining"
    CREATE_FAILED = "CreateFailed", "the retraining TrainingRun could not be created"
    LIVE_QUALITY_DEGRADED = "LiveQualityDegraded", "live quality (from labels) is below its limit"
    ESTIMATED_QUALITY_DEGRADED = "EstimatedQualityDegraded", "estimated quality (without labels) is below its limit"
    QUALITY_WITHIN_LIMITS = "QualityWithinLimits", "quality is within its limits"
    TOO_FEW_LABELS = "TooFewLabels", "too few labels in the window to judge live quality"
    NO_LIMIT = "NoLimit", "no quality limit applies to this model's task"
    QUALITY_DEGRADED = "QualityDegraded", "quality fell below a limit (Event)"
    QUALITY_RECOVERED = "QualityRecovered", "quality is back within its limits (Event)"
    WELL_CALIBRATED = "WellCalibrated", "the version's probabilities are calibrated well enough for estimated quality"
    POOR_CALIBRATION = "PoorCalibration", "the version's calibration error is above the limit: estimates are untrusted"
    NO_PROBABILITIES = "NoProbabilities", "the version recorded no calibration: its quality cannot be estimated"


class Condition(NamedTuple):
    """One condition to set: its type, status, reason (from :class:`Reason`) and message."""

    type: str
    status: bool | Status
    reason: str
    message: str


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
