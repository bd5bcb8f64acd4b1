"""Validation of built-in Kubernetes objects against the official schemas (kubernetes-validate).

``SUPPORTED`` names the oldest and newest Kubernetes versions the project supports; every
built-in object the operator, the chart or the examples produce must pass ``--strict``
validation for both.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate

# 1.28 is the oldest release whose CRD validation rules take `reason` and `fieldPath`.
SUPPORTED = ("1.28.0", "1.37.0")


def problems(obj: dict[str, Any]) -> list[str]:
    """Every strict-validation failure of obj, for each supported version."""
    found = []
    for version in SUPPORTED:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path) or "."
            name = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
            found.append(f"{name} on {version}: {where}: {error.message}")
    return found


def openapi_to_jsonschema(node: Any) -> Any:
    """A CRD's OpenAPI v3.0 schema as JSON Schema, for validating examples with jsonschema."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: openapi_to_jsonschema(value) for key, value in node.items() if not key.startswith("x-kubernetes-")}
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if out.get(flag) is True:
            out[flag] = out.pop(bound)
        elif out.get(flag) is False:
            del out[flag]
    if "properties" in node:
        out["properties"] = {k: openapi_to_jsonschema(v) for k, v in node["properties"].items()}
    return out
