"""Shared by the packaging tests: where the chart is, the value combinations, object lookups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "modelops-operator"
NAMESPACE = "modelops-system"

# The value combinations a platform team installs with.
COMBOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["ml", "ml-prod"]},
    "cert-manager": {"certManager": {"enabled": True}},
    "cert-manager-issuer": {
        "certManager": {"enabled": True, "issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"}}
    },
    "monitoring-off": {"monitoring": {"enabled": False}},
    "network-policy": {
        "networkPolicy": {
            "apiServerCIDRs": ["172.18.0.0/16", "fd00:10::/64"],
            "webhookFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                             "podSelector": {"matchLabels": {"k8s-app": "konnectivity-agent"}}}],
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        }
    },
    "network-policy-off": {"networkPolicy": {"enabled": False}},
    "everything": {
        "watchNamespaces": ["ml"],
        "certManager": {"enabled": True},
        "monitoring": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheus": {"url": "http://prometheus-operated.monitoring.svc:9090"},
        "ruleLabels": {"release": "kube-prometheus-stack", "team": "ml"},
        "artifactStore": "pvc://modelops-artifacts",
        "replicaCount": 3,
        "grafana": {"dashboards": {"enabled": True, "annotations": {"grafana_folder": "modelops"}}},
        "governance": {
            "stages": {"Production": {"approvals": 2, "gates": [{"metric": "accuracy", "op": ">=", "threshold": 0.9}]}},
            "trustedAppliers": ["system:serviceaccount:argocd:argocd-application-controller"],
        },
    },
}

Objects = list[dict[str, Any]]
Render = Callable[..., Objects]


def find(objects: Objects, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """The objects of a kind (and name)."""
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: Objects, kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of a kind (and name); fails the test when there are none or several."""
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]
