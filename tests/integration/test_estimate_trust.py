"""EstimateTrusted: a classifier version says whether its quality estimated before labels can be trusted.

Given the operator running against the emulator, when versions are registered with the calibration
training records (``spec.metrics.ece``, ``spec.lineage.calibration``), then each classifier gets the
``EstimateTrusted`` condition: True at or below 0.05, False with reason PoorCalibration above it (the
message names the ECE and the limit), False with NoProbabilities when no ECE was recorded; a
regressor gets none. (A version trained for real gets it too: tests/integration/test_training.py.)
"""

from __future__ import annotations

from typing import Any

from kopf.testing import KopfRunner

from kubeemu.client import KubeClient

API = "modelops.io/v1alpha1"
NAMESPACE = "ml"


def version(name: str, task: str, metrics: dict[str, float], **spec: Any) -> dict[str, Any]:
    number = int(name.rsplit("-v", 1)[1])
    return {
        "apiVersion": API, "kind": "ModelVersion",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"model": name.rsplit("-v", 1)[0], "version": number, "task": task, "metrics": metrics,
                 "artifact": {"uri": f"pvc://models/{name}.skops", "sha256": "c" * 64}, **spec},
    }  # fmt: skip


def reconciled(cluster: KubeClient, name: str) -> dict[str, Any]:
    found = cluster.wait_for(API, "ModelVersion", NAMESPACE, name,
                             lambda o: bool(o) and any(c["type"] == "Ready" for c in
                                                       (o.get("status") or {}).get("conditions") or []),
                             timeout=30)  # fmt: skip
    assert found is not None
    return found


def trust(obj: dict[str, Any]) -> dict[str, Any]:
    return next((dict(c) for c in obj["status"]["conditions"] if c["type"] == "EstimateTrusted"), {})


def test_each_version_says_whether_its_estimate_can_be_trusted(cluster: KubeClient, operator: KopfRunner) -> None:
    calibration = {"method": "none", "bins": 10, "rows": 114}
    cluster.create(version("cancer-v1", "classification", {"accuracy": 0.94, "ece": 0.0712},
                           lineage={"calibration": calibration}))  # fmt: skip
    cluster.create(version("cancer-v2", "classification", {"accuracy": 0.95, "ece": 0.018},
                           lineage={"calibration": {**calibration, "method": "sigmoid", "cv": 5}}))  # fmt: skip
    cluster.create(version("spam-v1", "classification", {"accuracy": 0.91, "roc_auc": 0.95}))
    cluster.create(version("price-v1", "regression", {"mae": 3.2, "rmse": 4.1}))

    poor = trust(reconciled(cluster, "cancer-v1"))
    assert (poor["status"], poor["reason"]) == ("False", "PoorCalibration"), poor
    assert "expected calibration error 0.0712 on the held-out split (10 bins, 114 held-out rows" in poor["message"]
    assert "is above 0.05" in poor["message"]
    good = trust(reconciled(cluster, "cancer-v2"))
    assert (good["status"], good["reason"]) == ("True", "WellCalibrated"), good
    assert "0.018" in good["message"]
    assert "calibrated: sigmoid" in good["message"]
    none = trust(reconciled(cluster, "spam-v1"))
    assert (none["status"], none["reason"]) == ("False", "NoProbabilities"), none
    assert trust(reconciled(cluster, "price-v1")) == {}
    # The condition is evidence, not a verdict on the version: it stays Ready.
    ready = next(c for c in reconciled(cluster, "cancer-v1")["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
