"""The plugin's Kubernetes client: synchronous ``requests`` on the four modelops kinds.

Credentials come from the operator's own loader (:mod:`modelops.controller.credentials`),
so the plugin and the operator read kubeconfigs the same way (tokens, token files, client
certificates, CAs, ``exec`` plugins). No discovery: the kinds' URLs are fixed by the API
group, which saves round trips on every command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from modelops import __version__
from modelops.api.common import GROUP, VERSION
from modelops.controller import credentials

Obj = dict[str, Any]
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Kind:
    """One of our kinds, as the plugin names it in URLs and messages."""

    kind: str
    plural: str
    short: str

    @property
    def lower(self) -> str:
        return self.kind.lower()


TRAINING_RUN = Kind("TrainingRun", "trainingruns", "tr")
MODEL_VERSION = Kind("ModelVersion", "modelversions", "mv")
MODEL_DEPLOYMENT = Kind("ModelDeployment", "modeldeployments", "mdep")
DRIFT_POLICY = Kind("DriftPolicy", "driftpolicies", "dp")
KINDS = (TRAINING_RUN, MODEL_VERSION, MODEL_DEPLOYMENT, DRIFT_POLICY)


class ApiError(Exception):
    """A failed API call: the HTTP status and the server's own message (from its v1 Status)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


class NotFoundError(ApiError):
    """A 404 on a named object."""


class ConnectError(Exception):
    """No credentials, or the API server could not be reached."""


def load_credentials(kubeconfig: str | None, context: str | None) -> credentials.Credentials:
    """Like kubectl: an explicit --kubeconfig/--context or $KUBECONFIG or ~/.kube/config, else in-cluster."""
    default_file = Path.home() / ".kube" / "config"
    wants_file = kubeconfig or context or os.environ.get("KUBECONFIG") or default_file.exists()
    try:
        if wants_file:
            return credentials.from_kubeconfig(kubeconfig, context)
        found = credentials.in_cluster()
    except Exception as error:  # a malformed kubeconfig is one line, never a traceback
        raise ConnectError(credentials.explain(error, kubeconfig)) from None
    if found is None:
        raise ConnectError(f"no kubeconfig at {default_file} and not running in a cluster")
    return found


class Client:
    """GET, LIST and merge-PATCH of our kinds in one namespace."""

    def __init__(self, creds: credentials.Credentials, namespace: str) -> None:
        self.server = creds.server
        self.namespace = namespace
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"kubectl-modelops/{__version__}"
        self.session.headers["Accept"] = "application/json"
        if creds.token:
            self.session.headers["Authorization"] = f"Bearer {creds.token}"
        if creds.certificate_path and creds.private_key_path:
            self.session.cert = (creds.certificate_path, creds.private_key_path)
        self.session.verify = False if creds.insecure else (creds.ca_path or True)

    def _url(self, kind: Kind, name: str | None = None) -> str:
        url = f"{self.server}/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{kind.plural}"
        return f"{url}/{name}" if name else url

    def _call(self, method: str, url: str, *, kind: Kind, name: str | None = None, **kwargs: Any) -> Obj:
        try:
            response = self.session.request(method, url, timeout=TIMEOUT_SECONDS, **kwargs)
        except requests.RequestException as error:
            raise ConnectError(f"cannot reach the API server at {self.server}: {error}") from None
        if response.status_code >= 400:
            raise _error(response, kind, name, self.namespace)
        result: Obj = response.json()
        return result

    def get(self, kind: Kind, name: str) -> Obj:
        return self._call("GET", self._url(kind, name), kind=kind, name=name)

    def find(self, kind: Kind, name: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self.get(kind, name)
        except NotFoundError:
            return None

    def list(self, kind: Kind) -> list[Obj]:
        items: list[Obj] = []
        params: dict[str, Any] = {"limit": 500}
        while True:
            page = self._call("GET", self._url(kind), kind=kind, params=params)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params["continue"] = token

    def patch(self, kind: Kind, name: str, patch: Mapping[str, Any]) -> Obj:
        """A JSON merge patch (the main resource, never status)."""
        return self._call(
            "PATCH",
            self._url(kind, name),
            kind=kind,
            name=name,
            data=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )


def _error(response: requests.Response, kind: Kind, name: str | None, namespace: str) -> ApiError:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        reason = str(body.get("reason") or response.reason or "")
        message = str(body.get("message") or response.text.strip() or response.reason)
    else:
        reason, message = response.reason or "", response.text.strip()[:500] or str(response.status_code)
    if response.status_code == 404 and name is not None:
        return NotFoundError(404, reason, f"{kind.lower} {name} not found in namespace {namespace}")
    if response.status_code == 404:
        return ApiError(404, reason, f"the {kind.plural}.{GROUP} API is not served: are the modelops CRDs installed?")
    return ApiError(response.status_code, reason, message)
