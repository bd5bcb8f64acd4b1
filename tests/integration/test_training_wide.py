"""Wide and messy tables through the operator, with the training pods run for real (tests/kubelet.py).

Given a 200-feature table, whose reference statistics cannot travel in a 4 KiB termination
message, when a TrainingRun trains on it, then the ModelVersion still carries all 200 features'
reference bins: read from result.json in the operator's own s3:// store (SigV4-signed), else
from the training pod's log (pvc:// stores, a run's own s3:// store); a log that does not match the
digest in the termination message registers nothing. A sweep shows which trial runs and the time
elapsed in the run's status; the pod is told which files and endpoints it may use; a run that
names an endpoint outside the rule or tries to set those variables itself never starts a pod.
The operator signs S3 requests only for its own store, with its own credentials; it reads no Secret.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner

import messytables
from kubeemu import Emulator
from kubeemu.client import KubeClient
from kubelet import Kubelet

pytestmark = pytest.mark.slow  # wide tables trained for real through the operator

API = "modelops.io/v1alpha1"
NAMESPACE = "ml"


def wide_run(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "model": "wide",
            "dataset": {"uri": "pvc://data/wide.csv", "target": "label"},
            "estimator": {"className": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
            "artifactStore": {"uri": "pvc://models/registry"},
            **spec,
        },
    }


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def phase_is(phase: str) -> Any:
    return lambda o: bool(o) and (o.get("status") or {}).get("phase") == phase


@pytest.fixture
def wide_csv(tmp_path: Path) -> Path:
    return messytables.write_csv(messytables.wide(rows=400, features=200), tmp_path / "pvc" / "data" / "wide.csv")


def job_of(kube: KubeClient, name: str) -> dict[str, Any]:
    found = kube.wait_for("batch/v1", "Job", NAMESPACE, f"{name}-train", lambda o: o is not None, timeout=30)
    assert found is not None
    return found


def assert_all_200_features(version: dict[str, Any]) -> None:
    spec = version["spec"]
    assert len(spec["referenceStats"]["features"]) == 200
    assert len(spec["signature"]["inputs"]) == 200
    columns = spec["lineage"]["columns"]
    assert len(columns) == 200
    gappy = next(c for c in columns if c["name"] == "f000")
    assert (gappy["impute"], gappy["kind"]) == ("median", "numeric")
    assert gappy["missing"] > 0


def test_a_200_feature_table_keeps_its_reference_statistics_through_the_pod_log(
    cluster: KubeClient, emulator: Emulator, operator: KopfRunner, tmp_path: Path, wide_csv: Path,
    kubeconfig: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cluster.create(wide_run("wide-pvc"))
    job = job_of(cluster, "wide-pvc")
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELOPS_FILE_ROOTS"] == "/mnt/pvc"
    kubelet = Kubelet(cluster, tmp_path, emulator)
    pod = kubelet.start_pod(job, 0)
    assert kubelet.run_pod(job, pod, 0) == 0
    message = cluster.get("v1", "Pod", NAMESPACE, pod["metadata"]["name"])["status"]["containerStatuses"][0]
    assert len(message["state"]["terminated"]["message"].encode()) <= 4096
    kubelet.finish_job(job, succeeded=1, failed=0)
    done = cluster.wait_for(API, "TrainingRun", NAMESPACE, "wide-pvc", phase_is("Succeeded"), timeout=60)
    assert done is not None
    assert condition(done, "Registered")["status"] == "True", done["status"]
    assert_all_200_features(cluster.get(API, "ModelVersion", NAMESPACE, done["status"]["modelVersion"]))
    log_reads = [r for r in emulator.audit if r.subresource == "log" and r.name == pod["metadata"]["name"]]
    assert log_reads
    assert {r.code for r in log_reads} == {200}
    # kubectl modelops card shows what training did to each column of the registered version.
    from modelops.plugin import cli

    capsys.readouterr()
    assert cli.main(["--kubeconfig", str(kubeconfig), "-n", NAMESPACE, "card", "wide"]) == 0
    card = capsys.readouterr().out
    assert "What training did to each column:" in card
    assert "| f000 | numeric |" in card
    assert "| median | no | no | none |" in card


def test_a_log_that_does_not_match_the_digest_registers_nothing(
    cluster: KubeClient, emulator: Emulator, operator: KopfRunner, tmp_path: Path, wide_csv: Path
) -> None:
    cluster.create(wide_run("wide-forged"))
    job = job_of(cluster, "wide-forged")
    kubelet = Kubelet(cluster, tmp_path, emulator)
    pod = kubelet.start_pod(job, 0)
    assert kubelet.run_pod(job, pod, 0) == 0
    # Someone (the training code of an own image, say) prints another result after the real one.
    forged = {"referenceStats": {"sampleSize": 1, "features": []}, "signature": {"inputs": []}}
    import gzip

    line = "modelops-result gzip+base64 " + base64.b64encode(gzip.compress(json.dumps(forged).encode())).decode()
    emulator.set_container_log(NAMESPACE, pod["metadata"]["name"], "train", line + "\n")
    kubelet.finish_job(job, succeeded=1, failed=0)
    waiting = cluster.wait_for(
        API, "TrainingRun", NAMESPACE, "wide-forged",
        lambda o: condition(o, "Registered").get("reason") == "ResultUnavailable", timeout=60,
    )  # fmt: skip
    assert waiting is not None
    assert "sha256" in condition(waiting, "Registered")["message"]
    assert condition(waiting, "Ready")["status"] == "False"
    assert cluster.list(API, "ModelVersion", NAMESPACE) == []


def test_a_200_feature_table_in_the_operators_own_s3_store_is_read_from_there(
    cluster: KubeClient, operator: KopfRunner, tmp_path: Path, wide_csv: Path, s3_store: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The operator's own store and credentials (its pod's env); the trainer gets the same here.
    monkeypatch.setattr("modelops.controller.common.ARTIFACT_STORE", "s3://models/registry")
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret",
                       "AWS_ENDPOINT_URL": s3_store}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    store = {"uri": "s3://models/registry", "s3": {"endpointUrl": s3_store}}
    cluster.create(wide_run("wide-s3", artifactStore=store))
    job = job_of(cluster, "wide-s3")
    kubelet = Kubelet(cluster, tmp_path)  # no pods/log: the store is the only way
    pod = kubelet.start_pod(job, 0)
    assert kubelet.run_pod(job, pod, 0) == 0
    kubelet.finish_job(job, succeeded=1, failed=0)
    done = cluster.wait_for(API, "TrainingRun", NAMESPACE, "wide-s3", phase_is("Succeeded"), timeout=60)
    assert done is not None
    assert condition(done, "Registered")["status"] == "True", done["status"]
    version = cluster.get(API, "ModelVersion", NAMESPACE, done["status"]["modelVersion"])
    assert version["spec"]["artifact"]["uri"] == "s3://models/registry/ml/wide-s3/model.skops"
    assert_all_200_features(version)


def test_a_run_with_its_own_s3_store_and_secret_is_read_from_the_log_never_with_its_secret(
    cluster: KubeClient, emulator: Emulator, operator: KopfRunner, tmp_path: Path, wide_csv: Path, s3_store: str
) -> None:
    secret = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}
    cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds", "namespace": NAMESPACE},
                    "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}})  # fmt: skip
    store = {"uri": "s3://models/team", "s3": {"endpointUrl": s3_store, "secretRef": "s3-creds"}}
    cluster.create(wide_run("wide-own", artifactStore=store))
    job = job_of(cluster, "wide-own")
    kubelet = Kubelet(cluster, tmp_path, emulator)
    pod = kubelet.start_pod(job, 0)
    assert kubelet.run_pod(job, pod, 0) == 0
    kubelet.finish_job(job, succeeded=1, failed=0)
    done = cluster.wait_for(API, "TrainingRun", NAMESPACE, "wide-own", phase_is("Succeeded"), timeout=60)
    assert done is not None
    assert condition(done, "Registered")["status"] == "True", done["status"]
    assert_all_200_features(cluster.get(API, "ModelVersion", NAMESPACE, done["status"]["modelVersion"]))
    assert not [r for r in emulator.audit if r.resource == "secrets" and r.user_agent.startswith("modelops")]
    assert [r for r in emulator.audit if r.subresource == "log" and r.code == 200]


def test_a_sweep_shows_the_running_trial_and_the_time_in_its_status(
    cluster: KubeClient, operator: KopfRunner, tmp_path: Path
) -> None:
    body = wide_run("sweep-progress", dataset={"uri": "sklearn://iris", "target": "target"},
                    estimator={"className": "sklearn.tree.DecisionTreeClassifier"},
                    sweep={"parameters": {"max_depth": [1, 2, 3]}, "metric": "accuracy", "parallelism": 1})  # fmt: skip
    cluster.create(body)
    job = job_of(cluster, "sweep-progress")
    kubelet = Kubelet(cluster, tmp_path)
    first = kubelet.start_pod(job, 0)
    assert kubelet.run_pod(job, first, 0) == 0
    kubelet.start_pod(job, 1)
    running = cluster.wait_for(
        API, "TrainingRun", NAMESPACE, "sweep-progress",
        lambda o: "trial 2 of 3 running" in ((o or {}).get("status") or {}).get("message", ""), timeout=30,
    )  # fmt: skip
    assert running is not None
    message = running["status"]["message"]
    assert message.startswith("training: trial 2 of 3 running (1 finished), ")
    assert message.endswith(" elapsed")
    assert running["status"]["progress"] == "1/3"
    trials = running["status"]["trials"]
    assert trials[0]["phase"] == "Succeeded"
    assert trials[0]["startTime"] <= trials[0]["completionTime"]
    assert trials[1]["phase"] == "Running"
    assert "completionTime" not in trials[1]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"dataset": {"uri": "s3://data/t.csv", "target": "y", "s3": {"endpointUrl": "http://collector.example"}}},
         "spec.dataset.s3.endpointUrl 'http://collector.example' must use https"),
        ({"pod": {"env": [{"name": "MODELOPS_FILE_ROOTS", "value": "/"}]}},
         "spec.pod.env[0].name: MODELOPS_FILE_ROOTS is set by the operator"),
    ],
)
def test_a_run_that_reaches_further_than_the_rules_never_starts_a_pod(
    cluster: KubeClient, operator: KopfRunner, changes: dict[str, Any], field: str
) -> None:
    cluster.create(wide_run("reach", **changes))
    failed = cluster.wait_for(API, "TrainingRun", NAMESPACE, "reach", phase_is("Failed"), timeout=30)
    ready = condition(failed, "Ready")
    assert ready["reason"] == "InvalidSpec"
    assert ready["message"].startswith(field), ready["message"]
    assert not cluster.exists("batch/v1", "Job", NAMESPACE, "reach-train")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"dataset": {"uri": "pvc://../etc/passwd", "target": "y"}}, "spec.dataset.uri"),
        ({"dataset": {"uri": "pvc://data/x/../../y.csv", "target": "y"}}, "spec.dataset.uri"),
        ({"dataset": {"uri": "s3://b/k.csv", "target": "y", "s3": {"region": "evil.example/"}}},
         "spec.dataset.s3.region"),
        ({"artifactStore": {"uri": "pvc://models/../../etc"}}, "spec.artifactStore.uri"),
    ],
)
def test_the_schema_refuses_climbing_claims_and_odd_regions(
    cluster: KubeClient, changes: dict[str, Any], field: str
) -> None:
    from kubeemu.client import ApiError

    with pytest.raises(ApiError) as refused:
        cluster.create(wide_run("odd", **changes))
    assert refused.value.status == 422
    assert field in str(refused.value)


def test_the_time_elapsed_in_a_long_fits_status_stays_current(
    cluster: KubeClient, operator_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing changes in the Job or its pod while one long fit runs: the status still keeps time."""
    from modelops.controller import handlers

    monkeypatch.setenv("MODELOPS_PROGRESS_TICK_SECONDS", "1")
    monkeypatch.setenv("MODELOPS_POLL_SECONDS", "600")
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with KopfRunner(args, registry=handlers.registry(), timeout=60) as runner:
        cluster.create(wide_run("long-fit", dataset={"uri": "sklearn://iris", "target": "target"}))
        job = job_of(cluster, "long-fit")
        Kubelet(cluster, tmp_path).start_pod(job, 0)  # running, and never finishing in this test
        first = cluster.wait_for(API, "TrainingRun", NAMESPACE, "long-fit",
                                 lambda o: "elapsed" in ((o or {}).get("status") or {}).get("message", ""),
                                 timeout=30)  # fmt: skip
        assert first is not None
        before = first["status"]["message"]
        assert before.startswith("training: trial 1 of 1 running (0 finished), ")
        later = cluster.wait_for(API, "TrainingRun", NAMESPACE, "long-fit",
                                 lambda o: (o or {}).get("status", {}).get("message", before) != before,
                                 timeout=30)  # fmt: skip
        assert later is not None
        assert later["status"]["message"].startswith("training: trial 1 of 1 running (0 finished), ")
        assert later["status"]["message"].endswith(" elapsed")
    assert runner.exception is None, runner.exception
