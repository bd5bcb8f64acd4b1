"""Fixtures of the whole-loop tier: every real part at once, no mocks.

``loop``: a real Prometheus (tests/promkit.py) and the real operator (Kopf in a thread) with the
governance policy of the governance tier and its admission webhooks on TLS, with
``MODELOPS_PROMETHEUS_URL`` pointing at that Prometheus; the five webhook configurations the
chart renders stored in the emulator (so it calls them with each caller's ``userInfo``); the
chart's modelops-editor and modelops-approver ClusterRoles bound to alice and bob; token clients
of alice and bob; the kubelet of training pods (tests/kubelet.py) and the pod runner of the server
Deployments (tests/analysis/podrunner.py), which serves the ``pvc://`` artifacts the training pods
wrote.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import helmchart
from analysis.podrunner import PodRunner
from governance.admissionkit import GROUP, NAMESPACE, POLICY, VERSION, Webhooks, free_port, running_operator
from kubeemu import Emulator
from kubeemu.client import KubeClient
from kubeemu.tls import make_ca_and_cert
from kubelet import Kubelet
from loop.scenario import DEPLOYMENT
from promkit import Prometheus

# Every webhook of docs/governance.md's table (the chart's five), as (type, resource, operations).
WEBHOOKS = {
    "mutate-modelversion": ("Mutating", "modelversions", ["CREATE", "UPDATE"]),
    "mutate-trainingrun": ("Mutating", "trainingruns", ["CREATE", "UPDATE"]),
    "validate-modelversion": ("Validating", "modelversions", ["CREATE", "UPDATE"]),
    "validate-modelversion-delete": ("Validating", "modelversions", ["DELETE"]),
    "validate-modelversion-status": ("Validating", "modelversions/status", ["UPDATE"]),
    "validate-modeldeployment": ("Validating", "modeldeployments", ["CREATE", "UPDATE"]),
}


def register_webhooks(kube: KubeClient, webhooks: Webhooks) -> None:
    """Store the chart's webhook configurations in the emulator, pointing at the operator's server."""
    bundle = base64.b64encode(webhooks.ca_pem).decode()
    for type_ in ("Mutating", "Validating"):
        hooks = [
            {
                "name": f"{path}.modelops.io",
                "clientConfig": {"url": f"{webhooks.url}/{path}", "caBundle": bundle},
                "rules": [{"apiGroups": [GROUP], "apiVersions": [VERSION], "operations": operations,
                           "resources": [resource], "scope": "Namespaced"}],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "timeoutSeconds": 10,
                "admissionReviewVersions": ["v1"],
            }
            for path, (hook_type, resource, operations) in WEBHOOKS.items()
            if hook_type == type_
        ]  # fmt: skip
        kube.create({"apiVersion": "admissionregistration.k8s.io/v1", "kind": f"{type_}WebhookConfiguration",
                     "metadata": {"name": "modelops-operator"}, "webhooks": hooks})  # fmt: skip


def grant_people(kube: KubeClient, *names: str) -> None:
    """The chart's modelops-editor and modelops-approver ClusterRoles, bound to ``names`` in the namespace."""
    for role in ("modelops-editor", "modelops-approver"):
        helmchart.bind_user_role(kube, role, names, NAMESPACE)


@dataclass
class Loop:
    """Everything the loop test drives or watches (the scenario's :class:`loop.scenario.Parts`)."""

    kube: KubeClient  # system:admin, the operator's identity on the emulator
    alice: KubeClient
    bob: KubeClient
    prometheus: Prometheus
    webhooks: Webhooks
    kubelet: Kubelet
    pods: PodRunner
    operator: str = "system:admin"  # governance.admissionkit.OPERATOR_USER
    patience: float = 1.0

    def run_training_pods(self, run: str) -> None:
        """The job controller and the kubelet (tests/kubelet.py) run the Job's one pod to completion."""
        job = self.kube.wait_for("batch/v1", "Job", NAMESPACE, f"{run}-train", lambda o: o is not None, timeout=30)
        assert job is not None
        code = self.kubelet.run_pod(job, self.kubelet.start_pod(job, 0), 0)
        assert code == 0, f"the training pod of {run} failed: {self.kube.list('v1', 'Pod', NAMESPACE)}"
        self.kubelet.finish_job(job, succeeded=1, failed=0)

    def server_versions(self) -> dict[str, str]:
        return self.pods.versions()

    def server_urls(self) -> list[str]:
        return self.pods.urls()


@pytest.fixture
def loop(
    emulator: Emulator,
    cluster: KubeClient,
    operator_env: dict[str, str],
    prometheus: Prometheus,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Loop]:
    # The operator's defaults for canary analysis and drift evaluation: no address in the specs.
    monkeypatch.setenv("MODELOPS_PROMETHEUS_URL", prometheus.url)
    ca_pem, cert_path, _ = make_ca_and_cert(tmp_path / "certs", ["127.0.0.1", "localhost"])
    ca_path = tmp_path / "ca.crt"
    ca_path.write_bytes(ca_pem)
    grant_people(cluster, "alice", "bob")
    clients = {}
    for name in ("alice", "bob"):
        emulator.add_user(f"token-{name}", name, uid=f"uid-{name}")
        clients[name] = emulator.client(f"token-{name}")
    kubelet = Kubelet(cluster, tmp_path / "kubelet")
    with running_operator(POLICY, cert_path.parent, ca_pem, ca_path, free_port()) as webhooks:
        register_webhooks(cluster, webhooks)
        pods = PodRunner(cluster, prometheus, NAMESPACE, DEPLOYMENT, tmp_path / "pods", pvc_root=kubelet.pvc_root)
        pods.start()
        try:
            yield Loop(cluster, clients["alice"], clients["bob"], prometheus, webhooks, kubelet, pods)
        finally:
            pods.close()
        assert pods.errors == [], pods.errors
    output = webhooks.runner.output
    # Kopf logs every failed API call; none is expected while the operator runs. Once it is told to
    # stop, its webhook server goes first, and a write still in flight (e.g. Kopf dropping the
    # finalizer of the recheck timer as the deployment turns Ready) is refused by the fail-closed
    # webhook: that is the harness stopping it, not a failure of the loop.
    running, _, _ = output.partition("Stop-flag is set to True")
    for line in running.splitlines():
        assert "APIServerError" not in line, line
