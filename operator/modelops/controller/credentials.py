"""Where the operator's Kubernetes credentials come from: in-cluster, or a kubeconfig.

One loader serves both Kopf (through a login handler) and our own client, so the two
always talk to the same server as the same identity. Supported: the pod's service
account; kubeconfig files (``$KUBECONFIG``, first file of a list, or ``~/.kube/config``)
with a token, a token file, client certificates (paths or inline data), a CA (path or
inline data), ``insecure-skip-tls-verify``, and ``exec`` credential plugins (token or
client certificate answers).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class CredentialsError(Exception):
    """No usable credentials, with the reason."""


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to one API server."""

    server: str
    token: str | None = None
    ca_path: str | None = None
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None
    namespace: str | None = None


def _materialise(data: str | None, path: str | None, base: Path, suffix: str) -> str | None:
    """A file path for inline base64 data, or the (kubeconfig-relative) path itself."""
    if data:
        handle = tempfile.NamedTemporaryFile(prefix="modelops-", suffix=suffix, delete=False)  # noqa: SIM115
        with handle:
            handle.write(base64.b64decode(data))
        return handle.name
    if path:
        return str((base / path).resolve()) if not os.path.isabs(path) else path
    return None


def in_cluster() -> Credentials | None:
    """The pod's service account, when running in a cluster."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    token_file = SERVICE_ACCOUNT / "token"
    if not host or not port or not token_file.exists():
        return None
    host = f"[{host}]" if ":" in host else host
    namespace_file = SERVICE_ACCOUNT / "namespace"
    return Credentials(
        server=f"https://{host}:{port}",
        token=token_file.read_text().strip(),
        ca_path=str(SERVICE_ACCOUNT / "ca.crt"),
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
    )


def _exec_plugin(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    for item in spec.get("env") or []:
        env[item["name"]] = item["value"]
    command = [spec["command"], *(spec.get("args") or [])]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        raise CredentialsError(f"kubeconfig exec plugin {spec['command']!r} failed: {error}") from None
    status: dict[str, Any] = json.loads(result.stdout).get("status") or {}
    return status


def kubeconfig_file(path: str | None = None) -> Path:
    """The kubeconfig that is read: ``path``, else the first file of $KUBECONFIG, else ~/.kube/config."""
    raw = path or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    return Path(raw.split(os.pathsep)[0]).expanduser()


def explain(error: BaseException, path: str | None = None) -> str:
    """One line for anything the loaders raise: a kubeconfig that is no YAML, or not shaped like one."""
    if isinstance(error, CredentialsError):
        return str(error)
    file = kubeconfig_file(path)
    if isinstance(error, yaml.MarkedYAMLError):
        where = f" at line {error.problem_mark.line + 1}, column {error.problem_mark.column + 1}" if (
            error.problem_mark) else ""  # fmt: skip
        return f"kubeconfig {file} is not valid YAML: {error.problem or error.context}{where}"
    if isinstance(error, OSError):
        return f"cannot read kubeconfig {file}: {error.strerror or error}"
    detail = " ".join(str(error).split()) or type(error).__name__
    return f"kubeconfig {file} is malformed ({type(error).__name__}: {detail})"


def from_kubeconfig(path: str | None = None, context: str | None = None) -> Credentials:
    """Credentials of a kubeconfig's current (or named) context."""
    file = kubeconfig_file(path)
    if not file.exists():
        raise CredentialsError(f"no kubeconfig at {file}")
    config = yaml.safe_load(file.read_text()) or {}
    name = context or config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    if name not in contexts:
        raise CredentialsError(f"kubeconfig {file} has no context {name!r}")
    ctx = contexts[name]
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
    cluster = clusters.get(ctx.get("cluster"))
    if cluster is None:
        raise CredentialsError(f"kubeconfig {file}: context {name!r} names no known cluster")
    user = users.get(ctx.get("user"), {})
    base = file.parent
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = (base / user["tokenFile"]).read_text().strip()
    cert = _materialise(user.get("client-certificate-data"), user.get("client-certificate"), base, ".crt")
    key = _materialise(user.get("client-key-data"), user.get("client-key"), base, ".key")
    if user.get("exec"):
        status = _exec_plugin(user["exec"])
        token = status.get("token") or token
        if status.get("clientCertificateData"):
            cert = _materialise(base64.b64encode(status["clientCertificateData"].encode()).decode(), None, base, ".crt")
            key = _materialise(base64.b64encode(status["clientKeyData"].encode()).decode(), None, base, ".key")
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        token=token,
        ca_path=_materialise(
            cluster.get("certificate-authority-data"), cluster.get("certificate-authority"), base, ".crt"
        ),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        certificate_path=cert,
        private_key_path=key,
        namespace=ctx.get("namespace"),
    )


def load() -> Credentials:
    """In-cluster credentials when in a pod, else the kubeconfig's."""
    return in_cluster() or from_kubeconfig()
