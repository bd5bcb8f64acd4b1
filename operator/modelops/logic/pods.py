"""Pod template pieces shared by training Jobs and model-server Deployments: scheduling and security."""

from __future__ import annotations

from typing import Any

from modelops.api.common import PodOptions

IMAGE_UID = 10001  # the image's user (Dockerfile: USER 10001:10001)


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


def pod_security(run_as: int | None) -> dict[str, Any]:
    """The pod securityContext: never root, the runtime's seccomp profile, and ``run_as`` as user,
    group and fsGroup (so that mounted volumes are the pod's) — or none of those three when the
    platform assigns them: OpenShift's restricted policy refuses a user id outside the namespace's
    range and gives each pod one from it, with a matching fsGroup."""
    context: dict[str, Any] = {"runAsNonRoot": True}
    if run_as is not None:
        context.update(runAsUser=run_as, runAsGroup=run_as, fsGroup=run_as)
    context["seccompProfile"] = {"type": "RuntimeDefault"}
    return context


def container_security() -> dict[str, Any]:
    """The container securityContext: read-only root, no capabilities, no privilege escalation."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
