"""The deployment controller, the kubelet and Prometheus' service discovery, played honestly by the tests.

No cluster runs here, so :class:`PodRunner` does their part for the model-server Deployments of
one ModelDeployment: it watches (by polling the API) the ``<name>-stable`` and ``<name>-canary``
Deployments the operator writes, and runs one pod per Deployment with replicas > 0 as a local
``modelops serve`` process — the container's own args and env, with the pod's paths mapped into
a work directory (the ``model`` ConfigMap volume is written out as files, a Secret volume too, and
updated in place when the Secret changes, as the kubelet swaps a ``..data`` symlink; the cache
emptyDir is a directory) and the pod's port replaced by a free loopback port. When a Deployment's pod template
changes (a new version) the old process is stopped and a new one started; at 0 replicas it is
stopped. The running pods are Prometheus' file_sd targets with the meta labels Kubernetes
discovery gives them (namespace, Service, pod name and the pod template's labels), relabelled by
Prometheus itself with the relabel_configs the Prometheus Operator makes of the ServiceMonitor
the operator wrote (``promkit.service_monitor_relabelling``). The operator sees only the API objects.

Like the deployment controller, it writes each Deployment's status (``rollout.kit.DeploymentController.status_for``:
observedGeneration, replicas, updated/ready/available replicas, the Available and Progressing
conditions): all ``spec.replicas`` available once the Deployment's one process answers
``/v2/health/ready`` with 200 (the readiness probe the operator sets), none before. One process
stands for all of a Deployment's replicas.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from kubeemu.client import ApiError, KubeClient
from promkit import Prometheus, free_port, pod_target, service_monitor_relabelling
from rollout.kit import DeploymentController

ROOT = Path(__file__).resolve().parents[2]
PVC_ROOT = "/mnt/pvc"  # where a pod mounts its claims (logic.serving.PVC_ROOT)


@dataclass
class Pod:
    """One running model-server process standing in for a Deployment's pod."""

    deployment: str
    version: str
    template: str  # the pod template it runs, as JSON: a change means a new pod
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    labels: dict[str, str]  # the pod template's labels
    secrets: dict[str, Path]  # Secret name -> the directory its volume is written to

    def ready(self) -> bool:
        """The readiness probe: the process runs and ``/v2/health/ready`` answers 200."""
        if self.process.poll() is not None:
            return False
        try:
            return requests.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class PodRunner:
    """Runs the pods of one ModelDeployment's server Deployments; see the module docstring."""

    def __init__(
        self,
        kube: KubeClient,
        prometheus: Prometheus,
        namespace: str,
        owner: str,
        workdir: Path,
        *,
        pvc_root: Path | None = None,
    ) -> None:
        self.kube = kube
        self.pvc_root = pvc_root
        self.prometheus = prometheus
        self.namespace = namespace
        self.owner = owner
        self.workdir = workdir
        self.pods: dict[str, Pod] = {}
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.relabelings: Any = None  # the ServiceMonitor endpoint's relabelings Prometheus runs with
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> PodRunner:
        self.thread.start()
        return self

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.sync()
            except Exception as error:  # keep reconciling; the test reads the errors on failure
                self.errors.append(f"{type(error).__name__}: {error}")
            self.stop_event.wait(0.2)  # a controller's resync period, not a synchronisation

    def _follow_service_monitor(self) -> None:
        """Configure Prometheus' relabelling as the Prometheus Operator would for the ServiceMonitor."""
        try:
            monitor = self.kube.get("monitoring.coreos.com/v1", "ServiceMonitor", self.namespace, self.owner)
        except ApiError as error:
            if error.status == 404:  # not written yet: its pods are not scraped either
                return
            raise
        relabelings = monitor["spec"]["endpoints"][0].get("relabelings") or []
        if relabelings != self.relabelings:
            self.prometheus.set_relabel_configs(service_monitor_relabelling(relabelings))
            self.relabelings = relabelings

    def sync(self) -> None:
        self._follow_service_monitor()
        wanted: dict[str, Any] = {}
        seen: list[dict[str, Any]] = []
        for name in (f"{self.owner}-stable", f"{self.owner}-canary"):
            try:
                deployment = self.kube.get("apps/v1", "Deployment", self.namespace, name)
            except ApiError as error:
                if error.status == 404:  # not created yet
                    continue
                raise
            seen.append(deployment)
            replicas = deployment["spec"].get("replicas", 1)
            if replicas:
                wanted[name] = deployment
        changed = False
        with self.lock:
            for name in list(self.pods):
                template = json.dumps(wanted[name]["spec"]["template"], sort_keys=True) if name in wanted else None
                if template != self.pods[name].template:
                    self.pods.pop(name).stop()
                    changed = True
            for name, deployment in wanted.items():
                if name not in self.pods:
                    pod = self._start(deployment)
                    if pod is not None:
                        self.pods[name] = pod
                        changed = True
            for pod in self.pods.values():
                for secret, directory in pod.secrets.items():
                    self._write_secret(secret, directory)
            if changed:
                self.prometheus.set_targets(
                    [
                        pod_target(f"127.0.0.1:{pod.port}", namespace=self.namespace, service=self.owner,
                                   pod=f"{name}-0", labels=pod.labels)
                        for name, pod in self.pods.items()
                    ]
                )  # fmt: skip
            ready = {name for name, pod in self.pods.items() if pod.ready()}
        for deployment in seen:
            self._write_status(deployment, ready=deployment["metadata"]["name"] in ready)

    def _write_status(self, deployment: Mapping[str, Any], *, ready: bool) -> None:
        """The status the deployment controller would write (only when it changed, as it does)."""
        wanted = DeploymentController.status_for(dict(deployment), ready=ready)
        current = deployment.get("status") or {}
        if all(current.get(key) == value for key, value in wanted.items()):
            return
        name = deployment["metadata"]["name"]
        try:
            self.kube.patch_status("apps/v1", "Deployment", self.namespace, name, {"status": wanted})
        except ApiError as error:
            if error.status != 404:  # deleted meanwhile
                raise

    def _start(self, deployment: Mapping[str, Any]) -> Pod | None:
        """Start the pod, or None while a ConfigMap it mounts does not exist yet (the pod stays Pending)."""
        name = deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        pod_spec = template["spec"]
        container = pod_spec["containers"][0]
        version = template["metadata"]["labels"].get("modelops.io/version", "?")
        root = self.workdir / f"{name}-{version}"
        mounts: dict[str, Path] = {}
        secrets: dict[str, Path] = {}
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            source = volumes.get(mount["name"], {})
            claim = (source.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and self.pvc_root is not None:
                mounts[mount["mountPath"]] = self.pvc_root / claim
                continue
            local = root / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "secret" in source:
                if not self._write_secret(source["secret"]["secretName"], local):
                    return None
                secrets[source["secret"]["secretName"]] = local
            if "configMap" in source:
                try:
                    config = self.kube.get("v1", "ConfigMap", self.namespace, source["configMap"]["name"])
                except ApiError as error:
                    if error.status == 404:
                        return None
                    raise
                for key, text in (config.get("data") or {}).items():
                    (local / key).write_text(text)
            mounts[mount["mountPath"]] = local
        port = free_port()
        args = list(container["args"])
        for i, arg in enumerate(args[:-1]):
            value = args[i + 1]
            if arg == "--host":
                args[i + 1] = "127.0.0.1"
            elif arg == "--port":
                args[i + 1] = str(port)
            elif arg == "--workers":
                args[i + 1] = "1"
            elif value in mounts:
                args[i + 1] = str(mounts[value])
        if "--workers" not in args:
            args += ["--workers", "1"]
        env = {**os.environ, **{e["name"]: self._map_env(e.get("value", "")) for e in container.get("env", [])}}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "operator"), str(ROOT / "tests")])
        log = root / "server.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "modelops", *args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root
            )
        labels = dict(template["metadata"].get("labels") or {})
        return Pod(
            name, version, json.dumps(template, sort_keys=True), f"http://127.0.0.1:{port}", port, process, log, labels,
            secrets,
        )  # fmt: skip

    def _write_secret(self, name: str, directory: Path) -> bool:
        """Write a Secret volume (in place, when it changed) as the kubelet does; False while it is missing."""
        try:
            secret = self.kube.get("v1", "Secret", self.namespace, name)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        version = str(secret["metadata"].get("resourceVersion"))
        marker = directory / "..version"
        if marker.exists() and marker.read_text() == version:
            return True
        data = directory / f"..data-{version}"
        data.mkdir(exist_ok=True)
        files = {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}
        for key, raw in files.items():
            (data / key).write_bytes(raw)
        link = directory / "..data.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(data.name)
        os.replace(link, directory / "..data")
        for key in files:
            if not (directory / key).is_symlink():
                (directory / key).symlink_to(f"..data/{key}")
        for entry in directory.iterdir():
            if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in files:
                entry.unlink()
        marker.write_text(version)
        return True

    def _map_env(self, value: str) -> str:
        """An env value naming a path under the pods' ``/mnt/pvc``, mapped to ``pvc_root`` when given."""
        if self.pvc_root is not None and (value == PVC_ROOT or value.startswith(PVC_ROOT + "/")):
            return str(self.pvc_root) + value.removeprefix(PVC_ROOT)
        return value

    def urls(self) -> list[str]:
        with self.lock:
            return [pod.url for pod in self.pods.values() if pod.process.poll() is None]

    def versions(self) -> dict[str, str]:
        with self.lock:
            return {name: pod.version for name, pod in self.pods.items()}

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=15)
        with self.lock:
            for pod in self.pods.values():
                pod.stop()
            self.pods.clear()


class ServiceLoad:
    """Clients of the ModelDeployment's Service: requests spread over its running pods."""

    def __init__(
        self, runner: PodRunner, model: str, rows: list[list[float]], bodies: list[dict[str, Any]] | None = None
    ) -> None:
        """Single numeric ``rows`` as one tensor, or else the request ``bodies`` given, in turn."""
        self.runner = runner
        self.model = model
        self.rows = rows
        self.bodies = bodies
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        session = requests.Session()
        i = 0
        while not self.stop_event.is_set():
            for url in self.runner.urls():
                if self.bodies:
                    body = self.bodies[i % len(self.bodies)]
                else:
                    row = self.rows[i % len(self.rows)]
                    body = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
                i += 1
                # A pod starting or stopping refuses the connection: a client sees the same.
                with contextlib.suppress(requests.RequestException):
                    session.post(f"{url}/v2/models/{self.model}/infer", json=body, timeout=5)
            self.stop_event.wait(0.05)  # pacing, about 20 requests a second per pod
        session.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=15)
