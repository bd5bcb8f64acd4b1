"""The rollout state: parsed from status and written back unchanged; garbled status never crashes a decision."""

from __future__ import annotations

import datetime
import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelops.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from modelops.logic import analysis, rollout
from modelops.logic import conditions as cond
from modelops.logic.rolloutstate import AnalysisResult, HistoryEntry, RolloutState, VersionBinding
from modelops.logic.serving import Availability

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)

names = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12)
optional_names = st.none() | names
times = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1), timezones=st.just(datetime.UTC)
).map(cond.now_iso)
bindings = st.builds(VersionBinding, name=names, uid=names, sha256=st.text(string.hexdigits, min_size=1, max_size=64))
history = st.builds(HistoryEntry, version=names, result=st.sampled_from(["Deployed", "Promoted", "RolledBack"]),
                    at=times, message=st.none() | st.text(max_size=30), from_version=optional_names)  # fmt: skip
counts = st.integers(0, 10**6)
phases = st.sampled_from(["Successful", "Failed", "Inconclusive", "Running"])
results = st.builds(AnalysisResult, name=names, phase=phases, at=times, message=st.none() | st.text(max_size=30),
                    value=st.none() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False),
                    failures=counts, inconclusive=counts)  # fmt: skip
states = st.builds(
    RolloutState,
    phase=st.none() | st.sampled_from(["Progressing", "Paused", "Healthy", "Degraded", "RolledBack"]),
    message=optional_names,
    desired_version=optional_names,
    serving_version=optional_names,
    stable_version=optional_names,
    canary_version=optional_names,
    canary_weight=st.integers(0, 100),
    step=st.none() | st.integers(0, 20),
    step_started_at=st.none() | times,
    analysis=st.lists(results, max_size=3).map(tuple),
    previous_stable_versions=st.lists(names, max_size=4).map(tuple),
    failed_version=optional_names,
    last_measured_at=st.none() | times,
    last_action=optional_names,
    history=st.lists(history, max_size=3).map(tuple),
    stable_binding=st.none() | bindings,
    canary_binding=st.none() | bindings,
    failed_binding=st.none() | bindings,
    previous_stable_bindings=st.lists(bindings, max_size=3).map(tuple),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
KEYS = sorted(RolloutState().to_status())
garbled = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=len(KEYS))


@given(states)
def test_a_state_written_to_status_reads_back_the_same(state: RolloutState) -> None:
    again = RolloutState.from_status(state.to_status())
    assert again == state
    assert again.problems == ()


@given(garbled)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_any_status_parses_and_what_is_written_back_is_clean(status: dict[str, Any]) -> None:
    state = RolloutState.from_status(status)
    clean = RolloutState.from_status(state.to_status())
    assert clean == state
    assert clean.problems == ()


@given(st.lists(results, max_size=4))
def test_analysis_entries_are_written_back_byte_for_byte(entries: list[AnalysisResult]) -> None:
    written = json.dumps(RolloutState(analysis=tuple(entries)).to_status()["analysis"])
    reread = RolloutState.from_status({"analysis": json.loads(written)})
    assert reread.analysis == tuple(entries)
    assert json.dumps(reread.to_status()["analysis"]) == written


@given(st.lists(st.sampled_from(["Successful", "Failed", "Inconclusive"]), max_size=4), st.integers(1, 3),
       st.sampled_from(["Pause", "Pass", "Fail"]))  # fmt: skip
def test_what_a_verdict_writes_reads_back_as_the_same_json(phases: list[Any], limit: int, policy: Any) -> None:
    measured = [analysis.Measurement(f"check-{i}", p, 0.5 if p != "Inconclusive" else None, f"m{i}")
                for i, p in enumerate(phases)]  # fmt: skip
    first = analysis.decide(measured, failure_limit=limit, inconclusive_policy=policy, previous=None,
                            now="2026-01-01T12:00:00Z")  # fmt: skip
    status = json.loads(json.dumps(RolloutState(analysis=first.results).to_status()))
    state = RolloutState.from_status(status)
    assert (state.analysis, state.problems) == (first.results, ())
    assert json.dumps(state.to_status()) == json.dumps(status)
    again = analysis.decide(measured, failure_limit=limit, inconclusive_policy=policy, previous=state.analysis,
                            now="2026-01-01T12:00:10Z")  # fmt: skip
    assert [r.failures + r.inconclusive for r in again.results] == [2 * (r.failures + r.inconclusive)
                                                                    for r in first.results]  # fmt: skip


def test_an_entry_without_its_counts_reads_as_the_crd_default_zero() -> None:
    entry = {"name": "error-rate", "phase": "Successful", "at": "2026-01-01T12:00:00Z"}
    state = RolloutState.from_status({"analysis": [entry]})
    assert (state.analysis, state.problems) == ((AnalysisResult("error-rate", "Successful", entry["at"]),), ())
    assert state.to_status()["analysis"] == [{**entry, "failures": 0, "inconclusive": 0}]


@pytest.mark.parametrize("change", [
    {"name": ""}, {"name": 3}, {"phase": "Passed"}, {"phase": None}, {"at": "yesterday"}, {"at": None},
    {"message": 5}, {"value": "0.1"}, {"value": True}, {"value": float("nan")}, {"value": float("inf")},
    {"failures": -1}, {"failures": 1.5}, {"failures": False}, {"inconclusive": "2"},
])  # fmt: skip
def test_an_unparseable_analysis_entry_is_dropped_and_named(change: dict[str, Any]) -> None:
    good = {"name": "latency-p99", "phase": "Failed", "at": "2026-01-01T12:00:00Z", "failures": 1, "value": 0.4}
    state = RolloutState.from_status({"analysis": [good, {**good, "name": "error-rate", **change}]})
    assert [r.name for r in state.analysis] == ["latency-p99"]
    (problem,) = state.problems
    assert problem.startswith("status.analysis: ")
    assert RolloutState.from_status(state.to_status()).problems == ()


def test_every_field_written_is_a_field_of_the_status_schema() -> None:
    schema = {field.alias or name for name, field in ModelDeploymentStatus.model_fields.items()}
    assert set(KEYS) <= schema


def test_garbled_fields_parse_to_their_defaults_and_are_named() -> None:
    state = RolloutState.from_status({
        "canaryWeight": "twenty", "step": -1, "stableVersion": 7, "stepStartedAt": "yesterday",
        "history": ["x", {"version": "v1", "result": "Deployed", "at": "2026-01-01T00:00:00Z"}],
        "stableBinding": {"name": "v1"}, "previousStableVersions": "v0",
    })  # fmt: skip
    assert (state.canary_weight, state.step, state.stable_version, state.step_started_at) == (0, None, None, None)
    assert state.history == (HistoryEntry(version="v1", result="Deployed", at="2026-01-01T00:00:00Z"),)
    assert (state.stable_binding, state.previous_stable_versions) == (None, ())
    named = " ".join(state.problems)
    for key in ("canaryWeight", "step", "stableVersion", "stepStartedAt", "history", "stableBinding",
                "previousStableVersions"):  # fmt: skip
        assert f"status.{key}:" in named
    assert RolloutState.from_status({"canaryWeight": 20.0}).canary_weight == 20
    assert RolloutState.from_status(None) == RolloutState.from_status("not a mapping") == RolloutState()  # type: ignore[arg-type]


SPEC = ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v2", "analysis": {"interval": "10s"}})
UP = Availability("iris-stable", True, 1, 1, "1/1 available")


@given(garbled)
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
def test_a_garbled_status_never_crashes_a_decision_and_is_reported(status: dict[str, Any]) -> None:
    decision = rollout.decide(rollout.Inputs(spec=SPEC, namespace="ml", name="iris", status=status,
                                             desired="iris-v2", now=T0, stable=UP, canary=UP))  # fmt: skip
    assert decision.state.desired_version == "iris-v2"
    assert RolloutState.from_status(decision.status) == decision.state
    repaired = [e for e in decision.events if e[1] == cond.Reason.STATUS_REPAIRED]
    assert bool(repaired) == bool(RolloutState.from_status(status).problems)


def test_a_garbled_weight_during_a_canary_restarts_nothing_and_warns() -> None:
    status = {"stableVersion": "iris-v1", "canaryVersion": "iris-v2", "canaryWeight": "lots", "step": 1,
              "stepStartedAt": "2026-01-01T12:00:00Z", "phase": "Progressing"}  # fmt: skip
    decision = rollout.decide(rollout.Inputs(spec=SPEC, namespace="ml", name="iris", status=status,
                                             desired="iris-v2", now=T0, stable=UP, canary=UP))  # fmt: skip
    assert decision.state.canary_version == "iris-v2"
    assert decision.state.step == 1
    assert decision.status["canaryWeight"] == 0
    (warning,) = [e for e in decision.events if e[1] == cond.Reason.STATUS_REPAIRED]
    assert warning[0] == "Warning"
    assert "status.canaryWeight" in warning[2]


def test_previous_results_are_the_typed_entries_of_the_current_step_and_garbage_is_reported() -> None:
    status = {"stableVersion": "iris-v1", "canaryVersion": "iris-v2", "canaryWeight": 20, "step": 1,
              "stepStartedAt": "2026-01-01T11:59:00Z", "phase": "Progressing", "analysis": [
                  {"name": "error-rate", "phase": "Inconclusive", "at": "2026-01-01T11:59:30Z", "inconclusive": 1},
                  {"name": "latency-p99", "phase": "Failed", "at": "2026-01-01T11:58:00Z", "failures": 1},
                  {"name": "prediction-shift", "phase": "Failed", "at": "2026-01-01T11:59:30Z", "failures": "one"},
              ]}  # fmt: skip
    (current,) = rollout.previous_results(status) or ()
    assert current == AnalysisResult("error-rate", "Inconclusive", "2026-01-01T11:59:30Z", inconclusive=1)
    assert rollout.previous_results({**status, "stepStartedAt": None}) is None
    decision = rollout.decide(rollout.Inputs(spec=SPEC, namespace="ml", name="iris", status=status,
                                             desired="iris-v2", now=T0, stable=UP, canary=UP))  # fmt: skip
    (warning,) = [e for e in decision.events if e[1] == cond.Reason.STATUS_REPAIRED]
    assert "status.analysis: entries that are not check results" in warning[2]
    assert [r["name"] for r in decision.status["analysis"]] == ["error-rate", "latency-p99"]
