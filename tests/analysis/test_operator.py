"""The canary analysis inside the operator: the real Kopf operator on the emulator, a real Prometheus,
real model servers standing in for the Deployments' pods (:mod:`analysis.podrunner`), real load.

Given a ModelDeployment serving iris-v1 with the steps setWeight 50 → pause 5s → analysis,
when it is pointed at a healthy iris-v2, the canary is analysed and promoted; when it is then
pointed at iris-v3, whose model raises on every request, the analysis fails on the error rate
and the rollout is rolled back: canary scaled to zero, iris-v2 still stable, the reason on
iris-v3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from analysis import canary_estimators
from analysis.conftest import MODEL, NAMESPACE, _write
from analysis.podrunner import PodRunner, ServiceLoad
from kubeemu.client import KubeClient
from promkit import Prometheus
from serve import modelkit

API = "modelops.io/v1alpha1"


def model_version(name: str, number: int, model_dir: Path) -> dict[str, Any]:
    result = json.loads((model_dir / "result.json").read_text())
    return {
        "apiVersion": API,
        "kind": "ModelVersion",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"modelops.io/model": MODEL}},
        "spec": {
            "model": MODEL,
            "version": number,
            "artifact": {
                "uri": result["artifact"]["uri"],
                "sha256": result["artifact"]["sha256"],
                "format": "joblib",
            },
            "task": "classification",
            "framework": result["framework"],
            "signature": result["signature"],
        },
    }


@pytest.fixture(autouse=True)
def quality_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator reads live quality every second here (a minute by default)."""
    monkeypatch.setenv("MODELOPS_QUALITY_SECONDS", "1")


@pytest.fixture(autouse=True)
def pickle_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bad canaries are pickles (see analysis.conftest._write): the operator's policy allows them here."""
    path = tmp_path / "policy.yaml"
    path.write_text("allowPickle: nonProduction\n")
    monkeypatch.setenv("MODELOPS_POLICY_FILE", str(path))


@pytest.fixture
def rollout(
    cluster: KubeClient, operator: KopfRunner, prometheus: Prometheus, tmp_path: Path
) -> Iterator[tuple[KubeClient, PodRunner]]:
    versions = {
        "iris-v1": _write(tmp_path / "v1", LogisticRegression(max_iter=2000)),
        "iris-v2": _write(tmp_path / "v2", LogisticRegression(max_iter=2000, C=0.5)),
        "iris-v3": _write(tmp_path / "v3", canary_estimators.Broken()),
    }
    for number, (name, path) in enumerate(versions.items(), start=1):
        cluster.create(model_version(name, number, path))
    cluster.create(
        {
            "apiVersion": API,
            "kind": "ModelDeployment",
            "metadata": {"name": MODEL, "namespace": NAMESPACE},
            "spec": {
                "model": MODEL,
                "modelVersion": "iris-v1",
                "replicas": 2,
                "rollout": {"steps": [{"setWeight": 50}, {"pause": {"duration": "5s"}}, {"analysis": {}}]},
                "analysis": {
                    "interval": "4s",
                    "failureLimit": 2,
                    "prometheus": {"address": prometheus.url},
                },
            },
        }
    )
    runner = PodRunner(cluster, prometheus, NAMESPACE, MODEL, tmp_path / "pods").start()
    data = load_iris(as_frame=True)
    _, test_x, _, _ = modelkit._split(data.data, data.target)
    load = ServiceLoad(runner, MODEL, test_x.to_numpy().tolist())
    try:
        yield cluster, runner
    finally:
        load.stop()
        runner.close()
    assert runner.errors == []


def status(obj: dict[str, Any] | None) -> dict[str, Any]:
    return dict((obj or {}).get("status") or {})


def test_healthy_canary_is_promoted_and_a_failing_one_rolled_back(
    rollout: tuple[KubeClient, PodRunner], prometheus: Prometheus, tmp_path: Path
) -> None:
    kube, runner = rollout
    first = kube.wait_for(
        API, "ModelDeployment", NAMESPACE, MODEL,
        lambda o: status(o).get("stableVersion") == "iris-v1" and status(o).get("phase") == "Healthy", timeout=30,
    )  # fmt: skip
    assert status(first).get("canaryVersion") is None

    kube.patch(API, "ModelDeployment", NAMESPACE, MODEL, {"spec": {"modelVersion": "iris-v2"}})
    canary = kube.wait_for(
        API, "ModelDeployment", NAMESPACE, MODEL,
        lambda o: status(o).get("canaryVersion") == "iris-v2" and status(o).get("canaryWeight") == 50, timeout=30,
    )  # fmt: skip
    assert status(canary)["stableVersion"] == "iris-v1"
    promoted = kube.wait_for(
        API, "ModelDeployment", NAMESPACE, MODEL,
        lambda o: status(o).get("stableVersion") == "iris-v2" and status(o).get("phase") == "Healthy", timeout=60,
    )  # fmt: skip
    analysis = {r["name"]: r for r in status(promoted).get("analysis") or []}
    assert analysis["error-rate"]["phase"] == "Successful"
    assert analysis["error-rate"]["value"] == 0.0
    assert analysis["latency-p99"]["phase"] == "Successful"

    kube.patch(API, "ModelDeployment", NAMESPACE, MODEL, {"spec": {"modelVersion": "iris-v3"}})
    rolled_back = kube.wait_for(
        API, "ModelDeployment", NAMESPACE, MODEL, lambda o: status(o).get("phase") == "RolledBack", timeout=60
    )
    final = status(rolled_back)
    assert final["stableVersion"] == "iris-v2"
    assert final["canaryWeight"] == 0
    analysis = {r["name"]: r for r in final.get("analysis") or []}
    assert analysis["error-rate"]["phase"] == "Failed"
    assert analysis["error-rate"]["value"] == 1.0
    # Status is written first, then the children converge to it.
    kube.wait_for(
        "apps/v1", "Deployment", NAMESPACE, f"{MODEL}-canary",
        lambda o: o is not None and o["spec"].get("replicas") == 0, timeout=10,
    )  # fmt: skip
    stable_deployment = kube.get("apps/v1", "Deployment", NAMESPACE, f"{MODEL}-stable")
    assert stable_deployment["spec"]["template"]["metadata"]["labels"]["modelops.io/version"] == "iris-v2"
    rejected = kube.wait_for(
        API, "ModelVersion", NAMESPACE, "iris-v3", lambda o: bool(status(o).get("rejected")), timeout=10
    )
    assert status(rejected)["rejected"]["metric"] == "error-rate"
    # The stand-in kubelet follows: only the stable pod, on iris-v2, is left running.
    Prometheus.wait(
        lambda: runner.versions() == {f"{MODEL}-stable": "iris-v2"}, timeout=20, what="the canary pod stopped"
    )

    # Live quality in the status: the deployment's own PrometheusRule, loaded into Prometheus, records the
    # estimate for the stable's served rows (no labels were sent: zero labels, no live figure), and the
    # operator's timer copies it into status.quality.
    rule = kube.get("monitoring.coreos.com/v1", "PrometheusRule", NAMESPACE, MODEL)
    rule_file = tmp_path / "deployment-rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    prometheus.set_rule_files([rule_file])

    def stable_quality(obj: dict[str, Any] | None) -> dict[str, Any] | None:
        for entry in status(obj).get("quality") or []:
            if entry.get("role") == "stable" and entry.get("predictions", 0) > 0 and "estimatedAccuracy" in entry:
                return dict(entry)
        return None

    measured = kube.wait_for(API, "ModelDeployment", NAMESPACE, MODEL, stable_quality, timeout=60)
    entry = stable_quality(measured)
    assert entry is not None
    assert (entry["version"], entry["window"], entry["labels"]) == ("iris-v2", "1h", 0.0)
    assert 0.5 < entry["estimatedAccuracy"] <= 1.0
    assert "accuracy" not in entry
    assert status(measured)["qualityMeasuredAt"]
