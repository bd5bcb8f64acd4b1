"""kubectl, as the e2e tests drive a real cluster: one subprocess per call, JSON in and out.

Only ``kubectl`` is needed (the ``kubernetes`` Python client is not a dependency of the project,
so it is not used here). Impersonation (``--as``) comes from the caller's kubeconfig: the kind
admin may impersonate anyone. :func:`find_cluster` decides whether there is a cluster to run on
and, when there is none, says exactly what is missing: that sentence is the skip reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
JsonDict = dict[str, Any]

API_GROUP = "modelops.io"
CRDS = tuple(
    f"{plural}.{API_GROUP}" for plural in ("trainingruns", "modelversions", "modeldeployments", "driftpolicies")
)


class KubectlError(Exception):
    """kubectl exited non-zero; ``stderr`` is what it said (the API server's message)."""

    def __init__(self, command: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(command)} exited {returncode}: {stderr.strip()}")
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig context, optionally impersonating a user."""

    binary: str
    context: str
    kubeconfig: str | None = None
    as_user: str | None = None

    def command(self, *args: str) -> list[str]:
        cmd = [self.binary]
        if self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        cmd += ["--context", self.context]
        if self.as_user:
            cmd += ["--as", self.as_user]
        return [*cmd, *args]

    def impersonating(self, user: str) -> Kubectl:
        return replace(self, as_user=user)

    def run(
        self, *args: str, stdin: str | None = None, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        cmd = self.command(*args)
        try:
            done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as error:
            raise KubectlError(cmd, -1, f"no answer within {timeout:g}s") from error
        if check and done.returncode != 0:
            raise KubectlError(cmd, done.returncode, done.stderr)
        return done

    # --- objects ---------------------------------------------------------------------------------

    def get(self, resource: str, name: str, namespace: str | None = None) -> JsonDict | None:
        """The object, or None when it does not exist."""
        args = ["get", resource, name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        text = self.run(*args).stdout.strip()
        return json.loads(text) if text else None

    def must_get(self, resource: str, name: str, namespace: str | None = None) -> JsonDict:
        found = self.get(resource, name, namespace)
        if found is None:
            raise AssertionError(f"{resource} {namespace}/{name} does not exist")
        return found

    def list_items(self, resource: str, namespace: str | None = None, selector: str | None = None) -> list[JsonDict]:
        args = ["get", resource, "-o", "json"]
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        if selector:
            args += ["-l", selector]
        items: list[JsonDict] = json.loads(self.run(*args).stdout).get("items") or []
        return items

    def apply(self, *objects: Mapping[str, Any], server_side: bool = False) -> None:
        args = ["apply", "-f", "-"]
        if server_side:
            args += ["--server-side", "--field-manager", "modelops-e2e"]
        self.run(*args, stdin=yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False))

    def apply_file(self, path: Path) -> None:
        self.run("apply", "-f", str(path))

    def create(self, obj: Mapping[str, Any]) -> JsonDict:
        out = self.run("create", "-f", "-", "-o", "json", stdin=json.dumps(dict(obj))).stdout
        created: JsonDict = json.loads(out)
        return created

    def patch(
        self,
        resource: str,
        name: str,
        namespace: str,
        patch: Mapping[str, Any],
        *,
        kind: str = "merge",
        subresource: str | None = None,
    ) -> JsonDict:
        args = ["patch", resource, name, "-n", namespace, "--type", kind, "-p", json.dumps(dict(patch)), "-o", "json"]
        if subresource:
            args += ["--subresource", subresource]
        patched: JsonDict = json.loads(self.run(*args).stdout)
        return patched

    def delete(self, resource: str, name: str, namespace: str | None = None, *, wait: bool = False) -> None:
        args = ["delete", resource, name, "--ignore-not-found", f"--wait={'true' if wait else 'false'}"]
        if namespace:
            args += ["-n", namespace]
        self.run(*args, timeout=120)

    # --- the API server's proxy to Services (no port-forward process to manage) -----------------

    @staticmethod
    def service_path(namespace: str, service: str, port: str, path: str, query: Mapping[str, str] | None = None) -> str:
        suffix = "?" + urllib.parse.urlencode(dict(query)) if query else ""
        return f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path.lstrip('/')}{suffix}"

    def raw_get(self, path: str, *, timeout: float = 30.0) -> str:
        return self.run("get", "--raw", path, timeout=timeout).stdout

    def raw_post(self, path: str, body: Mapping[str, Any], *, timeout: float = 60.0) -> str:
        return self.run("create", "--raw", path, "-f", "-", stdin=json.dumps(dict(body)), timeout=timeout).stdout

    # --- diagnostics -----------------------------------------------------------------------------

    def events_of(self, name: str, namespace: str, limit: int = 12) -> list[str]:
        try:
            items = self.list_items("events", namespace)
        except KubectlError as error:
            return [f"(events unavailable: {error.stderr.strip()})"]
        mine = [e for e in items if (e.get("involvedObject") or {}).get("name") == name]
        mine.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return [
            f"{e.get('lastTimestamp') or e.get('eventTime')} {e.get('type')} {e.get('reason')}: {e.get('message')}"
            for e in mine[-limit:]
        ]

    def describe(self, resource: str, name: str, namespace: str) -> str:
        """The object's generation, annotations and status (without Kopf's bookkeeping) and its Events."""
        try:
            obj = self.get(resource, name, namespace)
        except KubectlError as error:
            return f"{resource} {namespace}/{name}: cannot read it: {error.stderr.strip()}"
        if obj is None:
            return f"{resource} {namespace}/{name} does not exist"
        meta = obj.get("metadata") or {}
        status = {k: v for k, v in (obj.get("status") or {}).items() if k != "kopf"}
        shown = {
            "generation": meta.get("generation"),
            "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if "modelops.io" in k},
            "spec": obj.get("spec") if resource.endswith(API_GROUP) else None,
            "status": status,
        }
        text = yaml.safe_dump({k: v for k, v in shown.items() if v}, sort_keys=False, width=200)
        events = self.events_of(name, namespace)
        return f"{resource} {namespace}/{name}:\n{_indent(text)}\n  events:\n{_indent(chr(10).join(events) or '-')}"


@dataclass(frozen=True)
class Prometheus:
    """The Prometheus drift evaluation queries, and how the tests reach it through the API server."""

    url: str
    source: str  # where the URL came from, for messages
    namespace: str | None = None
    service: str | None = None
    port: str | None = None

    def query_path(self, promql: str) -> str | None:
        if not (self.namespace and self.service and self.port):
            return None
        return Kubectl.service_path(self.namespace, self.service, self.port, "api/v1/query", {"query": promql})

    def query(self, kubectl: Kubectl, promql: str) -> list[dict[str, object]] | None:
        """The instant vector of ``promql``, or None when Prometheus cannot be reached from here."""
        path = self.query_path(promql)
        if path is None:
            return None
        answer = json.loads(kubectl.raw_get(path))
        if answer.get("status") != "success":
            raise AssertionError(f"Prometheus refused {promql!r}: {answer}")
        result: list[dict[str, object]] = answer["data"]["result"]
        return result


def _indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line for line in text.rstrip().splitlines())


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 1.0,
    explain: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something other than None or False, or fail at the deadline.

    A kubectl error during a poll (an API server hiccup, an object not created yet) counts as
    "not yet"; the last one is shown if the deadline passes. ``explain`` adds the state of the
    objects involved to the failure message.
    """
    deadline = time.monotonic() + timeout
    last_error: KubectlError | None = None
    while True:
        try:
            value = probe()
        except KubectlError as error:
            value, last_error = None, error
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout:g}s waiting for {what}"
            if last_error is not None:
                message += f"\n  last kubectl error: {last_error}"
            if explain is not None:
                message += "\n" + explain()
            raise AssertionError(message)
        time.sleep(interval)


def condition(obj: Mapping[str, Any] | None, type_: str) -> JsonDict | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return None


def is_true(obj: Mapping[str, Any] | None, type_: str) -> bool:
    found = condition(obj, type_)
    return found is not None and found.get("status") == "True"


def current(obj: Mapping[str, Any] | None) -> bool:
    """The operator has seen the object's current spec."""
    if not obj:
        return False
    return (obj.get("status") or {}).get("observedGeneration") == (obj.get("metadata") or {}).get("generation")


# --- is there a cluster? -------------------------------------------------------------------------


def _docker_note() -> str:
    docker = shutil.which("docker")
    if docker is None:
        return "make kind-up creates one, but needs Docker, kind and helm, and there is no docker here"
    try:
        answered = subprocess.run([docker, "info"], capture_output=True, timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        answered = False
    if not answered:
        return "make kind-up creates one, but needs a Docker engine, and none answers here"
    return "run make kind-up"


def find_cluster(
    *, any_cluster: bool = False, operator_namespace: str = "modelops-system", operator: str = "modelops-operator"
) -> Kubectl | str:
    """kubectl on a reachable cluster prepared by ``make kind-up``, or the reason there is none."""
    binary = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not binary:
        return "kubectl is not on PATH: the e2e tests drive the cluster with kubectl (set KUBECTL to its path)"
    config_hint = f"KUBECONFIG={os.environ['KUBECONFIG']}" if os.environ.get("KUBECONFIG") else "~/.kube/config"
    try:
        found = subprocess.run(
            [binary, "config", "current-context"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "kubectl config current-context did not answer within 20s"
    context = found.stdout.strip()
    if found.returncode != 0 or not context:
        said = (found.stderr or found.stdout).strip() or "no current context"
        return f"no Kubernetes cluster to run on: kubectl has no current context in {config_hint} ({said}); " + (
            _docker_note()
        )
    if not context.startswith("kind-") and not any_cluster:
        return (
            f"the current kubectl context {context!r} is not a kind cluster; run make kind-up, or set "
            "MODELOPS_E2E_ANY_CLUSTER=1 to run the e2e tests on this cluster (they create and delete objects)"
        )
    kubectl = Kubectl(binary=binary, context=context)
    reach = kubectl.run("get", "--raw", "/readyz", "--request-timeout=10s", timeout=30, check=False)
    if reach.returncode != 0:
        return f"the cluster of context {context!r} does not answer ({reach.stderr.strip()}); " + _docker_note()
    missing = [crd for crd in CRDS if kubectl.run("get", "crd", crd, check=False).returncode != 0]
    if missing:
        return f"the cluster of context {context!r} lacks the modelops CRDs ({', '.join(missing)}): run make kind-up"
    deployment = kubectl.get("deployment", operator, operator_namespace)
    if deployment is None:
        return (
            f"the cluster of context {context!r} has no operator (deployment {operator_namespace}/{operator}): "
            "run make kind-up"
        )
    return kubectl
