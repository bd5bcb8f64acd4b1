"""Builders and checks for the rollout tier's tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kubeemu.client import ApiError, KubeClient

API = "modelops.io/v1alpha1"
NAMESPACE = "ml"
IMAGE = "registry.example/modelops:test"
SHA = "ab" * 32


def model_version(number: int, *, model: str = "iris", stage: str = "Staging") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelVersion",
        "metadata": {"name": f"{model}-v{number}", "namespace": NAMESPACE, "labels": {"modelops.io/model": model}},
        "spec": {
            "model": model,
            "version": number,
            "stage": stage,
            "task": "classification",
            "artifact": {"uri": f"pvc://models/{model}/v{number}/model.skops", "sha256": SHA},
            "signature": {
                "inputs": [{"name": "sepal length (cm)", "datatype": "FP64"}],
                "outputs": [{"name": "predict", "datatype": "INT64"}],
                "classes": [0, 1, 2],
            },
            "referenceStats": {
                "sampleSize": 10,
                "features": [{"name": "sepal length (cm)", "kind": "numeric", "edges": [4.0, 5.0, 8.0],
                              "counts": [5, 5]}],
            },
        },
    }


def deployment(name: str = "iris", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"model": "iris", "replicas": 4, "analysis": {"interval": "1s", "inconclusivePolicy": "Pass"}, **spec},
    }


def status_is(**expected: Any) -> Callable[[dict[str, Any] | None], bool]:
    """The status has these values and the operator has finished writing it (Ready says the same)."""

    def check(obj: dict[str, Any] | None) -> bool:
        status = (obj or {}).get("status") or {}
        settled = condition(obj, "Ready").get("message") == status.get("message")
        return settled and all(status.get(key) == value for key, value in expected.items())

    return check


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == type_:
            return dict(item)
    return {}


def replicas(kube: KubeClient, name: str) -> int | None:
    found = kube.get("apps/v1", "Deployment", NAMESPACE, name)
    value = found["spec"].get("replicas")
    return int(value) if value is not None else None


def events_for(kube: KubeClient, name: str) -> list[dict[str, Any]]:
    return [e for e in kube.list("v1", "Event", NAMESPACE) if e["involvedObject"]["name"] == name]


class DeploymentController:
    """The deployment controller (and the kubelet's readiness), played by the tests for the emulator.

    A thread that, for every Deployment in the namespace, writes the status the real controller
    would once its pods are up: ``observedGeneration`` = ``metadata.generation``, ``replicas``,
    ``updatedReplicas``, ``readyReplicas`` and ``availableReplicas`` = ``spec.replicas``
    (the API server's default 1 when unset), conditions ``Available`` and ``Progressing``
    (reason ``NewReplicaSetAvailable``). A Deployment named in :meth:`hold` has its generation
    observed and its pods created, but none ever becomes ready (a crash-looping image): 0 ready,
    0 available, ``Available=False`` (``MinimumReplicasUnavailable``), ``Progressing=True``
    (``ReplicaSetUpdated``). Status is written only when it differs, as the controller does.
    """

    def __init__(self, kube: KubeClient, namespace: str = NAMESPACE) -> None:
        self.kube = kube
        self.namespace = namespace
        self.held: set[str] = set()
        self.gave_up: set[str] = set()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> DeploymentController:
        self.thread.start()
        return self

    def hold(self, *names: str) -> None:
        with self.lock:
            self.held.update(names)

    def release(self, *names: str) -> None:
        with self.lock:
            self.held.difference_update(names)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.sync()
            except Exception as error:  # keep going; the fixture asserts there were none
                self.errors.append(f"{type(error).__name__}: {error}")
            self.stop_event.wait(0.05)  # a controller's resync period, not a synchronisation

    def give_up(self, *names: str) -> None:
        """Held Deployments whose progress deadline passed: ``Progressing=False``, ProgressDeadlineExceeded."""
        with self.lock:
            self.held.update(names)
            self.gave_up.update(names)

    @staticmethod
    def status_for(deployment: dict[str, Any], *, ready: bool, gave_up: bool = False) -> dict[str, Any]:
        replicas = deployment["spec"].get("replicas")
        replicas = 1 if replicas is None else int(replicas)
        available = replicas if ready else 0
        complete = available >= replicas

        def cond(type_: str, status: bool, reason: str, message: str) -> dict[str, Any]:
            return {"type": type_, "status": "True" if status else "False", "reason": reason, "message": message}

        name = deployment["metadata"]["name"]
        return {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
            "unavailableReplicas": replicas - available,
            "conditions": [
                cond("Available", complete, "MinimumReplicasAvailable" if complete else "MinimumReplicasUnavailable",
                     "Deployment has minimum availability." if complete
                     else "Deployment does not have minimum availability."),
                cond("Progressing", False, "ProgressDeadlineExceeded",
                     f'ReplicaSet "{name}" has timed out progressing.') if gave_up and not complete else
                cond("Progressing", True, "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                     f'ReplicaSet "{name}" has successfully progressed.' if complete
                     else f'ReplicaSet "{name}" is progressing.'),
            ],
        }

    def sync(self) -> None:
        with self.lock:
            held, gave_up = set(self.held), set(self.gave_up)
        for deployment in self.kube.list("apps/v1", "Deployment", self.namespace):
            name = deployment["metadata"]["name"]
            wanted = self.status_for(deployment, ready=name not in held, gave_up=name in gave_up)
            current = deployment.get("status") or {}
            if all(current.get(key) == value for key, value in wanted.items()):
                continue
            try:
                self.kube.patch_status("apps/v1", "Deployment", self.namespace, name, {"status": wanted})
            except ApiError as error:
                if error.status != 404:  # deleted meanwhile
                    raise

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=15)


def available(obj: dict[str, Any] | None) -> bool:
    """The Deployment's current generation is observed and all its replicas are available."""
    if obj is None:
        return False
    status = obj.get("status") or {}
    replicas = obj["spec"].get("replicas")
    replicas = 1 if replicas is None else replicas
    return bool(status.get("observedGeneration") == obj["metadata"]["generation"]
                and status.get("availableReplicas", 0) >= replicas)


def stable_goes_and_comes_back(kube: KubeClient, deployments: DeploymentController, name: str = "iris") -> None:
    """The stable's pods go and come back: two status changes of its Deployment, each a nudge and a reconcile
    of the owner, seen through its Ready condition."""
    deployments.hold(f"{name}-stable")
    kube.wait_for(API, "ModelDeployment", NAMESPACE, name,
                  lambda o: condition(o, "Ready").get("reason") == "Unavailable", timeout=30)  # fmt: skip
    deployments.release(f"{name}-stable")
    kube.wait_for(API, "ModelDeployment", NAMESPACE, name,
                  lambda o: condition(o, "Ready").get("status") == "True", timeout=30)  # fmt: skip
