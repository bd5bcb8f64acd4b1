"""The operator's small Kubernetes client: generic REST calls over aiohttp.

Only this module talks to the Kubernetes API for our own reads and writes (Kopf talks to
it for watching and for patching the object being handled). It authenticates with the
same credentials as Kopf (``modelops.controller.credentials``).
"""

from __future__ import annotations

import json
import ssl
from typing import Any

import aiohttp

from modelops.controller.credentials import Credentials

JsonDict = dict[str, Any]

# Resources the operator reads or writes, by (apiVersion, kind) → plural.
PLURALS: dict[tuple[str, str], str] = {
    ("modelops.io/v1alpha1", "TrainingRun"): "trainingruns",
    ("modelops.io/v1alpha1", "ModelVersion"): "modelversions",
    ("modelops.io/v1alpha1", "ModelDeployment"): "modeldeployments",
    ("modelops.io/v1alpha1", "DriftPolicy"): "driftpolicies",
    ("batch/v1", "Job"): "jobs",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Pod"): "pods",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("apps/v1", "Deployment"): "deployments",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrules",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproutes",
}


class KubeError(Exception):
    """An API error with its HTTP status and the server's reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def path_for(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    """The REST path of a resource (or of one object of it)."""
    plural = PLURALS[(api_version, kind)]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
    return f"{path}/{name}" if name else path


def _ssl_context(creds: Credentials) -> ssl.SSLContext | bool:
    if not creds.server.startswith("https"):
        return False
    context = ssl.create_default_context(cafile=creds.ca_path) if creds.ca_path else ssl.create_default_context()
    if creds.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if creds.certificate_path and creds.private_key_path:
        context.load_cert_chain(creds.certificate_path, creds.private_key_path)
    return context


class Kube:
    """Async generic access to the Kubernetes API; one aiohttp session per instance."""

    def __init__(self, creds: Credentials, *, timeout: float = 30.0) -> None:
        self.creds = creds
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json", "User-Agent": "modelops-operator"}
            if self.creds.token:
                headers["Authorization"] = f"Bearer {self.creds.token}"
            connector = aiohttp.TCPConnector(ssl=_ssl_context(self.creds))
            self._session = aiohttp.ClientSession(
                base_url=self.creds.server, headers=headers, connector=connector, timeout=self._timeout
            )
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> JsonDict:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self._get_session().request(method, path, data=data, headers=headers, params=query) as response:
            text = await response.text()
            try:
                payload: JsonDict = json.loads(text) if text else {}
            except ValueError:
                payload = {"message": text[:500]}
            if response.status >= 400:
                raise KubeError(
                    response.status,
                    str(payload.get("reason", response.reason)),
                    str(payload.get("message", text[:500])),
                )
            return payload

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> JsonDict | None:
        """The object, or None when it does not exist."""
        try:
            return await self.call("GET", path_for(api_version, kind, namespace, name))
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def list(
        self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> list[JsonDict]:
        query = {"labelSelector": label_selector} if label_selector else None
        result = await self.call("GET", path_for(api_version, kind, namespace), query=query)
        items: list[JsonDict] = result.get("items", [])
        return items

    async def create(self, obj: JsonDict) -> JsonDict:
        meta = obj["metadata"]
        return await self.call("POST", path_for(obj["apiVersion"], obj["kind"], meta.get("namespace")), obj)

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        patch: Any,
        patch_type: str = "application/merge-patch+json",
        subresource: str | None = None,
    ) -> JsonDict:
        path = path_for(api_version, kind, namespace, name) + (f"/{subresource}" if subresource else "")
        return await self.call("PATCH", path, patch, patch_type)

    async def apply(self, obj: JsonDict, field_manager: str = "modelops-operator") -> JsonDict:
        """Server-side apply: the object as desired, owned by the operator's field manager."""
        meta = obj["metadata"]
        path = path_for(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        query = {"fieldManager": field_manager, "force": "true"}
        return await self.call("PATCH", path, obj, "application/apply-patch+yaml", query)

    async def pod_log(self, namespace: str, name: str, container: str, tail_lines: int = 100) -> str:
        """The last lines of a container's log (``pods/log``), as text."""
        path = path_for("v1", "Pod", namespace, name) + "/log"
        query = {"container": container, "tailLines": str(tail_lines)}
        async with self._get_session().get(path, params=query, headers={"Accept": "text/plain"}) as response:
            text = await response.text()
            if response.status >= 400:
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = {"message": text[:500]}
                raise KubeError(response.status, str(payload.get("reason", response.reason)),
                                str(payload.get("message", text[:500])))  # fmt: skip
            return text

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        try:
            await self.call("DELETE", path_for(api_version, kind, namespace, name), {"propagationPolicy": "Background"})
        except KubeError as error:
            if error.status != 404:
                raise
