"""A successful TrainingRun's result as a ModelVersion: name, number and spec (pure).

The version belongs to nobody (no ownerReferences): it outlives the run. It carries the
labels ``modelops.io/model`` and ``modelops.io/training-run-uid``, so a reconcile that runs
again finds the version it already registered instead of registering a second one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from modelops.api.common import API_VERSION
from modelops.api.trainingrun import TrainingRunSpec
from modelops.logic.training import MODEL_LABEL, RunRef

RUN_UID_LABEL = "modelops.io/training-run-uid"
JsonDict = dict[str, Any]


def version_name(model: str, version: int) -> str:
    return f"{model}-v{version}"


def next_version(existing: Iterable[Mapping[str, Any]]) -> int:
    """One more than the highest version number of the model's existing versions."""
    numbers = [int((v.get("spec") or {}).get("version") or 0) for v in existing]
    return max(numbers, default=0) + 1


def model_version(
    spec: TrainingRunSpec,
    ref: RunRef,
    result: Mapping[str, Any],
    *,
    version: int,
    job: Mapping[str, Any],
    image: str,
    trial: int | None,
    trained_by: list[JsonDict] | None = None,
) -> JsonDict:
    """The ModelVersion for a run's chosen result (a trainer termination message).

    ``trained_by`` (the run's creator and, for a retrain, the people behind the version it retrains)
    becomes ``spec.trainedBy``: four eyes then holds even once the run is deleted.
    """
    artifact = dict(result["artifact"])
    dataset = result.get("dataset") or {}
    framework = result.get("framework") or {}
    lineage: JsonDict = {
        "trainingRun": {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid},
        "job": {"name": job["metadata"]["name"], "uid": job["metadata"].get("uid")},
        "image": spec.image or image,
        "dataset": {"uri": dataset.get("uri", spec.dataset.uri), "sha256": dataset.get("sha256"),
                    "rows": result.get("rows"), "format": spec.dataset.format, "target": spec.dataset.target,
                    "features": spec.dataset.features, "categoricalFeatures": spec.dataset.categorical_features,
                    "testSize": spec.dataset.test_size, "seed": spec.dataset.seed},
        "estimator": spec.estimator.class_name if spec.estimator else None,
        "preprocessing": (
            spec.estimator.preprocessing.model_dump(by_alias=True)
            if spec.estimator and spec.estimator.preprocessing else None
        ),
        "params": result.get("params"),
        "columns": result.get("columns"),
        "evaluation": spec.evaluation.model_dump(by_alias=True, exclude_none=True) if spec.evaluation else None,
        "calibration": result.get("calibration"),
        "trial": trial if spec.sweep is not None else None,
        "sklearnVersion": framework.get("version"),
        "sourceRevision": spec.source_revision,
    }  # fmt: skip
    body: JsonDict = {
        "model": spec.model,
        "version": version,
        # A trainer that reports no format predates skops artifacts and wrote a joblib pickle.
        "artifact": {"uri": artifact["uri"], "sha256": artifact["sha256"], "format": artifact.get("format", "joblib"),
                     "sizeBytes": artifact.get("sizeBytes")},
        "framework": {"name": "scikit-learn", "version": framework.get("version")},
        "task": result.get("task") or spec.task,
        "metrics": {k: float(v) for k, v in (result.get("metrics") or {}).items()},
        "signature": result.get("signature"),
        "lineage": _prune(lineage),
        "referenceStats": result.get("referenceStats"),
        "fairness": result.get("fairness"),
        "featureImportance": result.get("featureImportance"),
        "modelCard": spec.model_card.model_dump(by_alias=True, exclude_none=True) if spec.model_card else None,
        "stage": "None",
        "trainedBy": [dict(t) for t in trained_by] if trained_by else None,
    }  # fmt: skip
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {
            "name": version_name(spec.model, version),
            "namespace": ref.namespace,
            "labels": {
                MODEL_LABEL: spec.model,
                RUN_UID_LABEL: ref.uid,
                "app.kubernetes.io/managed-by": "modelops-operator",
            },
        },
        "spec": _prune(body),
    }


def _prune(value: Any) -> Any:
    """Drop None values (and objects left empty) recursively: the API prunes them anyway."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in pruned.items() if v != {}}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value
