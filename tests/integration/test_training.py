"""TrainingRun → Job, with the pod's work done for real (see kubelet.py).

Given the operator running against the emulator, when a data scientist applies a
TrainingRun, then the operator creates the Job (and its config) owned by the run, and
its status follows what the job controller and the kubelet report, down to the
trainer's own message when it fails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

from k8sschemas import problems
from kubeemu.client import KubeClient
from kubelet import Kubelet

API = "modelops.io/v1alpha1"
NAMESPACE = "ml"


def run(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": "iris",
            "dataset": {"uri": "sklearn://iris", "target": "target"},
            "estimator": {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}},
            "artifactStore": {"uri": "pvc://models/registry"},
            **spec,
        },
    }


def phase_is(phase: str) -> Any:
    return lambda o: bool(o) and (o.get("status") or {}).get("phase") == phase


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def job_of(kube: KubeClient, name: str) -> dict[str, Any]:
    found = kube.wait_for("batch/v1", "Job", NAMESPACE, f"{name}-train", lambda o: o is not None, timeout=30)
    assert found is not None
    return found


def test_a_run_trains_for_real_and_its_status_follows_the_job(
    cluster: KubeClient, operator: KopfRunner, tmp_path: Path
) -> None:
    cluster.create(run("iris-tree"))
    job = job_of(cluster, "iris-tree")
    assert problems(job) == []
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("TrainingRun", "iris-tree", True)
    configmap = cluster.get("v1", "ConfigMap", NAMESPACE, "iris-tree-config")
    assert problems(configmap) == []
    assert json.loads(configmap["data"]["run.json"])["artifactUri"] == "pvc://models/registry/ml/iris-tree"
    pending = cluster.wait_for(API, "TrainingRun", NAMESPACE, "iris-tree", phase_is("Pending"), timeout=30)
    assert pending is not None
    assert pending["status"]["jobName"] == "iris-tree-train"

    kubelet = Kubelet(cluster, tmp_path)
    pod = kubelet.start_pod(job, 0)
    running = cluster.wait_for(API, "TrainingRun", NAMESPACE, "iris-tree", phase_is("Running"), timeout=30)
    assert condition(running, "Reconciling").get("status") == "True"

    assert kubelet.run_pod(job, pod, 0) == 0
    kubelet.finish_job(job, succeeded=1, failed=0)
    done = cluster.wait_for(API, "TrainingRun", NAMESPACE, "iris-tree", phase_is("Succeeded"), timeout=30)
    assert done is not None
    status = done["status"]
    artifact_file = tmp_path / "pvc" / "models" / "registry" / "ml" / "iris-tree" / "model.skops"
    assert status["artifact"]["sha256"] == hashlib.sha256(artifact_file.read_bytes()).hexdigest()
    assert status["artifact"]["uri"] == "pvc://models/registry/ml/iris-tree/model.skops"
    assert 0.8 < status["metrics"]["accuracy"] <= 1.0
    assert status["trials"][0]["phase"] == "Succeeded"
    assert (status["progress"], status["bestTrial"]) == ("1/1", 0)
    assert "completionTime" in status
    assert condition(done, "Ready")["status"] == "True"
    assert condition(done, "Reconciling") == {}

    # The result is registered as the model's first version, owned by nobody.
    assert status["modelVersion"] == "iris-v1"
    assert condition(done, "Registered")["status"] == "True"
    mv = cluster.get(API, "ModelVersion", NAMESPACE, "iris-v1")
    assert "ownerReferences" not in mv["metadata"]
    spec = mv["spec"]
    assert (spec["model"], spec["version"], spec["stage"], spec["task"]) == ("iris", 1, "None", "classification")
    assert spec["artifact"] == {**status["artifact"], "format": "skops"}
    assert spec["metrics"] == status["metrics"]
    assert [i["name"] for i in spec["signature"]["inputs"]][:1] == ["sepal length (cm)"]
    assert len(spec["referenceStats"]["features"]) == 4
    lineage = spec["lineage"]
    assert lineage["trainingRun"] == {"name": "iris-tree", "namespace": NAMESPACE, "uid": done["metadata"]["uid"]}
    assert lineage["job"] == {"name": "iris-tree-train", "uid": job["metadata"]["uid"]}
    assert lineage["dataset"]["uri"] == "sklearn://iris"
    assert len(lineage["dataset"]["sha256"]) == 64
    assert lineage["params"]["max_depth"] == 3
    assert lineage["sklearnVersion"]
    # Its calibration as training measured it says whether quality estimated before labels can be trusted.
    assert lineage["calibration"]["method"] == "none"
    trusted = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1",
                               lambda o: bool(condition(o, "EstimateTrusted")), timeout=30)  # fmt: skip
    estimate = condition(trusted, "EstimateTrusted")
    assert estimate["reason"] == ("WellCalibrated" if spec["metrics"]["ece"] <= 0.05 else "PoorCalibration")
    assert f"expected calibration error {spec['metrics']['ece']:.4g}" in estimate["message"]

    # Editing the finished run registers nothing new.
    cluster.patch(API, "TrainingRun", NAMESPACE, "iris-tree", {"spec": {"sourceRevision": "edited"}})
    cluster.wait_for(API, "TrainingRun", NAMESPACE, "iris-tree",
                     lambda o: o["status"].get("observedGeneration") == 2, timeout=30)
    assert [v["metadata"]["name"] for v in cluster.list(API, "ModelVersion", NAMESPACE)] == ["iris-v1"]


def test_a_failing_trainer_fails_the_run_with_its_own_message(
    cluster: KubeClient, operator: KopfRunner, tmp_path: Path
) -> None:
    cluster.create(run("bad-param", estimator={"className": "sklearn.tree.DecisionTreeClassifier",
                                               "params": {"max_deepth": 3}}))  # fmt: skip
    job = job_of(cluster, "bad-param")
    kubelet = Kubelet(cluster, tmp_path)
    assert kubelet.run_pod(job, kubelet.start_pod(job, 0), 0) == 1
    kubelet.finish_job(job, succeeded=0, failed=1, reason="BackoffLimitExceeded")
    failed = cluster.wait_for(API, "TrainingRun", NAMESPACE, "bad-param", phase_is("Failed"), timeout=30)
    ready, stalled = condition(failed, "Ready"), condition(failed, "Stalled")
    assert (ready["status"], ready["reason"]) == ("False", "BackoffLimitExceeded")
    assert "max_deepth" in ready["message"]
    assert stalled["status"] == "True"
    assert failed is not None
    assert failed["status"]["trials"][0]["phase"] == "Failed"


def test_a_sweep_runs_one_index_per_trial_and_picks_the_best(
    cluster: KubeClient, operator: KopfRunner, tmp_path: Path
) -> None:
    cluster.create(run("sweep", sweep={"parameters": {"max_depth": [1, 3]}, "metric": "accuracy",
                                       "parallelism": 2}))  # fmt: skip
    job = job_of(cluster, "sweep")
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == ("Indexed", 2, 2)
    kubelet = Kubelet(cluster, tmp_path)
    for index in (0, 1):
        assert kubelet.run_pod(job, kubelet.start_pod(job, index), index) == 0
    kubelet.finish_job(job, succeeded=2, failed=0)
    done = cluster.wait_for(API, "TrainingRun", NAMESPACE, "sweep", phase_is("Succeeded"), timeout=30)
    assert done is not None
    trials = done["status"]["trials"]
    assert [t["params"] for t in trials] == [{"max_depth": 1}, {"max_depth": 3}]
    accuracies = [t["metrics"]["accuracy"] for t in trials]
    assert accuracies[1] > accuracies[0]  # a depth-1 tree cannot separate three classes
    assert done["status"]["bestTrial"] == 1
    assert done["status"]["artifact"]["uri"].endswith("/trial-1/model.skops")
    mv = cluster.get(API, "ModelVersion", NAMESPACE, done["status"]["modelVersion"])
    assert mv["spec"]["lineage"]["trial"] == 1
    assert mv["spec"]["artifact"]["uri"] == done["status"]["artifact"]["uri"]


def test_the_next_free_version_number_is_taken(cluster: KubeClient, operator: KopfRunner, tmp_path: Path) -> None:
    # A version registered by hand (or by another run finishing at the same moment) holds v1.
    cluster.create({
        "apiVersion": API, "kind": "ModelVersion",
        "metadata": {"name": "iris-v1", "namespace": NAMESPACE, "labels": {"modelops.io/model": "iris"}},
        "spec": {"model": "iris", "version": 1, "artifact": {"uri": "pvc://models/old.joblib", "sha256": "b" * 64}},
    })  # fmt: skip
    cluster.create(run("second"))
    job = job_of(cluster, "second")
    kubelet = Kubelet(cluster, tmp_path)
    assert kubelet.run_pod(job, kubelet.start_pod(job, 0), 0) == 0
    kubelet.finish_job(job, succeeded=1, failed=0)
    done = cluster.wait_for(API, "TrainingRun", NAMESPACE, "second", phase_is("Succeeded"), timeout=30)
    assert done is not None
    assert done["status"]["modelVersion"] == "iris-v2"
    assert cluster.get(API, "ModelVersion", NAMESPACE, "iris-v1")["spec"]["artifact"]["sha256"] == "b" * 64


def test_deleting_a_running_run_stops_its_job(cluster: KubeClient, operator: KopfRunner, tmp_path: Path) -> None:
    cluster.create(run("doomed"))
    job = job_of(cluster, "doomed")
    Kubelet(cluster, tmp_path).start_pod(job, 0)
    cluster.wait_for(API, "TrainingRun", NAMESPACE, "doomed", phase_is("Running"), timeout=30)
    cluster.delete(API, "TrainingRun", NAMESPACE, "doomed")
    cluster.wait_for("batch/v1", "Job", NAMESPACE, "doomed-train", lambda o: o is None, timeout=30)
    cluster.wait_for("v1", "ConfigMap", NAMESPACE, "doomed-config", lambda o: o is None, timeout=30)


def test_a_run_without_an_artifact_store_says_so(cluster: KubeClient, operator: KopfRunner) -> None:
    body = run("nowhere")
    del body["spec"]["artifactStore"]
    cluster.create(body)
    failed = cluster.wait_for(API, "TrainingRun", NAMESPACE, "nowhere", phase_is("Failed"), timeout=30)
    ready = condition(failed, "Ready")
    assert ready["reason"] == "Unsupported"
    assert ready["message"].startswith("spec.artifactStore: not set")
    assert not cluster.exists("batch/v1", "Job", NAMESPACE, "nowhere-train")


def test_an_estimator_outside_the_allow_list_never_starts_a_pod(cluster: KubeClient, operator: KopfRunner) -> None:
    cluster.create(run("typo", estimator={"className": "sklearn.tree.DecisionTreeClasifier"}))
    failed = cluster.wait_for(API, "TrainingRun", NAMESPACE, "typo", phase_is("Failed"), timeout=30)
    ready = condition(failed, "Ready")
    assert (ready["reason"], condition(failed, "Stalled")["status"]) == ("InvalidSpec", "True")
    assert ready["message"].startswith("spec.estimator.className: estimator 'sklearn.tree.DecisionTreeClasifier'")
    assert "allowed are e.g. sklearn.tree.DecisionTreeClassifier" in ready["message"]
    assert not cluster.exists("batch/v1", "Job", NAMESPACE, "typo-train")


def test_an_s3_store_gets_the_artifact_and_the_version_points_there(
    cluster: KubeClient, operator: KopfRunner, tmp_path: Path, s3_store: str
) -> None:
    secret = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}
    cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds", "namespace": NAMESPACE},
                    "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}})  # fmt: skip
    store = {"uri": "s3://models/registry", "s3": {"endpointUrl": s3_store, "secretRef": "s3-creds"}}
    cluster.create(run("iris-s3", artifactStore=store))
    job = job_of(cluster, "iris-s3")
    kubelet = Kubelet(cluster, tmp_path)
    pod = kubelet.start_pod(job, 0)
    assert kubelet.run_pod(job, pod, 0) == 0
    kubelet.finish_job(job, succeeded=1, failed=0)
    done = cluster.wait_for(API, "TrainingRun", NAMESPACE, "iris-s3", phase_is("Succeeded"), timeout=30)
    assert done is not None
    version = cluster.get(API, "ModelVersion", NAMESPACE, done["status"]["modelVersion"])
    artifact = version["spec"]["artifact"]
    assert artifact["uri"] == "s3://models/registry/ml/iris-s3/model.skops"
    import boto3

    stored = boto3.client("s3", endpoint_url=s3_store, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing-secret").get_object(
        Bucket="models", Key="registry/ml/iris-s3/model.skops")["Body"].read()  # fmt: skip
    assert hashlib.sha256(stored).hexdigest() == artifact["sha256"]
    assert len(version["spec"]["referenceStats"]["features"]) == 4


def test_a_run_follows_its_job_by_watching_not_polling(
    cluster: KubeClient, operator_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the re-check timer ten minutes away, only the watch on Jobs and pods can move the run."""
    from kopf.testing import KopfRunner as Runner

    from modelops.controller import handlers

    monkeypatch.setenv("MODELOPS_POLL_SECONDS", "600")
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with Runner(args, registry=handlers.registry(), timeout=60) as runner:
        cluster.create(run("watched"))
        job = job_of(cluster, "watched")
        cluster.wait_for(API, "TrainingRun", NAMESPACE, "watched", phase_is("Pending"), timeout=15)
        kubelet = Kubelet(cluster, tmp_path)
        pod = kubelet.start_pod(job, 0)
        cluster.wait_for(API, "TrainingRun", NAMESPACE, "watched", phase_is("Running"), timeout=15)
        assert kubelet.run_pod(job, pod, 0) == 0
        kubelet.finish_job(job, succeeded=1, failed=0)
        done = cluster.wait_for(API, "TrainingRun", NAMESPACE, "watched", phase_is("Succeeded"), timeout=15)
        assert done is not None
        assert done["status"]["modelVersion"] == "iris-v1"
        assert done["metadata"]["annotations"]["modelops.io/observed-job"]
    assert runner.exception is None, runner.exception


def test_waiting_runs_cost_no_requests_between_changes(
    cluster: KubeClient, emulator: Any, operator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-check timer fires every half second here, on three pending runs, and reads nothing from the
    API: it works from the Job and pods the watches delivered and the run Kopf hands it (bench/operator
    found it polling three requests per run per interval, and patching pending runs every tick)."""
    from kopf.testing import KopfRunner as Runner

    from modelops.controller import handlers

    monkeypatch.setenv("MODELOPS_POLL_SECONDS", "0.5")
    monkeypatch.setenv("MODELOPS_PROGRESS_TICK_SECONDS", "1")
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with Runner(args, registry=handlers.registry(), timeout=60) as runner:
        for name in ("quiet-a", "quiet-b", "quiet-c"):
            cluster.create(run(name))
        for name in ("quiet-a", "quiet-b", "quiet-c"):
            job_of(cluster, name)
            cluster.wait_for(API, "TrainingRun", NAMESPACE, name, phase_is("Pending"), timeout=15)
        settled = len(emulator.audit)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # settled: two seconds without a write to the runs
            time.sleep(2)
            now = len(emulator.audit)
            if not any(r.resource == "trainingruns" and r.verb == "patch" for r in emulator.audit[settled:now]):
                break
            settled = now
        start = len(emulator.audit)
        time.sleep(3)  # six timer intervals, three ticks: what the operator asks meanwhile is the measure
        asked = [(r.verb, r.resource) for r in emulator.audit[start:] if r.resource in ("trainingruns", "jobs", "pods")]
        assert [a for a in asked if a[0] != "watch"] == []
        quiet = cluster.get(API, "TrainingRun", NAMESPACE, "quiet-a")
        assert quiet["status"]["jobName"] == "quiet-a-train"
        # The re-check is one pass of the operator's, not a Kopf timer per run: no finalizer (Kopf puts one on
        # every object a timer serves, a write more per run, and a deletion that waits for the operator).
        assert quiet["metadata"].get("finalizers") in (None, [])
    assert runner.exception is None, runner.exception
