"""The kubelet of a one-node cluster, played by the tests with real containers.

:class:`Kubelet` watches (by listing) the Pods of the namespaces it was given and runs each one
as containers from its image, with the Docker engine: a sandbox container holds the pod's
network (its IP stays across restarts, as a pod sandbox's does) and the pod's container joins
it. The pod spec is honoured as the kubelet honours it (see :mod:`containerkubelet.podspec` for
what, field by field): command and args, env and envFrom, volumes (configMap, secret, emptyDir,
persistentVolumeClaim as a host directory per claim, and the service account's token),
securityContext (user, group, fsGroup, read-only root, capabilities, no privilege escalation,
seccomp), memory and CPU limits, the termination message file, startup, readiness and liveness
probes (HTTP, TCP, exec), restarts with the kubelet's back-off, deletion with the grace period,
and the container's output as ``pods/{name}/log`` (the emulator serves what the kubelet copies).
Status goes back to the API as the kubelet writes it: phase, conditions, pod IP, each
container's state (waiting, running, terminated with exit code, reason and message), last
state, readiness and restart count.

A field it cannot honour is never ignored: the pod's container waits with reason
``CreateContainerConfigError`` naming the field, and the message is kept in :attr:`Kubelet.errors`
(the tests fail on it). Each pod is handled by its own :class:`PodWorker` thread.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from containerkubelet import docker, podspec
from containerkubelet.containers import Containers
from containerkubelet.podspec import NotReadyError, Obj, Probe, RunAs, UnsupportedFieldError
from containerkubelet.volumes import Volumes
from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient
from kubeemu.emulator import InCluster

LABEL = "io.modelops.test-kubelet"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_MESSAGE = 4096  # bytes of a termination message the kubelet keeps
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048  # FallbackToLogsOnError: the tail of the log
BACKOFF_BASE, BACKOFF_MAX = 10.0, 300.0  # the kubelet's crash-loop back-off
LOG_PERIOD = 2.0  # how often a running container's log is copied to what pods/log serves


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _docker_time(value: str | None) -> str | None:
    """Docker's RFC 3339 nanosecond time as the API's seconds."""
    if not value or value.startswith("0001-"):
        return None
    return value.split(".")[0].rstrip("Z") + "Z"


@dataclass
class ProbeState:
    """One probe's schedule and its consecutive results."""

    probe: Probe
    due: float
    successes: int = 0
    failures: int = 0
    result: bool | None = None  # None: not decided yet


@dataclass
class Running:
    """The container as this worker started it."""

    id: str
    name: str
    started: float
    termination: Path
    probes: dict[str, ProbeState] = field(default_factory=dict)
    started_ok: bool = False  # the startup probe succeeded (or there is none)
    ready: bool = False
    killed_by: str | None = None  # the liveness or startup probe that killed it


class PodWorker(threading.Thread):
    """Runs one pod: its sandbox, its container, probes and restarts; writes its status."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}-{meta['name']}", daemon=True)
        self.kubelet = kubelet
        self.kube = KubeClient(kubelet.emulator.url)
        self.pod = podspec.with_defaults(pod)
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = kubelet.workdir / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.stopping = threading.Event()
        self.sandbox: str | None = None
        self.ip: str | None = None
        self.running: Running | None = None
        self.restarts = 0
        self.last_terminated: Obj | None = None
        self.terminated: Obj | None = None  # the current container's end, while it is not restarted
        self.waiting: tuple[str, str] | None = ("ContainerCreating", "")
        self.next_start = 0.0
        self.next_log = 0.0
        self.done = False  # terminal phase reached
        self.started_at = now()
        self.written: Obj | None = None
        self.conditions_since: dict[str, tuple[str, str]] = {}
        self.evicted: str | None = None
        self.pod_failure: tuple[str, str] | None = None  # the kubelet ended the pod (deadline, eviction)
        self.mounts: list[str] = []
        self.env: dict[str, str] = {}
        self.empty_dirs: list[tuple[Path, float]] = []  # disk-backed emptyDirs with a sizeLimit
        self.container: Obj = self.pod["spec"]["containers"][0] if self.pod["spec"].get("containers") else {}
        self.run_as = RunAs(None, None, (), False)
        self.probe_specs: dict[str, Probe | None] = {}

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as error:  # the test reads the errors; the pod stays as it was
            self.kubelet.fail(f"pod {self.namespace}/{self.name}: {type(error).__name__}: {error}")
        finally:
            self._cleanup()

    def _run(self) -> None:
        spec = self.pod["spec"]
        try:
            podspec.check(self.pod, self.kubelet.labels)
            self.run_as = podspec.run_as(spec, self.container)
            self.probe_specs = {
                name: podspec.probe(self.container, name, "spec.containers[0]")
                for name in ("startupProbe", "readinessProbe", "livenessProbe")
            }
        except UnsupportedFieldError as error:
            self.kubelet.fail(f"pod {self.namespace}/{self.name}: {error}")
            self.waiting = ("CreateContainerConfigError", str(error))
            self._write_status()
            self.stopping.wait()
            return
        while not self.stopping.is_set():
            try:
                self._prepare()
                break
            except NotReadyError as error:
                self.waiting = (error.reason, error.message)
                self._write_status()
                self.stopping.wait(1.0)  # a retry period, as the kubelet's pod sync
        while not self.stopping.is_set() and not self.done:
            self._step()
            self._write_status()
            self.stopping.wait(0.25)  # the worker's resync period

    def _prepare(self) -> None:
        """Volumes, the service account's token, the sandbox: once, before the first start."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mounts = self.kubelet.volumes.mounts(self)
        if self.sandbox is None:
            pause = self.kubelet.pause_image
            self.sandbox = docker.run([
                "--name", f"k8s_POD_{self.name}_{self.namespace}_{self.uid[:8]}",
                "--label", f"{LABEL}={self.kubelet.id}", "--hostname", self.name[:63],
                "--network", docker.BRIDGE, "--ipc", "shareable", "--read-only", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges", "--user", "65535:65535", "--memory", "32m",
                "--entrypoint", "sleep", pause, "infinity",
            ])  # fmt: skip
            info = docker.inspect(self.sandbox) or {}
            self.ip = str(((info.get("NetworkSettings") or {}).get("IPAddress")) or "") or None
        if self.run_as.non_root:
            self._verify_non_root()

    def _verify_non_root(self) -> None:
        uid = self.run_as.user
        if uid is None:
            config = (docker.image(self.container["image"]) or {}).get("Config") or {}
            uid, _, text = podspec.image_user(str(config.get("User") or ""))
            if uid is None:
                raise NotReadyError("CreateContainerConfigError", "container has runAsNonRoot and image has "
                                    f"non-numeric user ({text}), cannot verify user is non-root")
        if uid == 0:
            raise NotReadyError("CreateContainerConfigError", "container has runAsNonRoot and image will run as root")

    def _step(self) -> None:
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        if deadline and time.monotonic() - self.kubelet.seen[self.uid] > float(deadline):
            self._end_pod("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
            return
        if self.evicted:
            self._end_pod("Evicted", self.evicted)
            return
        if self.running is None:
            if self.terminated is not None and not self._restarts_after(self.terminated):
                self.done = True
                return
            if time.monotonic() >= self.next_start:
                self._start()
            return
        info = docker.inspect(self.running.id)
        state = (info or {}).get("State") or {}
        if info is None or not state.get("Running"):
            self._exited(info)
            return
        if time.monotonic() >= self.next_log:
            self._serve_log(docker.logs(self.running.id))
        self._probe()

    def _serve_log(self, text: str) -> None:
        """What ``pods/{name}/log`` answers: the current container's output (refreshed every few seconds)."""
        self.next_log = time.monotonic() + LOG_PERIOD
        with contextlib.suppress(Exception):  # the pod may be gone meanwhile
            self.kubelet.emulator.set_container_log(self.namespace, self.name, self.container["name"], text)

    # --- starting and ending containers -------------------------------------------------------------

    def _start(self) -> None:
        try:
            args, self.env = self.kubelet.containers.run_args(self)
        except NotReadyError as error:
            self.waiting = (error.reason, error.message)
            self.next_start = time.monotonic() + 1.0
            return
        termination = self.dir / f"termination-{self.restarts}"
        termination.write_text("")
        termination.chmod(0o666)  # written by whatever user the container runs as
        image = self.container["image"]
        if self.container.get("imagePullPolicy") == "Always" or docker.image(image) is None:
            # No registry answers here: a pull can only fail.
            self.waiting = ("ErrImagePull", f'failed to pull image "{image}": no registry is reachable from this node')
            self.next_start = time.monotonic() + 5.0
            return
        name = f"k8s_{self.container['name']}_{self.name}_{self.namespace}_{self.uid[:8]}_{self.restarts}"
        command, entry = self.kubelet.containers.command(self)
        try:
            container_id = docker.run([
                "--name", name, "--label", f"{LABEL}={self.kubelet.id}",
                "--network", f"container:{self.sandbox}", "--ipc", f"container:{self.sandbox}",
                *args, "-v", f"{termination}:{self.container['terminationMessagePath']}",
                *entry, image, *command,
            ])  # fmt: skip
        except docker.DockerError as error:
            self.terminated = {"exitCode": 128, "reason": "ContainerCannotRun", "message": str(error)[:MAX_MESSAGE],
                               "startedAt": now(), "finishedAt": now()}  # fmt: skip
            self.waiting = None
            self.next_start = time.monotonic() + self._backoff()
            return
        started = time.monotonic()
        self.running = Running(container_id, name, started, termination)
        for probe_name, spec in self.probe_specs.items():
            if spec is not None:
                self.running.probes[probe_name] = ProbeState(spec, started + spec.initial_delay)
        self.running.started_ok = self.probe_specs["startupProbe"] is None
        self.running.ready = False
        self.waiting = None
        self.terminated = None

    def _backoff(self) -> float:
        return min(BACKOFF_BASE * 2 ** max(self.restarts - 1, 0), BACKOFF_MAX)

    def _restarts_after(self, terminated: Mapping[str, Any]) -> bool:
        policy = self.pod["spec"]["restartPolicy"]
        return policy == "Always" or (policy == "OnFailure" and terminated.get("exitCode") != 0)

    def _exited(self, info: Mapping[str, Any] | None) -> None:
        assert self.running is not None
        running, state = self.running, (info or {}).get("State") or {}
        code = int(state.get("ExitCode", 137) if info is not None else 137)
        logs = docker.logs(running.id)
        (self.dir / f"{self.container['name']}-{self.restarts}.log").write_text(logs)
        self._serve_log(logs)
        message = running.termination.read_bytes()[:MAX_MESSAGE].decode(errors="replace")
        if not message and code != 0 and self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = "\n".join(logs.splitlines()[-FALLBACK_LINES:])[-FALLBACK_BYTES:]
        reason = "OOMKilled" if state.get("OOMKilled") else "Completed" if code == 0 else "Error"
        terminated: Obj = {
            "exitCode": code, "reason": reason, "startedAt": _docker_time(state.get("StartedAt")) or now(),
            "finishedAt": _docker_time(state.get("FinishedAt")) or now(), "containerID": f"docker://{running.id}",
        }  # fmt: skip
        if message:
            terminated["message"] = message
        docker.remove(running.id)
        self.running = None
        self.terminated = terminated
        if self._restarts_after(terminated):
            self.next_start = time.monotonic() + self._backoff()
            self.last_terminated = terminated
            self.restarts += 1
            self.waiting = ("CrashLoopBackOff", f"back-off {self._backoff():g}s restarting failed "
                                                f"container={self.container['name']} pod={self.name}_{self.namespace}")
        else:
            self.done = True

    def _kill(self, grace: int) -> None:
        if self.running is not None:
            docker.stop(self.running.id, grace)

    def _end_pod(self, reason: str, message: str) -> None:
        """The kubelet ends the pod (active deadline, eviction): containers killed, phase Failed."""
        self._kill(int(self.pod["spec"]["terminationGracePeriodSeconds"]))
        if self.running is not None:
            self._exited(docker.inspect(self.running.id))
        self.pod_failure = (reason, message)
        self.done = True

    # --- probes -----------------------------------------------------------------------------------

    def _probe(self) -> None:
        running = self.running
        assert running is not None
        clock = time.monotonic()
        for name, state in running.probes.items():
            if name != "startupProbe" and not running.started_ok:
                continue  # readiness and liveness wait for the startup probe
            if name == "startupProbe" and running.started_ok:
                continue
            if clock < state.due:
                continue
            state.due = clock + state.probe.period
            ok = self.kubelet.prober.run(state.probe, self.ip or "", running.id)
            if ok:
                state.successes, state.failures = state.successes + 1, 0
                if state.successes >= state.probe.success_threshold:
                    state.result = True
            else:
                state.failures, state.successes = state.failures + 1, 0
                if state.failures >= state.probe.failure_threshold:
                    state.result = False
            if name == "startupProbe" and state.result:
                running.started_ok = True
            elif name == "readinessProbe" and state.result is not None:
                running.ready = state.result
            elif name in ("livenessProbe", "startupProbe") and state.result is False:
                running.killed_by = name
                self.kubelet.event(self.pod, "Killing", f"Container {self.container['name']} failed {name[:-5]} "
                                                        f"probe, will be restarted")  # fmt: skip
                grace = state.probe.grace or int(self.pod["spec"]["terminationGracePeriodSeconds"])
                self._kill(int(grace))
                return
        if running.probes.get("readinessProbe") is None and running.started_ok:
            running.ready = True

    # --- status -----------------------------------------------------------------------------------

    def _container_status(self) -> Obj:
        image = self.container["image"]
        status: Obj = {"name": self.container["name"], "image": image, "imageID": "", "restartCount": self.restarts,
                       "ready": False, "started": False}  # fmt: skip
        if self.running is not None:
            status["state"] = {"running": {"startedAt": self.running_started}}
            status["containerID"] = f"docker://{self.running.id}"
            status["ready"] = self.running.ready
            status["started"] = self.running.started_ok
        elif self.waiting is not None:
            status["state"] = {"waiting": {"reason": self.waiting[0], **({"message": self.waiting[1]}
                                                                          if self.waiting[1] else {})}}  # fmt: skip
        elif self.terminated is not None:
            status["state"] = {"terminated": self.terminated}
        else:
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        if self.last_terminated is not None:
            status["lastState"] = {"terminated": self.last_terminated}
        found = docker.image(image)
        if found:
            status["imageID"] = f"docker://{found['Id']}"
        return status

    @property
    def running_started(self) -> str:
        assert self.running is not None
        info = docker.inspect(self.running.id) or {}
        return _docker_time((info.get("State") or {}).get("StartedAt")) or now()

    def _phase(self) -> str:
        if self.pod_failure is not None:
            return "Failed"
        if self.done and self.terminated is not None:
            return "Succeeded" if self.terminated.get("exitCode") == 0 else "Failed"
        if self.running is not None or self.restarts > 0:
            return "Running"
        return "Pending"

    def _condition(self, type_: str, value: bool, reason: str = "") -> Obj:
        text = "True" if value else "False"
        previous = self.conditions_since.get(type_)
        if previous is None or previous[0] != text:
            self.conditions_since[type_] = (text, now())
        item: Obj = {"type": type_, "status": text, "lastProbeTime": None,
                     "lastTransitionTime": self.conditions_since[type_][1]}  # fmt: skip
        if reason:
            item["reason"] = reason
        return item

    def status(self) -> Obj:
        container = self._container_status()
        ready = bool(container["ready"])
        phase = self._phase()
        terminal = phase in ("Succeeded", "Failed")
        why = "" if ready else ("PodCompleted" if terminal else "ContainersNotReady")
        status: Obj = {
            "phase": phase,
            "conditions": [
                self._condition("PodReadyToStartContainers", self.sandbox is not None and not terminal),
                self._condition("Initialized", True),
                self._condition("Ready", ready, why),
                self._condition("ContainersReady", ready, why),
                self._condition("PodScheduled", True),
            ],
            "hostIP": self.kubelet.host_ip, "hostIPs": [{"ip": self.kubelet.host_ip}],
            "startTime": self.started_at,
            "containerStatuses": [container],
            "qosClass": podspec.qos_class(self.container),
        }  # fmt: skip
        if self.ip:
            status["podIP"], status["podIPs"] = self.ip, [{"ip": self.ip}]
        if self.pod_failure is not None:
            status["reason"], status["message"] = self.pod_failure
        return status

    def _write_status(self) -> None:
        wanted = self.status()
        if wanted == self.written:
            return
        for _ in range(5):
            try:
                current = self.kube.get("v1", "Pod", self.namespace, self.name)
            except ApiError as error:
                if error.status == 404:
                    self.stopping.set()
                    return
                raise
            if current["metadata"]["uid"] != self.uid:
                self.stopping.set()
                return
            current["status"] = wanted
            try:
                self.kube.replace_status(current)
            except ApiError as error:
                if error.status in (404, 409):
                    continue
                raise
            self.written = wanted
            return

    # --- the end ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """The pod was deleted: containers get SIGTERM and the grace period, then go."""
        self.stopping.set()

    def _cleanup(self) -> None:
        self.stopping.wait()
        if self.running is not None:
            docker.stop(self.running.id, int(self.pod["spec"]["terminationGracePeriodSeconds"]))
            with contextlib.suppress(OSError):
                (self.dir / f"{self.container['name']}-{self.restarts}.log").write_text(docker.logs(self.running.id))
            docker.remove(self.running.id)
        if self.sandbox is not None:
            docker.remove(self.sandbox)


class Prober:
    """Runs probes against a pod's address (HTTP, TCP) or in its container (exec)."""

    def run(self, probe: Probe, ip: str, container: str) -> bool:
        if probe.kind == "exec":
            return docker.exec_(container, probe.command, probe.timeout) == 0
        if probe.kind == "tcpSocket":
            try:
                with socket.create_connection((ip, int(probe.port or 0)), timeout=probe.timeout):
                    return True
            except OSError:
                return False
        scheme = probe.scheme.lower()
        request = urllib.request.Request(f"{scheme}://{ip}:{probe.port}{probe.path}", headers=dict(probe.headers))
        request.add_header("User-Agent", "kube-probe/1.33")
        context = ssl._create_unverified_context() if scheme == "https" else None  # the kubelet does not verify
        try:
            with urllib.request.urlopen(request, timeout=probe.timeout, context=context) as answer:
                return 200 <= answer.status < 400
        except urllib.error.HTTPError as error:
            return 200 <= error.code < 400
        except (OSError, ValueError):
            return False


class Kubelet:
    """The node: pod workers for the pods of ``namespaces``; see the module docstring."""

    def __init__(
        self, emulator: Emulator, *, api: InCluster, namespaces: list[str], workdir: Path, pvc_root: Path,
        pause_image: str, name: str = "node-1",
    ) -> None:  # fmt: skip
        self.emulator = emulator
        self.kube = KubeClient(emulator.url)
        self.api = api
        self.namespaces = namespaces
        self.workdir = workdir
        self.pvc_root = pvc_root
        self.pause_image = pause_image
        self.name = name
        self.id = f"{name}-{os.getpid()}-{id(self):x}"
        self.labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        self.host_ip = docker.bridge_gateway()
        self.capacity = {"cpu": float(os.cpu_count() or 1), "memory": float(os.sysconf("SC_PAGE_SIZE")
                                                                            * os.sysconf("SC_PHYS_PAGES"))}  # fmt: skip
        self.volumes = Volumes(self)
        self.containers = Containers(self)
        self.prober = Prober()
        self.workers: dict[str, PodWorker] = {}
        self.seen: dict[str, float] = {}
        self.errors: list[str] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> Kubelet:
        self.thread.start()
        return self

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        """A core (v1) object of the namespace, or None when there is none."""
        try:
            return self.kube.get("v1", kind, namespace, name)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def fail(self, message: str) -> None:
        self.errors.append(message)

    def event(self, pod: Mapping[str, Any], reason: str, message: str) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            self.kube.create({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                   "namespace": meta["namespace"], "uid": meta["uid"]},
                "reason": reason, "message": message, "type": "Warning" if reason != "Started" else "Normal",
                "source": {"component": "kubelet", "host": self.name}, "firstTimestamp": now(), "lastTimestamp": now(),
                "count": 1,
            })  # fmt: skip

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.sync()
            except Exception as error:  # keep the node up; the test reads the errors
                self.fail(f"kubelet sync: {type(error).__name__}: {error}")
            self.stop_event.wait(0.25)  # the kubelet's resync period, not a synchronisation

    def sync(self) -> None:
        alive: set[str] = set()
        for namespace in self.namespaces:
            for pod in self.kube.list("v1", "Pod", namespace):
                uid = pod["metadata"]["uid"]
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                alive.add(uid)
                if uid not in self.workers:
                    self.seen[uid] = time.monotonic()
                    worker = PodWorker(self, pod)
                    self.workers[uid] = worker
                    worker.start()
        for uid, worker in list(self.workers.items()):
            if uid not in alive:
                worker.stop()
                if not worker.is_alive():
                    del self.workers[uid]
        self.volumes.check_limits(self.workers.values())

    def worker(self, namespace: str, name: str) -> PodWorker | None:
        for worker in list(self.workers.values()):
            if (worker.namespace, worker.name) == (namespace, name) and not worker.stopping.is_set():
                return worker
        return None

    def logs(self, namespace: str, name: str) -> str:
        """Everything the pod's containers wrote (ended ones from the files kept, the running one from Docker)."""
        worker = self.worker(namespace, name)
        if worker is None:
            return ""
        texts = [p.read_text() for p in sorted(worker.dir.glob("*.log"))]
        if worker.running is not None:
            texts.append(docker.logs(worker.running.id))
        return "\n".join(texts)

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        for worker in list(self.workers.values()):
            worker.stop()
        for worker in list(self.workers.values()):
            worker.join(timeout=120)
        for container in docker.containers(f"{LABEL}={self.id}"):
            docker.remove(container)
