"""The rollout state machine, table-driven: (spec, status, desired, clock, verdict, action) → decision."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.logic import rollout
from modelops.logic.analysis import Verdict
from modelops.logic.rolloutstate import AnalysisResult, VersionBinding
from modelops.logic.serving import Availability

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
MEASURED = "2026-01-01T12:00:00Z"
FAIL = Verdict("Failed", (AnalysisResult("error-rate", "Failed", MEASURED, value=0.3),),
               ("error-rate", 0.3, "0.3 > 0.05"))
PASS = Verdict("Successful", (AnalysisResult("error-rate", "Successful", MEASURED, value=0.0),), None)
HOLD = Verdict("Inconclusive", (AnalysisResult("error-rate", "Inconclusive", MEASURED),), None)


def spec(**changes: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v2", "replicas": 4,
                                               "analysis": {"interval": "10s"}, **changes})


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def iso(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def up(name: str, replicas: int = 4) -> Availability:
    return Availability(name, True, replicas, replicas, f"Deployment {name}: {replicas}/{replicas} available")


def down(name: str, ready: int = 0, replicas: int = 4, *, stalled: bool = False) -> Availability:
    return Availability(name, False, ready, replicas, f"Deployment {name}: {ready}/{replicas} replicas of x available",
                        stalled=stalled)


UP = up("iris-stable")
CANARY_UP = up("iris-canary", 1)


def decide(status: dict[str, Any], *, s: ModelDeploymentSpec | None = None, desired: str = "iris-v2",
           now: float = 0, verdict: Verdict | None = None, action: str | None = None,
           stable: Availability | None = UP, canary: Availability | None = CANARY_UP) -> rollout.Decision:
    return rollout.decide(rollout.Inputs(spec=s or spec(), namespace="ml", name="iris", status=status,
                                         desired=desired, now=at(now), verdict=verdict, action=action,
                                         stable=stable, canary=canary))


STABLE = {"stableVersion": "iris-v1", "phase": "Healthy"}
CANARY = {"stableVersion": "iris-v1", "canaryVersion": "iris-v2", "phase": "Progressing"}


@pytest.mark.parametrize(
    ("status", "now", "verdict", "phase", "step", "weight", "measure", "requeue"),
    [
        # a new version: step 0 sets 20%, step 1 is the analysis; nothing to measure before one interval
        (STABLE, 0, None, "Progressing", 1, 20, False, 10),
        # analysis due: ask for a measurement
        ({**CANARY, "step": 1, "canaryWeight": 20, "stepStartedAt": iso(0)}, 10, None, "Progressing", 1, 20, True, 10),
        # a passing measurement at the end of the step: 50% and the next analysis
        ({**CANARY, "step": 1, "canaryWeight": 20, "stepStartedAt": iso(0)}, 10, PASS, "Progressing", 3, 50, False, 10),
        # inconclusive: hold at the step
        ({**CANARY, "step": 1, "canaryWeight": 20, "stepStartedAt": iso(0)}, 10, HOLD, "Progressing", 1, 20, False, 10),
        # the last analysis passes: 100%, then the promotion waits for the canary resized to 100% to be available
        ({**CANARY, "step": 3, "canaryWeight": 50, "stepStartedAt": iso(0)}, 10, PASS, "Progressing", 5, 100, False,
         10),
        # all steps passed and the canary is available: promoted (Progressing until the new stable serves)
        ({**CANARY, "step": 5, "canaryWeight": 100, "stepStartedAt": iso(0)}, 10, None, "Progressing", None, 0, False,
         None),
        # a failed measurement: rolled back
        ({**CANARY, "step": 3, "canaryWeight": 50, "stepStartedAt": iso(0)}, 10, FAIL, "RolledBack", None, 0, False,
         None),
    ],
)
def test_default_steps(status: dict[str, Any], now: float, verdict: Verdict | None, phase: str, step: int | None,
                       weight: int, measure: bool, requeue: float | None) -> None:
    decision = decide(status, now=now, verdict=verdict)
    assert decision.status["phase"] == phase
    assert decision.status["step"] == step
    assert decision.status["canaryWeight"] == weight
    assert (decision.measure is not None) == measure
    assert decision.requeue_after == requeue


def settled(decision: rollout.Decision, now: float = 1, **kwargs: Any) -> rollout.Decision:
    """The next decision once the Deployments converged to ``decision`` (available unless told)."""
    return decide(decision.status, now=now, desired=str(decision.status["desiredVersion"]), **kwargs)


def test_first_rollout_goes_straight_to_stable() -> None:
    decision = decide({}, stable=None, canary=None)
    assert decision.status["stableVersion"] == "iris-v2"
    assert decision.status["canaryVersion"] is None
    assert decision.traffic is not None
    assert decision.traffic.canary_active is False
    # The Deployment is only being created: not Ready yet, reconciling, saying why.
    assert (decision.status["phase"], decision.summary.ready, decision.summary.reconciling) == (
        "Progressing", False, True)
    assert decision.summary.reason == "Unavailable"
    assert "iris-stable is being updated to iris-v2" in decision.summary.message
    assert decision.requeue_after is None  # the Deployment's status change triggers the next look
    waiting = settled(decision, stable=down("iris-stable", ready=1))
    assert (waiting.status["phase"], waiting.summary.ready, waiting.summary.reason) == (
        "Progressing", False, "Unavailable")
    assert "1/4" in waiting.summary.message
    assert waiting.status["message"] == waiting.summary.message
    assert ("Progressing", True, "Unavailable") in [c[:3] for c in waiting.conditions]
    done = settled(waiting)
    assert (done.status["phase"], done.summary.ready, done.summary.reason) == ("Healthy", True, "Reconciled")
    assert done.status["message"] == "serving iris-v2"
    assert done.events == []  # the Deployed event was posted once, with the first decision


def test_ready_needs_the_stable_deployment_available() -> None:
    stalled = decide(STABLE, desired="iris-v1", stable=down("iris-stable", 2, stalled=True))
    assert (stalled.status["phase"], stalled.summary.ready, stalled.summary.stalled) == ("Degraded", False, True)
    assert stalled.summary.reason == "ProgressDeadlineExceeded"
    assert ("Degraded", True) in [c[:2] for c in stalled.conditions]
    unknown = decide(STABLE, desired="iris-v1", stable=None)
    assert (unknown.summary.ready, unknown.summary.reason) == (False, "Unavailable")
    zero = decide(STABLE, desired="iris-v1", s=spec(replicas=0),
                  stable=Availability("iris-stable", True, 0, 0, "scaled to zero", scaled_to_zero=True))
    assert (zero.status["phase"], zero.summary.ready, zero.summary.reason) == ("Healthy", True, "ScaledToZero")
    assert "scaled to zero" in zero.summary.message
    # A rolled-back rollout stays RolledBack whatever the pods do.
    rolled = {**STABLE, "phase": "RolledBack", "failedVersion": "iris-v2", "message": "rolled back"}
    assert decide(rolled, stable=down("iris-stable")).summary.reason == "RolledBack"


def test_an_unavailable_canary_holds_the_analysis_the_pause_and_the_promotion() -> None:
    sick = down("iris-canary", 0, 1)
    analysing = {**CANARY, "step": 1, "canaryWeight": 20, "stepStartedAt": iso(0)}
    held = decide(analysing, now=10, canary=sick)
    assert held.measure is None  # not measured
    assert (held.status["phase"], held.status["step"], held.summary.reason) == ("Progressing", 1, "CanaryUnavailable")
    assert "analysis at step 2/5 not measured" in held.summary.message
    assert "iris-canary: 0/1" in held.summary.message
    assert held.requeue_after == 10
    assert held.status["stepStartedAt"] is None  # not measured yet: the step's clock waits for the canary
    # Even a passing verdict (a caller that measured anyway) does not move it on.
    assert decide(analysing, now=10, verdict=PASS, canary=sick).status["step"] == 1
    assert decide(analysing, now=10, canary=CANARY_UP).measure is not None
    s = spec(rollout={"steps": [{"setWeight": 30}, {"pause": {"duration": "1m"}}]})
    pausing = {**CANARY, "step": 1, "canaryWeight": 30, "stepStartedAt": iso(0)}
    over = decide(pausing, s=s, now=61, canary=sick)
    assert (over.status["step"], over.summary.reason, over.status["canaryVersion"]) == (1, "CanaryUnavailable",
                                                                                       "iris-v2")
    assert "pause at step 2/2 over" in over.summary.message
    promoted = decide(pausing, s=s, now=61)
    assert promoted.status["stableVersion"] == "iris-v2"
    # An explicit promote skips the steps and their analysis (a person decided), not availability: refused,
    # said so, and spent; the rollout holds where it was. The same person's next promote, once the canary
    # serves, promotes.
    refused = decide(pausing, s=s, now=5, action="promote/1", canary=sick)
    assert (refused.status["stableVersion"], refused.status["canaryVersion"]) == ("iris-v1", "iris-v2")
    assert refused.status["lastAction"] == "promote/1"
    [(kind, _reason, message)] = [e for e in refused.events if e[1] == "PromoteRefused"]
    assert kind == "Warning"
    assert "canary iris-v2 is not available (Deployment iris-canary: 0/1" in message
    again = decide(refused.status, s=s, now=6, action="promote/1", canary=CANARY_UP)
    assert again.status["stableVersion"] == "iris-v1"  # the same value does not act twice
    forced = decide(refused.status, s=s, now=6, action="promote/2", canary=CANARY_UP)
    assert forced.status["stableVersion"] == "iris-v2"
    assert forced.status["history"][0]["result"] == "Promoted"


def test_a_canary_past_its_progress_deadline_is_rolled_back_not_held_for_ever() -> None:
    gave_up = down("iris-canary", 0, 1, stalled=True)
    analysing = {**CANARY, "step": 1, "canaryWeight": 20, "stepStartedAt": iso(0)}
    failed = decide(analysing, now=10, canary=gave_up)
    assert (failed.status["phase"], failed.status["stableVersion"], failed.status["failedVersion"]) == (
        "RolledBack", "iris-v1", "iris-v2")  # fmt: skip
    assert failed.status["canaryWeight"] == 0
    assert failed.rejection is not None
    assert (failed.rejection.metric, failed.rejection.value) == ("availability", 0.0)
    assert "never became available" in failed.rejection.message
    # Still within the deadline: held, as before.
    assert decide(analysing, now=10, canary=down("iris-canary", 0, 1)).status["phase"] == "Progressing"


def test_recreate_swaps_at_once() -> None:
    decision = decide(STABLE, s=spec(rollout={"strategy": "Recreate"}))
    assert (decision.status["phase"], decision.status["stableVersion"]) == ("Progressing", "iris-v2")
    assert settled(decision, s=spec(rollout={"strategy": "Recreate"})).status["phase"] == "Healthy"
    assert decision.status["previousStableVersions"] == ["iris-v1"]


def test_timed_pause_honours_step_started_at() -> None:
    s = spec(rollout={"steps": [{"setWeight": 30}, {"pause": {"duration": "1m"}}, {"setWeight": 60}, {"pause": {}}]})
    status = {**CANARY, "step": 1, "canaryWeight": 30, "stepStartedAt": iso(0)}
    waiting = decide(status, s=s, now=45)
    assert (waiting.status["phase"], waiting.status["step"], waiting.requeue_after) == ("Paused", 1, 15)
    assert waiting.status["stepStartedAt"] == iso(0)
    later = decide(status, s=s, now=61)
    assert (later.status["phase"], later.status["step"], later.status["canaryWeight"]) == ("Paused", 3, 60)
    assert later.requeue_after is None  # an open pause waits for a promote


def test_rollback_marks_stalled_degraded_and_rejects() -> None:
    decision = decide({**CANARY, "step": 1, "canaryWeight": 20, "stepStartedAt": iso(0)}, now=10, verdict=FAIL)
    assert decision.summary.stalled
    assert decision.summary.reason == "RolledBack"
    assert ("Degraded", True) in [(c[0], c[1]) for c in decision.conditions]
    degraded = next(c for c in decision.conditions if c[0] == "Degraded")
    assert degraded[2] == "AnalysisFailed"
    assert "error-rate = 0.3" in degraded[3]
    assert decision.rejection == rollout.Rejection("iris-v2", "error-rate", 0.3, "0.3 > 0.05")
    assert decision.status["failedVersion"] == "iris-v2"
    assert decision.traffic is not None
    assert (decision.traffic.canary_active, decision.traffic.stable_version) == (False, "iris-v1")
    assert any("Revert the commit that set spec.modelVersion to iris-v2" in e[2] for e in decision.events)
    # Still wanted: stays rolled back, stalled, no new canary.
    again = decide(decision.status, now=30)
    assert again.status["phase"] == "RolledBack"
    assert again.summary.stalled
    assert again.status["canaryVersion"] is None
    # retry starts over from step 0 (which sets 20% at once)
    retried = decide(decision.status, now=40, action="retry/1")
    assert (retried.status["canaryVersion"], retried.status["step"], retried.status["lastAction"]) == (
        "iris-v2", 1, "retry/1")
    # a new desired version starts a new canary
    newer = decide(decision.status, now=40, desired="iris-v3")
    assert newer.status["canaryVersion"] == "iris-v3"


@pytest.mark.parametrize(
    ("action", "phase", "stable", "rejected"),
    [("abort", "RolledBack", "iris-v1", False), ("promote", "Progressing", "iris-v2", False),
     ("promote/2", "Progressing", "iris-v2", False), ("bogus", "Progressing", "iris-v1", False)],
)
def test_actions_act_once(action: str, phase: str, stable: str, rejected: bool) -> None:
    status = {**CANARY, "step": 1, "canaryWeight": 20, "stepStartedAt": iso(0)}
    decision = decide(status, now=5, action=action)
    assert decision.status["phase"] == phase
    assert decision.status["stableVersion"] == stable
    assert decision.status["lastAction"] == action
    assert (decision.rejection is not None) == rejected
    repeat = decide({**status, "lastAction": action}, now=5, action=action)
    assert repeat.status["phase"] == "Progressing"


def test_rollback_window_skips_analysis() -> None:
    status = {"stableVersion": "iris-v2", "previousStableVersions": ["iris-v1"], "phase": "Healthy"}
    decision = decide(status, desired="iris-v1")
    assert (decision.status["stableVersion"], decision.status["phase"]) == ("iris-v1", "Progressing")
    assert settled(decision).status["phase"] == "Healthy"
    assert decision.status["history"][0]["result"] == "Replaced"
    outside = decide(status, desired="iris-v1", s=spec(rollout={"rollbackWindow": 0}))
    assert outside.status["canaryVersion"] == "iris-v1"


def test_a_superseded_canary_restarts_with_the_new_version() -> None:
    decision = decide({**CANARY, "step": 1, "canaryWeight": 20, "stepStartedAt": iso(0)}, desired="iris-v3", now=3)
    assert decision.status["canaryVersion"] == "iris-v3"
    assert decision.status["history"][0]["result"] == "Cancelled"


def test_shadow_needs_gateway_routing() -> None:
    problem = rollout.check_spec(spec(rollout={"steps": [{"shadow": {"percent": 10}}]}))
    assert problem is not None
    assert problem.startswith("spec.rollout.steps[0].shadow")
    gateway = {"gatewayAPI": {"parentRefs": [{"name": "gw"}]}}
    s = spec(trafficRouting=gateway, rollout={"steps": [{"shadow": {"percent": 10}}, {"setWeight": 50}]})
    assert rollout.check_spec(s) is None
    decision = decide(STABLE, s=s)
    assert decision.traffic is not None
    assert (decision.traffic.mirror_percent, decision.traffic.canary_weight) == (10, 0)


# --- versions are exact objects: name, uid and digest -----------------------------------------------

V1 = {"name": "iris-v1", "uid": "uid-1", "sha256": "1" * 64}
V2 = {"name": "iris-v2", "uid": "uid-2", "sha256": "2" * 64}
V2_AGAIN = {"name": "iris-v2", "uid": "uid-2b", "sha256": "b" * 64}  # deleted and re-created: another object
V1_AGAIN = {"name": "iris-v1", "uid": "uid-1b", "sha256": "b" * 64}


def bound(status: dict[str, Any], *, desired: str = "iris-v2", binding: dict[str, str] | None = None,
          blocked: str | None = None, **kwargs: Any) -> rollout.Decision:
    return rollout.decide(rollout.Inputs(spec=kwargs.pop("s", None) or spec(), namespace="ml", name="iris",
                                         status=status, desired=desired, now=at(kwargs.pop("now", 0)),
                                         stable=UP, canary=CANARY_UP, desired_binding=binding, blocked=blocked,
                                         **kwargs))  # fmt: skip


def test_bindings_follow_the_versions_through_canary_promotion_and_rollback() -> None:
    first = bound({}, desired="iris-v1", binding=V1)
    assert first.status["stableBinding"] == V1
    started = bound(first.status, binding=V2)
    assert started.status["canaryBinding"] == V2
    assert rollout.bindings_of(started.status) == (VersionBinding(**V1), VersionBinding(**V2))
    promoted = bound(started.status, binding=V2, action="promote/1")
    assert (promoted.status["stableBinding"], promoted.status["canaryBinding"]) == (V2, None)
    assert promoted.status["previousStableBindings"] == [V1]
    failed = bound({**started.status, "step": 1, "canaryWeight": 20, "stepStartedAt": iso(0)}, binding=V2,
                   now=10, verdict=FAIL)  # fmt: skip
    assert (failed.status["failedVersion"], failed.status["failedBinding"]) == ("iris-v2", V2)
    # the canary Deployment keeps the failed one, at 0
    assert rollout.bindings_of(failed.status) == (VersionBinding(**V1), VersionBinding(**V2))


def test_another_object_under_the_stable_name_goes_through_the_canary() -> None:
    serving = {"stableVersion": "iris-v1", "stableBinding": V1, "phase": "Healthy"}
    again = bound(serving, desired="iris-v1", binding=V1_AGAIN)
    assert (again.status["stableBinding"], again.status["canaryVersion"]) == (V1, "iris-v1")
    assert again.status["canaryBinding"] == V1_AGAIN
    assert again.traffic is not None
    assert again.traffic.canary_active
    assert ("Normal", "RolloutStarted", "canary iris-v1 started against stable iris-v1") in again.events
    # The same object as bound: nothing to do.
    assert bound(serving, desired="iris-v1", binding=V1).status["canaryVersion"] is None


def test_a_canary_replaced_by_another_object_under_its_name_starts_again() -> None:
    running = {"stableVersion": "iris-v1", "stableBinding": V1, "canaryVersion": "iris-v2", "canaryBinding": V2,
               "canaryWeight": 50, "step": 3, "stepStartedAt": iso(0), "phase": "Progressing"}
    restarted = bound(running, binding=V2_AGAIN, now=1)
    assert restarted.status["canaryBinding"] == V2_AGAIN
    assert restarted.status["canaryWeight"] == 20  # from step 0 again
    assert restarted.status["history"][0]["result"] == "Cancelled"


def test_a_rollback_does_not_hold_back_another_object_under_the_name_nor_the_window_skip_it() -> None:
    rolled = {"stableVersion": "iris-v1", "stableBinding": V1, "failedVersion": "iris-v2", "failedBinding": V2,
              "phase": "RolledBack", "message": "rolled back"}
    assert bound(rolled, binding=V2).status["phase"] == "RolledBack"
    assert bound(rolled, binding=V2_AGAIN).status["canaryBinding"] == V2_AGAIN
    window = {"stableVersion": "iris-v1", "stableBinding": V1, "previousStableVersions": ["iris-v2"],
              "previousStableBindings": [V2], "phase": "Healthy"}
    assert bound(window, binding=V2).status["stableBinding"] == V2  # a return to a known-good version
    assert bound(window, binding=V2_AGAIN).status["canaryVersion"] == "iris-v2"  # not known: analysed


def test_a_status_from_before_bindings_binds_by_name_and_records_the_binding() -> None:
    legacy = {"stableVersion": "iris-v1", "phase": "Healthy"}
    adopted = bound(legacy, desired="iris-v1", binding=V1)
    assert (adopted.status["stableBinding"], adopted.status["canaryVersion"]) == (V1, None)
    # Recording the binding of the object already served changes no Deployment: still serving, Ready.
    assert (adopted.status["phase"], adopted.summary.ready) == ("Healthy", True)
    # Without bindings on either side the name decides, as before.
    assert bound(legacy, desired="iris-v1").status["canaryVersion"] is None


def test_a_version_that_may_not_roll_out_starts_nothing_and_stops_its_canary() -> None:
    why = "namespace ml is labelled as production and iris-v2 holds stage Staging, not Production"
    serving = {"stableVersion": "iris-v1", "stableBinding": V1, "phase": "Healthy"}
    held = bound(serving, binding=V2, blocked=why)
    assert (held.status["phase"], held.status["canaryVersion"], held.status["stableVersion"]) == (
        "Paused", None, "iris-v1")  # fmt: skip
    assert (held.summary.ready, held.summary.reason, held.summary.reconciling) == (False, "VersionNotAllowed", True)
    assert held.summary.message == f"iris-v2 is not rolled out: {why}; iris-v1 keeps serving"
    assert held.traffic is not None
    assert not held.traffic.canary_active
    running = {**serving, "canaryVersion": "iris-v2", "canaryBinding": V2, "canaryWeight": 20, "step": 1,
               "stepStartedAt": iso(0)}  # fmt: skip
    stopped = bound(running, binding=V2, blocked=why)
    assert stopped.status["canaryVersion"] is None
    assert stopped.status["history"][0]["result"] == "Cancelled"
    assert any(e[1] == "CanaryCancelled" for e in stopped.events)
    nothing = bound({}, binding=V2, blocked=why)
    assert nothing.traffic is None
    assert "nothing is served yet" in nothing.summary.message
    # The stable itself is wanted: serving it is no rollout, the block does not apply.
    assert bound(serving, desired="iris-v1", binding=V1, blocked=why).status["phase"] == "Healthy"
