"""Canary analysis end to end below the operator: real Prometheus, real model servers, real load.

Every test calls ``modelops.controller.analysis.measure`` exactly as the ModelDeployment
controller does, against the fleet of :mod:`analysis.conftest`, and checks the verdict and the
AnalysisResult entries it would write into ``status.analysis``.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from analysis.conftest import (
    BROKEN,
    CONSTANT,
    HEALTHY,
    MODEL,
    NAMESPACE,
    OTHER,
    OTHER_POD,
    SLOW,
    STABLE,
    WINDOW,
    Fleet,
)
from modelops.api.modeldeployment import AnalysisSpec
from modelops.controller.analysis import AnalysisTarget, Verdict, measure
from modelops.logic.rolloutstate import AnalysisResult
from promkit import free_port


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def target(canary: str, stable: str | None = STABLE, deployment: str = MODEL) -> AnalysisTarget:
    return AnalysisTarget(
        namespace=NAMESPACE, deployment=deployment, model=MODEL, stable_version=stable, canary_version=canary
    )


def spec(fleet: Fleet, **fields: Any) -> AnalysisSpec:
    """An analysis of the fleet; one failed measurement fails a check unless a test says otherwise."""
    base = {"interval": WINDOW, "prometheus": {"address": fleet.prometheus.url}, "failureLimit": 1}
    return AnalysisSpec.model_validate({**base, **fields})


def by_name(verdict: Verdict) -> dict[str, AnalysisResult]:
    return {result.name: result for result in verdict.results}


@pytest.fixture
def live(fleet: Fleet) -> Fleet:
    """The fleet, with every server's traffic visible in Prometheus over the analysis window."""
    fleet.wait_for_traffic()
    return fleet


async def test_healthy_canary_passes_every_builtin_check(live: Fleet) -> None:
    analysis = spec(
        live,
        builtin={
            "errorRate": {"maxRatio": 0.01, "maxIncreaseOverStable": 0.01},
            "latency": {"maxSeconds": 0.5},
            "predictionShift": {"maxPsi": 0.25},
        },
    )
    verdict = await measure(analysis, target(HEALTHY), None, now=now())
    assert verdict.phase == "Successful", verdict.results
    assert verdict.failing is None
    results = by_name(verdict)
    assert set(results) == {"error-rate", "latency-p99", "prediction-shift"}
    assert results["error-rate"].value == 0.0
    assert 0 < results["latency-p99"].value < 0.5
    assert 0 <= results["prediction-shift"].value < 0.25
    assert all(r.failures == 0 and r.inconclusive == 0 for r in verdict.results)


async def test_two_deployments_of_one_version_are_judged_each_on_its_own_evidence(live: Fleet) -> None:
    # Both deployments serve iris-v2 in one namespace; only iris-eu's pods answer 500.
    assert live.load.codes[OTHER_POD].get(500, 0) > 0
    assert live.load.codes[HEALTHY].get(500, 0) == 0
    by_deployment = live.prometheus.query(
        f'sum by (deployment) (modelops_requests_total{{namespace="{NAMESPACE}",version="{HEALTHY}"}})'
    )
    assert {item["metric"]["deployment"] for item in by_deployment} == {MODEL, OTHER}  # the relabelling ran
    analysis = spec(live, builtin={"errorRate": {"maxRatio": 0.05}, "latency": {"maxSeconds": 0.5}})

    ours = await measure(analysis, target(HEALTHY), None, now=now())
    assert ours.phase == "Successful", ours.results
    assert by_name(ours)["error-rate"].value == 0.0

    theirs = await measure(analysis, target(HEALTHY, stable=None, deployment=OTHER), None, now=now())
    assert theirs.phase == "Failed", theirs.results
    assert theirs.failing is not None
    assert theirs.failing[0] == "error-rate"
    assert theirs.failing[1] == pytest.approx(1.0)


async def test_canary_answering_500_fails_on_error_rate(live: Fleet) -> None:
    assert live.load.codes[BROKEN].get(500, 0) > 0
    assert live.load.codes[BROKEN].get(200, 0) == 0
    verdict = await measure(spec(live), target(BROKEN), None, now=now())
    assert verdict.phase == "Failed"
    assert verdict.failing is not None
    name, value, message = verdict.failing
    assert name == "error-rate"
    assert value == pytest.approx(1.0)
    assert "maxRatio 0.05" in message
    assert by_name(verdict)["error-rate"].failures == 1


async def test_slow_canary_fails_on_p99_latency(live: Fleet) -> None:
    analysis = spec(live, builtin={"errorRate": {}, "latency": {"maxSeconds": 0.2}})
    verdict = await measure(analysis, target(SLOW), None, now=now())
    assert verdict.phase == "Failed", verdict.results
    assert verdict.failing is not None
    name, value, _ = verdict.failing
    assert name == "latency-p99"
    # The sleep puts every live request in the (0.25, 0.5] bucket of the server's histogram.
    assert value is not None
    assert 0.25 < value <= 0.5
    assert by_name(verdict)["error-rate"].phase == "Successful"


async def test_slow_canary_fails_against_the_stable_under_the_absolute_limit(live: Fleet) -> None:
    analysis = spec(live, builtin={"errorRate": None, "latency": {"maxSeconds": 5, "maxRatioToStable": 1.5}})
    verdict = await measure(analysis, target(SLOW), None, now=now())
    assert verdict.phase == "Failed", verdict.results
    assert verdict.failing is not None
    assert verdict.failing[0] == "latency-p99"
    assert "maxRatioToStable 1.5 times the stable's" in verdict.failing[2]


async def test_canary_with_shifted_predictions_fails_on_psi(live: Fleet) -> None:
    analysis = spec(live, builtin={"errorRate": {}, "latency": {}, "predictionShift": {"maxPsi": 0.25}})
    verdict = await measure(analysis, target(CONSTANT), None, now=now())
    assert verdict.phase == "Failed", verdict.results
    assert verdict.failing is not None
    name, value, _ = verdict.failing
    assert name == "prediction-shift"
    # Everything in one of three roughly equal classes: PSI is several units (see the unit tests).
    assert value is not None
    assert value > 2
    results = by_name(verdict)
    assert results["error-rate"].phase == "Successful"
    assert results["latency-p99"].phase == "Successful"


async def test_user_promql_checks_with_substitution(live: Fleet) -> None:
    # {{deployment}} keeps iris-eu's broken iris-v2 out of iris's share.
    canary = 'modelops_requests_total{namespace="{{namespace}}",deployment="{{deployment}}",version="{{canary}}"'
    stable = 'modelops_requests_total{namespace="{{namespace}}",deployment="{{deployment}}",version="{{stable}}"'
    ok_share = f'sum(rate({canary},code="200"}}[5s])) / sum(rate({canary}}}[5s]))'
    versus_stable = f"sum(rate({canary}}}[5s])) / sum(rate({stable}}}[5s]))"
    analysis = spec(
        live,
        builtin={"errorRate": None, "latency": None},
        metrics=[
            {"name": "ok-share", "query": ok_share, "successCondition": "result >= 0.99"},
            {"name": "traffic-vs-stable", "query": versus_stable, "successCondition": "result > 0.2"},
        ],
    )
    healthy = await measure(analysis, target(HEALTHY), None, now=now())
    assert healthy.phase == "Successful", healthy.results
    assert by_name(healthy)["ok-share"].value == pytest.approx(1.0)
    broken = await measure(analysis, target(BROKEN), None, now=now())
    assert broken.phase == "Failed"
    assert broken.failing is not None
    assert broken.failing[:2] == ("ok-share", 0.0)
    assert "does not meet 'result >= 0.99'" in broken.failing[2]


async def test_no_traffic_to_the_canary_is_inconclusive_never_a_pass(live: Fleet) -> None:
    analysis = spec(
        live,
        failureLimit=2,
        builtin={"errorRate": {}, "latency": {}, "predictionShift": {}},
        metrics=[{"name": "requests", "query": 'sum(modelops_requests_total{version="{{canary}}"})',
                  "successCondition": "result >= 0"}],
    )  # fmt: skip
    verdict = await measure(analysis, target("iris-v9"), None, now=now())
    assert verdict.phase == "Inconclusive"
    assert {r.phase for r in verdict.results} == {"Inconclusive"}
    assert all(r.inconclusive == 1 and r.value is None for r in verdict.results)
    assert "no requests to the canary" in by_name(verdict)["error-rate"].message


async def test_prometheus_stopped_mid_analysis_holds_then_fails_at_the_limit(live: Fleet) -> None:
    analysis = spec(live, failureLimit=2, inconclusivePolicy="Pause")
    first = await measure(analysis, target(HEALTHY), None, now=now())
    assert first.phase == "Successful", first.results
    live.prometheus.stop()
    try:
        second = await measure(analysis, target(HEALTHY), first.results, now=now())
        assert second.phase == "Inconclusive"  # hold: no promotion, no rollback yet
        assert second.failing is None
        assert all(r.phase == "Inconclusive" and r.inconclusive == 1 for r in second.results)
        assert all("Prometheus gave no answer" in r.message for r in second.results)
        third = await measure(analysis, target(HEALTHY), second.results, now=now())
        assert third.phase == "Failed"
        assert third.failing is not None
        assert third.failing[0] == "error-rate"
        assert "failureLimit 2 reached" in third.failing[2]
    finally:
        live.prometheus.start()


async def test_unreachable_prometheus_under_fail_and_pass_policies(fleet: Fleet) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    failing = AnalysisSpec.model_validate(
        {"inconclusivePolicy": "Fail", "failureLimit": 1, "prometheus": {"address": address}}
    )
    verdict = await measure(failing, target(HEALTHY), None, now=now())
    assert verdict.phase == "Failed"
    assert verdict.failing is not None
    assert "inconclusivePolicy Fail" in verdict.failing[2]
    passing = AnalysisSpec.model_validate({"inconclusivePolicy": "Pass", "prometheus": {"address": address}})
    verdict = await measure(passing, target(HEALTHY), None, now=now())
    assert verdict.phase == "Successful"
    assert all(r.phase == "Inconclusive" and r.inconclusive == 1 for r in verdict.results)


async def test_no_prometheus_configured_is_inconclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELOPS_PROMETHEUS_URL", raising=False)
    # The defaults (Pause, failureLimit 3): held twice, failed at the third inconclusive measurement.
    verdict = await measure(AnalysisSpec(), target(HEALTHY), None, now=now())
    assert verdict.phase == "Inconclusive"
    assert [r.name for r in verdict.results] == ["error-rate", "latency-p99"]
    assert all("MODELOPS_PROMETHEUS_URL" in r.message for r in verdict.results)
    verdict = await measure(AnalysisSpec(), target(HEALTHY), verdict.results, now=now())
    assert verdict.phase == "Inconclusive"
    verdict = await measure(AnalysisSpec(), target(HEALTHY), verdict.results, now=now())
    assert verdict.phase == "Failed"
    assert verdict.failing is not None
    assert "failureLimit 3 reached" in verdict.failing[2]


async def test_default_url_comes_from_the_environment(live: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOPS_PROMETHEUS_URL", live.prometheus.url)
    verdict = await measure(AnalysisSpec(interval=WINDOW), target(HEALTHY), None, now=now())
    assert verdict.phase == "Successful", verdict.results
