"""What may run beside an approved version in a production namespace: images and env, through the webhooks.

Given the policy's image allow-list and a namespace labelled production, when someone with edit
rights asks for a model server image, a training image with its own command, an env variable that
steers the runtime or one that reads a Secret, then the API server (the emulator, calling the
operator's webhooks over TLS) refuses the request with a message naming the field and the rule; the
same objects are accepted outside production namespaces, and a ModelDeployment that got in without
the webhook is refused by the reconcile, which makes no pod of it.
"""

from __future__ import annotations

from typing import Any

import pytest
from kopf.testing import KopfRunner

from governance.admissionkit import NAMESPACE, POLICY, Webhooks
from kubeemu.client import ApiError, KubeClient
from modelops.controller import handlers
from modelops.logic.policy import Policy, parse

pytestmark = pytest.mark.timeout(120)
API = "modelops.io/v1alpha1"
DIGEST = "sha256:" + "ab" * 32
WORKLOADS = {
    "images": [{"repository": "ghcr.io/acme/server"}, {"repository": "ghcr.io/acme/trainer", "digests": [DIGEST]}],
    "envSecrets": ["s3-readonly"],
}


@pytest.fixture
def policy() -> Policy:
    return parse({**POLICY.model_dump(by_alias=True), "workloads": WORKLOADS})


def production(cluster: KubeClient, namespace: str = NAMESPACE) -> None:
    cluster.patch("v1", "Namespace", None, namespace, {"metadata": {"labels": {
        "modelops.io/environment": "production"}}})  # fmt: skip


def served(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "ModelDeployment", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"model": "iris", "track": "Production", **spec}}  # fmt: skip


def run(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "TrainingRun", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"model": "iris", "dataset": {"uri": "sklearn://iris", "target": "target"},
                     "artifactStore": {"uri": "pvc://models/registry"}, **spec}}  # fmt: skip


def denied(client: KubeClient, body: dict[str, Any]) -> str:
    with pytest.raises(ApiError) as refused:
        client.create(body)
    assert refused.value.status == 403, refused.value.body
    return str(refused.value.body["message"])


@pytest.mark.parametrize(
    ("spec", "field", "rule"),
    [
        ({"server": {"image": "evil.example/miner:latest"}}, "spec.server.image",
         "no entry of the governance policy's workloads.images allows repository evil.example/miner"),
        ({"server": {"image": "ghcr.io/acme/server-fork:1"}}, "spec.server.image", "workloads.images"),
        ({"pod": {"env": [{"name": "PYTHONPATH", "value": "/mnt/pvc/models/evil"}]}}, "spec.pod.env[0].name",
         "PYTHONPATH is not one of the governance policy's workloads.envNames"),
        ({"pod": {"env": [{"name": "TZ", "valueFrom": {"secretKeyRef": {"name": "db-admin", "key": "password"}}}]}},
         "spec.pod.env[0].valueFrom.secretKeyRef", "Secret db-admin is not in the governance policy's "
                                                   "workloads.envSecrets"),
    ],
)
def test_a_deployment_cannot_run_what_the_policy_does_not_allow_in_production(
    governed: Webhooks, cluster: KubeClient, users: dict[str, KubeClient], spec: dict[str, Any], field: str,
    rule: str,
) -> None:
    governed.register_configurations(cluster)
    production(cluster)
    message = denied(users["carol"], served("iris", **spec))
    assert f"{field}: namespace {NAMESPACE} is labelled as production" in message
    assert rule in message


def test_allowed_images_and_env_pass_and_other_namespaces_are_not_governed(
    governed: Webhooks, cluster: KubeClient, users: dict[str, KubeClient]
) -> None:
    governed.register_configurations(cluster)
    carol = users["carol"]
    anything = {"server": {"image": "evil.example/miner:latest"},
                "pod": {"env": [{"name": "PYTHONPATH", "value": "/"}]}}
    carol.create(served("outside", **anything))  # not labelled production (enforce: Production)
    production(cluster)
    carol.create(served("allowed", server={"image": "ghcr.io/acme/server:2.1"}, pod={"env": [
        {"name": "OMP_NUM_THREADS", "value": "2"},
        {"name": "TZ", "valueFrom": {"secretKeyRef": {"name": "s3-readonly", "key": "tz"}}}]}))  # fmt: skip
    # An update that sneaks an image in later is judged the same way.
    with pytest.raises(ApiError) as update:
        carol.patch(API, "ModelDeployment", NAMESPACE, "allowed", {"spec": {"server": {"image": "evil.example/x"}}})
    assert update.value.status == 403
    assert "spec.server.image" in update.value.body["message"]


def test_a_training_image_and_its_command_are_governed(
    governed: Webhooks, cluster: KubeClient, users: dict[str, KubeClient]
) -> None:
    governed.register_configurations(cluster)
    production(cluster)
    carol = users["carol"]
    message = denied(carol, run("own", image="ghcr.io/acme/trainer:latest"))
    assert "spec.image: namespace ml is labelled as production, and workloads.images allows ghcr.io/acme/trainer " \
           "only pinned by digest" in message
    message = denied(carol, run("shell", image=f"ghcr.io/acme/trainer@{DIGEST}", command=["sh", "-c", "env"]))
    assert message.startswith("admission webhook \"validate-trainingrun.modelops.io\" denied the request: "
                              "spec.command: namespace ml is labelled as production, and the workloads.images entry "
                              "of ghcr.io/acme/trainer does not allow overriding its entrypoint")
    message = denied(carol, run("leak", estimator={"className": "sklearn.tree.DecisionTreeClassifier"},
                                pod={"env": [{"name": "AWS_X", "valueFrom": {"secretKeyRef": {"name": "db-admin",
                                                                                              "key": "k"}}}]}))
    assert "spec.pod.env[0].name: namespace ml is labelled as production, and AWS_X is not one of" in message
    assert "spec.pod.env[0].valueFrom.secretKeyRef" in message  # every problem, not just the first
    carol.create(run("pinned", image=f"ghcr.io/acme/trainer@{DIGEST}"))
    carol.create(run("ours", estimator={"className": "sklearn.tree.DecisionTreeClassifier"}))


def test_a_deployment_that_got_in_without_the_webhook_gets_no_pod(
    cluster: KubeClient, operator_env: dict[str, str], policy: Policy
) -> None:
    production(cluster)
    cluster.create(served("iris", server={"image": "evil.example/miner:latest"}))  # no webhook configured
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with KopfRunner(args, registry=handlers.registry(policy=policy), timeout=60) as runner:

        def refused(obj: dict[str, Any] | None) -> bool:
            ready = [c for c in (obj or {}).get("status", {}).get("conditions") or [] if c["type"] == "Ready"]
            return bool(ready) and ready[0]["reason"] == "WorkloadNotAllowed"

        md = cluster.wait_for(API, "ModelDeployment", NAMESPACE, "iris", refused, timeout=30)
        assert md is not None
        ready = next(c for c in md["status"]["conditions"] if c["type"] == "Ready")
        assert ready["message"].startswith("spec.server.image: namespace ml is labelled as production")
        assert next(c for c in md["status"]["conditions"] if c["type"] == "Stalled")["status"] == "True"
        assert cluster.list("apps/v1", "Deployment", NAMESPACE) == []
    assert runner.exception is None, runner.exception
