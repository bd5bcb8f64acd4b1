"""The feedback keys' Secret as pure decisions: made, owned, rotated, reset; and the servers that mount it."""

from __future__ import annotations

import base64
import datetime
import itertools
from typing import Any

from kubeemu.patching import merge_patch as merge
from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.logic import feedbackkeys as fk
from modelops.logic import serving

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def counter_bytes() -> Any:
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def generations(secret: dict[str, Any]) -> list[int]:
    return sorted(int(k[4:]) for k in secret["data"] if k.startswith("key-"))


def current(secret: dict[str, Any]) -> int:
    return int(base64.b64decode(secret["data"]["current"]))


def test_a_fresh_secret_signs_with_one_and_holds_the_next() -> None:
    owner = fk.owner_ref("churn", "uid-1")
    secret = fk.fresh("ml", [owner], NOW, counter_bytes())
    assert secret["metadata"]["name"] == "modelops-feedback-keys"
    assert fk.is_ours(secret)
    assert secret["metadata"]["ownerReferences"] == [owner]
    assert "controller" not in owner  # one owner among several
    assert generations(secret) == [1, 2]
    assert current(secret) == 1
    state = fk.state_of(secret)
    assert state is not None
    assert state.rotated_at == NOW
    assert len(base64.b64decode(secret["data"]["key-1"])) == 32


def test_rotations_keep_two_before_and_one_after_the_current_key() -> None:
    random_bytes = counter_bytes()
    secret = fk.fresh("ml", [], NOW, random_bytes)
    secret["metadata"]["resourceVersion"] = "7"
    seen = []
    for step in range(1, 7):
        state = fk.state_of(secret)
        assert state is not None
        at = NOW + datetime.timedelta(days=7 * step)
        assert fk.seconds_to_rotation(state, at - datetime.timedelta(seconds=1), 7 * 86400) == 1
        assert fk.seconds_to_rotation(state, at, 7 * 86400) == 0
        patch = fk.rotation_patch(secret, state, at, random_bytes)
        assert patch["metadata"]["resourceVersion"] == "7"  # a compare-and-swap
        keys_before = {k: v for k, v in secret["data"].items() if k.startswith("key-")}
        secret = merge(secret, patch)
        seen.append((current(secret), generations(secret)))
        kept = {k: v for k, v in secret["data"].items() if k in keys_before}
        assert all(keys_before[k] == v for k, v in kept.items())  # a key never changes once made
    assert seen == [
        (2, [1, 2, 3]), (3, [1, 2, 3, 4]), (4, [2, 3, 4, 5]), (5, [3, 4, 5, 6]), (6, [4, 5, 6, 7]), (7, [5, 6, 7, 8]),
    ]  # fmt: skip


def test_a_second_deployment_becomes_an_owner_once() -> None:
    secret = fk.fresh("ml", [fk.owner_ref("a", "uid-a")], NOW, counter_bytes())
    secret["metadata"]["resourceVersion"] = "3"
    patch = fk.owner_patch(secret, fk.owner_ref("b", "uid-b"))
    assert patch is not None
    assert patch["metadata"]["resourceVersion"] == "3"
    secret = merge(secret, patch)
    assert [r["uid"] for r in secret["metadata"]["ownerReferences"]] == ["uid-a", "uid-b"]
    assert fk.owner_patch(secret, fk.owner_ref("b", "uid-b")) is None


def test_a_malformed_secret_is_not_read_and_is_made_fresh() -> None:
    secret = fk.fresh("ml", [], NOW, counter_bytes())
    secret["metadata"]["resourceVersion"] = "9"
    broken = merge(secret, {"data": {"current": base64.b64encode(b"5").decode(), "junk": "eA=="}})
    assert fk.state_of(broken) is None
    assert fk.state_of(merge(secret, {"data": {"key-1": base64.b64encode(b"short").decode()}})) is None
    assert fk.state_of(merge(secret, {"metadata": {"annotations": {fk.ROTATED_AT: "yesterday"}}})) is None
    assert fk.state_of({"metadata": {}, "data": {}}) is None
    repaired = merge(broken, fk.reset_patch(NOW, counter_bytes(), broken))
    assert "junk" not in repaired["data"]
    assert fk.state_of(repaired) is not None
    assert not fk.is_ours({"metadata": {"name": fk.SECRET_NAME, "labels": {"app": "mine"}}})


def test_the_servers_mount_the_keys_and_are_bound_to_their_deployment() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": "iris", "modelVersion": "iris-v1"})
    version = {
        "metadata": {"name": "iris-v1", "uid": "u1"},
        "spec": {"model": "iris", "artifact": {"uri": "s3://b/iris/model.joblib", "sha256": "ab" * 32},
                 "signature": {"inputs": [{"name": "x", "datatype": "FP64"}]}},
    }  # fmt: skip
    children = serving.desired_children(
        spec, serving.Owner("iris", "ml", "uid"), serving.Traffic("iris-v1", None), stable=version, canary=version,
        image="img", feedback_ttl=3600,
    )  # fmt: skip
    stable = next(c for c in children.keep if c["kind"] == "Deployment" and c["metadata"]["name"] == "iris-stable")
    pod = stable["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--feedback-keys"] == "/etc/modelops/feedback-keys"
    assert flags["--feedback-scope"] == "ml/iris"
    assert flags["--feedback-ttl"] == "3600"
    volume = next(v for v in pod["volumes"] if v["name"] == "feedback-keys")
    assert volume["secret"] == {"secretName": "modelops-feedback-keys", "defaultMode": 0o440}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "feedback-keys")
    assert mount == {"name": "feedback-keys", "mountPath": "/etc/modelops/feedback-keys", "readOnly": True}
    assert "subPath" not in mount  # a subPath mount is never updated in place: rotations would not reach the pod
