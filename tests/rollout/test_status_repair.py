"""A rollout status the operator does not understand is reported and written back clean, never a crash.

Given a healthy deployment, when its status is edited into something the schema accepts but the
rollout state cannot use (a binding with an empty uid, as a hand edit or an older writer might
leave), then the next reconcile says so with a ``StatusRepaired`` Warning naming the field, writes
the binding back from the version it serves, and the deployment is Ready again.
"""

from __future__ import annotations

from kopf.testing import KopfRunner

from kubeemu.client import KubeClient
from rollout.kit import API, NAMESPACE, condition, deployment, events_for, model_version, status_is


def test_a_binding_without_a_uid_is_reported_and_bound_again(cluster: KubeClient, operator: KopfRunner) -> None:
    version = cluster.create(model_version(1))
    cluster.create(deployment(modelVersion="iris-v1"))
    healthy = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=30)
    assert healthy is not None
    assert healthy["status"]["stableBinding"]["uid"] == version["metadata"]["uid"]

    blank = {"name": "iris-v1", "uid": "", "sha256": ""}
    cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"status": {"stableBinding": blank}},
                  subresource="status")  # fmt: skip
    # Any change of the object makes it reconcile; an annotation is the least intrusive.
    cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"metadata": {"annotations": {"test/poke": "1"}}})
    repaired = cluster.wait_for(
        API, "ModelDeployment", NAMESPACE, "iris",
        lambda o: ((o or {}).get("status") or {}).get("stableBinding", {}).get("uid") == version["metadata"]["uid"]
        and any(e["reason"] == "StatusRepaired" for e in events_for(cluster, "iris")),
        timeout=30,
    )  # fmt: skip
    assert repaired is not None
    (warning,) = [e for e in events_for(cluster, "iris") if e["reason"] == "StatusRepaired"]
    assert warning["type"] == "Warning"
    assert "status.stableBinding" in warning["message"]
    # Bound again, the stable Deployment is read afresh before the deployment counts as serving.
    settled = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=30)
    assert condition(settled, "Ready")["status"] == "True"
