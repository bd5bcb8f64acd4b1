"""The plugin's Kubernetes client: synchronous ``requests`` on the four modelops kinds.

Credentials are read by the Kubernetes client library through :mod:`modelops.kubeauth`, as
the operator reads them, and found where kubectl finds them (``--kubeconfig``, a merged
``$KUBECONFIG``, ``~/.kube/config``, the pod's service account). No discovery: the kinds' URLs
are fixed by the API group, which saves round trips on every command.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from modelops import __version__
from modelops.api.common import GROUP, VERSION

if TYPE_CHECKING:
    from modelops import kubeauth

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


def load_credentials(kubeconfig: str | None, context: str | None) -> kubeauth.Credentials:
    """Like kubectl: --kubeconfig, else $KUBECONFIG (merged), else ~/.kube/config, else in-cluster."""
    # The library takes about half a second to import (bench/kubeclient): --help and usage errors skip it.
    from modelops import kubeauth

    try:
        return kubeauth.load(kubeconfig, context)
    except kubeauth.CredentialsError as error:  # a malformed kubeconfig is one line, never a traceback
        raise ConnectError(str(error)) from None


class _ServerNameAdapter(HTTPAdapter):
    """Checks the server's certificate against ``tls-server-name`` instead of the URL's host (what
    kubectl does when it reaches a cluster through a tunnel or by IP), and sends that name as SNI."""

    def __init__(self, server_name: str) -> None:
        self.server_name = server_name
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(server_hostname=self.server_name, assert_hostname=self.server_name)
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        kwargs.update(server_hostname=self.server_name, assert_hostname=self.server_name)
        return super().proxy_manager_for(proxy, **kwargs)


class Client:
    """GET, LIST and merge-PATCH of our kinds in one namespace (LIST in all of them: ``all_namespaces``)."""

    def __init__(self, connection: kubeauth.Connection, namespace: str, *, all_namespaces: bool = False) -> None:
        self.server = connection.server
        self.namespace = namespace
        self.all_namespaces = all_namespaces
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"kubectl-modelops/{__version__}"
        self.session.headers["Accept"] = "application/json"
        if connection.authorization:
            self.session.headers["Authorization"] = connection.authorization
        if connection.certificate_path and connection.private_key_path:
            self.session.cert = (connection.certificate_path, connection.private_key_path)
        # Given with each request: requests lets $REQUESTS_CA_BUNDLE override a session's own CA
        # (psf/requests#3829), and a cluster's CA is the kubeconfig's, never the machine's bundle.
        self.verify: bool | str = False if connection.insecure else (connection.ca_path or True)
        if connection.tls_server_name:
            self.session.mount("https://", _ServerNameAdapter(connection.tls_server_name))
        # The cluster's proxy-url, over $HTTPS_PROXY (as kubectl does): given with each request,
        # where requests lets the environment's win over a session's own (psf/requests#2018).
        self.proxies = {"http": connection.proxy, "https": connection.proxy} if connection.proxy else None

    def _url(self, kind: Kind, name: str | None = None) -> str:
        if self.all_namespaces:
            if name is not None:  # the command line refuses -A with a name before any call
                raise ValueError(f"{kind.lower} {name}: a named object needs a namespace")
            return f"{self.server}/apis/{GROUP}/{VERSION}/{kind.plural}"
        url = f"{self.server}/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{kind.plural}"
        return f"{url}/{name}" if name else url

    def _call(self, method: str, url: str, *, kind: Kind, name: str | None = None, **kwargs: Any) -> Obj:
        try:
            response = self.session.request(
                method, url, timeout=TIMEOUT_SECONDS, verify=self.verify, proxies=self.proxies, **kwargs
            )
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
