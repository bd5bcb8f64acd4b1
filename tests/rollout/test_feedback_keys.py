"""The namespace's feedback keys through the real operator: made before the servers, owned, rotated, put back.

Given ModelDeployments in a namespace, the operator keeps one Secret ``modelops-feedback-keys`` that
their servers mount. Rotation is driven by its recorded time: the test ages the annotation rather
than waiting a period, so each rotation happens on the operator's next check, deterministically.
Real ``modelops serve`` processes read the Secret as the kubelet writes it into a volume (a
``..data`` directory swapped by symlink), and an id issued before rotations is accepted while its
key is held (two rotations) and refused after the third.
"""

from __future__ import annotations

import base64
import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kopf.testing import KopfRunner

from kubeemu.client import KubeClient
from modelops.serve import tokens
from rollout.kit import API, NAMESPACE, deployment, model_version, status_is
from serve import modelkit
from serve.conftest import Server
from serve.test_feedback_parts import kubelet_write

SECRET = "modelops-feedback-keys"
ROTATION = 3600


@pytest.fixture(autouse=True)
def rotation_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOPS_FEEDBACK_KEY_ROTATION_SECONDS", str(ROTATION))
    monkeypatch.setenv("MODELOPS_FEEDBACK_KEY_CHECK_SECONDS", "0.5")


def generation(secret: dict[str, Any] | None) -> int:
    return int(base64.b64decode((secret or {})["data"]["current"]))


def keys_of(secret: dict[str, Any]) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


def age(cluster: KubeClient) -> None:
    """Make the last rotation look a period old: the operator's next check rotates."""
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=ROTATION + 60)
    annotations = {"modelops.io/rotated-at": long_ago.strftime("%Y-%m-%dT%H:%M:%SZ")}
    cluster.patch("v1", "Secret", NAMESPACE, SECRET, {"metadata": {"annotations": annotations}})


def test_the_secret_is_made_before_the_servers_owned_by_each_deployment_and_put_back(
    cluster: KubeClient, operator: KopfRunner
) -> None:
    cluster.create(model_version(1))
    cluster.create(deployment(modelVersion="iris-v1"))
    md = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=60)
    assert md is not None
    secret = cluster.get("v1", "Secret", NAMESPACE, SECRET)
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelops-operator"
    assert [(r["kind"], r["name"], r["uid"]) for r in secret["metadata"]["ownerReferences"]] == [
        ("ModelDeployment", "iris", md["metadata"]["uid"])
    ]
    assert generation(secret) == 1
    assert sorted(keys_of(secret)) == ["current", "key-1", "key-2"]
    stable = cluster.get("apps/v1", "Deployment", NAMESPACE, "iris-stable")
    pod = stable["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert (flags["--feedback-scope"], flags["--feedback-ttl"]) == ("ml/iris", str(ROTATION))
    assert {"name": "feedback-keys", "secret": {"secretName": SECRET, "defaultMode": 0o440}} in pod["volumes"]

    # A second deployment in the namespace shares the Secret and becomes one of its owners.
    cluster.create(deployment("iris-b", modelVersion="iris-v1"))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris-b", status_is(phase="Healthy"), timeout=60)
    owners = cluster.wait_for(
        "v1", "Secret", NAMESPACE, SECRET, lambda s: len((s or {})["metadata"].get("ownerReferences") or []) == 2,
        timeout=30,
    )  # fmt: skip
    assert owners is not None
    assert generation(cluster.get("v1", "Secret", NAMESPACE, SECRET)) == 1  # not made anew

    # Deleted by hand: the operator's timer puts a fresh one back (earlier ids are revoked, as documented).
    cluster.delete("v1", "Secret", NAMESPACE, SECRET)
    back = cluster.wait_for("v1", "Secret", NAMESPACE, SECRET, lambda s: s is not None, timeout=30)
    assert back is not None
    assert keys_of(back)["key-1"] != keys_of(secret)["key-1"]

    # Edited into nonsense: made anew too (the servers keep their last good keys until it is), and said so.
    nine = base64.b64encode(b"9").decode()
    cluster.patch("v1", "Secret", NAMESPACE, SECRET, {"data": {"current": nine}})
    reset = cluster.wait_for(
        "v1", "Secret", NAMESPACE, SECRET,
        lambda s: (s or {}).get("data", {}).get("current") != nine and generation(s) == 1, timeout=30,
    )  # fmt: skip
    assert reset is not None
    assert keys_of(reset)["key-1"] != keys_of(back)["key-1"]
    # Kopf posts Events in the background: wait for it, with a deadline.
    deadline = time.monotonic() + 30
    while not any(e.get("reason") == "FeedbackKeysReset" for e in cluster.list("v1", "Event", NAMESPACE)):
        assert time.monotonic() < deadline, "no FeedbackKeysReset Event within 30 s"
        time.sleep(0.1)  # polling interval, not synchronisation: the deadline bounds the wait


def test_the_deployments_of_a_namespace_share_one_read_of_the_secret_per_check(
    cluster: KubeClient, emulator: Any, operator: KopfRunner
) -> None:
    """Five deployments, a check every half second: the Secret is read about once per check, not five times
    (bench/operator found 300 deployments reading the same Secret 300 times a minute)."""
    cluster.create(model_version(1))
    names = [f"iris-{i}" for i in range(5)]
    for name in names:
        cluster.create(deployment(name, modelVersion="iris-v1"))
    for name in names:
        cluster.wait_for(API, "ModelDeployment", NAMESPACE, name, status_is(phase="Healthy"), timeout=60)
    cluster.wait_for("v1", "Secret", NAMESPACE, SECRET,
                     lambda s: len((s or {})["metadata"].get("ownerReferences") or []) == 5, timeout=30)  # fmt: skip
    start = len(emulator.audit)
    began = time.monotonic()
    time.sleep(3)  # the measure: six check intervals
    window = time.monotonic() - began
    reads = [r for r in emulator.audit[start:] if r.resource == "secrets" and r.verb == "get"]
    # Unshared, five deployments read it five times a check (about 30 here); shared, about once a check.
    # Twice that leaves room for a reconcile still settling on a busy machine.
    assert 1 <= len(reads) <= 2 * window / 0.5 + 2, len(reads)
    assert generation(cluster.get("v1", "Secret", NAMESPACE, SECRET)) == 1


def test_a_secret_of_that_name_that_is_not_the_operators_is_never_overwritten(
    cluster: KubeClient, operator: KopfRunner
) -> None:
    theirs = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET, "namespace": NAMESPACE},
              "data": {"password": base64.b64encode(b"hunter2").decode()}}  # fmt: skip
    cluster.create(theirs)
    cluster.create(model_version(1))
    cluster.create(deployment(modelVersion="iris-v1"))

    def says_so(obj: dict[str, Any] | None) -> bool:
        ready = [c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
        return bool(ready) and ready[0]["status"] == "False" and "not the operator's" in ready[0]["message"]

    assert cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", says_so, timeout=60) is not None
    assert cluster.get("v1", "Secret", NAMESPACE, SECRET)["data"] == theirs["data"]
    assert not cluster.exists("apps/v1", "Deployment", NAMESPACE, "iris-stable")


@pytest.fixture
def iris_dir(tmp_path: Path) -> modelkit.ModelDir:
    return modelkit.iris(tmp_path / "iris")


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    path = tmp_path / "volume"
    path.mkdir()
    return path


@pytest.fixture
def server_of(iris_dir: modelkit.ModelDir, volume: Path) -> Iterator[Any]:
    servers: list[Server] = []

    def start() -> Server:
        server = Server(iris_dir.path, "--feedback-keys", str(volume), "--feedback-scope", "ml/iris",
                        "--feedback-ttl", str(ROTATION)).wait_ready()  # fmt: skip
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_an_id_lives_through_two_rotations_and_not_a_third(
    cluster: KubeClient, operator: KopfRunner, iris_dir: modelkit.ModelDir, volume: Path, server_of: Any
) -> None:
    cluster.create(model_version(1))
    cluster.create(deployment(modelVersion="iris-v1"))
    secret = cluster.wait_for("v1", "Secret", NAMESPACE, SECRET, lambda s: s is not None, timeout=60)
    assert secret is not None
    snapshot = 1
    kubelet_write(volume, keys_of(secret), snapshot)
    issuer = server_of()
    x = iris_dir.test_x.to_numpy(dtype=np.float64)[:1]
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": x.ravel().tolist()}]}
    early = issuer.post("/v2/models/iris/infer", json=body).json()["id"]
    assert tokens.read(early).key_id == 1
    issuer.close()  # nothing of it is needed later: the id carries everything

    for rotations in (1, 2, 3):
        before = generation(cluster.get("v1", "Secret", NAMESPACE, SECRET))
        age(cluster)
        rotated = cluster.wait_for(
            "v1", "Secret", NAMESPACE, SECRET, lambda s, b=before: generation(s) == b + 1, timeout=30
        )
        assert rotated is not None, f"rotation {rotations} did not happen"
        assert generation(rotated) == 1 + rotations
        snapshot += 1
        kubelet_write(volume, keys_of(rotated), snapshot)
        checker = server_of()  # a replica started now, with the Secret as it is now
        r = checker.post("/v2/models/iris/feedback", json={"id": early, "actual": 0})
        if rotations < 3:
            assert r.status_code == 200, r.text
            assert r.json()["counted"] == 1
        else:
            assert r.status_code == 403, r.text
            assert "does not hold" in r.json()["error"]
        fresh = checker.post("/v2/models/iris/infer", json=body).json()["id"]
        assert tokens.read(fresh).key_id == 1 + rotations  # it signs with the rotated current key
        checker.close()
    final = cluster.get("v1", "Secret", NAMESPACE, SECRET)
    assert sorted(keys_of(final)) == ["current", "key-2", "key-3", "key-4", "key-5"]
