"""The operator's object series: a ModelDeployment's status, a ModelVersion's metrics, on its /metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from modelops.controller import metrics


def samples(rollouts: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.rollout_families(rollouts)
        for s in family.samples
    }


def test_a_canary_in_analysis_exports_weights_step_and_one_phase_per_check() -> None:
    status = {"stableVersion": "1", "canaryVersion": "2", "canaryWeight": 20, "step": 3, "analysis": [
        {"name": "error-rate", "phase": "Failed", "value": 0.2, "at": "t"},
        {"name": "quality", "phase": "Inconclusive", "at": "t"},
    ]}  # fmt: skip
    got = samples({("ml", "iris"): status})
    where = (("deployment", "iris"), ("namespace", "ml"))
    assert got[(metrics.TRAFFIC_WEIGHT, (*where, ("role", "stable"), ("version", "1")))] == 80
    assert got[(metrics.TRAFFIC_WEIGHT, (*where, ("role", "canary"), ("version", "2")))] == 20
    assert got[(metrics.STEP, where)] == 3
    verdicts = {(dict(labels)["check"], dict(labels)["phase"]): v for (name, labels), v in got.items()
                if name == metrics.ANALYSIS}  # fmt: skip
    assert {k for k, v in verdicts.items() if v == 1} == {("error-rate", "Failed"), ("quality", "Inconclusive")}
    assert len(verdicts) == 2 * len(metrics.PHASES)
    values = {dict(labels)["check"]: v for (name, labels), v in got.items() if name == metrics.ANALYSIS_VALUE}
    assert values == {"error-rate": 0.2}  # a check without a value exports none
    assert all(dict(labels).get("version", "2") == "2" for (name, labels) in got if name == metrics.ANALYSIS)


def test_without_a_canary_the_stable_takes_everything_and_forget_drops_the_deployment() -> None:
    got = samples({("ml", "iris"): {"stableVersion": "1", "canaryWeight": 50}})
    assert [(n, dict(labels)["role"], v) for (n, labels), v in got.items()] == [(metrics.TRAFFIC_WEIGHT, "stable", 100)]
    collector = metrics.ObjectCollector(metrics.rollout_families)
    registry = CollectorRegistry()
    registry.register(collector)
    collector.observe("ml", "iris", {"stableVersion": "1"})
    assert b'modelops_rollout_traffic_weight{deployment="iris"' in generate_latest(registry)
    collector.forget("ml", "iris")
    assert b"deployment=" not in generate_latest(registry)


def test_a_versions_finite_training_metrics_are_exported_by_namespace_model_and_version() -> None:
    versions = {("ml", "iris-v3"): {"model": "iris", "metrics": {"accuracy": 0.9, "f1": 0.8, "odd": float("nan")}}}
    (family,) = metrics.training_families(versions)
    got = {s.labels["metric"]: (s.labels["namespace"], s.labels["model"], s.labels["version"], s.value)
           for s in family.samples}  # fmt: skip
    assert got == {"accuracy": ("ml", "iris", "iris-v3", 0.9), "f1": ("ml", "iris", "iris-v3", 0.8)}
    assert family.name == metrics.TRAINING_METRIC
    assert metrics.training_families({("ml", "v"): {"model": "m"}})[0].samples == []  # no metrics, no series
