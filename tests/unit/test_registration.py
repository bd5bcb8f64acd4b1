"""A run's result as a ModelVersion (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from k8sschemas import openapi_to_jsonschema
from modelops.api.modelversion import ModelVersionSpec
from modelops.api.trainingrun import TrainingRunSpec
from modelops.logic import registration
from modelops.logic.training import RunRef

REPO = Path(__file__).resolve().parents[2]
SPEC = TrainingRunSpec.model_validate({
    "model": "iris",
    "dataset": {"uri": "sklearn://iris", "target": "target"},
    "estimator": {"className": "sklearn.tree.DecisionTreeClassifier"},
    "sourceRevision": "abc123",
    "modelCard": {"description": "Iris species from petal and sepal sizes.", "owners": ["ml@example.com"]},
})  # fmt: skip
REF = RunRef(name="iris-tree", namespace="ml", uid="u-1")
JOB = {"metadata": {"name": "iris-tree-train", "uid": "j-1"}}
RESULT: dict[str, Any] = {
    "ok": True, "task": "classification", "metrics": {"accuracy": 0.9, "f1": 0.89, "ece": 0.04},
    "calibration": {"method": "sigmoid", "cv": 5, "bins": 10, "rows": 30},
    "artifact": {"uri": "pvc://models/ml/iris-tree/model.skops", "sha256": "c" * 64, "sizeBytes": 1234,
                 "format": "skops"},
    "dataset": {"uri": "sklearn://iris", "sha256": "d" * 64}, "rows": 150,
    "framework": {"name": "scikit-learn", "version": "1.9.1"}, "params": {"max_depth": 3},
    "signature": {"inputs": [{"name": "a", "datatype": "FP64", "acceptsMissing": False},
                             {"name": "n", "datatype": "INT64", "categorical": True, "categories": [1, 2, None],
                              "acceptsMissing": True}],
                  "outputs": [{"name": "predict", "datatype": "INT64"}], "classes": [0, 1, 2]},
    "referenceStats": {"sampleSize": 120, "features": [{"name": "a", "kind": "numeric", "edges": [0, 1, 2],
                                                        "counts": [60, 60]}]},
}  # fmt: skip


def test_next_version_follows_the_highest() -> None:
    assert registration.next_version([]) == 1
    assert registration.next_version([{"spec": {"version": 1}}, {"spec": {"version": 4}}, {"spec": {}}]) == 5


def test_model_version_carries_evidence_and_lineage() -> None:
    mv = registration.model_version(SPEC, REF, RESULT, version=3, job=JOB, image="img:1", trial=None)
    assert mv["metadata"]["name"] == "iris-v3"
    assert mv["metadata"]["labels"][registration.RUN_UID_LABEL] == "u-1"
    assert "ownerReferences" not in mv["metadata"]
    spec = ModelVersionSpec.model_validate(mv["spec"])
    assert spec.version == 3
    assert spec.artifact.sha256 == "c" * 64
    assert spec.lineage is not None
    assert spec.lineage.training_run is not None
    assert spec.lineage.training_run.uid == "u-1"
    assert spec.lineage.source_revision == "abc123"
    assert spec.lineage.trial is None
    # How the data was read is recorded, so a retrain needs no TrainingRun that may be gone.
    assert spec.lineage.dataset is not None
    assert spec.lineage.dataset.target == SPEC.dataset.target
    assert spec.lineage.dataset.test_size == SPEC.dataset.test_size
    assert spec.lineage.dataset.seed == SPEC.dataset.seed
    assert spec.model_card is not None
    assert spec.reference_stats is not None
    # What the model server needs to convert request values travels with the version.
    assert spec.signature is not None
    assert spec.signature.inputs[1].categories == [1, 2, None]
    assert spec.signature.inputs[1].accepts_missing is True
    # Calibration: ECE among the (immutable) metrics, how it was made in the (immutable) lineage.
    assert spec.metrics is not None
    assert spec.metrics["ece"] == 0.04
    assert spec.lineage.calibration is not None
    assert (spec.lineage.calibration.method, spec.lineage.calibration.cv) == ("sigmoid", 5)
    assert (spec.lineage.calibration.bins, spec.lineage.calibration.rows) == (10, 30)


def test_model_version_validates_against_the_crd() -> None:
    crd = yaml.safe_load((REPO / "crds" / "modelops.io_modelversions.yaml").read_text())
    schema = openapi_to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    mv = registration.model_version(SPEC, REF, RESULT, version=1, job=JOB, image="img:1", trial=None)
    jsonschema.validate(mv, schema)


def test_a_truncated_message_still_registers_what_it_has() -> None:
    slim = {k: v for k, v in RESULT.items() if k not in ("signature", "referenceStats", "params")}
    mv = registration.model_version(SPEC, REF, slim, version=1, job=JOB, image="img:1", trial=None)
    assert "signature" not in mv["spec"]
    assert "referenceStats" not in mv["spec"]
    ModelVersionSpec.model_validate(mv["spec"])


def test_the_trainers_are_recorded_on_the_version() -> None:
    trained_by = [{"user": "alice", "uid": "u-alice", "via": "created TrainingRun ml/iris-tree"}]
    mv = registration.model_version(SPEC, REF, RESULT, version=1, job=JOB, image="img:1", trial=None,
                                    trained_by=trained_by)  # fmt: skip
    spec = ModelVersionSpec.model_validate(mv["spec"])
    assert spec.trained_by is not None
    recorded = [(t.user, t.uid, t.via) for t in spec.trained_by]
    assert recorded == [("alice", "u-alice", "created TrainingRun ml/iris-tree")]
    # A run created before the webhook recorded creators has nobody to record: no empty list either.
    unknown = registration.model_version(SPEC, REF, RESULT, version=1, job=JOB, image="img:1", trial=None)
    assert "trainedBy" not in unknown["spec"]


def test_the_artifact_format_is_the_trainer_s_and_a_trainer_without_one_wrote_a_pickle() -> None:
    mv = registration.model_version(SPEC, REF, RESULT, version=1, job=JOB, image="img:1", trial=None)
    assert mv["spec"]["artifact"]["format"] == "skops"
    older = {**RESULT, "artifact": {k: v for k, v in RESULT["artifact"].items() if k != "format"}}
    mv = registration.model_version(SPEC, REF, older, version=1, job=JOB, image="img:1", trial=None)
    assert mv["spec"]["artifact"]["format"] == "joblib"
