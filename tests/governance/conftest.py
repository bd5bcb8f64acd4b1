"""Fixtures of the governance tier: the real operator with its admission webhooks on TLS.

``governed``: the operator (Kopf in a thread, our registry with the test policy and a webhook
server on a free loopback port with a throw-away CA); ``approvers``: the chart's modelops-approver
ClusterRole bound to alice and bob; ``users``: token clients of alice, bob and carol, editors by
the chart's modelops-editor role (the emulator authorizes every request by RBAC).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import helmchart
from governance.admissionkit import NAMESPACE, POLICY, Webhooks, free_port, running_operator
from kubeemu import Emulator
from kubeemu.client import KubeClient
from kubeemu.tls import make_ca_and_cert
from modelops.logic.policy import Policy


@pytest.fixture
def policy() -> Policy:
    return POLICY


@pytest.fixture
def certs(tmp_path: Path) -> tuple[bytes, Path, Path]:
    """A throw-away CA (PEM, and its file) and the directory of the serving tls.crt/tls.key."""
    ca_pem, cert_path, _ = make_ca_and_cert(tmp_path / "certs", ["127.0.0.1", "localhost"])
    ca_path = tmp_path / "ca.crt"
    ca_path.write_bytes(ca_pem)
    return ca_pem, ca_path, cert_path.parent


@pytest.fixture
def governed(
    cluster: KubeClient, operator_env: dict[str, str], certs: tuple[bytes, Path, Path], policy: Policy
) -> Iterator[Webhooks]:
    """The real operator with the governance policy and its webhook server on TLS."""
    ca_pem, ca_path, cert_dir = certs
    with running_operator(policy, cert_dir, ca_pem, ca_path, free_port()) as running:
        yield running


@pytest.fixture
def approvers(cluster: KubeClient) -> KubeClient:
    """The chart's modelops-approver ClusterRole, bound to bob, alice and Argo CD in the namespace."""
    helmchart.bind_user_role(cluster, "modelops-approver", ["alice", "bob"], NAMESPACE,
                             service_accounts=[("argocd", "argocd-application-controller")])
    return cluster


@pytest.fixture
def users(emulator: Emulator, cluster: KubeClient) -> dict[str, KubeClient]:
    """Clients of people with tokens, editors of the modelops kinds by the chart's modelops-editor role:
    alice and bob may approve too (with ``approvers``), carol may not."""
    helmchart.bind_user_role(cluster, "modelops-editor", ["alice", "bob", "carol"], NAMESPACE)
    clients = {}
    for name in ("alice", "bob", "carol"):
        emulator.add_user(f"token-{name}", name, uid=f"uid-{name}")
        clients[name] = emulator.client(f"token-{name}")
    return clients
