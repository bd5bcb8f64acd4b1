"""The rollout state machine of a ModelDeployment, as one pure function.

``decide(Inputs) -> Decision`` reads the spec, the rollout state in status (all of it lives
there, so an operator restarted at any moment continues at the same step; parsed into a typed,
frozen ``logic.rolloutstate.RolloutState`` and written back from it, a garbled field reported
with a ``StatusRepaired`` Warning), the version wanted,
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
from modelops.logic.rolloutstate import AnalysisResult, HistoryEntry, RolloutState, VersionBinding
from modelops.logic.serving import Availability, Traffic, canary_name, stable_name, uses_gateway

ACTION_ANNOTATION: Final = keys.ACTION
VERBS: Final = ("abort", "promote", "retry")
HISTORY_LIMIT: Final = 20
PREVIOUS_LIMIT: Final = 10
MIN_REQUEUE: Final = 0.5

# Condition types of this kind (its reasons are in logic.conditions.Reason).
PROGRESSING: Final = "Progressing"
DEGRADED: Final = "Degraded"
# The "metric" of a canary whose pods never became available (its Deployment's progress deadline passed).
AVAILABILITY: Final = "availability"

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


def traffic_of(spec: ModelDeploymentSpec, status: Mapping[str, Any] | RolloutState) -> Traffic | None:
    """Which versions run where, from the rollout state in status; None before a first rollout."""
    state = status if isinstance(status, RolloutState) else RolloutState.from_status(status)
    stable, canary = state.stable_version, state.canary_version
    if not stable:
        return None
    mirror: int | None = None
    steps = steps_of(spec)
    if canary and state.step is not None and state.step < len(steps):
        shadow = steps[state.step].shadow
        mirror = shadow.percent if shadow is not None else None
    return Traffic(
        stable_version=stable,
        canary_version=canary or state.failed_version or stable,
        canary_weight=state.canary_weight if canary else 0,
        canary_active=bool(canary),
        mirror_percent=mirror,
    )


def binding(version: Mapping[str, Any]) -> VersionBinding:
    """The binding of a ModelVersion object: its name, uid and artifact digest."""
    meta, spec = version.get("metadata") or {}, version.get("spec") or {}
    return VersionBinding(name=str(meta.get("name")), uid=str(meta.get("uid")),
                          sha256=str((spec.get("artifact") or {}).get("sha256")))  # fmt: skip


def bindings_of(status: Mapping[str, Any] | RolloutState) -> tuple[VersionBinding | None, VersionBinding | None]:
    """The bindings of the stable and canary Deployments for the traffic in status (see ``traffic_of``)."""
    state = status if isinstance(status, RolloutState) else RolloutState.from_status(status)
    if state.canary_version:
        return state.stable_binding, state.canary_binding
    if state.failed_version:
        return state.stable_binding, state.failed_binding
    return state.stable_binding, state.stable_binding


AnyBinding = VersionBinding | Mapping[str, Any] | None  # typed, or as written in status


def same_version(bound: AnyBinding, wanted: AnyBinding) -> bool:
    """Whether a role's binding is the wanted object; unknown on either side: the name decided already."""
    left, right = VersionBinding.parse(bound), VersionBinding.parse(wanted)
    if left is None or right is None:
        return True
    return left.uid == right.uid and left.sha256 == right.sha256


@dataclass(frozen=True)
class Inputs:
    """What one decision reads."""

    spec: ModelDeploymentSpec
    namespace: str
    name: str
    status: Mapping[str, Any]  # the object's status as read (parsed with ``RolloutState.from_status``)
    desired: str
    now: datetime.datetime
    desired_field: str = "spec.modelVersion"  # where the wanted version comes from, for the Event
    verdict: Verdict | None = None
    action: str | None = None
    # The Deployments as read before deciding, for the traffic in ``status``; None: not known
    # (counts as not available).
    stable: Availability | None = None
    canary: Availability | None = None
    # The wanted version's name, uid and digest (None: by name only; a status-form mapping is accepted).
    desired_binding: AnyBinding = None
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

    state: RolloutState
    traffic: Traffic | None
    summary: cond.Summary
    conditions: list[cond.Condition] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    measure: AnalysisTarget | None = None
    requeue_after: float | None = None
    rejection: Rejection | None = None

    @property
    def status(self) -> dict[str, Any]:
        """The state as the status fields to write (every rollout field; ``None`` removes one)."""
        return self.state.to_status()


class _Machine:
    """One decision's working state: the rollout state (replaced as it moves on), events and results."""

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self.spec = inputs.spec
        self.now = inputs.now
        self.now_text = cond.now_iso(inputs.now)
        self.before = RolloutState.from_status(inputs.status)
        self.s = self.before
        self.wanted = VersionBinding.parse(inputs.desired_binding)
        self.events: list[tuple[str, str, str]] = []
        self.rejection: Rejection | None = None
        if self.before.problems:
            self.event(
                "Warning", cond.Reason.STATUS_REPAIRED,
                f"status fields not understood, reset to their defaults: {'; '.join(self.before.problems)}",
            )  # fmt: skip

    # --- small helpers ---------------------------------------------------------------------------

    def set(self, **changes: Any) -> None:
        self.s = replace(self.s, **changes)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def record(self, version: str, result: str, message: str) -> None:
        stable = self.s.stable_version
        entry = HistoryEntry(version=version, result=result, at=self.now_text, message=message,
                             from_version=stable if stable and stable != version else None)  # fmt: skip
        self.set(history=(entry, *self.s.history)[:HISTORY_LIMIT])

    def clear_canary(self) -> None:
        self.set(canary_version=None, canary_weight=0, step=None, step_started_at=None, canary_binding=None)

    def make_stable(self, version: str, bound: VersionBinding | None) -> None:
        old, old_binding = self.s.stable_version, self.s.stable_binding
        previous = [v for v in self.s.previous_stable_versions if v != version]
        if old and old != version:
            previous = [old, *[v for v in previous if v != old]]
        previous = previous[:PREVIOUS_LIMIT]
        bindings = list(self.s.previous_stable_bindings)
        if old_binding is not None and old != version:
            bindings = [old_binding, *bindings]
        kept: dict[str, VersionBinding] = {}  # the newest binding of each name still in the window
        for entry in bindings:
            if entry.name in previous and entry.name not in kept:
                kept[entry.name] = entry
        self.set(
            previous_stable_versions=tuple(previous),
            previous_stable_bindings=tuple(kept[n] for n in previous if n in kept),
            stable_version=version, stable_binding=bound, failed_version=None, failed_binding=None,
        )  # fmt: skip
        self.clear_canary()

    def is_desired(self, role: str) -> bool:
        """Whether the role's version (stable, canary or failed) is the wanted object (by name, then
        uid and digest where known)."""
        if getattr(self.s, f"{role}_version") != self.inputs.desired:
            return False
        return same_version(getattr(self.s, f"{role}_binding"), self.wanted)

    def in_window(self, desired: str) -> bool:
        if desired not in self.s.previous_stable_versions[: self.spec.rollout.rollback_window]:
            return False
        recorded = next((b for b in self.s.previous_stable_bindings if b.name == desired), None)
        return same_version(recorded, self.wanted)

    def start_step(self, index: int) -> None:
        self.set(step=index, step_started_at=self.now_text)

    def target(self) -> AnalysisTarget:
        return AnalysisTarget(
            namespace=self.inputs.namespace,
            deployment=self.inputs.name,
            model=self.spec.model,
            stable_version=self.s.stable_version,
            canary_version=str(self.s.canary_version),
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
        stable, canary, weight = self.s.stable_version, self.s.canary_version, self.s.canary_weight
        self.set(phase=phase, message=message, serving_version=canary if canary and weight > 50 else stable)
        conditions: list[cond.Condition]
        unavailable = self.stable_problem() if phase == "Healthy" else None
        if unavailable is not None:
            stalled, why = unavailable
            message = f"{stable} is stable, not serving yet: {why}"
            if stalled:
                self.set(phase="Degraded", message=message)
                summary = cond.Summary(
                    ready=False, reason=cond.Reason.PROGRESS_DEADLINE_EXCEEDED, message=message, stalled=True
                )
                conditions = [
                    cond.Condition(PROGRESSING, False, cond.Reason.PROGRESS_DEADLINE_EXCEEDED, message),
                    cond.Condition(DEGRADED, True, cond.Reason.PROGRESS_DEADLINE_EXCEEDED, message),
                ]
            else:
                self.set(phase="Progressing", message=message)
                summary = cond.Summary(ready=False, reason=cond.Reason.UNAVAILABLE, message=message, reconciling=True)
                conditions = [
                    cond.Condition(PROGRESSING, True, cond.Reason.UNAVAILABLE, message),
                    cond.Condition(DEGRADED, False, cond.Reason.HEALTHY, message),
                ]
        elif phase == "Healthy":
            zero = self.inputs.stable is not None and self.inputs.stable.scaled_to_zero
            if zero:
                message = f"{message}: scaled to zero (spec.replicas is 0), no pod answers"
                self.set(message=message)
            reason = cond.Reason.SCALED_TO_ZERO if zero else cond.Reason.RECONCILED
            summary = cond.Summary(ready=True, reason=reason, message=message)
            conditions = [
                cond.Condition(PROGRESSING, False, cond.Reason.ROLLOUT_COMPLETE, message),
                cond.Condition(DEGRADED, False, cond.Reason.HEALTHY, message),
            ]
        elif phase == "RolledBack":
            degraded_reason = reason or cond.Reason.ANALYSIS_FAILED
            summary = cond.Summary(ready=False, reason=cond.Reason.ROLLED_BACK, message=message, stalled=True)
            conditions = [
                cond.Condition(PROGRESSING, False, cond.Reason.ROLLED_BACK, message),
                cond.Condition(DEGRADED, True, degraded_reason, message),
            ]
        else:
            progress_reason = reason or (cond.Reason.PAUSED if phase == "Paused" else cond.Reason.CANARY_PROGRESSING)
            summary = cond.Summary(ready=False, reason=progress_reason, message=message, reconciling=True)
            conditions = [
                cond.Condition(PROGRESSING, True, progress_reason, message),
                cond.Condition(DEGRADED, False, cond.Reason.HEALTHY, message),
            ]
        if requeue is not None:
            requeue = max(MIN_REQUEUE, requeue)
        return Decision(
            state=self.s,
            traffic=traffic_of(self.spec, self.s),
            summary=summary,
            conditions=conditions,
            events=self.events,
            measure=measure,
            requeue_after=requeue,
            rejection=self.rejection,
        )

    def _moved(self, *fields: str) -> bool:
        """Whether this decision changed these state fields (the Deployments will change with them).

        A binding recorded where none was known (a status from before bindings, or one that could not
        be read) names the object the Deployment already serves: that changes no Deployment."""
        def changed(name: str) -> bool:
            before, after = getattr(self.before, name), getattr(self.s, name)
            if name.endswith("_binding") and before is None:
                return False
            return bool(before != after)

        return any(changed(f) for f in fields)

    def stable_problem(self) -> tuple[bool, str] | None:
        """(stalled, why) while the stable Deployment does not serve; None when it does."""
        name = stable_name(self.inputs.name)
        if self._moved("stable_version", "canary_version", "canary_weight", "stable_binding", "canary_binding"):
            return False, f"Deployment {name} is being updated to {self.s.stable_version}"
        found = self.inputs.stable
        if found is None:
            return False, f"the availability of Deployment {name} is not known yet"
        if found.available:
            return None
        return found.stalled, found.message

    def canary_problem(self) -> str | None:
        """Why the canary cannot be judged now (its Deployment not available); None when it can."""
        name = canary_name(self.inputs.name)
        if self._moved("canary_version", "canary_weight", "canary_binding"):
            return f"Deployment {name} is being resized for {self.s.canary_weight}%"
        found = self.inputs.canary
        if found is None:
            return f"the availability of Deployment {name} is not known yet"
        return None if found.available else found.message

    def hold(self, what: str, why: str) -> Decision:
        found = self.inputs.canary
        if found is not None and found.stalled and not self._moved("canary_version", "canary_weight"):
            # The deployment controller gave up on the canary's pods (its progress deadline): a hold
            # would last for ever, so the canary fails, with the evidence, as a failed analysis does.
            detail = f"{found.message}; the canary never became available"
            return self.rollback(cond.Reason.ANALYSIS_FAILED, (AVAILABILITY, float(found.ready), detail))
        return self.finish(
            "Progressing",
            f"canary {self.s.canary_version} at {self.s.canary_weight}%: {what}, holding until the canary is "
            f"available: {why}",
            requeue=parse_duration(self.spec.analysis.interval), reason=cond.Reason.CANARY_UNAVAILABLE,
        )  # fmt: skip

    def rolled_back_message(self) -> str:
        failed = self.s.failed_version
        return (
            f"{failed} was rolled back; {self.s.stable_version} keeps serving. Revert the commit that set "
            f"{self.inputs.desired_field} to {failed}, set a new version, or retry with "
            f"{ACTION_ANNOTATION}=retry"
        )

    def rollback(self, reason: str, failing: tuple[str, float | None, str] | None) -> Decision:
        version = str(self.s.canary_version)
        stable = self.s.stable_version
        if failing is not None:
            metric, value, detail = failing
            shown = "no value" if value is None else f"{value:g}"
            why = f"analysis failed: {metric} = {shown}: {detail}"
        else:
            metric, value, detail = ("", None, "")
            why = f"aborted by {ACTION_ANNOTATION}"
        failed_binding = self.s.canary_binding
        self.clear_canary()
        self.set(failed_version=version, failed_binding=failed_binding)
        self.record(version, "Aborted" if reason == cond.Reason.ABORTED else "RolledBack", why)
        message = (
            f"canary {version} rolled back ({why}); {stable} keeps serving. Revert the commit that set "
            f"{self.inputs.desired_field} to {version}"
        )
        self.event("Warning", cond.Reason.ROLLED_BACK, message)
        if reason == cond.Reason.ANALYSIS_FAILED and failing is not None:
            self.rejection = Rejection(version=version, metric=metric, value=value, message=detail)
        return self.finish("RolledBack", message, reason=reason)

    def promote(self, how: str) -> Decision:
        version = str(self.s.canary_version)
        old = self.s.stable_version
        self.record(version, "Promoted", how)
        self.make_stable(version, self.s.canary_binding)
        self.event("Normal", cond.Reason.PROMOTED, f"{version} promoted to stable ({how}); {old} retired")
        return self.finish("Healthy", f"serving {version}")

    # --- the machine ------------------------------------------------------------------------------

    def take_action(self) -> str | None:
        raw = (self.inputs.action or "").strip()
        if not raw or raw == self.s.last_action:
            return None
        self.set(last_action=raw)
        verb = raw.split("/", 1)[0].strip().lower()
        if verb not in VERBS:
            self.event(
                "Warning", cond.Reason.UNKNOWN_ACTION,
                f"{ACTION_ANNOTATION}: {raw!r} is not one of {', '.join(VERBS)} (optionally /<nonce>); ignored",
            )  # fmt: skip
            return None
        return verb

    def run(self) -> Decision:
        action = self.take_action()
        desired = self.inputs.desired
        self.set(desired_version=desired)
        stable = self.s.stable_version
        blocked = self.inputs.blocked
        if blocked is not None and not (stable and self.is_desired("stable")):
            return self.not_allowed(action, blocked)
        if not stable:
            self.make_stable(desired, self.wanted)
            self.record(desired, "Deployed", "first version: no canary")
            self.event("Normal", cond.Reason.DEPLOYED, f"{desired} deployed as the first stable version")
            return self.finish("Healthy", f"serving {desired}")
        canary = self.s.canary_version
        if canary and not self.is_desired("canary"):
            self.record(canary, "Cancelled", f"superseded by {desired}")
            self.event("Normal", cond.Reason.CANARY_CANCELLED, f"canary {canary} stopped: {desired} is wanted now")
            self.clear_canary()
            canary = None
        if not canary:
            return self.steady(action, stable, desired)
        if action == "abort":
            return self.rollback(cond.Reason.ABORTED, None)
        if action == "promote":
            held = self.canary_problem()
            if held is None:
                return self.promote(f"promoted by {ACTION_ANNOTATION}")
            self.event(
                "Warning", cond.Reason.PROMOTE_REFUSED,
                f"promote: canary {canary} is not available ({held}); a promote needs an available canary: "
                "wait for it, or abort",
            )  # fmt: skip
        elif action is not None:
            self.event("Normal", cond.Reason.ACTION_IGNORED, f"{action}: a canary of {canary} is already running")
        return self.walk()

    def not_allowed(self, action: str | None, why: str) -> Decision:
        """The wanted version may not roll out here: no canary of it, what serves keeps serving."""
        desired, stable, canary = self.inputs.desired, self.s.stable_version, self.s.canary_version
        if canary:
            self.record(canary, "Cancelled", f"{desired} may not roll out: {why}")
            self.event(
                "Warning", cond.Reason.CANARY_CANCELLED, f"canary {canary} stopped: {desired} may not roll out: {why}"
            )
            self.clear_canary()
        if action is not None:
            self.event("Normal", cond.Reason.ACTION_IGNORED, f"{action}: {desired} may not roll out: {why}")
        serving = f"{stable} keeps serving" if stable else "nothing is served yet"
        return self.finish(
            "Paused", f"{desired} is not rolled out: {why}; {serving}", reason=cond.Reason.VERSION_NOT_ALLOWED
        )

    def steady(self, action: str | None, stable: str, desired: str) -> Decision:
        if self.is_desired("stable"):
            if self.s.stable_binding is None and self.wanted is not None:
                self.set(stable_binding=self.wanted)  # a status from before bindings
            if self.s.failed_version:
                self.set(failed_version=None, failed_binding=None)
            if action is not None:
                self.event(
                    "Normal", cond.Reason.ACTION_IGNORED, f"{action}: {stable} is already stable, no rollout to act on"
                )
            return self.finish("Healthy", f"serving {stable}")
        if self.is_desired("failed") and action not in ("retry", "promote"):
            if action == "abort":
                self.event("Normal", cond.Reason.ACTION_IGNORED, f"abort: {desired} is already rolled back")
            return self.finish(
                "RolledBack", self.s.message or self.rolled_back_message(), reason=self._degraded_reason()
            )
        how: str | None = None
        if self.spec.rollout.strategy == "Recreate":
            how = "strategy Recreate: swapped at once"
        elif self.in_window(desired):
            how = f"{desired} was stable moments ago (rollbackWindow {self.spec.rollout.rollback_window}): no analysis"
        elif action == "promote":
            how = f"promoted by {ACTION_ANNOTATION} without a canary"
        if how is not None:
            self.record(desired, "Replaced", how)
            self.make_stable(desired, self.wanted)
            self.event("Normal", cond.Reason.REPLACED, f"{desired} replaced {stable} ({how})")
            return self.finish("Healthy", f"serving {desired}")
        if action == "retry":
            self.event("Normal", cond.Reason.RETRY, f"retrying the canary of {desired} from step 0")
        elif action is not None:
            self.event("Normal", cond.Reason.ACTION_IGNORED, f"{action}: no canary is running")
        self.set(failed_version=None, failed_binding=None, canary_version=desired, canary_weight=0, analysis=(),
                 last_measured_at=None, canary_binding=self.wanted)  # fmt: skip
        self.start_step(0)
        self.event("Normal", cond.Reason.ROLLOUT_STARTED, f"canary {desired} started against stable {stable}")
        return self.walk()

    def _degraded_reason(self) -> str:
        latest = self.s.history[0] if self.s.history else None
        return cond.Reason.ABORTED if latest is not None and latest.result == "Aborted" else cond.Reason.ANALYSIS_FAILED

    def walk(self) -> Decision:
        steps = steps_of(self.spec)
        interval = parse_duration(self.spec.analysis.interval)
        canary = self.s.canary_version
        while True:
            index = self.s.step
            if index is None:
                index = 0
                self.start_step(0)
            if index >= len(steps):
                held = self.canary_problem()
                if held is not None:
                    return self.hold(f"all {len(steps)} steps passed, promotion", held)
                return self.promote("all steps passed")
            step = steps[index]
            started = parse_time(self.s.step_started_at) or self.now
            where = f"step {index + 1}/{len(steps)}"
            if step.set_weight is not None:
                self.set(canary_weight=step.set_weight)
                self.start_step(index + 1)
                continue
            if step.pause is not None:
                if step.pause.duration is None:
                    return self.finish(
                        "Paused", f"canary {canary} at {self.s.canary_weight}%: paused at {where} until "
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
                    f"canary {canary} at {self.s.canary_weight}%: paused at {where} until {cond.now_iso(deadline)}",
                    requeue=left,
                )
            measured = step.analysis if step.analysis is not None else step.shadow
            assert measured is not None  # the schema allows exactly one action per step
            duration = parse_duration(measured.duration) if measured.duration else interval
            last = parse_time(self.s.last_measured_at)
            if last is not None and last < started:
                last = None
            kind = "shadow" if step.shadow is not None else "analysis"
            if last is None:
                # Until its first measurement, the step's clock runs only while the canary serves: a window
                # that ends as the canary becomes available holds none of its traffic (always inconclusive),
                # and the step's duration would count time the canary did not serve at its weight.
                held = self.canary_problem()
                if held is not None:
                    self.set(step_started_at=None)
                    return self.hold(f"{kind} at {where} not measured", held)
                if self.s.step_started_at is None:
                    self.start_step(index)
                    started = self.now
            due = (last or started) + datetime.timedelta(seconds=interval)
            if self.now < due:
                holding = last is not None and any(r.phase != "Successful" for r in self.s.analysis)
                state = "inconclusive, holding" if holding else "measuring"
                return self.finish(
                    "Progressing",
                    f"canary {canary} at {self.s.canary_weight}%: {kind} at {where} {state}",
                    requeue=(due - self.now).total_seconds(),
                    reason=cond.Reason.ANALYSIS_INCONCLUSIVE if holding else None,
                )
            held = self.canary_problem()
            if held is not None:
                return self.hold(f"{kind} at {where} not measured", held)
            verdict = self.inputs.verdict
            if verdict is None:
                return self.finish(
                    "Progressing",
                    f"canary {canary} at {self.s.canary_weight}%: {kind} at {where} measuring",
                    measure=self.target(),
                    requeue=interval,
                )
            self.inputs = replace(self.inputs, verdict=None)  # a verdict counts once
            self.set(analysis=verdict.results, last_measured_at=self.now_text)
            if verdict.phase == "Failed":
                return self.rollback(cond.Reason.ANALYSIS_FAILED, verdict.failing)
            if verdict.phase == "Inconclusive":
                return self.finish(
                    "Progressing",
                    f"canary {canary} at {self.s.canary_weight}%: {kind} at {where} inconclusive, "
                    "holding and measuring again",
                    requeue=interval,
                    reason=cond.Reason.ANALYSIS_INCONCLUSIVE,
                )
            if self.now >= started + datetime.timedelta(seconds=duration):
                self.start_step(index + 1)
                continue
            return self.finish(
                "Progressing",
                f"canary {canary} at {self.s.canary_weight}%: {kind} at {where} passing",
                requeue=interval,
            )


def previous_results(status: Mapping[str, Any] | RolloutState) -> tuple[AnalysisResult, ...] | None:
    """status.analysis of the current step (what ``measure`` carries counts over from)."""
    state = status if isinstance(status, RolloutState) else RolloutState.from_status(status)
    started = parse_time(state.step_started_at)
    if started is None or not state.analysis:
        return None
    kept = tuple(r for r in state.analysis if (parse_time(r.at) or started) >= started)
    return kept or None


def decide(inputs: Inputs) -> Decision:
    """The next rollout state (see the module docstring)."""
    return _Machine(inputs).run()
