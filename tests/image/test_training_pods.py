"""A TrainingRun's Job pods train in containers from the image, and the version is registered.

Given the operator (a host process here; tests/image/test_operator_container.py runs it from the
chart) writing Jobs whose pods name the image, and a node running those pods as containers:
the trainer runs as the pod spec says (uid 10001, read-only root, no capabilities, the run config
from a ConfigMap volume, the artifact written to the claim's directory), its termination
message carries the result, and the run registers a ModelVersion with the artifact's digest.
A sweep runs as an Indexed Job, one container per trial.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from containerkubelet import Node
from kubeemu.client import KubeClient

API = "modelops.io/v1alpha1"
NAMESPACE = "ml"
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(600)


def claim(kube: KubeClient, name: str) -> None:
    kube.create({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    })  # fmt: skip


def training_run(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API, "kind": "TrainingRun", "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": "iris", "dataset": {"uri": "sklearn://iris", "target": "target"},
            "estimator": {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}},
            "artifactStore": {"uri": "pvc://models/registry"}, **spec,
        },
    }  # fmt: skip


@pytest.fixture
def host_operator(
    image: str, cluster: KubeClient, kubeconfig: Path, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``modelops operator`` as a process on the host, naming the image in the pods it writes."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(REPO / "operator"), "MODELOPS_IMAGE": image,
           "MODELOPS_WAIT_RETRY_SECONDS": "1", "MODELOPS_POLL_SECONDS": "0.5"}  # fmt: skip
    log = (tmp_path / "operator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "modelops", "operator", "--standalone", "--namespace", NAMESPACE, "--liveness", "",
         "--metrics-port", "0", "--webhook-port", "0"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def test_a_training_pod_trains_in_a_container_and_the_version_is_registered(
    node: Node, cluster: KubeClient, host_operator: subprocess.Popen[bytes]
) -> None:
    claim(cluster, "models")
    cluster.create(training_run("iris-tree"))
    run = cluster.wait_for(API, "TrainingRun", NAMESPACE, "iris-tree",
                           lambda o: bool(o) and (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
                           timeout=300)  # fmt: skip
    assert run is not None
    assert run["status"]["phase"] == "Succeeded", f"{run['status']}\n{node.describe(NAMESPACE)}"
    [pod] = node.pods(NAMESPACE, {"modelops.io/training-run": "iris-tree"})
    [container] = pod["status"]["containerStatuses"]
    terminated = container["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    result = json.loads(terminated["message"])
    assert result["ok"] is True

    version = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", lambda o: o is not None, timeout=60)
    assert version is not None
    artifact = version["spec"]["artifact"]
    assert artifact["uri"] == "pvc://models/registry/ml/iris-tree/model.skops"
    assert artifact.get("format") == "skops"
    # The container wrote the claim's data as the pod's user, through the claim's directory.
    written = node.pvc_root / NAMESPACE / "models" / "registry" / "ml" / "iris-tree" / "model.skops"
    assert hashlib.sha256(written.read_bytes()).hexdigest() == artifact["sha256"]
    assert written.stat().st_uid == 10001
