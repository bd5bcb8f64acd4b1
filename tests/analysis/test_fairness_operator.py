"""The builtin ``fairness`` check inside the operator: a canary less fair than the stable is rolled back.

The real Kopf operator on the emulator, a real Prometheus, real model servers standing in for the
Deployments' pods (:mod:`analysis.podrunner`: each runs with the ConfigMap the operator writes, so
with the version's fairness record, and counts its predictions by group), real load through the
Service. The ModelDeployment serves mixed-v1 (the mixed model: colour, x1, x2) and its rollout is
setWeight 50 → pause → analysis with the ``fairness`` check on colour. mixed-v2 was trained on
labels that are the colour itself (yes for red): its live demographic parity difference on colour
is far above the stable's, so the analysis fails on fairness and the rollout is rolled back, the
reason on mixed-v2. (``failureLimit`` leaves room for the inconclusive rounds while the canary's
groups gather ``minGroupRows``.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kopf.testing import KopfRunner
from sklearn.base import clone

from analysis.conftest import NAMESPACE
from analysis.podrunner import PodRunner, ServiceLoad
from analysis.test_operator import API, status
from kubeemu.client import KubeClient
from prometheus.test_fairness_live import record_fairness
from promkit import Prometheus
from serve import modelkit

MODEL = "mixed"


def model_version(name: str, number: int, model_dir: Path) -> dict[str, Any]:
    result = json.loads((model_dir / "result.json").read_text())
    return {
        "apiVersion": API, "kind": "ModelVersion",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"modelops.io/model": MODEL}},
        "spec": {
            "model": MODEL, "version": number, "task": "classification",
            "artifact": {key: result["artifact"][key] for key in ("uri", "sha256", "format")},
            "framework": result["framework"], "signature": result["signature"], "fairness": result["fairness"],
        },
    }  # fmt: skip


@pytest.fixture
def rollout(
    cluster: KubeClient, operator: KopfRunner, prometheus: Prometheus, tmp_path: Path
) -> Iterator[tuple[KubeClient, PodRunner]]:
    stable = modelkit.categorical(tmp_path / "v1")
    record_fairness(stable.path)
    # The canary learnt the colour itself: yes for red, no otherwise.
    rows = stable.test_x
    biased = clone(stable.pipeline).fit(rows, np.where(rows["colour"] == "red", "yes", "no"))
    canary = modelkit.write_model_dir(tmp_path / "v2", name=MODEL, pipeline=biased, train_x=rows, test_x=rows,
                                      task="classification", categorical=["colour"])  # fmt: skip
    record_fairness(canary.path)
    cluster.create(model_version("mixed-v1", 1, stable.path))
    cluster.create(model_version("mixed-v2", 2, canary.path))
    cluster.create({
        "apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": MODEL, "namespace": NAMESPACE},
        "spec": {
            "model": MODEL, "modelVersion": "mixed-v1", "replicas": 1,
            "rollout": {"steps": [{"setWeight": 50}, {"pause": {"duration": "10s"}}, {"analysis": {}}]},
            "analysis": {
                "interval": "4s", "failureLimit": 6, "prometheus": {"address": prometheus.url},
                "builtin": {"fairness": {"feature": "colour", "maxIncrease": 0.05, "minGroupRows": 10,
                                         "window": "1h"}},
            },
        },
    })  # fmt: skip
    runner = PodRunner(cluster, prometheus, NAMESPACE, MODEL, tmp_path / "pods").start()
    bodies = [modelkit.frame_body(rows.iloc[i : i + 1], ["colour"]) for i in range(len(rows))]
    load = ServiceLoad(runner, MODEL, [], bodies=bodies)
    try:
        yield cluster, runner
    finally:
        load.stop()
        runner.close()
    assert runner.errors == []


def test_a_canary_less_fair_than_the_stable_is_rolled_back(rollout: tuple[KubeClient, PodRunner]) -> None:
    kube, runner = rollout
    first = kube.wait_for(
        API, "ModelDeployment", NAMESPACE, MODEL,
        lambda o: status(o).get("stableVersion") == "mixed-v1" and status(o).get("phase") == "Healthy", timeout=60,
    )  # fmt: skip
    assert status(first).get("canaryVersion") is None

    kube.patch(API, "ModelDeployment", NAMESPACE, MODEL, {"spec": {"modelVersion": "mixed-v2"}})
    rolled_back = kube.wait_for(
        API, "ModelDeployment", NAMESPACE, MODEL, lambda o: status(o).get("phase") == "RolledBack", timeout=120
    )
    final = status(rolled_back)
    assert final["stableVersion"] == "mixed-v1"
    assert final["canaryWeight"] == 0
    analysis = {r["name"]: r for r in final.get("analysis") or []}
    fairness = analysis["fairness"]
    assert fairness["phase"] == "Failed", fairness
    assert "demographic parity difference on colour" in fairness["message"]
    assert "more than maxIncrease 0.05" in fairness["message"]
    assert fairness["value"] > 0.9  # the canary's: red always yes, blue never
    rejected = kube.wait_for(
        API, "ModelVersion", NAMESPACE, "mixed-v2", lambda o: bool(status(o).get("rejected")), timeout=10
    )
    assert status(rejected)["rejected"]["metric"] == "fairness"
    Prometheus.wait(
        lambda: runner.versions() == {f"{MODEL}-stable": "mixed-v1"}, timeout=30, what="the canary pod stopped"
    )
