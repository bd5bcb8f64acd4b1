"""Pod template pieces shared by training Jobs and model-server Deployments."""

from __future__ import annotations

from typing import Any

from modelops.api.common import PodOptions


def scheduling(options: PodOptions | None) -> dict[str, Any]:
    """nodeSelector, tolerations and serviceAccountName of a pod spec, from a resource's spec.pod."""
    if options is None:
        return {}
    fields: dict[str, Any] = {}
    if options.node_selector:
        fields["nodeSelector"] = dict(options.node_selector)
    if options.tolerations:
        fields["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in options.tolerations]
    if options.service_account_name:
        fields["serviceAccountName"] = options.service_account_name
    return fields
