"""The Helm chart rendered offline for tiers that install parts of it into the emulator.

``render(values)`` renders ``charts/modelops-operator`` as ``helm install`` would (helm-python-sdk,
no helm binary, no cluster) and returns its objects; ``user_role(name)`` is one of the chart's
ClusterRoles for people (``modelops-viewer``, ``modelops-editor``, ``modelops-approver``);
``bind_user_role`` stores such a role and binds it to people in a namespace, so that the tests'
people have exactly the rights a platform team would give them with the chart.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import helm_python
import yaml

from kubeemu.client import ApiError, KubeClient

CHART = Path(__file__).resolve().parents[1] / "charts" / "modelops-operator"
RELEASE = "modelops"
NAMESPACE = "modelops-system"
RBAC = "rbac.authorization.k8s.io"

_cache: dict[str, list[dict[str, Any]]] = {}


def render(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The chart's objects for these values (NOTES.txt and the CRDs left out), as an install renders them."""
    key = json.dumps([values or {}, namespace], sort_keys=True)
    if key not in _cache:
        with helm_python.Chart.load(CHART) as chart:
            rendered = chart.render(values or {}, name=RELEASE, namespace=namespace, is_install=True)
        _cache[key] = [
            doc
            for template, text in sorted(rendered.items())
            if template.endswith(".yaml")
            for doc in yaml.safe_load_all(text)
            if doc
        ]
    return copy.deepcopy(_cache[key])


def crds() -> list[Path]:
    """The chart's CRD files (Helm installs them before the templates)."""
    return sorted((CHART / "crds").glob("*.yaml"))


def user_role(name: str) -> dict[str, Any]:
    """One of the chart's ClusterRoles for people, by name."""
    for obj in render():
        if obj["kind"] == "ClusterRole" and obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"the chart renders no ClusterRole {name!r}")


def create_or_keep(kube: KubeClient, obj: dict[str, Any]) -> None:
    """Create the object unless one of its name exists already."""
    try:
        kube.create(obj)
    except ApiError as error:
        if error.status != 409:
            raise


def bind_user_role(kube: KubeClient, role: str, people: Iterable[str], namespace: str, *,
                   groups: Iterable[str] = (), service_accounts: Iterable[tuple[str, str]] = ()) -> None:
    """The chart's ClusterRole ``role``, bound to ``people`` (groups, service accounts) in ``namespace``."""
    create_or_keep(kube, user_role(role))
    subjects = [{"apiGroup": RBAC, "kind": "User", "name": person} for person in people]
    subjects += [{"apiGroup": RBAC, "kind": "Group", "name": group} for group in groups]
    subjects += [{"kind": "ServiceAccount", "namespace": ns, "name": name} for ns, name in service_accounts]
    kube.create({
        "apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
        "metadata": {"name": f"{role}:{','.join(s['name'] for s in subjects)}", "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })  # fmt: skip
