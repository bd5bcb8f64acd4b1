"""Ready means serving: the operator reads the model-server Deployments' status.

Given the deployment controller stand-in (``rollout.kit.DeploymentController``), when the
stable Deployment's pods are not available, then the ModelDeployment says Ready=False
(reason Unavailable, Reconciling=True, the replica counts) after it has seen the Deployment's
status, and turns Ready=True once the pods are available; and a canary whose pods never become
available is not analysed: the rollout holds (reason CanaryUnavailable) until they are.
"""

from __future__ import annotations

from typing import Any

from kopf.testing import KopfRunner

from kubeemu.client import KubeClient
from rollout.kit import API, NAMESPACE, DeploymentController, available, condition, deployment, model_version, status_is


def current(obj: dict[str, Any] | None) -> bool:
    return bool(obj) and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]


def ready_is(status: str, reason: str, *words: str) -> Any:
    def check(obj: dict[str, Any] | None) -> bool:
        ready = condition(obj, "Ready")
        return (
            current(obj)
            and (ready.get("status"), ready.get("reason")) == (status, reason)
            and all(w in ready.get("message", "") for w in words)
        )

    return check


def requeued_at(obj: dict[str, Any] | None) -> str | None:
    """When the operator last came back to look (controller/requeue.py writes this annotation)."""
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get("modelops.io/requeue-at")


def test_ready_waits_for_the_stable_deployment_to_be_available(
    cluster: KubeClient, operator: KopfRunner, deployments: DeploymentController
) -> None:
    deployments.hold("iris-stable")
    cluster.create(model_version(1))
    cluster.create(deployment(modelVersion="iris-v1"))
    # The operator has seen the Deployment's status (generation observed, no pod available).
    waiting = cluster.wait_for(
        API,
        "ModelDeployment",
        NAMESPACE,
        "iris",
        ready_is("False", "Unavailable", "0/4 replicas of iris-v1 available"),
        timeout=30,
    )
    assert waiting is not None
    stable = cluster.get("apps/v1", "Deployment", NAMESPACE, "iris-stable")
    assert stable["status"]["observedGeneration"] == stable["metadata"]["generation"]
    assert not available(stable)
    assert waiting["status"]["phase"] == "Progressing"
    assert waiting["status"]["stableVersion"] == "iris-v1"
    assert condition(waiting, "Reconciling")["status"] == "True"
    assert condition(waiting, "Progressing")["reason"] == "Unavailable"
    assert condition(waiting, "Stalled") == {}
    assert waiting["metadata"]["annotations"]["modelops.io/observed-deployments"]

    deployments.release("iris-stable")
    ready = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=30)
    assert ready is not None
    assert available(cluster.get("apps/v1", "Deployment", NAMESPACE, "iris-stable"))
    assert (condition(ready, "Ready")["status"], condition(ready, "Ready")["reason"]) == ("True", "Reconciled")
    assert ready["status"]["message"] == "serving iris-v1"
    assert condition(ready, "Reconciling") == {}

    # Scaled to zero: nothing to wait for, and Ready says so.
    cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"replicas": 0}})
    zero = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", ready_is("True", "ScaledToZero"), timeout=30)
    assert zero is not None
    assert "scaled to zero" in condition(zero, "Ready")["message"]

    # Scaled back up: not Ready until the new replicas are available.
    deployments.hold("iris-stable")
    cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"replicas": 2}})
    again = cluster.wait_for(
        API, "ModelDeployment", NAMESPACE, "iris", ready_is("False", "Unavailable", "0/2 replicas"), timeout=30
    )
    assert again is not None
    deployments.release("iris-stable")
    assert cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", ready_is("True", "Reconciled"), timeout=30)


def test_a_canary_that_never_becomes_available_holds_the_rollout(
    cluster: KubeClient, operator: KopfRunner, deployments: DeploymentController
) -> None:
    cluster.create(model_version(1))
    cluster.create(model_version(2))
    # An inconclusive analysis passes here: only the canary's availability can stop the promotion.
    cluster.create(deployment(modelVersion="iris-v1", rollout={"steps": [{"setWeight": 50}, {"analysis": {}}]}))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=30)
    deployments.hold("iris-canary")
    cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"modelVersion": "iris-v2"}})
    held = cluster.wait_for(
        API, "ModelDeployment", NAMESPACE, "iris",
        ready_is("False", "CanaryUnavailable", "analysis at step 2/2 not measured", "iris-canary: 0/2"), timeout=30,
    )  # fmt: skip
    assert held is not None
    assert condition(held, "Progressing")["reason"] == "CanaryUnavailable"
    assert condition(held, "Reconciling")["status"] == "True"
    looks = {requeued_at(held)}

    def looked_twice_more(obj: dict[str, Any] | None) -> bool:
        looks.add(requeued_at(obj))
        return len(looks - {None, requeued_at(held)}) >= 2

    # The operator looks again every interval and keeps holding: never measured, never promoted.
    later = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", looked_twice_more, timeout=30)
    assert later is not None
    status = later["status"]
    assert (status["stableVersion"], status["canaryVersion"], status["step"], status["canaryWeight"]) == (
        "iris-v1",
        "iris-v2",
        1,
        50,
    )
    assert not status.get("analysis")
    assert not status.get("lastMeasuredAt")
    assert condition(later, "Ready")["reason"] == "CanaryUnavailable"

    deployments.release("iris-canary")
    done = cluster.wait_for(
        API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy", stableVersion="iris-v2"), timeout=60
    )
    assert done is not None
    assert done["status"]["analysis"]  # measured once the canary was available
    assert done["status"]["history"][0]["result"] == "Promoted"


def test_a_canary_past_its_progress_deadline_is_rolled_back(
    cluster: KubeClient, operator: KopfRunner, deployments: DeploymentController
) -> None:
    cluster.create(model_version(1))
    cluster.create(model_version(2))
    cluster.create(deployment(modelVersion="iris-v1", rollout={"steps": [{"setWeight": 50}, {"analysis": {}}]}))
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="Healthy"), timeout=30)
    deployments.hold("iris-canary")
    cluster.patch(API, "ModelDeployment", NAMESPACE, "iris", {"spec": {"modelVersion": "iris-v2"}})
    cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", ready_is("False", "CanaryUnavailable"), timeout=30)
    deployments.give_up("iris-canary")  # the deployment controller's progress deadline passes
    failed = cluster.wait_for(
        API, "ModelDeployment", NAMESPACE, "iris", status_is(phase="RolledBack", failedVersion="iris-v2"), timeout=30
    )
    assert failed is not None
    assert failed["status"]["stableVersion"] == "iris-v1"
    assert condition(failed, "Stalled")["reason"] == "RolledBack"
    rejected = cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v2",
                                lambda o: bool((o.get("status") or {}).get("rejected")), timeout=30)  # fmt: skip
    assert rejected is not None
    assert rejected["status"]["rejected"]["metric"] == "availability"

