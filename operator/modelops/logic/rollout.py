"""The rollout state machine of a ModelDeployment, as one pure function.

``decide(Inputs) -> Decision`` reads the spec, the rollout state in status (all of it lives
there, so an operator restarted at any moment continues at the same step), the version wanted,
the clock, the last analysis verdict and the ``modelops.io/action`` annotation, and returns the
next status, the traffic (which versions run where and with which weight), the summary and
conditions, Events, whether to measure the canary now, and when to look again.

Rules:
- a first rollout (no stable version yet) goes straight to stable; ``Recreate`` swaps at once;
  a return to one of the last ``rollbackWindow`` stable versions swaps at once too;
- otherwise the canary walks the steps: ``setWeight`` sets its traffic share, ``pause`` waits
  (a duration from ``stepStartedAt``, or until promoted), ``analysis`` and ``shadow`` measure every
  ``analysis.interval`` and end at the first successful measurement once their duration (default
  one interval) has passed; an inconclusive measurement holds the step; until a step's first
  measurement its clock (``stepStartedAt``) starts only once the canary is available, so the first
  window holds the canary's traffic at the step's weight;
- a failed analysis or an ``abort`` rolls back: canary weight 0 and scaled to 0, stable untouched,
  phase RolledBack, ``Degraded=True`` and ``Stalled=True`` (reason RolledBack) kept while the
  rolled-back version is still the one wanted, until ``retry`` or a new version;
- the end of the steps or a ``promote`` promotes: the canary becomes stable;
- each distinct annotation value acts once (recorded in ``status.lastAction``);
- ``Ready`` means serving: a finished rollout (phase Healthy) is Ready only once the stable
  Deployment is available (``logic.serving.availability``: its generation observed and its
  replicas of the stable version available; one replica with an HPA; zero replicas wanted is
  Ready, "scaled to zero"). Until then: phase Progressing, ``Ready=False`` reason
  ``Unavailable``, ``Reconciling=True``, the counts in the message; ``Stalled=True`` (phase
  Degraded, reason ``ProgressDeadlineExceeded``) when the deployment controller gave up;
- a canary that is not available is not measured, does not end a timed pause and is not
  promoted at the end of the steps: the rollout holds (reason ``CanaryUnavailable``, the counts
  in the message) and looks again every ``analysis.interval``. There is no timeout on this hold:
  ``abort`` ends it. An explicit ``promote`` skips the remaining steps and their analysis (a
  person decided) but not availability: a promote while the canary is not available is refused
  (a ``PromoteRefused`` Warning; the value is spent, the rollout holds as before). A ``promote``
  with no canary running swaps the wanted version in at once, as ``Recreate`` does;
- versions are the exact objects, not names: each role's version is bound by name, uid and
  artifact digest (``stableBinding``, ``canaryBinding``, ``failedBinding``,
  ``previousStableBindings``), recorded when it is admitted to the canary or promoted. Another
  object under a bound name (deleted and re-created) is another version: it goes through the
  canary, a rollback of the earlier one does not hold it back, and the rollback window does not
  skip its analysis. A status from before bindings existed binds by name, then records the binding;
- ``blocked`` (the controller's governance check: in a production namespace a version that does
  not hold Production) starts no rollout of the wanted version and cancels a running canary; what
  serves keeps serving (phase Paused, reason ``VersionNotAllowed``) until the version is granted.

The Deployments' availability is read before deciding, for the traffic in status; when this
decision changes a Deployment (a new stable version, other weights), what was read is stale and
counts as not available yet.

``decide`` asks for a measurement by returning ``measure`` (an AnalysisTarget) and no verdict
applied; the caller measures and calls again with the same inputs plus the verdict.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from modelops.api import keys
from modelops.api.modeldeployment import AnalysisStep, CanaryStep, ModelDeploymentSpec
from modelops.logic import conditions as cond
from modelops.logic.analysis import AnalysisTarget, Verdict, parse_duration
from modelops.logic.conditions import parse_time
from modelops.logic.serving import Availability, Traffic, canary_name, stable_name, uses_gateway

ACTION_ANNOTATION: Final = keys.ACTION
VERBS: Final = ("abort", "promote", "retry")
HISTORY_LIMIT: Final = 20
PREVIOUS_LIMIT: Final = 10
MIN_REQUEUE: Final = 0.5

# Condition types and reasons of this kind (CamelCase constants, in one place).
PROGRESSING: Final = "Progressing"
DEGRADED: Final = "Degraded"
REASON_ANALYSIS_FAILED: Final = "AnalysisFailed"
REASON_ABORTED: Final = "Aborted"
REASON_CANARY: Final = "CanaryProgressing"
REASON_PAUSED: Final = "Paused"
REASON_HOLDING: Final = "AnalysisInconclusive"
REASON_COMPLETE: Final = "RolloutComplete"
REASON_HEALTHY: Final = "Healthy"
REASON_UNAVAILABLE: Final = "Unavailable"
REASON_SCALED_TO_ZERO: Final = "ScaledToZero"
REASON_DEADLINE: Final = "ProgressDeadlineExceeded"
REASON_CANARY_UNAVAILABLE: Final = "CanaryUnavailable"
REASON_NOT_ALLOWED: Final = "VersionNotAllowed"
# The "metric" of a canary whose pods never became available (its Deployment's progress deadline passed).
AVAILABILITY: Final = "availability"

STATUS_KEYS: Final = (
    "phase", "message", "desiredVersion", "servingVersion", "stableVersion", "canaryVersion", "canaryWeight",
    "step", "stepStartedAt", "analysis", "previousStableVersions", "failedVersion", "lastMeasuredAt",
    "lastAction", "history", "stableBinding", "canaryBinding", "failedBinding", "previousStableBindings",
)  # fmt: skip

DEFAULT_STEPS: Final = (
    CanaryStep(set_weight=20),
    CanaryStep(analysis=AnalysisStep()),
    CanaryStep(set_weight=50),
    CanaryStep(analysis=AnalysisStep()),
    CanaryStep(set_weight=100),
)


def steps_of(spec: ModelDeploymentSpec) -> Sequence[CanaryStep]:
    return spec.rollout.steps if spec.rollout.steps else DEFAULT_STEPS


def check_spec(spec: ModelDeploymentSpec) -> str | None:
    """What the schema cannot say about the steps, naming the field; None when fine."""
    for index, step in enumerate(steps_of(spec)):
        if step.shadow is not None and not uses_gateway(spec):
            return (
                f"spec.rollout.steps[{index}].shadow: a shadow step needs spec.trafficRouting.gatewayAPI "
                "(the HTTPRoute mirrors the traffic)"
            )
    try:
        parse_duration(spec.analysis.interval)
    except ValueError as error:
        return f"spec.analysis.interval: {error}"
    return None


def traffic_of(spec: ModelDeploymentSpec, status: Mapping[str, Any]) -> Traffic | None:
    """Which versions run where, from the rollout state in status; None before a first rollout."""
    stable = status.get("stableVersion")
    if not stable:
        return None
    canary = status.get("canaryVersion") or None
    mirror: int | None = None
    step = status.get("step")
    steps = steps_of(spec)
    if canary and isinstance(step, int) and 0 <= step < len(steps):
        shadow = steps[step].shadow
        mirror = shadow.percent if shadow is not None else None
    weight = status.get("canaryWeight") or 0
    return Traffic(
        stable_version=str(stable),
        canary_version=str(canary or status.get("failedVersion") or stable),
        canary_weight=int(weight) if canary else 0,
        canary_active=bool(canary),
        mirror_percent=mirror,
    )


Binding = Mapping[str, Any]  # {name, uid, sha256}: the exact version a role serves


def binding(version: Mapping[str, Any]) -> dict[str, str]:
    """The binding of a ModelVersion object: its name, uid and artifact digest."""
    meta, spec = version.get("metadata") or {}, version.get("spec") or {}
    return {"name": str(meta.get("name")), "uid": str(meta.get("uid")),
            "sha256": str((spec.get("artifact") or {}).get("sha256"))}  # fmt: skip


def bindings_of(status: Mapping[str, Any]) -> tuple[Binding | None, Binding | None]:
    """The bindings of the stable and canary Deployments for the traffic in status (see ``traffic_of``)."""
    def known(key: str) -> Binding | None:
        value = status.get(key)
        return value if isinstance(value, Mapping) and value.get("uid") else None

    stable = known("stableBinding")
    if status.get("canaryVersion"):
        return stable, known("canaryBinding")
    if status.get("failedVersion"):
        return stable, known("failedBinding")
    return stable, stable


def same_version(bound: Binding | None, wanted: Binding | None) -> bool:
    """Whether a role's binding is the wanted object; unknown on either side: the name decided already."""
    if bound is None or wanted is None:
        return True
    return bound.get("uid") == wanted.get("uid") and bound.get("sha256") == wanted.get("sha256")


@dataclass(frozen=True)
class Inputs:
    """What one decision reads."""

    spec: ModelDeploymentSpec
    namespace: str
    name: str
    status: Mapping[str, Any]
    desired: str
    now: datetime.datetime
    desired_field: str = "spec.modelVersion"  # where the wanted version comes from, for the Event
    verdict: Verdict | None = None
    action: str | None = None
    # The Deployments as read before deciding, for the traffic in ``status``; None: not known
    # (counts as not available).
    stable: Availability | None = None
    canary: Availability | None = None
    desired_binding: Binding | None = None  # the wanted version's name, uid and digest (None: by name only)
    blocked: str | None = None  # why the wanted version may not be rolled out here (governance)


@dataclass(frozen=True)
class Rejection:
    """Evidence for a ModelVersion whose canary was rolled back."""

    version: str
    metric: str
    value: float | None
    message: str


@dataclass
class Decision:
    """What to do now."""

    status: dict[str, Any]
    traffic: Traffic | None
    summary: cond.Summary
    conditions: list[tuple[str, bool, str, str]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    measure: AnalysisTarget | None = None
    requeue_after: float | None = None
    rejection: Rejection | None = None


class _Machine:
    """One decision's working state: a copy of the status fields, events and results."""

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self.spec = inputs.spec
        self.now = inputs.now
        self.now_text = cond.now_iso(inputs.now)
        self.st: dict[str, Any] = {key: inputs.status.get(key) for key in STATUS_KEYS}
        self.events: list[tuple[str, str, str]] = []
        self.rejection: Rejection | None = None

    # --- small helpers ---------------------------------------------------------------------------

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def record(self, version: str, result: str, message: str) -> None:
        entry = {"version": version, "result": result, "at": self.now_text, "message": message}
        if self.st.get("stableVersion") and self.st["stableVersion"] != version:
            entry["fromVersion"] = self.st["stableVersion"]
        history = [dict(h) for h in self.st.get("history") or [] if isinstance(h, Mapping)]
        self.st["history"] = [entry, *history][:HISTORY_LIMIT]

    def clear_canary(self) -> None:
        self.st.update(canaryVersion=None, canaryWeight=0, step=None, stepStartedAt=None, canaryBinding=None)

    def make_stable(self, version: str, bound: Binding | None) -> None:
        old = self.st.get("stableVersion")
        old_binding = self.bound("stableBinding")
        previous = [str(v) for v in self.st.get("previousStableVersions") or [] if v != version]
        if old and old != version:
            previous = [str(old), *[v for v in previous if v != old]]
        previous = previous[:PREVIOUS_LIMIT]
        bindings = [b for b in self.st.get("previousStableBindings") or [] if isinstance(b, Mapping)]
        if old_binding is not None and old != version:
            bindings = [old_binding, *bindings]
        kept = {}  # the newest binding of each name still in the window
        for entry in bindings:
            if entry.get("name") in previous and entry.get("name") not in kept:
                kept[entry.get("name")] = dict(entry)
        self.st["previousStableVersions"] = previous or None
        self.st["previousStableBindings"] = [kept[n] for n in previous if n in kept] or None
        self.st["stableVersion"] = version
        self.st["stableBinding"] = dict(bound) if bound is not None else None
        self.st["failedVersion"] = None
        self.st["failedBinding"] = None
        self.clear_canary()

    def bound(self, key: str) -> Binding | None:
        value = self.st.get(key)
        return value if isinstance(value, Mapping) and value.get("uid") else None

    def is_desired(self, name_key: str, binding_key: str) -> bool:
        """Whether the role's version is the wanted object (by name, then uid and digest where known)."""
        if self.st.get(name_key) != self.inputs.desired:
            return False
        return same_version(self.bound(binding_key), self.inputs.desired_binding)

    def in_window(self, desired: str) -> bool:
        window = [str(v) for v in self.st.get("previousStableVersions") or []][: self.spec.rollout.rollback_window]
        if desired not in window:
            return False
        bindings = [b for b in self.st.get("previousStableBindings") or [] if isinstance(b, Mapping)]
        recorded = next((b for b in bindings if b.get("name") == desired), None)
        return same_version(recorded, self.inputs.desired_binding)

    def start_step(self, index: int) -> None:
        self.st["step"] = index
        self.st["stepStartedAt"] = self.now_text

    def target(self) -> AnalysisTarget:
        return AnalysisTarget(
            namespace=self.inputs.namespace,
            deployment=self.inputs.name,
            model=self.spec.model,
            stable_version=self.st.get("stableVersion"),
            canary_version=str(self.st.get("canaryVersion")),
        )

    # --- outcomes ----------------------------------------------------------------------------------

    def finish(
        self,
        phase: str,
        message: str,
        *,
        requeue: float | None = None,
        measure: AnalysisTarget | None = None,
        reason: str | None = None,
    ) -> Decision:
        st = self.st
        st["phase"] = phase
        st["message"] = message
        stable, canary = st.get("stableVersion"), st.get("canaryVersion")
        weight = int(st.get("canaryWeight") or 0)
        st["servingVersion"] = canary if canary and weight > 50 else stable
        conditions: list[tuple[str, bool, str, str]]
        unavailable = self.stable_problem() if phase == "Healthy" else None
        if unavailable is not None:
            stalled, why = unavailable
            message = f"{stable} is stable, not serving yet: {why}"
            st["message"] = message
            if stalled:
                st["phase"] = "Degraded"
                summary = cond.Summary(ready=False, reason=REASON_DEADLINE, message=message, stalled=True)
                conditions = [
                    (PROGRESSING, False, REASON_DEADLINE, message),
                    (DEGRADED, True, REASON_DEADLINE, message),
                ]
            else:
                st["phase"] = "Progressing"
                summary = cond.Summary(ready=False, reason=REASON_UNAVAILABLE, message=message, reconciling=True)
                conditions = [
                    (PROGRESSING, True, REASON_UNAVAILABLE, message),
                    (DEGRADED, False, REASON_HEALTHY, message),
                ]
        elif phase == "Healthy":
            zero = self.inputs.stable is not None and self.inputs.stable.scaled_to_zero
            if zero:
                message = f"{message}: scaled to zero (spec.replicas is 0), no pod answers"
                st["message"] = message
            reason = REASON_SCALED_TO_ZERO if zero else cond.Reason.RECONCILED
            summary = cond.Summary(ready=True, reason=reason, message=message)
            conditions = [(PROGRESSING, False, REASON_COMPLETE, message), (DEGRADED, False, REASON_HEALTHY, message)]
        elif phase == "RolledBack":
            degraded_reason = reason or REASON_ANALYSIS_FAILED
            summary = cond.Summary(ready=False, reason=cond.Reason.ROLLED_BACK, message=message, stalled=True)
            conditions = [
                (PROGRESSING, False, cond.Reason.ROLLED_BACK, message),
                (DEGRADED, True, degraded_reason, message),
            ]
        else:
            progress_reason = reason or (REASON_PAUSED if phase == "Paused" else REASON_CANARY)
            summary = cond.Summary(ready=False, reason=progress_reason, message=message, reconciling=True)
            conditions = [(PROGRESSING, True, progress_reason, message), (DEGRADED, False, REASON_HEALTHY, message)]
        status = dict(st)
        status["canaryWeight"] = weight
        if requeue is not None:
            requeue = max(MIN_REQUEUE, requeue)
        return Decision(
            status=status,
            traffic=traffic_of(self.spec, status),
            summary=summary,
            conditions=conditions,
            events=self.events,
            measure=measure,
            requeue_after=requeue,
            rejection=self.rejection,
        )

    def _moved(self, *keys: str) -> bool:
        """Whether this decision changed these status fields (the Deployments will change with them)."""
        before = self.inputs.status
        return any((before.get(k) or None) != (self.st.get(k) or None) for k in keys)

    def stable_problem(self) -> tuple[bool, str] | None:
        """(stalled, why) while the stable Deployment does not serve; None when it does."""
        name = stable_name(self.inputs.name)
        if self._moved("stableVersion", "canaryVersion", "canaryWeight", "stableBinding", "canaryBinding"):
            return False, f"Deployment {name} is being updated to {self.st.get('stableVersion')}"
        found = self.inputs.stable
        if found is None:
            return False, f"the availability of Deployment {name} is not known yet"
        if found.available:
            return None
        return found.stalled, found.message

    def canary_problem(self) -> str | None:
        """Why the canary cannot be judged now (its Deployment not available); None when it can."""
        name = canary_name(self.inputs.name)
        if self._moved("canaryVersion", "canaryWeight", "canaryBinding"):
            return f"Deployment {name} is being resized for {self.st.get('canaryWeight') or 0}%"
        found = self.inputs.canary
        if found is None:
            return f"the availability of Deployment {name} is not known yet"
        return None if found.available else found.message

    def hold(self, what: str, why: str) -> Decision:
        found = self.inputs.canary
        if found is not None and found.stalled and not self._moved("canaryVersion", "canaryWeight"):
            # The deployment controller gave up on the canary's pods (its progress deadline): a hold
            # would last for ever, so the canary fails, with the evidence, as a failed analysis does.
            detail = f"{found.message}; the canary never became available"
            return self.rollback(REASON_ANALYSIS_FAILED, (AVAILABILITY, float(found.ready), detail))
        canary, weight = self.st.get("canaryVersion"), self.st.get("canaryWeight") or 0
        return self.finish(
            "Progressing", f"canary {canary} at {weight}%: {what}, holding until the canary is available: {why}",
            requeue=parse_duration(self.spec.analysis.interval), reason=REASON_CANARY_UNAVAILABLE,
        )  # fmt: skip

    def rolled_back_message(self) -> str:
        failed = self.st.get("failedVersion")
        return (
            f"{failed} was rolled back; {self.st.get('stableVersion')} keeps serving. Revert the commit that set "
            f"{self.inputs.desired_field} to {failed}, set a new version, or retry with "
            f"{ACTION_ANNOTATION}=retry"
        )

    def rollback(self, reason: str, failing: tuple[str, float | None, str] | None) -> Decision:
        version = str(self.st.get("canaryVersion"))
        stable = self.st.get("stableVersion")
        if failing is not None:
            metric, value, detail = failing
            shown = "no value" if value is None else f"{value:g}"
            why = f"analysis failed: {metric} = {shown}: {detail}"
        else:
            metric, value, detail = ("", None, "")
            why = f"aborted by {ACTION_ANNOTATION}"
        failed_binding = self.bound("canaryBinding")
        self.clear_canary()
        self.st["failedVersion"] = version
        self.st["failedBinding"] = dict(failed_binding) if failed_binding is not None else None
        self.record(version, "Aborted" if reason == REASON_ABORTED else "RolledBack", why)
        message = (
            f"canary {version} rolled back ({why}); {stable} keeps serving. Revert the commit that set "
            f"{self.inputs.desired_field} to {version}"
        )
        self.event("Warning", cond.Reason.ROLLED_BACK, message)
        if reason == REASON_ANALYSIS_FAILED and failing is not None:
            self.rejection = Rejection(version=version, metric=metric, value=value, message=detail)
        return self.finish("RolledBack", message, reason=reason)

    def promote(self, how: str) -> Decision:
        version = str(self.st.get("canaryVersion"))
        old = self.st.get("stableVersion")
        self.record(version, "Promoted", how)
        self.make_stable(version, self.bound("canaryBinding"))
        self.event("Normal", "Promoted", f"{version} promoted to stable ({how}); {old} retired")
        return self.finish("Healthy", f"serving {version}")

    # --- the machine ------------------------------------------------------------------------------

    def take_action(self) -> str | None:
        raw = (self.inputs.action or "").strip()
        if not raw or raw == self.st.get("lastAction"):
            return None
        self.st["lastAction"] = raw
        verb = raw.split("/", 1)[0].strip().lower()
        if verb not in VERBS:
            self.event(
                "Warning", "UnknownAction",
                f"{ACTION_ANNOTATION}: {raw!r} is not one of {', '.join(VERBS)} (optionally /<nonce>); ignored",
            )  # fmt: skip
            return None
        return verb

    def run(self) -> Decision:
        action = self.take_action()
        desired = self.inputs.desired
        self.st["desiredVersion"] = desired
        stable = self.st.get("stableVersion")
        blocked = self.inputs.blocked
        if blocked is not None and not (stable and self.is_desired("stableVersion", "stableBinding")):
            return self.not_allowed(action, blocked)
        if not stable:
            self.make_stable(desired, self.inputs.desired_binding)
            self.record(desired, "Deployed", "first version: no canary")
            self.event("Normal", "Deployed", f"{desired} deployed as the first stable version")
            return self.finish("Healthy", f"serving {desired}")
        canary = self.st.get("canaryVersion")
        if canary and not self.is_desired("canaryVersion", "canaryBinding"):
            self.record(str(canary), "Cancelled", f"superseded by {desired}")
            self.event("Normal", "CanaryCancelled", f"canary {canary} stopped: {desired} is wanted now")
            self.clear_canary()
            canary = None
        if not canary:
            return self.steady(action, str(stable), desired)
        if action == "abort":
            return self.rollback(REASON_ABORTED, None)
        if action == "promote":
            held = self.canary_problem()
            if held is None:
                return self.promote(f"promoted by {ACTION_ANNOTATION}")
            self.event(
                "Warning", "PromoteRefused",
                f"promote: canary {canary} is not available ({held}); a promote needs an available canary: "
                "wait for it, or abort",
            )  # fmt: skip
        elif action is not None:
            self.event("Normal", "ActionIgnored", f"{action}: a canary of {canary} is already running")
        return self.walk()

    def not_allowed(self, action: str | None, why: str) -> Decision:
        """The wanted version may not roll out here: no canary of it, what serves keeps serving."""
        desired, stable, canary = self.inputs.desired, self.st.get("stableVersion"), self.st.get("canaryVersion")
        if canary:
            self.record(str(canary), "Cancelled", f"{desired} may not roll out: {why}")
            self.event("Warning", "CanaryCancelled", f"canary {canary} stopped: {desired} may not roll out: {why}")
            self.clear_canary()
        if action is not None:
            self.event("Normal", "ActionIgnored", f"{action}: {desired} may not roll out: {why}")
        serving = f"{stable} keeps serving" if stable else "nothing is served yet"
        return self.finish("Paused", f"{desired} is not rolled out: {why}; {serving}", reason=REASON_NOT_ALLOWED)

    def steady(self, action: str | None, stable: str, desired: str) -> Decision:
        if self.is_desired("stableVersion", "stableBinding"):
            if self.bound("stableBinding") is None and self.inputs.desired_binding is not None:
                self.st["stableBinding"] = dict(self.inputs.desired_binding)  # a status from before bindings
            if self.st.get("failedVersion"):
                self.st["failedVersion"] = None
                self.st["failedBinding"] = None
            if action is not None:
                self.event("Normal", "ActionIgnored", f"{action}: {stable} is already stable, no rollout to act on")
            return self.finish("Healthy", f"serving {stable}")
        if self.is_desired("failedVersion", "failedBinding") and action not in ("retry", "promote"):
            if action == "abort":
                self.event("Normal", "ActionIgnored", f"abort: {desired} is already rolled back")
            return self.finish(
                "RolledBack", self.st.get("message") or self.rolled_back_message(),
                reason=self._degraded_reason(),
            )  # fmt: skip
        how: str | None = None
        if self.spec.rollout.strategy == "Recreate":
            how = "strategy Recreate: swapped at once"
        elif self.in_window(desired):
            how = f"{desired} was stable moments ago (rollbackWindow {self.spec.rollout.rollback_window}): no analysis"
        elif action == "promote":
            how = f"promoted by {ACTION_ANNOTATION} without a canary"
        if how is not None:
            self.record(desired, "Replaced", how)
            self.make_stable(desired, self.inputs.desired_binding)
            self.event("Normal", "Replaced", f"{desired} replaced {stable} ({how})")
            return self.finish("Healthy", f"serving {desired}")
        if action == "retry":
            self.event("Normal", "Retry", f"retrying the canary of {desired} from step 0")
        elif action is not None:
            self.event("Normal", "ActionIgnored", f"{action}: no canary is running")
        self.st.update(failedVersion=None, failedBinding=None, canaryVersion=desired, canaryWeight=0, analysis=None,
                       lastMeasuredAt=None)
        wanted = self.inputs.desired_binding
        self.st["canaryBinding"] = dict(wanted) if wanted is not None else None
        self.start_step(0)
        self.event("Normal", "RolloutStarted", f"canary {desired} started against stable {stable}")
        return self.walk()

    def _degraded_reason(self) -> str:
        history = self.st.get("history") or []
        latest = history[0] if history and isinstance(history[0], Mapping) else {}
        return REASON_ABORTED if latest.get("result") == "Aborted" else REASON_ANALYSIS_FAILED

    def walk(self) -> Decision:
        steps = steps_of(self.spec)
        interval = parse_duration(self.spec.analysis.interval)
        canary = self.st.get("canaryVersion")
        while True:
            index = self.st.get("step")
            if not isinstance(index, int) or index < 0:
                index = 0
                self.start_step(0)
            if index >= len(steps):
                held = self.canary_problem()
                if held is not None:
                    return self.hold(f"all {len(steps)} steps passed, promotion", held)
                return self.promote("all steps passed")
            step = steps[index]
            started = parse_time(self.st.get("stepStartedAt")) or self.now
            where = f"step {index + 1}/{len(steps)}"
            if step.set_weight is not None:
                self.st["canaryWeight"] = step.set_weight
                self.start_step(index + 1)
                continue
            if step.pause is not None:
                if step.pause.duration is None:
                    return self.finish(
                        "Paused", f"canary {canary} at {self.st.get('canaryWeight') or 0}%: paused at {where} until "
                        f"promoted ({ACTION_ANNOTATION}=promote)",
                    )  # fmt: skip
                deadline = started + datetime.timedelta(seconds=parse_duration(step.pause.duration))
                if self.now >= deadline:
                    held = self.canary_problem()
                    if held is not None:
                        return self.hold(f"pause at {where} over", held)
                    self.start_step(index + 1)
                    continue
                left = (deadline - self.now).total_seconds()
                return self.finish(
                    "Paused",
                    f"canary {canary} at {self.st.get('canaryWeight') or 0}%: paused at {where} until "
                    f"{cond.now_iso(deadline)}",
                    requeue=left,
                )
            measured = step.analysis if step.analysis is not None else step.shadow
            assert measured is not None  # the schema allows exactly one action per step
            duration = parse_duration(measured.duration) if measured.duration else interval
            last = parse_time(self.st.get("lastMeasuredAt"))
            if last is not None and last < started:
                last = None
            kind = "shadow" if step.shadow is not None else "analysis"
            if last is None:
                # Until its first measurement, the step's clock runs only while the canary serves: a window
                # that ends as the canary becomes available holds none of its traffic (always inconclusive),
                # and the step's duration would count time the canary did not serve at its weight.
                held = self.canary_problem()
                if held is not None:
                    self.st["stepStartedAt"] = None
                    return self.hold(f"{kind} at {where} not measured", held)
                if self.st.get("stepStartedAt") is None:
                    self.start_step(index)
                    started = self.now
            due = (last or started) + datetime.timedelta(seconds=interval)
            if self.now < due:
                holding = last is not None and any(
                    isinstance(r, Mapping) and r.get("phase") != "Successful" for r in self.st.get("analysis") or []
                )
                state = "inconclusive, holding" if holding else "measuring"
                return self.finish(
                    "Progressing",
                    f"canary {canary} at {self.st.get('canaryWeight') or 0}%: {kind} at {where} {state}",
                    requeue=(due - self.now).total_seconds(),
                    reason=REASON_HOLDING if holding else None,
                )
            held = self.canary_problem()
            if held is not None:
                return self.hold(f"{kind} at {where} not measured", held)
            verdict = self.inputs.verdict
            if verdict is None:
                return self.finish(
                    "Progressing",
                    f"canary {canary} at {self.st.get('canaryWeight') or 0}%: {kind} at {where} measuring",
                    measure=self.target(),
                    requeue=interval,
                )
            self.inputs = replace(self.inputs, verdict=None)  # a verdict counts once
            self.st["analysis"] = [dict(r) for r in verdict.results]
            self.st["lastMeasuredAt"] = self.now_text
            if verdict.phase == "Failed":
                return self.rollback(REASON_ANALYSIS_FAILED, verdict.failing)
            if verdict.phase == "Inconclusive":
                return self.finish(
                    "Progressing",
                    f"canary {canary} at {self.st.get('canaryWeight') or 0}%: {kind} at {where} inconclusive, "
                    "holding and measuring again",
                    requeue=interval,
                    reason=REASON_HOLDING,
                )
            if self.now >= started + datetime.timedelta(seconds=duration):
                self.start_step(index + 1)
                continue
            return self.finish(
                "Progressing",
                f"canary {canary} at {self.st.get('canaryWeight') or 0}%: {kind} at {where} passing",
                requeue=interval,
            )


def previous_results(status: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """status.analysis of the current step (what ``measure`` carries counts over from)."""
    started = parse_time(status.get("stepStartedAt"))
    results = [r for r in status.get("analysis") or [] if isinstance(r, Mapping)]
    if started is None or not results:
        return None
    kept = [r for r in results if (parse_time(r.get("at")) or started) >= started]
    return kept or None


def decide(inputs: Inputs) -> Decision:
    """The next rollout state (see the module docstring)."""
    return _Machine(inputs).run()
