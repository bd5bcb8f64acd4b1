"""A one-node cluster around the Kubernetes API emulator, whose pods are real containers.

The emulator (tests/kubeemu) stores Pods, Jobs and Deployments but runs nothing. :class:`Node`
adds what a cluster's node and control plane would do for the namespaces a test chooses:

- the kubelet (:mod:`containerkubelet.kubelet`): every Pod of those namespaces runs as
  containers from its image with the Docker engine, honouring the pod spec field by field
  (:mod:`containerkubelet.podspec`, :mod:`containerkubelet.volumes`,
  :mod:`containerkubelet.containers`), and its status is written back as the kubelet writes it;
- the job and deployment controllers, the Service endpoints of webhook Services, and the
  Prometheus Operator's discovery of ServiceMonitor targets (:mod:`containerkubelet.controllers`);
- the ``kubernetes`` Service: the emulator also listens with TLS on Docker's bridge gateway, and
  pods get its address in ``KUBERNETES_SERVICE_HOST``/``PORT`` and its CA with their service
  account's token, so in-cluster clients (Kopf's, ours) authenticate as their ServiceAccount
  and every request of theirs is authorized by RBAC.

Containers reach the host (the emulator, Prometheus) at the bridge gateway; the host reaches
pods at their IPs on the bridge. Service ClusterIPs are not routed (there is no kube-proxy):
clients in the tests talk to pod IPs, and the emulator calls webhook Services at a ready pod.
What the stand-in cannot honour it refuses by name; :attr:`Node.errors` collects those refusals
and any failure of its loops, and the tests fail on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from containerkubelet import docker
from containerkubelet.controllers import DeploymentController, Endpoints, JobController
from containerkubelet.kubelet import Kubelet
from kubeemu import Emulator
from kubeemu.client import KubeClient
from promkit import Prometheus

__all__ = ["Node", "docker"]


class Node:
    """The kubelet and the controllers for ``namespaces``; see the package docstring."""

    def __init__(self, emulator: Emulator, *, image: str, namespaces: list[str], workdir: Path,
                 prometheus: Prometheus | None = None) -> None:  # fmt: skip
        self.emulator = emulator
        self.kube = KubeClient(emulator.url)
        self.gateway = docker.bridge_gateway()
        self.api = emulator.serve_in_cluster(self.gateway, workdir / "apiserver")
        self.pvc_root = workdir / "pvc"
        self.kubelet = Kubelet(emulator, api=self.api, namespaces=namespaces, workdir=workdir / "pods",
                               pvc_root=self.pvc_root, pause_image=image)  # fmt: skip
        self.jobs = JobController(KubeClient(emulator.url), namespaces)
        self.deployments = DeploymentController(KubeClient(emulator.url), namespaces)
        self.endpoints = Endpoints(KubeClient(emulator.url), namespaces, emulator, prometheus)

    def start(self) -> Node:
        self.kubelet.start()
        self.jobs.start()
        self.deployments.start()
        self.endpoints.start()
        return self

    def close(self) -> None:
        for loop in (self.jobs, self.deployments, self.endpoints):
            loop.close()
        self.kubelet.close()

    @property
    def errors(self) -> list[str]:
        return [*self.kubelet.errors, *self.jobs.errors, *self.deployments.errors, *self.endpoints.errors]

    def pods(self, namespace: str, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """The namespace's pods whose labels include ``labels``."""
        return [p for p in self.kube.list("v1", "Pod", namespace)
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in (labels or {}).items())]  # fmt: skip

    def ready_urls(self, namespace: str, labels: Mapping[str, str], port: int) -> list[str]:
        """``http://<pod IP>:<port>`` of the ready pods with these labels (a Service's endpoints)."""
        urls = []
        for pod in self.pods(namespace, labels):
            status = pod.get("status") or {}
            ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            if ready and status.get("podIP") and not pod["metadata"].get("deletionTimestamp"):
                urls.append(f"http://{status['podIP']}:{port}")
        return urls

    def logs(self, namespace: str, name: str) -> str:
        return self.kubelet.logs(namespace, name)

    def describe(self, namespace: str) -> str:
        """Each pod's phase, container state and logs' tail: for a failing test's message."""
        lines = []
        for pod in self.pods(namespace):
            status = pod.get("status") or {}
            states = [s.get("state") for s in status.get("containerStatuses") or []]
            lines.append(f"pod {pod['metadata']['name']}: {status.get('phase')} {states}")
            lines += ["    " + line for line in self.logs(namespace, pod["metadata"]["name"]).splitlines()[-20:]]
        return "\n".join(lines)
