"""Helpers of the governance tier: the test policy, users, and the webhook server from a client's side.

``Webhooks.review()`` POSTs a real AdmissionReview over HTTPS verified with the test CA;
``register_configurations()`` stores the webhook configurations in the emulator so that its
API calls them, as a cluster would (the fixtures are in this folder's conftest.py).
"""

from __future__ import annotations

import base64
import contextlib
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from kopf.testing import KopfRunner

from kubeemu.client import KubeClient
from modelops.controller import handlers, webhooks
from modelops.logic.policy import Policy, parse

NAMESPACE = "ml"
GROUP = "modelops.io"
VERSION = "v1alpha1"
ARGO = "system:serviceaccount:argocd:argocd-application-controller"
OPERATOR_USER = "system:admin"  # the operator's identity on the emulator (a kubeconfig without a token)

POLICY_DATA: dict[str, Any] = {
    "stages": {
        "Staging": {"gates": [{"metric": "accuracy", "op": ">=", "threshold": 0.8}]},
        "Production": {
            "approvals": 1,
            "fourEyes": True,
            "gates": [{"metric": "accuracy", "op": ">=", "threshold": 0.9}],
        },
    },
    "trustedAppliers": [ARGO],
    "operatorUsers": [OPERATOR_USER],
}
POLICY = parse(POLICY_DATA)

PATHS = {
    "mutate-modelversion": ("Mutating", "modelversions", ["CREATE", "UPDATE"]),
    "validate-modelversion": ("Validating", "modelversions", ["CREATE", "UPDATE"]),
    "validate-modelversion-delete": ("Validating", "modelversions", ["DELETE"]),
    "validate-modelversion-status": ("Validating", "modelversions/status", ["UPDATE"]),
    "validate-modeldeployment": ("Validating", "modeldeployments", ["CREATE", "UPDATE"]),
    "mutate-trainingrun": ("Mutating", "trainingruns", ["CREATE", "UPDATE"]),
    "validate-trainingrun": ("Validating", "trainingruns", ["CREATE", "UPDATE"]),
}


def user(name: str, *groups: str) -> dict[str, Any]:
    return {"username": name, "uid": f"uid-{name}", "groups": [*groups, "system:authenticated"]}


@dataclass
class Webhooks:
    """The running operator's webhook server, from a client's side."""

    url: str
    ca_pem: bytes
    ca_path: Path
    runner: KopfRunner | None  # None: the operator runs as a process of its own
    calls: list[str] = field(default_factory=list)

    def review(
        self,
        path: str,
        operation: str,
        obj: Mapping[str, Any] | None,
        old: Mapping[str, Any] | None = None,
        *,
        userinfo: Mapping[str, Any],
        resource: str = "modelversions",
        kind: str = "ModelVersion",
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """POST one AdmissionReview and return its response part."""
        meta = (obj or old or {}).get("metadata") or {}
        request: dict[str, Any] = {
            "uid": str(uuid.uuid4()),
            "kind": {"group": GROUP, "version": VERSION, "kind": kind},
            "resource": {"group": GROUP, "version": VERSION, "resource": resource},
            "requestKind": {"group": GROUP, "version": VERSION, "kind": kind},
            "requestResource": {"group": GROUP, "version": VERSION, "resource": resource},
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", NAMESPACE),
            "operation": operation,
            "userInfo": dict(userinfo),
            "object": obj,
            "oldObject": old,
            "dryRun": False,
            "options": {},
        }
        if subresource:
            request["subResource"] = subresource
        body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
        answer = requests.post(f"{self.url}/{path}", json=body, verify=str(self.ca_path), timeout=10)
        answer.raise_for_status()
        payload = answer.json()
        assert payload["response"]["uid"] == request["uid"]
        response: dict[str, Any] = payload["response"]
        return response

    def register_configurations(self, kube: KubeClient) -> None:
        """Store the webhook configurations (as the chart renders them) in the emulator."""
        bundle = base64.b64encode(self.ca_pem).decode()
        for type_ in ("Mutating", "Validating"):
            hooks = [
                {
                    "name": f"{path}.modelops.io",
                    "clientConfig": {"url": f"{self.url}/{path}", "caBundle": bundle},
                    "rules": [
                        {
                            "apiGroups": [GROUP],
                            "apiVersions": [VERSION],
                            "operations": operations,
                            "resources": [resource],
                            "scope": "Namespaced",
                        }
                    ],
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "timeoutSeconds": 10,
                    "admissionReviewVersions": ["v1"],
                }
                for path, (hook_type, resource, operations) in PATHS.items()
                if hook_type == type_
            ]
            kube.create(
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": f"{type_}WebhookConfiguration",
                    "metadata": {"name": "modelops-operator"},
                    "webhooks": hooks,
                }
            )


@contextlib.contextmanager
def running_operator(policy: Policy, cert_dir: Path, ca_pem: bytes, ca_path: Path, port: int) -> Iterator[Webhooks]:
    """The real operator (Kopf in a thread) with the policy and its webhook server on ``port``."""
    options = webhooks.WebhookOptions(port=port, cert_dir=str(cert_dir), host="127.0.0.1")
    registry = handlers.registry(policy=policy, webhook=options)
    args = ["run", "--standalone", "--all-namespaces", "--verbose"]
    with KopfRunner(args, registry=registry, timeout=60) as runner:
        url = f"https://127.0.0.1:{port}"
        wait_until_serving(url, ca_path)
        yield Webhooks(url=url, ca_pem=ca_pem, ca_path=ca_path, runner=runner)
    assert runner.exception is None, runner.exception
    assert runner.exit_code == 0, runner.output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(url: str, ca_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, verify=str(ca_path), timeout=2)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
