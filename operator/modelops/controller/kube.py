"""The operator's small Kubernetes client: generic REST calls over aiohttp.

Only this module talks to the Kubernetes API for our own reads and writes (Kopf talks to
it for watching and for patching the object being handled). Credentials are read by the
Kubernetes client library (:mod:`modelops.kubeauth`), once per operator run, and shared by
Kopf's login handler and this client (``controller/runtime.py``, in Kopf's memo), so both talk to the same
server as the same identity. Why a thin aiohttp layer rather than the library's own REST
client: bench/kubeclient (the library is synchronous, so every call would take a thread).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
from typing import Any

import aiohttp

from modelops import kubeauth
from modelops.api import API_VERSION, KINDS

JsonDict = dict[str, Any]

# Resources the operator reads or writes, by (apiVersion, kind) → plural.
PLURALS: dict[tuple[str, str], str] = {
    **{(API_VERSION, info.kind): info.plural for info in KINDS},
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


def _ssl_context(conn: kubeauth.Connection) -> ssl.SSLContext | bool:
    if not conn.server.startswith("https"):
        return False
    context = ssl.create_default_context(cafile=conn.ca_path) if conn.ca_path else ssl.create_default_context()
    if conn.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if conn.certificate_path and conn.private_key_path:
        context.load_cert_chain(conn.certificate_path, conn.private_key_path)
    return context


class Kube:
    """Async generic access to the Kubernetes API; one aiohttp session per instance.

    The Authorization header is set per request from the credentials as they are now: an exec
    plugin's answer is renewed when it expires, and everything is loaded again once after a 401.
    """

    def __init__(self, creds: kubeauth.Credentials, *, timeout: float = 30.0) -> None:
        self.creds = creds
        self.connection = creds.connection()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Accept": "application/json", "User-Agent": "modelops-operator"}
            connector = aiohttp.TCPConnector(ssl=_ssl_context(self.connection))
            self._session = aiohttp.ClientSession(
                base_url=self.connection.server, headers=headers, connector=connector, timeout=self._timeout
            )
        return self._session

    async def _refresh(self, *, renew: bool) -> None:
        # The library may run an exec plugin (a subprocess): never on the event loop.
        fresh = await asyncio.to_thread(self.creds.renew if renew else self.creds.connection)
        tls = (fresh.server, fresh.ca_path, fresh.insecure, fresh.certificate_path, fresh.private_key_path)
        old = self.connection
        if tls != (old.server, old.ca_path, old.insecure, old.certificate_path, old.private_key_path):
            await self.close()  # a new client certificate needs a new TLS context
        self.connection = fresh

    def _auth(self) -> dict[str, str]:
        value = self.connection.authorization
        return {"Authorization": value} if value else {}

    async def _send(
        self, method: str, path: str, data: str | None, headers: dict[str, str], query: dict[str, str] | None
    ) -> tuple[int, str, str]:
        """(status, reason, body text); a 401 loads the credentials again and retries once."""
        expiration = self.connection.expiration
        if expiration is not None and datetime.datetime.now(datetime.UTC) >= expiration:
            await self._refresh(renew=False)
        for attempt in (1, 2):
            async with self._get_session().request(
                method, path, data=data, headers={**headers, **self._auth()}, params=query,
                server_hostname=self.connection.tls_server_name, proxy=self.connection.proxy,
            ) as response:  # fmt: skip
                text = await response.text()
                if response.status != 401 or attempt == 2:
                    return response.status, str(response.reason), text
            await self._refresh(renew=True)
        raise AssertionError("unreachable")  # the loop returns on its second attempt

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
        status, reason, text = await self._send(method, path, data, headers, query)
        try:
            payload: JsonDict = json.loads(text) if text else {}
        except ValueError:
            payload = {"message": text[:500]}
        if status >= 400:
            raise KubeError(status, str(payload.get("reason", reason)), str(payload.get("message", text[:500])))
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

    async def pod_log(self, namespace: str, name: str, container: str, tail_lines: int = 100) -> str:
        """The last lines of a container's log (``pods/log``), as text."""
        path = path_for("v1", "Pod", namespace, name) + "/log"
        query = {"container": container, "tailLines": str(tail_lines)}
        status, reason, text = await self._send("GET", path, None, {"Accept": "text/plain"}, query)
        if status >= 400:
            try:
                payload = json.loads(text)
            except ValueError:
                payload = {"message": text[:500]}
            raise KubeError(status, str(payload.get("reason", reason)), str(payload.get("message", text[:500])))
        return text

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        try:
            await self.call("DELETE", path_for(api_version, kind, namespace, name), {"propagationPolicy": "Background"})
        except KubeError as error:
            if error.status != 404:
                raise
