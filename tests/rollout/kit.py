"""Builders and checks for the rollout tier's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeemu.client import KubeClient

API = "modelops.io/v1alpha1"
NAMESPACE = "ml"
IMAGE = "registry.example/modelops:test"
SHA = "ab" * 32


def model_version(number: int, *, model: str = "iris", stage: str = "Staging") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelVersion",
        "metadata": {"name": f"{model}-v{number}", "namespace": NAMESPACE, "labels": {"modelops.io/model": model}},
        "spec": {
            "model": model,
            "version": number,
            "stage": stage,
            "task": "classification",
            "artifact": {"uri": f"pvc://models/{model}/v{number}/model.joblib", "sha256": SHA},
            "signature": {
                "inputs": [{"name": "sepal length (cm)", "datatype": "FP64"}],
                "outputs": [{"name": "predict", "datatype": "INT64"}],
                "classes": [0, 1, 2],
            },
            "referenceStats": {
                "sampleSize": 10,
                "features": [{"name": "sepal length (cm)", "kind": "numeric", "edges": [4.0, 5.0, 8.0],
                              "counts": [5, 5]}],
            },
        },
    }


def deployment(name: str = "iris", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"model": "iris", "replicas": 4, "analysis": {"interval": "1s", "inconclusivePolicy": "Pass"}, **spec},
    }


def status_is(**expected: Any) -> Callable[[dict[str, Any] | None], bool]:
    """The status has these values and the operator has finished writing it (Ready says the same)."""

    def check(obj: dict[str, Any] | None) -> bool:
        status = (obj or {}).get("status") or {}
        settled = condition(obj, "Ready").get("message") == status.get("message")
        return settled and all(status.get(key) == value for key, value in expected.items())

    return check


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def replicas(kube: KubeClient, name: str) -> int | None:
    found = kube.get("apps/v1", "Deployment", NAMESPACE, name)
    value = found["spec"].get("replicas")
    return int(value) if value is not None else None


def events_for(kube: KubeClient, name: str) -> list[dict[str, Any]]:
    return [e for e in kube.list("v1", "Event", NAMESPACE) if e["involvedObject"]["name"] == name]
