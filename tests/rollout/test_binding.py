"""A ModelDeployment serves the exact version it was given: uid and digest, not a name.

Given a ModelDeployment serving iris-v1, when iris-v1 is deleted and re-created under the same name
with another artifact, then the stable Deployment keeps the digest it was promoted with (and its
ConfigMap), the new object is a new version that goes through the canary, and the ``Governed``
condition and a Warning Event say what happened. In a namespace labelled production the new object
rolls out only once it holds Production itself; a pinned version that leaves Production keeps
serving and is reported.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from kopf.testing import KopfRunner

from kubeemu.client import KubeClient
from modelops.logic import governance as gov
from rollout.kit import API, NAMESPACE, SHA, condition, deployment, events_for, model_version, status_is

OTHER = "cd" * 32
PAUSED = {"rollout": {"steps": [{"setWeight": 50}, {"pause": {}}]}}


def digest_served(cluster: KubeClient, name: str) -> str:
    """The ``--sha256`` a server Deployment's pods verify the artifact against."""
    args = cluster.get("apps/v1", "Deployment", NAMESPACE, name)["spec"]["template"]["spec"]["containers"][0]["args"]
    return str(args[args.index("--sha256") + 1])


def version_again(number: int, sha256: str, stage: str = "Staging", **annotations: str) -> dict[str, Any]:
    body = model_version(number, stage=stage)
    body["spec"]["artifact"]["sha256"] = sha256
    body["metadata"]["annotations"] = dict(annotations)
    return body


def approved_by(user: str) -> dict[str, str]:
    """The approval record the mutating webhook would write (this tier runs no webhooks)."""
    at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {gov.APPROVALS: json.dumps([{"stage": "Production", "user": user, "at": at}])}


def replace_version(cluster: KubeClient, body: dict[str, Any]) -> str:
    """Delete the version and create ``body`` under its name; the new object's uid."""
    name = body["metadata"]["name"]
    cluster.delete(API, "ModelVersion", NAMESPACE, name)
    cluster.wait_for(API, "ModelVersion", NAMESPACE, name, lambda o: o is None, timeout=30)
    return str(cluster.create(body)["metadata"]["uid"])


def governed(reason: str) -> Any:
    return lambda o: condition(o, "Governed").get("reason") == reason


def warned(cluster: KubeClient, reason: str, text: str) -> None:
    """Wait (bounded) for a Warning Event with ``reason`` whose message contains ``text`` (Kopf posts them
    in the background)."""

    def posted(_: Any) -> bool:
        return any(e["reason"] == reason and e["type"] == "Warning" and text in e["message"]
                   for e in events_for(cluster, "iris"))  # fmt: skip

    assert cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", posted, timeout=30)


def test_a_version_re_created_under_the_pinned_name_goes_through_the_canary(
    cluster: KubeClient, operator: KopfRunner
) -> None:
    first = cluster.create(model_version(1))
    cluster.create(deployment(modelVersion="iris-v1", **PAUSED))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=30)
    assert digest_served(cluster, "iris-stable") == SHA
    old_config = f"iris-model-iris-v1-{first['metadata']['uid'][:8]}"

    uid = replace_version(cluster, version_again(1, OTHER))
    paused = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                              lambda o: status_is(phase="Paused", canaryVersion="iris-v1")(o)
                              and o["status"]["canaryBinding"]["uid"] == uid, timeout=60)  # fmt: skip
    assert paused is not None
    assert paused["status"]["stableBinding"]["uid"] == first["metadata"]["uid"]
    # The stable Deployment still verifies the artifact it was promoted with; the canary runs the new one.
    assert digest_served(cluster, "iris-stable") == SHA
    assert digest_served(cluster, "iris-canary") == OTHER
    configs = {c["metadata"]["name"] for c in cluster.list("v1", "ConfigMap", NAMESPACE)}
    assert {old_config, f"iris-model-iris-v1-{uid[:8]}"} <= configs
    replaced = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", governed("VersionReplaced"), timeout=30)
    message = condition(replaced, "Governed")["message"]
    assert f"the stable's version iris-v1 (uid {first['metadata']['uid'][:8]}" in message
    assert "was replaced by another object under its name" in message
    assert "keeps serving the digest it was promoted with" in message
    warned(cluster, "VersionReplaced", "was replaced by another object under its name")

    cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"metadata": {"annotations": {
        "modelops.io/action": "promote/1"}}})  # fmt: skip
    promoted = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                                lambda o: status_is(phase="Healthy")(o) and o["status"]["stableBinding"]["uid"] == uid,
                                timeout=60)  # fmt: skip
    assert promoted is not None
    assert digest_served(cluster, "iris-stable") == OTHER
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", governed("Allowed"), timeout=30)
    cluster.wait_for("v1", "ConfigMap", NAMESPACE, old_config, lambda o: o is None, timeout=30)


def test_in_a_production_namespace_the_new_object_must_hold_production_itself(
    cluster: KubeClient, operator: KopfRunner
) -> None:
    cluster.patch("v1", "Namespace", None, NAMESPACE, {"metadata": {"labels": {
        "modelops.io/environment": "production"}}})  # fmt: skip
    first = cluster.create(version_again(1, SHA, stage="Production", **approved_by("bob")))
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1",
                     lambda o: (o.get("status") or {}).get("stage") == "Production", timeout=30)  # fmt: skip
    cluster.create(deployment(modelVersion="iris-v1", **PAUSED))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=30)

    # Deleted and re-created with another artifact and no stage: nothing of it rolls out.
    uid = replace_version(cluster, version_again(1, OTHER, stage="None"))
    held = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                            lambda o: status_is(phase="Paused")(o) and not o["status"].get("canaryVersion")
                            and condition(o, "Ready").get("reason") == "VersionNotAllowed", timeout=60)  # fmt: skip
    assert held is not None
    assert "iris-v1 has no stage granted yet, not Production" in condition(held, "Ready")["message"]
    assert "iris-v1 keeps serving" in condition(held, "Ready")["message"]
    assert held["status"]["stableBinding"]["uid"] == first["metadata"]["uid"]
    assert digest_served(cluster, "iris-stable") == SHA
    assert condition(held, "Governed")["status"] == "False"

    # Granted Production (approved by another person), it goes through the canary like any new version.
    cluster.patch(API, "ModelVersion", NAMESPACE, "iris-v1",
                  {"metadata": {"annotations": approved_by("bob")}, "spec": {"stage": "Production"}})  # fmt: skip
    canary = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                              lambda o: status_is(phase="Paused", canaryVersion="iris-v1")(o)
                              and (o["status"].get("canaryBinding") or {}).get("uid") == uid, timeout=60)  # fmt: skip
    assert canary is not None
    assert digest_served(cluster, "iris-stable") == SHA
    assert digest_served(cluster, "iris-canary") == OTHER


def test_a_pinned_version_that_leaves_production_keeps_serving_and_is_reported(
    cluster: KubeClient, operator: KopfRunner
) -> None:
    cluster.patch("v1", "Namespace", None, NAMESPACE, {"metadata": {"labels": {
        "modelops.io/environment": "production"}}})  # fmt: skip
    cluster.create(version_again(1, SHA, stage="Production", **approved_by("bob")))
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1",
                     lambda o: (o.get("status") or {}).get("stage") == "Production", timeout=30)  # fmt: skip
    cluster.create(deployment(modelVersion="iris-v1"))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", governed("Allowed"), timeout=30)

    second = version_again(2, OTHER, stage="Production", **approved_by("bob"))
    cluster.create(second)  # granted Production: iris-v1 is archived
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1",
                     lambda o: (o.get("status") or {}).get("stage") == "Archived", timeout=30)  # fmt: skip
    reported = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", governed("StableNotAllowed"), timeout=30)
    message = condition(reported, "Governed")["message"]
    assert message.startswith("stable iris-v1 holds stage Archived; namespace ml is labelled as production")
    assert "keeps serving the digest it was promoted with" in message
    assert condition(reported, "Ready")["status"] == "True"  # still serving: an outage is not governance
    assert digest_served(cluster, "iris-stable") == SHA
    warned(cluster, "StableNotAllowed", "stable iris-v1 holds stage Archived")


def test_a_rejected_production_version_loses_production_and_the_stable_keeps_serving(
    cluster: KubeClient, operator: KopfRunner
) -> None:
    """A canary of the registry's Production version fails: the rejection lands on that exact version,
    withdraws its Production grant, and the deployment tracking Production keeps serving its stable."""
    cluster.create(version_again(1, SHA, stage="Production", **approved_by("bob")))
    cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1",
                     lambda o: (o.get("status") or {}).get("stage") == "Production", timeout=30)  # fmt: skip
    cluster.create(deployment(track="Production",
                              analysis={"interval": "1s", "inconclusivePolicy": "Fail", "failureLimit": 1}))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy", stableVersion="iris-v1"),
                     timeout=30)  # fmt: skip
    second = cluster.create(version_again(2, OTHER, stage="Production", **approved_by("bob")))

    withdrawn = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v2",
                                 lambda o: (o.get("status") or {}).get("stage") == "Archived", timeout=60)  # fmt: skip
    assert withdrawn is not None
    assert withdrawn["metadata"]["uid"] == second["metadata"]["uid"]
    assert withdrawn["status"]["rejected"]["deployment"] == f"{NAMESPACE}/iris"
    last = withdrawn["status"]["history"][-1]
    assert (last["from"], last["to"]) == ("Production", "Archived")
    assert last["reason"].startswith(f"rejected: a canary in {NAMESPACE}/iris failed on ")
    assert condition(withdrawn, "Ready")["reason"] == "Rejected"
    # iris-v1 was archived by the grant of iris-v2 and does not come back by itself: nothing holds
    # Production, the deployment says so, and its stable keeps serving iris-v1 as it was.
    assert cluster.get(API, "ModelVersion", NAMESPACE, "iris-v1")["status"]["stage"] == "Archived"
    waiting = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris",
                               lambda o: "no ModelVersion of iris has been granted stage Production"
                               in condition(o, "Ready").get("message", ""), timeout=30)  # fmt: skip
    assert waiting is not None
    assert (waiting["status"]["failedVersion"], waiting["status"]["stableVersion"]) == ("iris-v2", "iris-v1")
    assert waiting["status"]["history"][0]["result"] == "RolledBack"
    assert digest_served(cluster, "iris-stable") == SHA
