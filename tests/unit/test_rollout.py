"""The rollout state machine, table-driven: (spec, status, desired, clock, verdict, action) → decision."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.logic import rollout
from modelops.logic.analysis import Verdict

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
FAIL = Verdict("Failed", [{"name": "error-rate", "phase": "Failed", "value": 0.3, "at": "x"}],
               ("error-rate", 0.3, "0.3 > 0.05"))
PASS = Verdict("Successful", [{"name": "error-rate", "phase": "Successful", "value": 0.0, "at": "x"}], None)
HOLD = Verdict("Inconclusive", [{"name": "error-rate", "phase": "Inconclusive", "at": "x"}], None)


def spec(**changes: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v2", "replicas": 4,
                                               "analysis": {"interval": "10s"}, **changes})


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def iso(seconds: float) -> str:
    return at(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def decide(status: dict[str, Any], *, s: ModelDeploymentSpec | None = None, desired: str = "iris-v2",
           now: float = 0, verdict: Verdict | None = None, action: str | None = None) -> rollout.Decision:
    return rollout.decide(rollout.Inputs(spec=s or spec(), namespace="ml", name="iris", status=status,
                                         desired=desired, now=at(now), verdict=verdict, action=action))


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
        # the last analysis passes: promoted
        ({**CANARY, "step": 3, "canaryWeight": 50, "stepStartedAt": iso(0)}, 10, PASS, "Healthy", None, 0, False, None),
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


def test_first_rollout_goes_straight_to_stable() -> None:
    decision = decide({})
    assert decision.status["stableVersion"] == "iris-v2"
    assert decision.status["canaryVersion"] is None
    assert decision.traffic is not None
    assert decision.traffic.canary_active is False
    assert decision.summary.ready


def test_recreate_swaps_at_once() -> None:
    decision = decide(STABLE, s=spec(rollout={"strategy": "Recreate"}))
    assert (decision.status["phase"], decision.status["stableVersion"]) == ("Healthy", "iris-v2")
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
    [("abort", "RolledBack", "iris-v1", False), ("promote", "Healthy", "iris-v2", False),
     ("promote/2", "Healthy", "iris-v2", False), ("bogus", "Progressing", "iris-v1", False)],
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
    assert (decision.status["stableVersion"], decision.status["phase"]) == ("iris-v1", "Healthy")
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
