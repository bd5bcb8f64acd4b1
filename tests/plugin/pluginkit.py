"""The plugin tier's kit: a model's whole pipeline seeded in the emulator, and an in-process runner.

No operator runs here: the objects are created as a user would, then their status is
written through the status subresource as the operator would have written it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubeemu.client import KubeClient
from modelops.plugin import cli

API = "modelops.io/v1alpha1"
NS = "ml"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
DATA_SHA = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"


def cond(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-11-20T10:00:00Z",
        "observedGeneration": 1,
    }


def _put(kube: KubeClient, body: dict[str, Any], status: dict[str, Any] | None) -> None:
    kube.create(body, NS)
    if status is not None:
        kube.patch_status(API, body["kind"], NS, body["metadata"]["name"], {"status": status})


def training_run(name: str, model: str, status: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "dataset": {"uri": "sklearn://iris", "target": "target"},
            "estimator": {"className": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 100}},
        },
    }


def model_version(name: str, model: str, number: int, stage: str, metrics: dict[str, float]) -> dict[str, Any]:
    fmt = "joblib" if number == 1 else "skops"
    return {
        "apiVersion": API,
        "kind": "ModelVersion",
        "metadata": {"name": name, "labels": {"modelops.io/model": model}},
        "spec": {
            "model": model,
            "version": number,
            "stage": stage,
            # The first version is an older pickle; the rest are skops archives, as the trainer writes now.
            "artifact": {"uri": f"pvc://artifacts/{model}/{name}/model.{fmt}", "sha256": SHA, "format": fmt},
            "task": "classification",
            "metrics": metrics,
            "lineage": {
                "trainingRun": {"name": f"{model}-rf", "namespace": NS},
                "dataset": {"uri": "sklearn://iris", "sha256": DATA_SHA, "rows": 150},
                "estimator": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": 100, "max_depth": 4},
                "sklearnVersion": "1.5.2",
            },
            "referenceStats": {
                "sampleSize": 120,
                "features": [
                    {
                        "name": "petal_length",
                        "kind": "numeric",
                        "edges": [1.0, 1.6, 4.4, 5.1, 6.9],
                        "counts": [30, 30, 30, 30],
                    },
                    {
                        "name": "sepal_width",
                        "kind": "numeric",
                        "edges": [2.0, 2.8, 3.0, 3.4, 4.4],
                        "counts": [31, 29, 30, 30],
                    },
                ],
            },
            "modelCard": {
                "description": "Classifies iris flowers into three species from four measurements.",
                "intendedUse": "Teaching and demos of the modelops pipeline.",
                "limitations": "150 samples from one 1936 study; not for field botany.",
                "owners": ["ml-platform@example.com"],
            },
        },
    }


@dataclass
class Seeded:
    """Names of the seeded objects, for assertions."""

    kube: KubeClient
    kubeconfig: Path


@pytest.fixture
def seeded(cluster: KubeClient, kubeconfig: Path) -> Seeded:
    """Model iris: two runs, three versions (archived, production, rejected canary), a canary, drift.

    Model wine: one version, so that every view shows it leaves other models out.
    """
    kube = cluster
    _put(
        kube,
        training_run("iris-rf", "iris", None),
        {
            "phase": "Succeeded",
            "progress": "3/3",
            "metrics": {"accuracy": 0.9667, "f1": 0.9661},
            "modelVersion": "iris-v2",
            "conditions": [cond("Ready", "True", "Succeeded")],
        },
    )
    _put(
        kube,
        training_run("iris-retrain-1", "iris", None),
        {"phase": "Running", "trials": [{"index": 0, "params": {}, "phase": "Running"}]},
    )
    _put(
        kube,
        model_version("iris-v1", "iris", 1, "Archived", {"accuracy": 0.9, "f1": 0.89}),
        {
            "stage": "Archived",
            "history": [
                {
                    "from": "None",
                    "to": "Staging",
                    "by": "system:serviceaccount:modelops-system:modelops",
                    "at": "2026-11-01T09:00:00Z",
                    "reason": "gates passed",
                },
                {
                    "from": "Staging",
                    "to": "Production",
                    "by": "alice",
                    "at": "2026-11-02T09:00:00Z",
                    "reason": "1/1 approvals",
                },
                {
                    "from": "Production",
                    "to": "Archived",
                    "by": "system:serviceaccount:modelops-system:modelops",
                    "at": "2026-11-10T12:00:00Z",
                    "reason": "iris-v2 promoted to Production",
                },
            ],
            "approvals": [{"stage": "Production", "user": "alice", "at": "2026-11-01T18:00:00Z"}],
            "conditions": [cond("Ready", "True", "Archived")],
        },
    )
    _put(
        kube,
        model_version("iris-v2", "iris", 2, "Production", {"accuracy": 0.9667, "f1": 0.9661, "roc_auc": 0.998}),
        {
            "stage": "Production",
            "gates": [
                {
                    "stage": "Production",
                    "metric": "f1",
                    "op": ">=",
                    "threshold": 0.95,
                    "value": 0.9661,
                    "passed": True,
                    "source": "policy",
                },
            ],
            "approvals": [
                {
                    "stage": "Production",
                    "user": "system:serviceaccount:argocd:argocd-application-controller",
                    "at": "2026-11-10T11:00:00Z",
                    "reviewer": "bob",
                    "assertedBy": "system:serviceaccount:argocd:argocd-application-controller",
                },
            ],
            "history": [
                {
                    "from": "None",
                    "to": "Staging",
                    "by": "system:serviceaccount:modelops-system:modelops",
                    "at": "2026-11-09T09:00:00Z",
                    "reason": "gates passed",
                },
                {
                    "from": "Staging",
                    "to": "Production",
                    "by": "system:serviceaccount:argocd:argocd-application-controller",
                    "at": "2026-11-10T12:00:00Z",
                    "reason": "gates passed, 1/1 approvals",
                },
            ],
            "deployedBy": [{"namespace": NS, "name": "iris", "role": "stable"}],
            "conditions": [cond("Ready", "True", "Granted")],
        },
    )
    _put(
        kube,
        model_version("iris-v3", "iris", 3, "Production", {"accuracy": 0.97, "f1": 0.969}),
        {
            "stage": "Staging",
            "message": "Production needs 1 approval (0 so far)",
            "history": [
                {
                    "from": "None",
                    "to": "Staging",
                    "by": "system:serviceaccount:modelops-system:modelops",
                    "at": "2026-11-20T09:00:00Z",
                    "reason": "gates passed",
                },
            ],
            "rejected": {
                "deployment": f"{NS}/iris",
                "metric": "error-rate",
                "value": 0.12,
                "message": "canary error rate 12% > 5%",
                "at": "2026-11-21T08:30:00Z",
            },
            "conditions": [cond("Ready", "False", "AwaitingApproval", "Production needs 1 approval")],
        },
    )
    _put(kube, model_version("wine-v1", "wine", 1, "Staging", {"accuracy": 0.8}), {"stage": "Staging"})
    _put(
        kube,
        {
            "apiVersion": API,
            "kind": "ModelDeployment",
            "metadata": {"name": "iris"},
            "spec": {"model": "iris", "track": "Production", "replicas": 3},
        },
        {
            "phase": "Progressing",
            "desiredVersion": "iris-v3",
            "servingVersion": "iris-v2",
            "stableVersion": "iris-v2",
            "canaryVersion": "iris-v3",
            "canaryWeight": 20,
            "step": 1,
            "conditions": [cond("Ready", "True", "Serving"), cond("Progressing", "True", "CanaryStep")],
            # What the operator's live-quality timer writes from the recording rules.
            "quality": [
                {"version": "iris-v2", "role": "stable", "window": "1h", "labels": 1204.6, "accuracy": 0.9512,
                 "macroF1": 0.9433, "predictions": 5120.0, "estimatedAccuracy": 0.9587, "estimatedMacroF1": 0.95},
                {"version": "iris-v3", "role": "canary", "window": "1h", "labels": 0.0, "predictions": 310.0,
                 "estimatedAccuracy": 0.9401, "estimatedMacroF1": 0.9322},
            ],
            "qualityMeasuredAt": "2026-11-22T07:01:00Z",
        },
    )
    _put(
        kube,
        {
            "apiVersion": API,
            "kind": "ModelDeployment",
            "metadata": {"name": "wine"},
            "spec": {"model": "wine", "modelVersion": "wine-v1"},
        },
        {"phase": "Healthy", "servingVersion": "wine-v1", "stableVersion": "wine-v1"},
    )
    _put(
        kube,
        {
            "apiVersion": API,
            "kind": "DriftPolicy",
            "metadata": {"name": "iris-drift"},
            "spec": {"deployment": "iris", "method": "psi", "threshold": 0.2},
        },
        {
            "lastEvaluation": "2026-11-22T07:00:00Z",
            "samples": 1200,
            "drifted": True,
            "modelVersion": "iris-v2",
            "features": [
                {"name": "petal_length", "score": 0.31, "threshold": 0.2, "drifted": True, "samples": 1200},
                {"name": "sepal_width", "score": 0.02, "threshold": 0.2, "drifted": False, "samples": 1200},
            ],
            "retrains": [
                {
                    "name": "iris-retrain-1",
                    "at": "2026-11-22T07:00:05Z",
                    "reason": "petal_length psi 0.31",
                    "phase": "Running",
                }
            ],
        },
    )
    _put(
        kube,
        {"apiVersion": API, "kind": "DriftPolicy", "metadata": {"name": "wine-drift"}, "spec": {"deployment": "wine"}},
        {"drifted": False, "features": [{"name": "alcohol", "score": 0.01, "drifted": False}]},
    )
    return Seeded(kube=kube, kubeconfig=kubeconfig)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Run = Callable[..., Result]


@pytest.fixture
def run(kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """The plugin in-process, against the emulator, in namespace ml unless told otherwise."""

    def invoke(*args: str, namespace: str | None = NS) -> Result:
        capsys.readouterr()
        argv = ["--kubeconfig", str(kubeconfig), *(["-n", namespace] if namespace else []), *args]
        code = cli.main(argv)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke
