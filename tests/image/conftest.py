"""Fixtures of the image tier: the image built from this checkout, and a node that runs pods from it.

``image``: the image to test, named by ``MODELOPS_IMAGE`` (``make test-image`` builds it and sets
it); the tier skips with the reason when it is not set, when Docker cannot run here or when the
image is not on this machine — or fails instead under ``MODELOPS_IMAGE_REQUIRE=1`` (CI).
``node``: the emulator with our CRDs and the tests' namespace, made into a one-node cluster whose
pods run as containers from the image (tests/containerkubelet); the test fails if the node
refused a field or failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

import helmchart
from containerkubelet import Node, docker
from kubeemu import Emulator
from kubeemu.client import KubeClient
from kubeemu.cluster import AdmissionHook, Identity
from kubeemu.errors import StatusError
from kubeemu.resources import ResourceInfo
from promkit import Prometheus

NAMESPACE = "ml"


def give_up(reason: str) -> NoReturn:
    """Skip with the reason, or fail with it under MODELOPS_IMAGE_REQUIRE=1."""
    if os.environ.get("MODELOPS_IMAGE_REQUIRE", "").strip().lower() in ("1", "true", "yes", "on"):
        pytest.fail(f"MODELOPS_IMAGE_REQUIRE is set, and: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def image() -> str:
    name = os.environ.get("MODELOPS_IMAGE", "").strip()
    if not name:
        give_up("the image tier runs with `make test-image` (it builds the image and names it in MODELOPS_IMAGE)")
    reason = docker.unavailable()
    if reason is not None:
        give_up(f"Docker cannot run containers here: {reason}")
    if docker.image(name) is None:
        give_up(f"the image {name} is not on this machine (make image IMAGE={name})")
    return name


@pytest.fixture
def node(image: str, emulator: Emulator, cluster: KubeClient, tmp_path: Path) -> Iterator[Node]:
    """A one-node cluster for the tests' namespace: its pods run as containers from ``image``."""
    running = Node(emulator, image=image, namespaces=[NAMESPACE], workdir=tmp_path / "node").start()
    try:
        yield running
    finally:
        running.close()
    assert running.errors == [], running.errors


# --- the operator installed from the chart -------------------------------------------------------------

OPERATOR_NAMESPACE = "modelops-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:modelops-operator"
# The governance policy of the governance tier, as chart values.
GOVERNANCE = {
    "stages": {
        "Staging": {"approvals": 0, "fourEyes": False, "gates": [{"metric": "accuracy", "op": ">=", "threshold": 0.8}]},
        "Production": {"approvals": 1, "fourEyes": True,
                       "gates": [{"metric": "accuracy", "op": ">=", "threshold": 0.9}]},
    },
    "trustedAppliers": ["system:serviceaccount:argocd:argocd-application-controller"],
}  # fmt: skip


@dataclass
class Installed:
    """The chart installed into the emulator, its operator pods running as containers."""

    objects: list[dict[str, Any]]
    values: dict[str, Any]
    node: Node
    emulator: Emulator

    def operator_pods(self) -> list[dict[str, Any]]:
        return self.node.pods(OPERATOR_NAMESPACE, {"app.kubernetes.io/name": "modelops-operator"})

    def wait_ready(self, timeout: float = 240) -> None:
        """Until every replica of the operator's Deployment is available (its readiness probe: the webhook port)."""
        replicas = int(self.values.get("replicaCount", 2))

        def available(obj: dict[str, Any] | None) -> bool:
            status = (obj or {}).get("status") or {}
            return int(status.get("availableReplicas") or 0) >= replicas

        try:
            self.node.kube.wait_for("apps/v1", "Deployment", OPERATOR_NAMESPACE, "modelops-operator", available,
                                    timeout=timeout)  # fmt: skip
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.node.describe(OPERATOR_NAMESPACE)}") from None
        # ... and the webhook Service has a ready endpoint (the API server calls the webhooks there).
        Prometheus.wait(lambda: (OPERATOR_NAMESPACE, "modelops-operator") in self.emulator.webhook_services,
                        timeout=60, what="an endpoint of the webhook Service")  # fmt: skip

    def logs(self) -> str:
        return "\n".join(self.node.logs(OPERATOR_NAMESPACE, p["metadata"]["name"]) for p in self.operator_pods())

    def failed_calls(self) -> list[str]:
        """Log lines of API calls the operator's replicas saw fail (Kopf logs each one), as the
        in-process tiers check them (tests/operatorkit.py); conflicts (409) are retried and allowed."""
        markers = ("APIClientError", "APIServerError", "APIForbiddenError", "Patching failed")
        return [line for line in self.logs().splitlines() if any(marker in line for marker in markers)]

    def refused(self) -> list[str]:
        """Requests of the operator's service account that RBAC refused (the chart lacks a rule)."""
        audit = self.emulator.audit
        return [f"{r.verb} {r.path}?{r.query}" for r in audit if r.user == OPERATOR_USER and r.code == 403]


def openshift_restricted(ranges: dict[str, int]) -> AdmissionHook:
    """OpenShift's restricted security context constraint, as an admission step for pods: each namespace
    has its own range of user ids; a pod naming a user or fsGroup outside it is refused, a pod naming
    none is given the range's first."""
    size = 10000

    def admit(op: str, info: ResourceInfo, new: Any, old: Any, user: Identity, sub: str | None, dry: bool) -> Any:
        namespace = (new or {}).get("metadata", {}).get("namespace")
        if op != "CREATE" or info.plural != "pods" or namespace not in ranges:
            return new
        first = ranges[namespace]
        context = new["spec"].setdefault("securityContext", {})
        named = [(f"spec.securityContext.{key}", context.get(key)) for key in ("runAsUser", "fsGroup")]
        named += [(f"spec.containers[{i}].securityContext.runAsUser", (c.get("securityContext") or {}).get("runAsUser"))
                  for i, c in enumerate(new["spec"]["containers"])]  # fmt: skip
        for field, value in named:
            if value is not None and not first <= int(value) < first + size:
                name = new["metadata"].get("name") or ""
                raise StatusError(403, "Forbidden", f'pods "{name}" is forbidden: unable to validate against any '
                                  f"security context constraint: [{field}: Invalid value: {value}: must be in the "
                                  f"ranges: [{first}, {first + size - 1}]]")  # fmt: skip
        context.setdefault("runAsUser", first)
        context.setdefault("fsGroup", first)
        return new

    return admit


def chart_values(image: str, **more: Any) -> dict[str, Any]:
    repository, _, tag = image.rpartition(":")
    return {"image": {"repository": repository, "tag": tag, "pullPolicy": "IfNotPresent"}, "governance": GOVERNANCE,
            **more}  # fmt: skip


def install_chart(node: Node, emulator: Emulator, values: dict[str, Any],
                  edit: Callable[[list[dict[str, Any]]], None] | None = None) -> Installed:  # fmt: skip
    """``helm install`` into the emulator: CRDs first, the templates in render order, webhooks last
    (``edit`` may change the rendered objects first, as a test of what a broken chart would do)."""
    emulator.register_crds(helmchart.crds())
    kube = node.kube
    if not kube.exists("v1", "Namespace", None, OPERATOR_NAMESPACE):
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
    objects = helmchart.render(values, namespace=OPERATOR_NAMESPACE)
    if edit is not None:
        edit(objects)
    webhooks = [o for o in objects if o["kind"].endswith("WebhookConfiguration")]
    for obj in [o for o in objects if o not in webhooks] + webhooks:
        helmchart.create_or_keep(kube, obj)
    return Installed(objects, values, node, emulator)


@pytest.fixture
def cluster_node(image: str, emulator: Emulator, cluster: KubeClient, tmp_path: Path) -> Iterator[Node]:
    """A node for the tests' namespace and the operator's, Prometheus-less."""
    running = Node(emulator, image=image, namespaces=[NAMESPACE, OPERATOR_NAMESPACE], workdir=tmp_path / "node")
    running.start()
    try:
        yield running
    finally:
        running.close()
    assert running.errors == [], running.errors
