"""Fairness through the real operator: TrainingRun → Job → trainer → ModelVersion → gates.

Given a loan table with a known gap between groups A and B on a claim, when a data scientist
applies a sweep that evaluates by ``sex`` (kept out of the inputs) and ``race``, then every trial
reports its gaps in the run's status, the best one is registered as a version carrying the whole
fairness record and the feature importance exactly as the trainer wrote them, and asking for
Production under a policy with fairness gates holds the version with the evidence in
``status.gates``: the gap fails on its value, a small group fails as insufficient evidence. A
column the table lacks fails the run with the trainer's own line naming the field; a sensitive
feature that is the target never starts a pod.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from integration.test_training import condition, phase_is
from kubeemu.client import KubeClient
from kubelet import Kubelet
from modelops.api.modelversion import ModelVersionSpec
from modelops.logic.policy import parse
from trainer.test_fairness import loans

API = "modelops.io/v1alpha1"
NAMESPACE = "ml"
POLICY = parse({"stages": {"Production": {"approvals": 0, "gates": [
    {"metric": "accuracy", "threshold": 0.5},
    {"metric": "fairness.sex.demographicParityDifference", "op": "<=", "threshold": 0.1},
    {"metric": "fairness.race.groups.R.selectionRate", "op": ">=", "threshold": 0.0},
]}}})  # fmt: skip


@pytest.fixture
def governed(cluster: KubeClient, operator_env: dict[str, str]) -> Iterator[KopfRunner]:
    """The real operator with a policy whose Production gates name fairness metrics."""
    from modelops.controller import handlers

    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with KopfRunner(args, registry=handlers.registry(policy=POLICY), timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.exception
    assert runner.exit_code == 0, runner.output


def run(name: str, evaluation: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": "loans",
            "dataset": {"uri": "pvc://data/loans.csv", "target": "approved", "testSize": 0.25, "seed": 7},
            "estimator": {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 1}},
            "artifactStore": {"uri": "pvc://models/registry"},
            "evaluation": evaluation,
            **spec,
        },
    }


def kubelet_with_data(cluster: KubeClient, tmp_path: Path) -> Kubelet:
    kubelet = Kubelet(cluster, tmp_path)
    (kubelet.pvc_root / "data").mkdir(parents=True, exist_ok=True)
    loans().to_csv(kubelet.pvc_root / "data" / "loans.csv", index=False)
    return kubelet


def test_a_sweep_with_sensitive_features_registers_a_version_whose_fairness_gates_hold_it(
    cluster: KubeClient, governed: KopfRunner, tmp_path: Path
) -> None:
    evaluation = {"sensitiveFeatures": [{"name": "sex", "useAsInput": False}, {"name": "race"}]}
    cluster.create(run("fair", evaluation, sweep={"parameters": {"max_depth": [1, 2]}, "metric": "accuracy"}))
    job = cluster.wait_for("batch/v1", "Job", NAMESPACE, "fair-train", lambda o: o is not None, timeout=30)
    assert job is not None
    config = json.loads(cluster.get("v1", "ConfigMap", NAMESPACE, "fair-config")["data"]["run.json"])
    assert config["evaluation"]["sensitiveFeatures"][0] == {"name": "sex", "useAsInput": False}
    kubelet = kubelet_with_data(cluster, tmp_path)
    for index in (0, 1):
        assert kubelet.run_pod(job, kubelet.start_pod(job, index), index) == 0
    kubelet.finish_job(job, succeeded=2, failed=0)
    done = cluster.wait_for(API, "TrainingRun", NAMESPACE, "fair", lambda o: bool(
        o and o.get("status", {}).get("modelVersion")), timeout=60)  # fmt: skip
    assert done is not None
    status = done["status"]
    # Every trial's gaps are in the run's status.
    for trial in status["trials"]:
        gaps = trial["fairness"]["sex"]
        assert gaps["demographicParityDifference"] > 0.2
        assert set(trial["fairness"]) == {"sex", "race"}

    best = status["bestTrial"]
    written = json.loads((kubelet.pvc_root / "models" / "registry" / NAMESPACE / "fair" / f"trial-{best}"
                          / "result.json").read_text())  # fmt: skip
    version = cluster.get(API, "ModelVersion", NAMESPACE, status["modelVersion"])
    spec = version["spec"]
    assert spec["fairness"] == written["fairness"]
    assert spec["featureImportance"] == written["featureImportance"]
    assert "sex" not in [i["name"] for i in spec["signature"]["inputs"]]
    ModelVersionSpec.model_validate(spec)

    cluster.patch(API, "ModelVersion", NAMESPACE, status["modelVersion"], {"spec": {"stage": "Production"}})
    held = cluster.wait_for(API, "ModelVersion", NAMESPACE, status["modelVersion"],
                            lambda o: len((o.get("status") or {}).get("gates") or []) == 3, timeout=30)  # fmt: skip
    assert held is not None
    assert held["status"]["stage"] == "None"
    accuracy, gap, small = held["status"]["gates"]
    assert accuracy["passed"] is True
    assert gap["metric"] == "fairness.sex.demographicParityDifference"
    assert gap["value"] == spec["fairness"]["features"][0]["metrics"]["demographicParityDifference"]
    assert gap["passed"] is False
    assert "insufficientEvidence" not in gap
    assert small["passed"] is False
    r_rows = next(g for g in spec["fairness"]["features"][1]["groups"] if g["group"] == "R")["count"]
    assert small["insufficientEvidence"] == f"group R ({r_rows} held-out rows, fewer than 30)"
    validated = condition(held, "Validated")
    assert (validated["status"], validated["reason"]) == ("False", "GatesFailed")
    assert "fairness.sex.demographicParityDifference" in validated["message"]
    assert "fairness.race.groups.R.selectionRate" in validated["message"]
    assert "insufficient evidence" in validated["message"]


def test_a_column_the_table_lacks_fails_the_run_with_the_trainers_line(
    cluster: KubeClient, governed: KopfRunner, tmp_path: Path
) -> None:
    cluster.create(run("nosuch", {"sensitiveFeatures": [{"name": "sex"}, {"name": "gender"}]}))
    job = cluster.wait_for("batch/v1", "Job", NAMESPACE, "nosuch-train", lambda o: o is not None, timeout=30)
    assert job is not None
    kubelet = kubelet_with_data(cluster, tmp_path)
    assert kubelet.run_pod(job, kubelet.start_pod(job, 0), 0) == 1
    kubelet.finish_job(job, succeeded=0, failed=1, reason="BackoffLimitExceeded")
    failed = cluster.wait_for(API, "TrainingRun", NAMESPACE, "nosuch", phase_is("Failed"), timeout=30)
    ready = condition(failed, "Ready")
    assert ready["status"] == "False"
    assert "spec.evaluation.sensitiveFeatures[1].name: column 'gender' is not in dataset" in ready["message"]
    assert failed is not None
    assert "fitting" not in json.dumps(failed["status"])
    assert cluster.list(API, "ModelVersion", NAMESPACE) == []


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"sensitiveFeatures": [{"name": "approved"}]},
         "spec.evaluation.sensitiveFeatures[0].name: 'approved' is the target column"),
        ({"sensitiveFeatures": [{"name": "sex"}, {"name": "sex"}]}, "'sex' is listed twice"),
        ({"sensitiveFeatures": [{"name": "age", "bins": [50, 30]}]}, "bins: must be strictly increasing"),
    ],
)  # fmt: skip
def test_a_bad_evaluation_never_starts_a_pod(
    cluster: KubeClient, governed: KopfRunner, evaluation: dict[str, Any], message: str
) -> None:
    cluster.create(run("bad", evaluation))
    failed = cluster.wait_for(API, "TrainingRun", NAMESPACE, "bad", lambda o: condition(o, "Ready").get("status")
                              == "False", timeout=30)  # fmt: skip
    ready = condition(failed, "Ready")
    assert message in ready["message"]
    assert "evaluation" in ready["message"]
    assert not cluster.exists("batch/v1", "Job", NAMESPACE, "bad-train")
