"""The admission webhooks of governance, served by the operator over TLS (Kopf's WebhookServer).

Kopf serves each handler at ``/<handler id>``; the chart renders the webhook configurations
(``settings.admission.managed`` stays None). The webhooks work without the reconcile loop:
they decide from the request alone (plus a SubjectAccessReview, the namespace's labels and
the pinned ModelVersion, read through the operator's client). Every replica serves them,
also one that peering keeps inactive. The rules are in docs/governance.md and the decisions
in ``modelops.logic.governance``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from modelops.api import API_VERSION, GROUP, VERSION
from modelops.controller import artifactpolicy, audit, common, runtime, trainers
from modelops.controller.kube import KubeError
from modelops.logic import audit as audit_records
from modelops.logic import conditions as cond
from modelops.logic import governance, workloads
from modelops.logic.governance import DeniedError, Identity
from modelops.logic.policy import Policy

log = logging.getLogger(__name__)

SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
APPROVE_VERB = "approve"


@dataclass(frozen=True)
class WebhookOptions:
    """Where the webhook server listens and its certificate (``tls.crt``/``tls.key`` in ``cert_dir``)."""

    port: int = 9443
    cert_dir: str = "/etc/modelops/webhook-certs"
    host: str = "0.0.0.0"  # the address to listen on

    @property
    def certfile(self) -> Path:
        return Path(self.cert_dir) / "tls.crt"

    @property
    def pkeyfile(self) -> Path:
        return Path(self.cert_dir) / "tls.key"

    def missing(self) -> str | None:
        """Why the server cannot start (a missing file), or None."""
        for path in (self.certfile, self.pkeyfile):
            if not path.is_file():
                return f"{path} does not exist"
        return None

    def server(self) -> kopf.WebhookServer:
        return kopf.WebhookServer(
            addr=self.host, port=self.port, certfile=str(self.certfile), pkeyfile=str(self.pkeyfile)
        )


def _deny(error: DeniedError) -> kopf.AdmissionError:
    return kopf.AdmissionError(str(error), code=403)


async def may_approve(userinfo: Mapping[str, Any], namespace: str, name: str | None) -> str | None:
    """None if RBAC lets the user approve ModelVersions here, else what permission is missing."""
    attributes: dict[str, Any] = {
        "group": GROUP,
        "version": VERSION,
        "resource": "modelversions",
        "verb": APPROVE_VERB,
        "namespace": namespace,
    }
    if name:
        attributes["name"] = name
    spec: dict[str, Any] = {
        "user": userinfo.get("username"),
        "groups": list(userinfo.get("groups") or []),
        "resourceAttributes": attributes,
    }
    if userinfo.get("uid"):
        spec["uid"] = userinfo["uid"]
    if userinfo.get("extra"):
        spec["extra"] = userinfo["extra"]
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    needed = f"the '{APPROVE_VERB}' verb on modelversions.{GROUP} in namespace {namespace}"
    try:
        result = await common.kube().call("POST", SAR_PATH, review)
    except KubeError as error:
        return f"cannot check whether {userinfo.get('username')} has {needed}: {error.message}"
    status = result.get("status") or {}
    if status.get("allowed"):
        return None
    why = status.get("reason") or status.get("evaluationError")
    return (
        f"{userinfo.get('username')} may not approve: approving needs {needed} "
        f"(e.g. a RoleBinding to the modelops-approver ClusterRole)" + (f"; {why}" if why else "")
    )


def _annotate(patch: kopf.Patch, sent: Mapping[str, str], changes: Mapping[str, str]) -> None:
    """Add to the admission patch the annotations whose value differs from what the request sent."""
    for key, value in changes.items():
        if sent.get(key) != value:
            patch.metadata.annotations[key] = value


def setup(registry: kopf.OperatorRegistry, *, policy: Policy, options: WebhookOptions) -> None:
    """Add the admission handlers and the webhook server's settings to a registry."""

    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = options.server()
        settings.admission.managed = None  # the chart renders the configurations

    kopf.on.startup(registry=registry)(runtime.bound(configure))

    @kopf.on.mutate(
        GROUP, VERSION, "modelversions", id="mutate-modelversion", operations=["CREATE", "UPDATE"], registry=registry
    )
    @runtime.bound
    async def mutate_modelversion(body: kopf.Body, patch: kopf.Patch, userinfo: kopf.UserInfo, **kwargs: Any) -> None:
        op = str(kwargs.get("operation"))
        old_ann = trainers.annotations_of(kwargs.get("old"))
        new_ann = trainers.annotations_of(body)
        identity = Identity.from_userinfo(userinfo)
        if governance.requested_approval(op, old_ann, new_ann) is not None:
            meta = body.get("metadata") or {}
            problem = await may_approve(dict(userinfo), str(meta.get("namespace") or ""), meta.get("name"))
            if problem is not None:
                raise _deny(DeniedError(problem))
        old_body: Mapping[str, Any] = kwargs.get("old") or {}
        # spec.trainedBy of the stored object too: a request that drops it is denied by validation anyway.
        upstream = governance.trainers(old_body.get("spec")) + governance.trainers(body.get("spec"))
        upstream += await trainers.trainingrun_creators(body)
        try:
            stages = ((old_body.get("spec") or {}).get("stage"), (body.get("spec") or {}).get("stage"))
            changes = governance.mutate_version(
                op, old_ann, new_ann, identity, policy, cond.now_iso(), upstream, stages=stages
            )
        except DeniedError as error:
            raise _deny(error) from None
        _annotate(patch, new_ann, changes)

    @kopf.on.mutate(
        GROUP, VERSION, "trainingruns", id="mutate-trainingrun", operations=["CREATE", "UPDATE"], registry=registry
    )
    @runtime.bound
    async def mutate_trainingrun(body: kopf.Body, patch: kopf.Patch, userinfo: kopf.UserInfo, **kwargs: Any) -> None:
        new_ann = trainers.annotations_of(body)
        try:
            changes = governance.mutate_trainingrun(
                str(kwargs.get("operation")),
                trainers.annotations_of(kwargs.get("old")),
                new_ann,
                Identity.from_userinfo(userinfo),
            )
        except DeniedError as error:
            raise _deny(error) from None
        _annotate(patch, new_ann, changes)

    @kopf.on.validate(
        GROUP, VERSION, "trainingruns", id="validate-trainingrun", operations=["CREATE", "UPDATE"], registry=registry
    )
    @runtime.bound
    async def validate_trainingrun(body: kopf.Body, **_: Any) -> None:
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        where = workloads.governed_where(policy, namespace, await production_namespace(policy, namespace))
        problems = workloads.trainingrun_problems(body.get("spec") or {}, policy, where) if where else []
        if problems:
            raise _deny(DeniedError("; ".join(problems)))

    @kopf.on.validate(
        GROUP, VERSION, "modelversions", id="validate-modelversion", operations=["CREATE", "UPDATE"], registry=registry
    )
    @runtime.bound
    async def validate_modelversion(body: kopf.Body, userinfo: kopf.UserInfo, **kwargs: Any) -> None:
        await artifactpolicy.admit_version(policy, str(kwargs.get("operation")), body)
        try:
            old: Mapping[str, Any] | None = kwargs.get("old")
            governance.validate_version(
                str(kwargs.get("operation")), old, body, Identity.from_userinfo(userinfo), policy
            )
        except DeniedError as error:
            raise _deny(error) from None

    @kopf.on.validate(
        GROUP, VERSION, "modelversions", id="validate-modelversion-delete", operations=["DELETE"], registry=registry
    )
    @runtime.bound
    async def validate_modelversion_delete(body: kopf.Body, userinfo: kopf.UserInfo, **kwargs: Any) -> None:
        identity = Identity.from_userinfo(userinfo)
        old: Mapping[str, Any] = kwargs.get("old") or body
        try:
            entered = governance.validate_delete(old, identity)
        except DeniedError as error:
            namespace = str((old.get("metadata") or {}).get("namespace") or "")
            if not await namespace_terminating(namespace):
                raise _deny(error) from None
            entered = governance.validate_delete(old, identity, namespace_terminating=True)
        if entered is not None and not kwargs.get("dryrun"):
            # Admitted: the object may still outlive this (a finalizer, a later webhook), but the request
            # by this identity is the fact the audit records.
            audit.write([audit_records.deleted_event(old, identity.user, cond.now_iso(), entered)])

    @kopf.on.validate(
        GROUP,
        VERSION,
        "modelversions",
        id="validate-modelversion-status",
        subresource="status",
        operations=["UPDATE"],
        registry=registry,
    )
    @runtime.bound
    async def validate_modelversion_status(body: kopf.Body, userinfo: kopf.UserInfo, **kwargs: Any) -> None:
        old: Mapping[str, Any] = kwargs.get("old") or {}
        try:
            governance.validate_status(old.get("status"), body.get("status"), Identity.from_userinfo(userinfo), policy)
        except DeniedError as error:
            raise _deny(error) from None

    @kopf.on.validate(
        GROUP,
        VERSION,
        "modeldeployments",
        id="validate-modeldeployment",
        operations=["CREATE", "UPDATE"],
        registry=registry,
    )
    @runtime.bound
    async def validate_modeldeployment(body: kopf.Body, **_: Any) -> None:
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        spec = body.get("spec") or {}
        version = spec.get("modelVersion")
        production = await production_namespace(policy, namespace)
        where = workloads.governed_where(policy, namespace, production)
        problems = workloads.deployment_problems(spec, policy, where) if where else []
        if problems:
            raise _deny(DeniedError("; ".join(problems)))
        try:
            stage: str | None = None
            if version:
                found = await common.kube().get(API_VERSION, "ModelVersion", namespace, str(version))
                stage = None if found is None else str((found.get("status") or {}).get("stage") or "None")
        except KubeError as error:
            raise kopf.AdmissionError(f"cannot check the deployment's version: {error.message}", code=500) from None
        try:
            governance.admit_deployment(
                production_namespace=production,
                namespace=namespace,
                version=str(version) if version else None,
                version_stage=stage,
                track=spec.get("track"),
            )
        except DeniedError as error:
            raise _deny(error) from None


async def namespace_terminating(namespace: str) -> bool:
    """Whether a namespace is being deleted (or gone); a failed read refuses the request (500)."""
    try:
        found = await common.kube().call("GET", f"/api/v1/namespaces/{namespace}")
    except KubeError as error:
        if error.status == 404:
            return True
        raise kopf.AdmissionError(f"cannot read namespace {namespace}: {error.message}", code=500) from None
    return bool((found.get("metadata") or {}).get("deletionTimestamp")) or (
        (found.get("status") or {}).get("phase") == "Terminating"
    )


async def production_namespace(policy: Policy, namespace: str) -> bool:
    """Whether a namespace is labelled as production; a failed read refuses the request (500)."""
    try:
        found = await common.kube().call("GET", f"/api/v1/namespaces/{namespace}")
    except KubeError as error:
        raise kopf.AdmissionError(f"cannot read namespace {namespace}: {error.message}", code=500) from None
    return policy.is_production_namespace((found.get("metadata") or {}).get("labels"))
