"""Labels that every generated PrometheusRule carries, so the cluster's Prometheus selects it.

The Prometheus Operator loads a PrometheusRule only when its labels match the Prometheus
object's ``ruleSelector`` (kube-prometheus-stack: ``release: <name>``). The chart passes the
labels to the operator as ``MODELOPS_RULE_LABELS``: comma-separated ``key=value`` pairs, e.g.
``release=kube-prometheus-stack,team=ml``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# A label key: an optional DNS-subdomain prefix and a name; a value: at most 63 characters.
_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def rule_labels(env_value: str | None) -> dict[str, str]:
    """Parse ``MODELOPS_RULE_LABELS``; ValueError naming the bad pair (empty or unset: no labels)."""
    labels: dict[str, str] = {}
    for raw in (env_value or "").split(","):
        pair = raw.strip()
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key) or not _VALUE.match(value):
            raise ValueError(f"MODELOPS_RULE_LABELS: {pair!r} is not a label key=value pair")
        labels[key] = value
    return labels


def missing_labels(actual: Mapping[str, str] | None, wanted: Mapping[str, str]) -> dict[str, str]:
    """The wanted labels that ``actual`` lacks or has with another value."""
    present = actual or {}
    return {key: value for key, value in wanted.items() if present.get(key) != value}
