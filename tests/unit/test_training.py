"""A TrainingRun's Job and ConfigMap, and its state from Job and Pods (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from k8sschemas import problems
from modelops.api.trainingrun import TrainingRunSpec
from modelops.logic import training

REF = training.RunRef(name="iris-rf", namespace="ml", uid="0000-1111")
IMAGE = "example.com/modelops:1"
BASE: dict[str, Any] = {
    "model": "iris",
    "dataset": {"uri": "sklearn://iris", "target": "target"},
    "estimator": {"className": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 10}},
    "artifactStore": {"uri": "pvc://models/registry"},
}


def spec(**changes: Any) -> TrainingRunSpec:
    return TrainingRunSpec.model_validate({**BASE, **changes})


def children(**changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return training.desired_children(spec(**changes), REF, image=IMAGE, default_store=None)


def test_job_runs_the_trainer_on_the_config_with_the_artifact_volume() -> None:
    configmap, job = children()
    assert job["metadata"]["name"] == "iris-rf-train"
    assert job["metadata"]["ownerReferences"] == [{
        "apiVersion": "modelops.io/v1alpha1", "kind": "TrainingRun", "name": "iris-rf", "uid": "0000-1111",
        "controller": True, "blockOwnerDeletion": True,
    }]  # fmt: skip
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["modelops", "train"]
    output = "/mnt/pvc/models/registry/ml/iris-rf"
    assert container["args"] == ["--config", "/etc/modelops/run.json", "--output", output]
    assert {"name": "pvc-0", "persistentVolumeClaim": {"claimName": "models", "readOnly": False}} in pod["volumes"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "completionMode" not in job["spec"]
    config = json.loads(configmap["data"]["run.json"])
    assert config["artifactUri"] == "pvc://models/registry/ml/iris-rf"
    assert config["run"] == {"name": "iris-rf", "namespace": "ml", "uid": "0000-1111", "image": IMAGE}
    assert config["estimator"]["className"] == "sklearn.ensemble.RandomForestClassifier"


def test_sweep_is_an_indexed_job_with_bounded_parallelism() -> None:
    _, job = children(sweep={"parameters": {"max_depth": [2, 4, 8], "n_estimators": [10, 20]}, "metric": "f1",
                             "parallelism": 4})  # fmt: skip
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == 6
    assert job["spec"]["parallelism"] == 4


def test_job_knobs_and_secrets_reach_the_pod() -> None:
    _, job = children(
        dataset={"uri": "s3://data/iris.csv", "target": "target",
                 "s3": {"secretRef": "creds", "endpointUrl": "https://s3:9000"}},
        backoffLimit=3, activeDeadlineSeconds=600, ttlSecondsAfterFinished=60,
        pod={"nodeSelector": {"pool": "cpu"}, "tolerations": [{"key": "ml", "operator": "Exists"}],
             "serviceAccountName": "trainer", "resources": {"limits": {"memory": "1Gi", "cpu": 2}},
             "env": [{"name": "EXTRA", "value": "1"}]},
    )  # fmt: skip
    knobs = ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished")
    assert tuple(job["spec"][k] for k in knobs) == (3, 600, 60)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "cpu"}
    assert pod["serviceAccountName"] == "trainer"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"] == {"secretKeyRef": {"name": "creds", "key": "AWS_ACCESS_KEY_ID"}}
    assert env["EXTRA"]["value"] == "1"
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "1Gi", "cpu": 2}}


def test_dataset_claim_is_mounted_read_only() -> None:
    _, job = children(dataset={"uri": "pvc://datasets/iris.csv", "target": "target"})
    volumes = {v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
               for v in job["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert volumes == {"datasets": True, "models": False}


def test_own_image_keeps_its_entrypoint() -> None:
    _, job = children(estimator=None, image="example.com/own:2", args=["--epochs", "3"])
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example.com/own:2"
    assert "command" not in container
    assert container["args"] == ["--epochs", "3"]


@pytest.mark.parametrize("changes", [{}, {"sweep": {"parameters": {"max_depth": [2, 4]}, "metric": "f1"}},
                                     {"dataset": {"uri": "pvc://datasets/x.parquet", "target": "y"}}])
def test_children_are_valid_kubernetes_objects(changes: dict[str, Any]) -> None:
    configmap, job = children(**changes)
    assert problems(configmap) == []
    assert problems(job) == []


def test_long_names_stay_valid_labels() -> None:
    name = "a" * 60
    assert len(training.job_name(name)) <= 63
    assert training.job_name(name) != training.job_name("a" * 61)


@pytest.mark.parametrize(("store", "message"), [
    (None, "spec.artifactStore: not set"),
])  # fmt: skip
def test_unsupported_stores_are_named(store: str | None, message: str) -> None:
    changes: dict[str, Any] = {"artifactStore": {"uri": store}} if store else {"artifactStore": None}
    with pytest.raises(training.UnsupportedSpecError, match=message):
        training.desired_children(spec(**changes), REF, image=IMAGE, default_store=None)


def pod(index: int, phase: str, message: dict[str, Any] | str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if message is not None:
        state = {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1,
                                "message": message if isinstance(message, str) else json.dumps(message)}}
    return {
        "metadata": {"name": f"p{index}", "annotations": {training.COMPLETION_INDEX: str(index)},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"phase": phase, "containerStatuses": [{"name": "train", "state": state}]},
    }  # fmt: skip


def ok(f1: float) -> dict[str, Any]:
    return {"ok": True, "metrics": {"f1": f1}, "artifact": {"uri": "pvc://m/a", "sha256": "a" * 64, "sizeBytes": 3}}


def test_observe_follows_the_job() -> None:
    s = spec(sweep={"parameters": {"max_depth": [2, 4, 8]}, "metric": "f1"})
    assert training.observe(s, None, []).phase == "Pending"
    running = training.observe(s, {"status": {"active": 2, "startTime": "t0"}}, [pod(0, "Succeeded", ok(0.8)),
                                                                                  pod(1, "Running")])
    assert (running.phase, running.progress, running.start_time) == ("Running", "1/3", "t0")
    assert [t["phase"] for t in running.trials] == ["Succeeded", "Running", "Pending"]
    done = training.observe(
        s, {"status": {"startTime": "t0", "completionTime": "t1",
                       "conditions": [{"type": "Complete", "status": "True"}]}},
        [pod(0, "Succeeded", ok(0.8)), pod(1, "Succeeded", ok(0.9)), pod(2, "Succeeded", ok(0.85))],
    )  # fmt: skip
    assert (done.phase, done.best_trial, done.completion_time) == ("Succeeded", 1, "t1")
    assert done.trials[1]["params"] == {"max_depth": 4}


def test_observe_reports_the_trainers_own_message_on_failure() -> None:
    failed = training.observe(
        spec(), {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                            "message": "Job has reached the specified backoff limit"}]}},
        [pod(0, "Failed", {"ok": False, "error": "unknown param 'n_estimator' for RandomForestClassifier"})],
    )  # fmt: skip
    assert failed.phase == "Failed"
    assert failed.reason == "BackoffLimitExceeded"
    assert failed.message == "BackoffLimitExceeded: unknown param 'n_estimator' for RandomForestClassifier"


def test_observe_without_a_trainer_message_uses_the_jobs() -> None:
    failed = training.observe(
        spec(), {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                                            "message": "Job was active longer than specified deadline"}]}}, [],
    )  # fmt: skip
    assert failed.message == "DeadlineExceeded: Job was active longer than specified deadline"


@pytest.mark.parametrize(("changes", "message"), [
    ({"estimator": {"className": "sklearn.ensemble.RandomForestClasifier"}},
     "spec.estimator.className: estimator 'sklearn.ensemble.RandomForestClasifier' is not in the allow-list"),
    ({"estimator": {"className": "sklearn.utils.Bunch"}}, "spec.estimator.className:"),
    ({"sweep": {"strategy": "random", "trials": 3, "parameters": {"max_depth": {"low": 5}}, "metric": "f1"}},
     "spec.sweep.parameters.max_depth: a range needs numeric 'low' and 'high'"),
    ({"estimator": {"className": "sklearn.linear_model.Ridge", "calibration": {"method": "sigmoid"}}},
     "spec.estimator.calibration: sklearn.linear_model.Ridge is a regressor; only classifiers are calibrated"),
])  # fmt: skip
def test_what_the_trainer_would_refuse_is_refused_before_any_pod(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(training.InvalidRunError) as caught:
        children(**changes)
    assert str(caught.value).startswith(message)


def test_observe_reads_a_compressed_termination_message() -> None:
    """The trainer compresses a message that would pass 4 KiB; the operator gets all of it back."""
    from modelops.train.output import termination_message

    wide = {
        **ok(0.7),
        "referenceStats": {"sampleSize": 9, "features": [
            {"name": f"f{i}", "kind": "numeric", "edges": [0.0, 1.0, 2.0], "counts": [4, 5]} for i in range(90)
        ]},
    }  # fmt: skip
    text = termination_message(wide)
    assert json.loads(text)["encoding"] == "gzip+base64"
    done = training.observe(
        spec(), {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}, [pod(0, "Succeeded", text)]
    )
    assert done.phase == "Succeeded"
    assert done.results[0]["referenceStats"] == wide["referenceStats"]


def test_a_compressed_message_that_does_not_decode_is_a_trainer_error_not_a_crash() -> None:
    broken = json.dumps({"ok": True, "encoding": "gzip+base64", "data": "bm90IGd6aXA="})
    failed = training.observe(spec(), {"status": {}}, [pod(0, "Failed", broken)])
    assert failed.trials[0]["message"].startswith("{")  # the raw line is shown, nothing registered
    assert failed.results == {}


def test_s3_store_writes_to_scratch_and_tells_the_trainer_where_to_upload() -> None:
    store = {"uri": "s3://models/team", "s3": {"endpointUrl": "http://minio:9000", "region": "eu-west-1",
                                                "secretRef": "s3-creds"}}
    # Plain http to a cluster-internal MinIO: only because the operator's allow-list names it.
    with pytest.raises(training.InvalidRunError, match="must use https"):
        children(artifactStore=store)
    configmap, job = training.desired_children(spec(artifactStore=store), REF, image=IMAGE, default_store=None,
                                               allowed_endpoints=("http://minio:9000",))  # fmt: skip
    config = json.loads(configmap["data"]["run.json"])
    assert config["artifactUri"] == "s3://models/team/ml/iris-rf"
    assert config["artifactStore"] == {"s3": {"endpointUrl": "http://minio:9000", "region": "eu-west-1"}}
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"][-1] == training.S3_OUTPUT_DIR
    assert not any("persistentVolumeClaim" in v for v in pod["volumes"])  # no claim to mount
    env = {e["name"]: e.get("valueFrom") or e.get("value") for e in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}}
    # The trainer applies the same allow-list to whatever endpoint it ends up signing for.
    assert env["MODELOPS_S3_ENDPOINTS"] == "http://minio:9000"
    assert problems(job) == []


@pytest.mark.parametrize("length", [1, 40, 57, 58, 63, 200, 253])
def test_child_names_are_dns_labels_that_keep_their_suffix_and_owner(length: int) -> None:
    from modelops.logic.names import child_name

    owner = ("a" * length)[:length]
    for suffix in ("train", "config", "stable", "model-iris-v12"):
        name = child_name(owner, suffix)
        assert len(name) <= 63
        assert name.endswith(suffix)
        assert name[0].isalnum()
        assert name[-1].isalnum()
    assert child_name("a" * 200, "stable") != child_name("a" * 199 + "b", "stable")


def test_the_pod_reads_files_only_from_the_claims_it_mounts() -> None:
    _, job = children(dataset={"uri": "/mnt/pvc/datasets/iris.csv", "target": "target"})
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["MODELOPS_FILE_ROOTS"], env["MODELOPS_PVC_ROOT"]) == ("/mnt/pvc", "/mnt/pvc")
    assert "MODELOPS_S3_ENDPOINTS" not in env


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pod": {"env": [{"name": "A", "value": "1"}, {"name": "MODELOPS_S3_ENDPOINTS", "value": "http://x"}]}},
         "spec.pod.env[1].name: MODELOPS_S3_ENDPOINTS is set by the operator"),
        ({"artifactStore": {"uri": "s3://m", "s3": {"endpointUrl": "http://10.0.0.7:9000"}}},
         "spec.artifactStore.s3.endpointUrl 'http://10.0.0.7:9000' must use https"),
    ],
)
def test_locations_the_trainer_would_refuse_are_refused_before_a_pod(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(training.InvalidRunError) as refused:
        children(**changes)
    assert str(refused.value).startswith(message)


def test_loopback_http_and_allow_listed_endpoints_pass() -> None:
    loopback = {"uri": "s3://m", "s3": {"endpointUrl": "http://127.0.0.1:9000"}}
    children(artifactStore=loopback)
    listed = {"uri": "s3://m", "s3": {"endpointUrl": "http://minio.storage.svc:9000/"}}
    training.desired_children(spec(artifactStore=listed), REF, image=IMAGE, default_store=None,
                              allowed_endpoints=("http://minio.storage.svc:9000",))  # fmt: skip
    # With a list, it is the only rule: an https endpoint not on it is refused too.
    elsewhere = {"uri": "s3://m", "s3": {"endpointUrl": "https://s3.example.com"}}
    with pytest.raises(training.InvalidRunError, match="not among the allowed S3 endpoints"):
        training.desired_children(spec(artifactStore=elsewhere), REF, image=IMAGE, default_store=None,
                                  allowed_endpoints=("http://minio.storage.svc:9000",))  # fmt: skip


def trial_pod(index: int, phase: str, start: str, finished: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "startTime": start}
    if finished:
        artifact = {"uri": "pvc://m/x", "sha256": "a" * 64}
        message = json.dumps({"ok": True, "metrics": {"accuracy": 0.9}, "artifact": artifact})
        status["containerStatuses"] = [{"name": "train", "state": {"terminated": {"message": message,
                                                                                  "finishedAt": finished}}}]
    return {"metadata": {"name": f"p{index}", "annotations": {training.COMPLETION_INDEX: str(index)},
                         "creationTimestamp": start}, "status": status}  # fmt: skip


def test_the_status_message_says_which_trial_runs_and_the_time_elapsed() -> None:
    sweep = spec(sweep={"parameters": {"max_depth": [1, 2, 3, 4]}, "metric": "accuracy"})
    job = {"status": {"active": 2, "startTime": "2025-01-01T10:00:00Z"}}
    pods = [trial_pod(0, "Succeeded", "2025-01-01T10:00:05Z", "2025-01-01T10:02:00Z"),
            trial_pod(1, "Running", "2025-01-01T10:02:01Z"), trial_pod(2, "Running", "2025-01-01T10:02:03Z")]
    seen = training.observe(sweep, job, pods, now="2025-01-01T10:04:05Z")
    assert seen.message == "training: trials 2 and 3 of 4 running (1 finished), 4m05s elapsed"
    assert seen.progress == "1/4"
    assert (seen.trials[0]["startTime"], seen.trials[0]["completionTime"]) == (
        "2025-01-01T10:00:05Z", "2025-01-01T10:02:00Z",
    )  # fmt: skip
    assert seen.trials[1]["startTime"] == "2025-01-01T10:02:01Z"
    assert "completionTime" not in seen.trials[1]
    # Without a clock (an old caller) the message just leaves the time out.
    assert training.observe(sweep, job, pods).message == "training: trials 2 and 3 of 4 running (1 finished)"


def test_a_truncated_message_is_completed_from_the_whole_result_only_when_its_digest_matches() -> None:
    import base64
    import gzip
    import hashlib

    whole = {"model": "m", "task": "classification", "signature": {"inputs": [{"name": "x", "datatype": "FP64"}]},
             "referenceStats": {"sampleSize": 3, "features": []}, "estimator": {"params": {"C": 1}},
             "dataset": {"uri": "pvc://d/t.csv", "sha256": "b" * 64, "rows": 4},
             "preprocessing": {"columns": [{"name": "x", "kind": "numeric"}]},
             "calibration": {"method": "none", "bins": 10, "rows": 1}}  # fmt: skip
    data = json.dumps(whole).encode()
    digest = hashlib.sha256(data).hexdigest()
    artifact = {"uri": "pvc://m/a", "sha256": "c" * 64}
    message = {"ok": True, "truncated": True, "resultSha256": digest, "artifact": artifact}
    assert training.needs_whole_result(message)
    line = "modelops-result gzip+base64 " + base64.b64encode(gzip.compress(data)).decode()
    log = "modelops train: done\n" + line + "\n"
    completed = training.completed_message(message, training.result_from_log(log, digest))
    assert not training.needs_whole_result(completed)
    assert completed["signature"] == whole["signature"]
    assert (completed["params"], completed["rows"]) == ({"C": 1}, 4)
    assert completed["columns"] == [{"name": "x", "kind": "numeric"}]
    assert completed["calibration"] == whole["calibration"]
    assert completed["artifact"]["sha256"] == "c" * 64
    with pytest.raises(ValueError, match="sha256"):
        training.result_from_log(log, "0" * 64)
    with pytest.raises(ValueError, match="no modelops-result line"):
        training.result_from_log("modelops train: done\n", digest)


@pytest.mark.parametrize(("run_as", "pinned"), [(10001, {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001}),
                                                 (1000680000, {"runAsUser": 1000680000, "runAsGroup": 1000680000,
                                                               "fsGroup": 1000680000}),
                                                 (None, {})])  # fmt: skip
def test_pods_run_as_the_configured_user_or_as_the_platform_assigns(run_as: int | None, pinned: dict[str, int]) -> None:
    """OpenShift's restricted policy refuses a user id outside the namespace's range and assigns one when
    none is set: with run_as None the pods name no user, group or fsGroup, and stay non-root."""
    _, job = training.desired_children(spec(), REF, image=IMAGE, default_store=None, run_as=run_as)
    pod = job["spec"]["template"]["spec"]
    context = pod["securityContext"]
    assert {k: v for k, v in context.items() if k in ("runAsUser", "runAsGroup", "fsGroup")} == pinned
    assert context["runAsNonRoot"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert problems(job) == []
