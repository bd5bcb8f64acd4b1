"""A pod's container spec as the arguments of ``docker run``.

- the process: ``command`` replaces the image's ENTRYPOINT (and drops its CMD), ``args`` replace
  its CMD, both ``$(VAR)``-expanded; ``workingDir``;
- the environment: the ``kubernetes`` Service's variables (pointing at the emulator's in-cluster
  listener), the namespace's Service links (``enableServiceLinks``), ``envFrom``, ``env``
  (:func:`containerkubelet.podspec.environment`);
- who runs it: ``runAsUser``/``runAsGroup`` (else the image's USER), ``fsGroup`` and
  ``supplementalGroups`` as supplementary groups;
- confinement: ``readOnlyRootFilesystem`` (``--read-only``), ``capabilities`` drop and add,
  ``allowPrivilegeEscalation: false`` (no_new_privs), ``privileged``, ``seccompProfile``
  (Docker's default profile is the runtime default);
- resources: ``limits.memory`` (no swap beyond it: an excess is an OOM kill), ``limits.cpu``
  (a CFS quota), ``requests.cpu`` (CPU shares, as the kubelet computes them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from containerkubelet import docker, podspec

if TYPE_CHECKING:
    from containerkubelet.kubelet import Kubelet, PodWorker


class Containers:
    """Turns a worker's pod into ``docker run`` arguments; see the module docstring."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet

    def environment(self, worker: PodWorker) -> dict[str, str]:
        api = self.kubelet.api
        base = {
            "KUBERNETES_SERVICE_HOST": api.host, "KUBERNETES_SERVICE_PORT": str(api.port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(api.port), "KUBERNETES_PORT": f"tcp://{api.host}:{api.port}",
            f"KUBERNETES_PORT_{api.port}_TCP": f"tcp://{api.host}:{api.port}",
            f"KUBERNETES_PORT_{api.port}_TCP_PROTO": "tcp", f"KUBERNETES_PORT_{api.port}_TCP_PORT": str(api.port),
            f"KUBERNETES_PORT_{api.port}_TCP_ADDR": api.host,
        }  # fmt: skip
        if worker.pod["spec"].get("enableServiceLinks", True):
            services = self.kubelet.kube.list("v1", "Service", worker.namespace)
            base = {**podspec.service_links(services), **base}
        pod = {**worker.pod, "status": {"podIP": worker.ip, "hostIP": self.kubelet.host_ip}}
        container = worker.pod["spec"]["containers"][0]
        def lookup(kind: str, name: str) -> podspec.Obj | None:
            return self.kubelet.get(kind, worker.namespace, name)

        return podspec.environment(pod, container, lookup, base, self.kubelet.capacity)

    def run_args(self, worker: PodWorker) -> tuple[list[str], dict[str, str]]:
        """``docker run`` options (not the image and command) and the environment they carry."""
        spec, container = worker.pod["spec"], worker.pod["spec"]["containers"][0]
        env = self.environment(worker)
        args: list[str] = []
        run_as: podspec.RunAs = worker.run_as
        if run_as.user is not None or run_as.group is not None:
            uid = run_as.user
            if uid is None:  # a group without a user: the image's user keeps running
                config = (docker.image(container["image"]) or {}).get("Config") or {}
                uid = podspec.image_user(str(config.get("User") or ""))[0] or 0
            # Without runAsGroup the user's group comes from the image's /etc/passwd (else 0), as with CRI.
            args += ["--user", f"{uid}" if run_as.group is None else f"{uid}:{run_as.group}"]
        for group in run_as.groups:
            args += ["--group-add", str(group)]
        pod_ctx, ctx = spec.get("securityContext") or {}, container.get("securityContext") or {}
        if ctx.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        capabilities = ctx.get("capabilities") or {}
        for cap in capabilities.get("drop") or []:
            args += ["--cap-drop", str(cap)]
        for cap in capabilities.get("add") or []:
            args += ["--cap-add", str(cap)]
        if ctx.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if ctx.get("privileged"):
            args.append("--privileged")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined":
            args += ["--security-opt", "seccomp=unconfined"]
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        if "memory" in limits:
            memory = str(int(podspec.quantity(limits["memory"])))
            args += ["--memory", memory, "--memory-swap", memory]
        if "cpu" in limits:
            args += ["--cpus", f"{podspec.quantity(limits['cpu']):.3f}"]
        cpu_request = requests.get("cpu", limits.get("cpu"))
        if cpu_request is not None:
            args += ["--cpu-shares", str(max(2, int(podspec.quantity(cpu_request) * 1024)))]
        if container.get("workingDir"):
            args += ["--workdir", str(container["workingDir"])]
        for name, value in env.items():
            args += ["-e", f"{name}={value}"]
        args += worker.mounts
        return args, env

    def command(self, worker: PodWorker) -> tuple[list[str], list[str]]:
        """(what follows the image in ``docker run``, the ``--entrypoint`` option or nothing)."""
        container = worker.pod["spec"]["containers"][0]
        env = worker.env
        command = [podspec.expand(str(c), env) for c in container.get("command") or []]
        args = [podspec.expand(str(a), env) for a in container.get("args") or []]
        if command:
            # --entrypoint takes one word; the rest of the command goes before the args. An entrypoint
            # given drops the image's CMD, as a pod's command does.
            return [*command[1:], *args], ["--entrypoint", command[0]]
        if args:
            return args, []
        return [], []
