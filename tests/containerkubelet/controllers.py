"""The control plane's controllers a one-node cluster needs for the operator's children, played by the tests.

- :class:`JobController` — ``batch/v1`` Jobs: Pods from the template (``completions``,
  ``parallelism``; Indexed Jobs with the completion index as annotation, label, hostname and
  ``JOB_COMPLETION_INDEX``), then the Job's status from its Pods as the job controller writes it
  (active, ready, succeeded, failed, completedIndexes, startTime, completionTime; conditions
  SuccessCriteriaMet + Complete, or FailureTarget + Failed with BackoffLimitExceeded or
  DeadlineExceeded), and ``ttlSecondsAfterFinished`` as the TTL controller does.
- :class:`DeploymentController` — ``apps/v1`` Deployments: Pods per template hash, rolled out by
  the strategy (RollingUpdate with maxSurge/maxUnavailable, or Recreate), ``minReadySeconds``,
  and the Deployment's status (replicas, updated, ready, available, unavailable; conditions
  Available and Progressing, with ProgressDeadlineExceeded after ``progressDeadlineSeconds``).
  Deviation: the Pods belong to the Deployment directly; no ReplicaSet objects are written.
- :class:`Endpoints` — what Services and the Prometheus Operator make of ready Pods: the
  emulator's map of webhook Services to a ready Pod's address, and Prometheus' scrape jobs from the
  ServiceMonitors (their selectors, namespaces, ports, paths and ``relabelings``; labelled
  namespace, service, pod, container, endpoint and job as the Prometheus Operator labels them,
  by Prometheus' own relabelling). The scrape interval is the test Prometheus' (1 s).

A field these controllers cannot honour is refused by name in :attr:`errors`, never ignored.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from containerkubelet import podspec
from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient
from kubeemu.selectors import parse_label_dict
from promkit import Prometheus, pod_target, service_monitor_relabelling

Obj = dict[str, Any]
Job = tuple[str, list[dict[str, Any]], list[Obj]]  # a scrape job: name, relabel_configs, file_sd groups
INDEX = "batch.kubernetes.io/job-completion-index"
JOB_FIELDS = {"template", "completions", "parallelism", "completionMode", "backoffLimit", "activeDeadlineSeconds",
              "ttlSecondsAfterFinished", "selector", "manualSelector", "suspend", "podReplacementPolicy"}
# interval: the test Prometheus scrapes every 1 s
ENDPOINT_FIELDS = {"port", "path", "interval", "relabelings", "honorLabels"}
DEPLOYMENT_FIELDS = {"template", "replicas", "selector", "strategy", "minReadySeconds", "progressDeadlineSeconds",
                     "revisionHistoryLimit", "paused"}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owned(pods: Sequence[Obj], owner: Mapping[str, Any]) -> list[Obj]:
    uid = owner["metadata"]["uid"]
    return [p for p in pods if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
            and not p["metadata"].get("deletionTimestamp")]  # fmt: skip


def _ready(pod: Mapping[str, Any]) -> tuple[bool, str | None]:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True", condition.get("lastTransitionTime")
    return False, None


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _owner_ref(owner: Mapping[str, Any]) -> Obj:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}  # fmt: skip


class Loop:
    """A controller's resync loop in a thread; unexpected failures are kept in :attr:`errors`."""

    period = 0.25  # a controller's resync period, not a synchronisation

    def __init__(self, kube: KubeClient, namespaces: list[str]) -> None:
        self.kube = kube
        self.namespaces = namespaces
        self.errors: list[str] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)

    def start(self) -> Loop:
        self.thread.start()
        return self

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                for namespace in self.namespaces:
                    self.sync(namespace)
            except ApiError as error:
                if error.status not in (404, 409):  # gone or changed meanwhile: the next pass sees it
                    self.errors.append(f"{type(self).__name__}: {error}")
            except Exception as error:
                self.errors.append(f"{type(self).__name__}: {type(error).__name__}: {error}")
            self.stop_event.wait(self.period)

    def sync(self, namespace: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)

    def refuse(self, obj: Mapping[str, Any], path: str, why: str = "") -> None:
        text = (f"{obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}: the stand-in cannot "
                f"honour {path}" + (f": {why}" if why else ""))  # fmt: skip
        if text not in self.errors:
            self.errors.append(text)

    def delete_pod(self, pod: Obj) -> None:
        try:
            self.kube.delete("v1", "Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
        except ApiError as error:
            if error.status != 404:  # gone already
                raise

    def write_status(self, obj: Mapping[str, Any], status: Obj) -> None:
        if all((obj.get("status") or {}).get(k) == v for k, v in status.items()) and set(
            obj.get("status") or {}
        ) <= set(status):
            return
        body = {**obj, "status": status}
        self.kube.replace_status(body)


class JobController(Loop):
    """See the module docstring."""

    def __init__(self, kube: KubeClient, namespaces: list[str]) -> None:
        super().__init__(kube, namespaces)
        self.finished_at: dict[str, float] = {}

    def sync(self, namespace: str) -> None:
        pods = self.kube.list("v1", "Pod", namespace)
        for job in self.kube.list("batch/v1", "Job", namespace):
            job.setdefault("apiVersion", "batch/v1")
            job.setdefault("kind", "Job")
            self._job(job, _owned(pods, job))

    def _job(self, job: Obj, pods: list[Obj]) -> None:
        spec, status = job["spec"], dict(job.get("status") or {})
        for key, value in spec.items():
            if key not in JOB_FIELDS and podspec._present(value):  # one notion of "set"
                self.refuse(job, f"spec.{key}")
                return
        if spec.get("suspend"):
            self.refuse(job, "spec.suspend")
            return
        conditions = {c["type"]: c for c in status.get("conditions") or [] if c.get("status") == "True"}
        uid = job["metadata"]["uid"]
        if "Complete" in conditions or "Failed" in conditions:
            ttl = spec.get("ttlSecondsAfterFinished")
            finished = self.finished_at.setdefault(uid, time.monotonic())
            if ttl is not None and time.monotonic() - finished >= float(ttl):
                self.kube.delete("batch/v1", "Job", job["metadata"]["namespace"], job["metadata"]["name"],
                                 propagation_policy="Background")  # fmt: skip
            return
        indexed = spec.get("completionMode") == "Indexed"
        completions = int(spec.get("completions") or 1)
        parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
        restart_policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy", "Always")
        if restart_policy not in ("Never", "OnFailure"):
            self.refuse(job, "spec.template.spec.restartPolicy", f"{restart_policy!r}: Jobs need Never or OnFailure")
            return
        active = [p for p in pods if _phase(p) in ("Pending", "Running")]
        succeeded = [p for p in pods if _phase(p) == "Succeeded"]
        failed = [p for p in pods if _phase(p) == "Failed"]
        failures = len(failed) + sum(
            int(s.get("restartCount", 0)) for p in pods for s in (p.get("status") or {}).get("containerStatuses") or []
        )
        done_indexes = sorted({int(p["metadata"]["annotations"][INDEX]) for p in succeeded}) if indexed else []
        done = len(done_indexes) if indexed else len(succeeded)
        start = status.get("startTime") or now()
        new: Obj = {
            "startTime": start, "active": len(active), "ready": sum(1 for p in active if _ready(p)[0]),
            "succeeded": done if indexed else len(succeeded), "failed": len(failed), "terminating": 0,
            "uncountedTerminatedPods": {},
        }  # fmt: skip
        if indexed:
            new["completedIndexes"] = _ranges(done_indexes)
        failure: tuple[str, str] | None = None
        if failures > int(spec.get("backoffLimit", 6)):
            failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        deadline = spec.get("activeDeadlineSeconds")
        started = datetime.datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        if deadline is not None and (datetime.datetime.now(datetime.UTC) - started).total_seconds() > float(deadline):
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        if failure is not None:
            for pod in active:
                self.delete_pod(pod)
            reason, message = failure
            new["active"], new["ready"] = 0, 0
            new["conditions"] = [_condition("FailureTarget", reason, message), _condition("Failed", reason, message)]
            self.write_status(job, new)
            return
        if done >= completions:
            new["active"], new["ready"] = 0, 0
            new["completionTime"] = now()
            new["conditions"] = [_condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of "
                                            "succeeded pods"), _condition("Complete", "CompletionsReached",
                                                                          "Reached expected number of succeeded pods")]
            self.write_status(job, new)
            return
        want = min(parallelism, completions - done) - len(active)
        if indexed:
            busy = {int(p["metadata"]["annotations"][INDEX]) for p in active} | set(done_indexes)
            for index in [i for i in range(completions) if i not in busy][: max(want, 0)]:
                self._create_pod(job, index)
        else:
            for _ in range(max(want, 0)):
                self._create_pod(job, None)
        self.write_status(job, new)

    def _create_pod(self, job: Obj, index: int | None) -> None:
        meta, template = job["metadata"], job["spec"]["template"]
        spec = json.loads(json.dumps(template.get("spec") or {}))
        labels = {**(template.get("metadata") or {}).get("labels", {}),
                  "batch.kubernetes.io/controller-uid": meta["uid"], "batch.kubernetes.io/job-name": meta["name"],
                  "controller-uid": meta["uid"], "job-name": meta["name"]}  # fmt: skip
        annotations = dict((template.get("metadata") or {}).get("annotations") or {})
        name = f"{meta['name']}-"
        if index is not None:
            labels[INDEX] = str(index)
            annotations[INDEX] = str(index)
            name = f"{meta['name']}-{index}-"
            spec.setdefault("hostname", f"{meta['name']}-{index}"[:63])
            for container in spec.get("containers") or []:
                env = container.setdefault("env", [])
                env.append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                    "fieldPath": f"metadata.annotations['{INDEX}']"}}})  # fmt: skip
        self.kube.create({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": name, "namespace": meta["namespace"], "labels": labels,
                         "annotations": annotations, "ownerReferences": [_owner_ref(job)]},
            "spec": spec,
        })  # fmt: skip



def _condition(type_: str, reason: str, message: str) -> Obj:
    return {"type": type_, "status": "True", "reason": reason, "message": message, "lastProbeTime": now(),
            "lastTransitionTime": now()}  # fmt: skip


def _ranges(indexes: Sequence[int]) -> str:
    """``0-2,4`` as the job controller writes completedIndexes."""
    out: list[str] = []
    for i in indexes:
        if out and "-" in out[-1] and int(out[-1].split("-")[1]) == i - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        elif out and "-" not in out[-1] and int(out[-1]) == i - 1:
            out[-1] = f"{out[-1]}-{i}"
        else:
            out.append(str(i))
    return ",".join(out)


def _scaled(value: Any, replicas: int, *, up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = replicas * float(value[:-1]) / 100
        return math.ceil(share) if up else math.floor(share)
    return int(value)


class DeploymentController(Loop):
    """See the module docstring."""

    def __init__(self, kube: KubeClient, namespaces: list[str]) -> None:
        super().__init__(kube, namespaces)
        self.progress: dict[str, tuple[Any, float, str]] = {}  # uid → (what was seen, when it changed, at)

    def sync(self, namespace: str) -> None:
        pods = self.kube.list("v1", "Pod", namespace)
        for deployment in self.kube.list("apps/v1", "Deployment", namespace):
            deployment.setdefault("apiVersion", "apps/v1")
            deployment.setdefault("kind", "Deployment")
            self._deployment(deployment, _owned(pods, deployment))

    @staticmethod
    def template_hash(template: Mapping[str, Any]) -> str:
        return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]

    def _available(self, pod: Mapping[str, Any], min_ready: float) -> bool:
        ready, since = _ready(pod)
        if not ready or since is None:
            return False
        when = datetime.datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        return (datetime.datetime.now(datetime.UTC) - when).total_seconds() >= min_ready

    def _deployment(self, deployment: Obj, pods: list[Obj]) -> None:
        spec = deployment["spec"]
        for key, value in spec.items():
            if key not in DEPLOYMENT_FIELDS and podspec._present(value):
                self.refuse(deployment, f"spec.{key}")
                return
        if spec.get("paused"):
            self.refuse(deployment, "spec.paused")
            return
        replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
        template_hash = self.template_hash(spec["template"])
        min_ready = float(spec.get("minReadySeconds") or 0)
        for pod in pods:
            if _phase(pod) in ("Succeeded", "Failed"):  # the ReplicaSet replaces pods that ended
                self.delete_pod(pod)
        pods = [p for p in pods if _phase(p) not in ("Succeeded", "Failed")]
        new = [p for p in pods if p["metadata"].get("labels", {}).get("pod-template-hash") == template_hash]
        old = [p for p in pods if p not in new]
        strategy = spec.get("strategy") or {}
        if strategy.get("type", "RollingUpdate") == "Recreate":
            if old:
                for pod in old:
                    self.delete_pod(pod)
            else:
                self._scale(deployment, new, replicas, template_hash)
        else:
            rolling = strategy.get("rollingUpdate") or {}
            surge = _scaled(rolling.get("maxSurge", "25%"), replicas, up=True)
            unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, up=False)
            if surge == 0 and unavailable == 0:
                unavailable = 1
            room = replicas + surge - len(pods)
            target = min(replicas, len(new) + max(room, 0)) if old else replicas
            self._scale(deployment, new, target, template_hash)
            available = [p for p in pods if self._available(p, min_ready)]
            removable = len(available) - (replicas - unavailable)
            for pod in sorted(old, key=lambda p: self._available(p, min_ready)):
                if not self._available(pod, min_ready):
                    self.delete_pod(pod)
                elif removable > 0:
                    self.delete_pod(pod)
                    removable -= 1
        self._status(deployment, pods, new, old, replicas, template_hash, min_ready)

    def _scale(self, deployment: Obj, new: list[Obj], target: int, template_hash: str) -> None:
        for _ in range(target - len(new)):
            self._create(deployment, template_hash)
        for pod in sorted(new, key=lambda p: _ready(p)[0])[: max(len(new) - target, 0)]:
            self.delete_pod(pod)

    def _create(self, deployment: Obj, template_hash: str) -> None:
        meta, template = deployment["metadata"], deployment["spec"]["template"]
        labels = {**(template.get("metadata") or {}).get("labels", {}), "pod-template-hash": template_hash}
        annotations = dict((template.get("metadata") or {}).get("annotations") or {})
        self.kube.create({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{meta['name']}-{template_hash}-", "namespace": meta["namespace"],
                         "labels": labels, "annotations": annotations,
                         "ownerReferences": [_owner_ref(deployment)]},
            "spec": json.loads(json.dumps(template.get("spec") or {})),
        })  # fmt: skip


    def _status(self, deployment: Obj, pods: list[Obj], new: list[Obj], old: list[Obj], replicas: int,
                template_hash: str, min_ready: float) -> None:  # fmt: skip
        name = f"{deployment['metadata']['name']}-{template_hash}"
        ready = sum(1 for p in pods if _ready(p)[0])
        available = sum(1 for p in pods if self._available(p, min_ready))
        updated_available = sum(1 for p in new if self._available(p, min_ready))
        rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, up=False)
        complete = len(new) == replicas and updated_available == replicas and not old
        uid = deployment["metadata"]["uid"]
        seen = (template_hash, len(new), updated_available, len(old))
        previous = self.progress.get(uid)
        if previous is None or previous[0] != seen:
            self.progress[uid] = (seen, time.monotonic(), now())
        _, changed, changed_at = self.progress[uid]
        deadline = float(deployment["spec"].get("progressDeadlineSeconds", 600))

        def cond(type_: str, ok: bool, reason: str, message: str) -> Obj:
            text = "True" if ok else "False"
            before = next((c for c in (deployment.get("status") or {}).get("conditions") or []
                           if c["type"] == type_), None)  # fmt: skip
            since = before["lastTransitionTime"] if before and before["status"] == text else now()
            return {"type": type_, "status": text, "reason": reason, "message": message,
                    "lastUpdateTime": changed_at, "lastTransitionTime": since}  # fmt: skip

        if complete:
            progressing = cond("Progressing", True, "NewReplicaSetAvailable",
                               f'ReplicaSet "{name}" has successfully progressed.')  # fmt: skip
        elif time.monotonic() - changed > deadline:
            progressing = cond("Progressing", False, "ProgressDeadlineExceeded",
                               f'ReplicaSet "{name}" has timed out progressing.')  # fmt: skip
        else:
            progressing = cond("Progressing", True, "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.')
        minimum = available >= replicas - max_unavailable
        status: Obj = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": len(pods), "updatedReplicas": len(new), "readyReplicas": ready,
            "availableReplicas": available, "unavailableReplicas": max(len(pods) - available, 0),
            "conditions": [
                cond("Available", minimum, "MinimumReplicasAvailable" if minimum else "MinimumReplicasUnavailable",
                     "Deployment has minimum availability." if minimum
                     else "Deployment does not have minimum availability."),
                progressing,
            ],
        }  # fmt: skip
        if not pods:
            status = {k: v for k, v in status.items() if k not in ("readyReplicas", "availableReplicas",
                                                                   "unavailableReplicas")} | {"replicas": 0}
        self.write_status(deployment, status)


def _selected(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    if not selector:
        return False
    requirements = parse_label_dict(selector.get("matchLabels"), selector.get("matchExpressions"))
    return all(r.matches(labels) for r in requirements)


class Endpoints(Loop):
    """See the module docstring (webhook Services and Prometheus' targets)."""

    def __init__(self, kube: KubeClient, namespaces: list[str], emulator: Emulator,
                 prometheus: Prometheus | None) -> None:  # fmt: skip
        super().__init__(kube, namespaces)
        self.emulator = emulator
        self.prometheus = prometheus
        self.jobs: list[Job] | None = None
        self._jobs: dict[str, list[Job]] = {}

    def sync(self, namespace: str) -> None:
        pods = [p for p in self.kube.list("v1", "Pod", namespace)
                if _phase(p) == "Running" and (p.get("status") or {}).get("podIP")]  # fmt: skip
        services = self.kube.list("v1", "Service", namespace)
        for service in services:
            self._webhook(service, pods)
        jobs: list[Job] = []
        for monitor in self.kube.list("monitoring.coreos.com/v1", "ServiceMonitor", namespace):
            jobs += self._monitor(monitor, services, pods)
        self._jobs[namespace] = jobs
        if namespace == self.namespaces[-1]:
            everything = [job for ns in self.namespaces for job in self._jobs.get(ns, [])]
            if everything != self.jobs:
                self.jobs = everything
                if self.prometheus is not None:
                    self.prometheus.set_jobs(everything)

    @staticmethod
    def _target_port(service_port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
        target = service_port.get("targetPort", service_port["port"])
        container = pod["spec"]["containers"][0]
        try:
            return podspec.port_number(container, target, "targetPort")
        except podspec.UnsupportedFieldError:
            return None

    def _webhook(self, service: Obj, pods: list[Obj]) -> None:
        """The emulator calls a webhook Service (port 443, else its first port) at a ready pod behind it."""
        meta = service["metadata"]
        key = (meta["namespace"], meta["name"])
        ports = (service.get("spec") or {}).get("ports") or []
        port = next((p for p in ports if p["port"] == 443), ports[0] if ports else None)
        selector = (service.get("spec") or {}).get("selector")
        ready = [p for p in pods if selector and _ready(p)[0]
                 and all(p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]  # fmt: skip
        number = self._target_port(port, ready[0]) if port and ready else None
        if number is None:
            self.emulator.webhook_services.pop(key, None)
        else:
            self.emulator.webhook_services[key] = f"https://{ready[0]['status']['podIP']}:{number}"

    def _monitor(self, monitor: Obj, services: list[Obj], pods: list[Obj]) -> list[Job]:
        """One scrape job per endpoint of the ServiceMonitor, as the Prometheus Operator generates it: the
        pods behind the selected Services as targets with Kubernetes discovery's meta labels, and the
        Operator's relabelling (namespace, service, pod, container, job, endpoint), then the endpoint's own
        ``relabelings``, done by Prometheus."""
        spec = monitor.get("spec") or {}
        meta = monitor["metadata"]
        names = (spec.get("namespaceSelector") or {}).get("matchNames")
        if names and meta["namespace"] not in names:
            return []  # Services of other namespaces are another namespace's sync
        jobs: list[Job] = []
        for index, endpoint in enumerate(spec.get("endpoints") or []):
            unknown = set(endpoint) - ENDPOINT_FIELDS
            if unknown:
                self.refuse(monitor, f"spec.endpoints[{index}].{sorted(unknown)[0]}")
                continue
            groups: list[Obj] = []
            for service in services:
                if not _selected(spec.get("selector"), service["metadata"].get("labels") or {}):
                    continue
                port = next((p for p in service["spec"].get("ports") or [] if p.get("name") == endpoint.get("port")),
                            None)  # fmt: skip
                selector = (service.get("spec") or {}).get("selector") or {}
                for pod in pods:
                    labels = pod["metadata"].get("labels") or {}
                    if port is None or not selector or any(labels.get(k) != v for k, v in selector.items()):
                        continue
                    number = self._target_port(port, pod)
                    if number is None:
                        continue
                    group = pod_target(f"{pod['status']['podIP']}:{number}", namespace=meta["namespace"],
                                       service=service["metadata"]["name"], pod=pod["metadata"]["name"],
                                       labels=labels)  # fmt: skip
                    group["labels"]["__meta_kubernetes_pod_container_name"] = pod["spec"]["containers"][0]["name"]
                    group["labels"]["__metrics_path__"] = str(endpoint.get("path", "/metrics"))
                    groups.append(group)
            operator_labels = [
                {"sourceLabels": ["__meta_kubernetes_pod_container_name"], "targetLabel": "container"},
                {"sourceLabels": ["__meta_kubernetes_service_name"], "targetLabel": "job"},
                {"targetLabel": "endpoint", "replacement": str(endpoint.get("port"))},
            ]
            relabelling = service_monitor_relabelling(operator_labels + list(endpoint.get("relabelings") or []))
            name = f"serviceMonitor/{meta['namespace']}/{meta['name']}/{index}"
            # honorLabels: the scraped series keep their own namespace, job… labels.
            if endpoint.get("honorLabels") and self.prometheus is not None:
                self.prometheus.honor_labels.add(name)
            jobs.append((name, relabelling, groups))
        return jobs
