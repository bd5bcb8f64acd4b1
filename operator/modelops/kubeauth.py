"""Kubernetes credentials, found where kubectl finds them and read by the official client library.

The operator (Kopf's login handler and the operator's own aiohttp client) and ``kubectl modelops``
both load credentials here; neither parses a kubeconfig itself. The ``kubernetes`` package does
the reading, so whatever it supports works: tokens and token files, client certificates and CAs
(paths or inline data), ``insecure-skip-tls-verify``, ``tls-server-name``, ``exec`` credential
plugins (a token or a client certificate, run again when their answer expires), the OIDC auth
provider, and in a pod the service-account token, re-read as the kubelet rotates it.

Where they come from, in kubectl's order:

1. ``--kubeconfig``: that one file, never merged with others (kubectl's rule);
2. ``$KUBECONFIG``: its files merged as kubectl merges them (for each cluster, user and context the
   first file to name it wins; files that do not exist are skipped);
3. ``~/.kube/config``;
4. the pod's service account. A controller prefers it to a kubeconfig found by default
   (``in_cluster_first``), as controller-runtime does; kubectl looks at it last.

Three places where the library differs from kubectl are corrected here: with several files it takes
``current-context`` from the *last* file that sets one (kubectl: the first), so the context is
chosen here and handed to it by name; it logs a failed ``exec`` plugin and goes on without
credentials, so that failure is raised here with the plugin's own words, in one line; and it runs a
relative ``exec`` command (``./bin/get-token``) from the directory of the file that names the
*cluster*, where kubectl resolves it against the file that names the *user*, so that path is made
absolute here first. A bare command (``aws``) is looked up on ``$PATH`` by both.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import Configuration
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader
from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Kopf is told the exec plugin's answer expires this much early, so it logs in again before the
# API server starts refusing the old token (the library itself renews five minutes early).
EXPIRY_MARGIN = datetime.timedelta(seconds=60)


class CredentialsError(Exception):
    """No usable credentials; the message is one line naming the source and the problem."""


@dataclass(frozen=True)
class Connection:
    """One API server and how to authenticate to it, as they are now."""

    server: str
    authorization: str | None = None  # the Authorization header's value, e.g. "Bearer …"
    ca_path: str | None = None
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None
    tls_server_name: str | None = None
    proxy: str | None = None  # the cluster's proxy-url (http, https or socks5)
    expiration: datetime.datetime | None = None  # when an exec plugin's answer expires, if it said

    @property
    def scheme_and_token(self) -> tuple[str | None, str | None]:
        """The Authorization value taken apart as RFC 7235 does (Kopf wants the two separately)."""
        if not self.authorization:
            return None, None
        scheme, _, token = self.authorization.partition(" ")
        return (scheme, token) if token else (None, scheme)


class Credentials:
    """Credentials from one source, kept current by the library; safe to share between threads."""

    def __init__(self, loader: Any, *, source: str, namespace: str | None) -> None:
        self.source = source  # for messages: "kubeconfig /a:/b (context c)"
        self.namespace = namespace  # the context's namespace, or the pod's
        self._loader = loader
        self._lock = threading.Lock()
        self.configuration = Configuration()
        self._load()

    def _load(self) -> None:
        with self._lock, _library_errors() as errors:
            self._loader.load_and_set(self.configuration)
            if errors and not self._authorization() and not self.configuration.cert_file:
                raise CredentialsError(f"{self.source}: the exec credential plugin failed: {errors[-1]}")

    def _authorization(self) -> str | None:
        # The library keeps the header under "BearerToken" since 36.0.1, under "authorization" before.
        config = self.configuration
        value = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
        # A service-account token file ends in a newline, which no HTTP client accepts in a header.
        return " ".join(str(value).split()) if value else None

    def connection(self) -> Connection:
        """The credentials now. Reading the token lets the library refresh it: an exec plugin whose answer
        expired runs again (a subprocess: call this from a thread in async code); a service-account token
        is read again once a minute."""
        with self._lock, _library_errors():
            config = self.configuration
            expiry = getattr(self._loader, "expiry", None)
            return Connection(
                server=str(config.host).rstrip("/"),
                authorization=self._authorization(),
                ca_path=config.ssl_ca_cert or None,
                insecure=not config.verify_ssl,
                certificate_path=config.cert_file or None,
                private_key_path=config.key_file or None,
                tls_server_name=getattr(config, "tls_server_name", None) or None,
                proxy=getattr(config, "proxy", None) or None,
                expiration=expiry - EXPIRY_MARGIN if isinstance(expiry, datetime.datetime) else None,
            )

    def renew(self) -> Connection:
        """Load everything again: after a 401 (a revoked token, an exec answer the server no longer takes)."""
        self._load()
        return self.connection()


@contextmanager
def _library_errors() -> Iterator[list[str]]:
    """What the library logs on the root logger while it runs an exec plugin, kept from the log.

    It logs a failed plugin and goes on; a command-line tool must print one line, not that line and
    then a 401. With no handler on the root logger, ``logging.error`` would install one for good."""
    errors: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        if "kube_config" not in record.pathname:
            return True
        if record.levelno >= logging.ERROR:
            errors.append(" ".join(record.getMessage().split()))
        return False

    root = logging.getLogger()
    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder is not None:
        root.addHandler(placeholder)
    root.addFilter(keep)
    try:
        yield errors
    finally:
        root.removeFilter(keep)
        if placeholder is not None:
            root.removeHandler(placeholder)


def kubeconfig_files(kubeconfig: str | None = None) -> tuple[list[Path], bool]:
    """The files to read and whether they were asked for (``--kubeconfig`` or ``$KUBECONFIG``)."""
    if kubeconfig:
        return [Path(kubeconfig).expanduser()], True
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p.strip()]
    if listed:
        return [Path(p).expanduser() for p in listed], True
    return [Path.home() / ".kube" / "config"], False


def _where(files: list[Path]) -> str:
    return "kubeconfig " + os.pathsep.join(str(f) for f in files)


def _current_context(merger: KubeConfigMerger) -> str | None:
    """kubectl's current context: from the first file that sets one."""
    for path in merger.paths:
        config = merger.config_files.get(path)
        if isinstance(config, Mapping) and config.get("current-context"):
            return str(config["current-context"])
    return None


def from_kubeconfig(kubeconfig: str | None = None, context: str | None = None) -> Credentials:
    """The credentials of a kubeconfig's context: ``context``, else the current one."""
    files, _ = kubeconfig_files(kubeconfig)
    if kubeconfig and not files[0].is_file():
        raise CredentialsError(f"no kubeconfig at {files[0]}")
    where = _where(files)
    try:
        # kubectl skips listed files that do not exist or are empty (a `touch`ed ~/.kube/config).
        existing = [f for f in files if f.is_file() and f.read_text().strip()]
        if not existing:
            raise CredentialsError(f"no kubeconfig at {os.pathsep.join(str(f) for f in files)}")
        where = _where(existing)
        # One file at a time, so that a YAML error names its own file.
        merger = KubeConfigMerger(str(existing[0]))
        for path in existing[1:]:
            merger.paths.append(str(path))
            merger.load_config(str(path))
        name = context or _current_context(merger)
        if not name:
            raise CredentialsError(f"{where} sets no current-context (name one with --context)")
        # The merged lists hold the library's ConfigNode wrappers; their dicts are in `.value`.
        entries = [getattr(c, "value", c) for c in merger.config.value.get("contexts") or []]
        known = [c.get("name") for c in entries if isinstance(c, Mapping)]
        if name not in known:
            raise CredentialsError(f"{where} has no context {name!r}")
        _resolve_exec_command(merger, name)
        loader = KubeConfigLoader(config_dict=merger.config, active_context=name)
        namespace = (loader.current_context.get("context") or {}).get("namespace")
        return Credentials(loader, source=f"{where} (context {name})", namespace=namespace or None)
    except CredentialsError:
        raise
    except Exception as error:  # the library raises whatever the YAML or its shape leads to
        raise CredentialsError(explain(error, where)) from None


def _resolve_exec_command(merger: KubeConfigMerger, context: str) -> None:
    """A relative exec command with a slash in it made absolute against its user's file, as kubectl does."""
    contexts = [getattr(c, "value", c) for c in merger.config.value.get("contexts") or []]
    chosen = next((c for c in contexts if isinstance(c, Mapping) and c.get("name") == context), None)
    user_name = ((chosen or {}).get("context") or {}).get("user")
    for node in merger.config.value.get("users") or []:
        entry = getattr(node, "value", node)
        if not isinstance(entry, Mapping) or entry.get("name") != user_name:
            continue
        exec_ = (entry.get("user") or {}).get("exec")
        if not isinstance(exec_, dict):
            return
        command, source = exec_.get("command"), getattr(node, "path", None)
        if isinstance(command, str) and "/" in command and not os.path.isabs(command) and source:
            exec_["command"] = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(source)), command))
        return


def in_cluster(directory: Path = SERVICE_ACCOUNT, environ: Mapping[str, str] | None = None) -> Credentials | None:
    """The pod's service account, or None outside a pod."""
    env = os.environ if environ is None else environ
    token = directory / "token"
    if not env.get("KUBERNETES_SERVICE_HOST") or not env.get("KUBERNETES_SERVICE_PORT") or not token.is_file():
        return None
    loader = InClusterConfigLoader(token_filename=str(token), cert_filename=str(directory / "ca.crt"), environ=env)
    namespace_file = directory / "namespace"
    namespace = namespace_file.read_text().strip() if namespace_file.is_file() else None
    try:
        return Credentials(loader, source=f"the pod's service account ({directory})", namespace=namespace or None)
    except (ConfigException, OSError) as error:
        raise CredentialsError(f"the pod's service account ({directory}): {error}") from None


def load(kubeconfig: str | None = None, context: str | None = None, *, in_cluster_first: bool = False) -> Credentials:
    """Credentials from the first source that has them, in the order the module docstring gives."""
    files, asked = kubeconfig_files(kubeconfig)
    if asked or context:
        return from_kubeconfig(kubeconfig, context)
    found = in_cluster() if in_cluster_first else None
    if found is not None:
        return found
    if files[0].is_file():
        return from_kubeconfig()
    found = in_cluster()
    if found is None:
        raise CredentialsError(f"no kubeconfig at {files[0]} and not running in a cluster")
    return found


def explain(error: BaseException, where: str = "kubeconfig") -> str:
    """One line for what reading a kubeconfig raised: not YAML, not shaped like a kubeconfig, unreadable."""
    if isinstance(error, CredentialsError):
        return str(error)
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        named = f"kubeconfig {mark.name}" if mark and mark.name and not mark.name.startswith("<") else where
        return f"{named} is not valid YAML: {error.problem or error.context}{at}"
    if isinstance(error, OSError):
        return f"cannot read {where}: {error.strerror or error}"
    detail = " ".join(str(error).split()) or type(error).__name__
    return f"{where} is malformed ({type(error).__name__}: {detail})"
