"""What a Pod's spec asks of the kubelet, read field by field: honoured, or refused by name.

:func:`check` walks the pod spec and raises :class:`UnsupportedFieldError` naming the first field the
stand-in cannot honour (``spec.containers[0].lifecycle``, ``spec.volumes[1].hostPath`` …): a
field is never silently ignored. :func:`with_defaults` fills in what the API server defaults on
a real cluster (the emulator does not default built-in kinds). The rest turns fields into values
the kubelet acts on: resource quantities, environment variables (``env``, ``envFrom``, downward
API, ``$(VAR)`` expansion), probes, the effective user and groups. No I/O here: objects the
spec refers to are looked up through the ``Lookup`` callable the kubelet passes.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
Lookup = Callable[[str, str], Obj | None]  # (kind, name) in the pod's namespace → object or None


class UnsupportedFieldError(Exception):
    """A field of the pod the stand-in cannot honour (``field``: its path in the Pod)."""

    def __init__(self, field_path: str, why: str = "") -> None:
        self.field = field_path
        super().__init__(f"the container kubelet stand-in cannot honour {field_path}" + (f": {why}" if why else ""))


class NotReadyError(Exception):
    """Something the pod needs does not exist yet (a ConfigMap, Secret or claim): the pod waits."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- which fields are honoured ----------------------------------------------------------------------

# The scheduler's fields are honoured for a one-node cluster: nodeSelector must match the node's
# labels; tolerations tolerate taints the node does not have; preferred (anti-)affinity is a wish.
POD_FIELDS = {
    "containers", "volumes", "restartPolicy", "terminationGracePeriodSeconds", "securityContext",
    "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeSelector", "tolerations",
    "affinity", "priorityClassName", "priority", "schedulerName", "dnsPolicy", "enableServiceLinks", "hostname",
    "nodeName", "imagePullSecrets", "preemptionPolicy", "activeDeadlineSeconds",
}  # fmt: skip
CONTAINER_FIELDS = {
    "name", "image", "command", "args", "env", "envFrom", "ports", "volumeMounts", "resources", "securityContext",
    "readinessProbe", "livenessProbe", "startupProbe", "terminationMessagePath", "terminationMessagePolicy",
    "imagePullPolicy", "workingDir",
}  # fmt: skip
POD_SECURITY_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "fsGroupChangePolicy",
                       "supplementalGroups", "seccompProfile"}
CONTAINER_SECURITY_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem",
                             "allowPrivilegeEscalation", "privileged", "capabilities", "seccompProfile", "procMount"}
VOLUME_SOURCES = {"configMap", "secret", "emptyDir", "persistentVolumeClaim"}
PROBE_FIELDS = {"httpGet", "tcpSocket", "exec", "initialDelaySeconds", "periodSeconds", "timeoutSeconds",
                "successThreshold", "failureThreshold", "terminationGracePeriodSeconds"}
RESOURCES = {"cpu", "memory"}
FIELD_REFS = {"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
              "status.podIP", "status.hostIP"}


def _present(value: Any) -> bool:
    return value not in (None, False, [], {}, "")


def _only(obj: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key, value in obj.items():
        if key not in allowed and _present(value):
            raise UnsupportedFieldError(f"{path}.{key}")


def _check_probe(probe: Mapping[str, Any], path: str) -> None:
    _only(probe, PROBE_FIELDS, path)
    if sum(1 for k in ("httpGet", "tcpSocket", "exec") if k in probe) != 1:
        raise UnsupportedFieldError(path, "exactly one of httpGet, tcpSocket and exec")
    http = probe.get("httpGet") or {}
    _only(http, {"path", "port", "scheme", "httpHeaders", "host"}, f"{path}.httpGet")
    if http.get("host"):
        raise UnsupportedFieldError(f"{path}.httpGet.host", "probes go to the pod's own address")
    _only(probe.get("tcpSocket") or {}, {"port"}, f"{path}.tcpSocket")


def _check_security(context: Mapping[str, Any], allowed: set[str], path: str) -> None:
    _only(context, allowed, path)
    seccomp = (context.get("seccompProfile") or {}).get("type")
    if seccomp not in (None, "RuntimeDefault", "Unconfined"):
        raise UnsupportedFieldError(f"{path}.seccompProfile.type", f"{seccomp!r}: only RuntimeDefault and Unconfined")
    if context.get("procMount") not in (None, "Default"):
        raise UnsupportedFieldError(f"{path}.procMount")
    if context.get("fsGroupChangePolicy") not in (None, "Always", "OnRootMismatch"):
        raise UnsupportedFieldError(f"{path}.fsGroupChangePolicy")
    _only(context.get("capabilities") or {}, {"add", "drop"}, f"{path}.capabilities")


def check(pod: Mapping[str, Any], node_labels: Mapping[str, str]) -> None:
    """Raise :class:`UnsupportedFieldError` for the first field of ``pod`` the stand-in cannot honour."""
    spec = pod.get("spec") or {}
    _only(spec, POD_FIELDS, "spec")
    _check_security(spec.get("securityContext") or {}, POD_SECURITY_FIELDS, "spec.securityContext")
    for key, value in (spec.get("nodeSelector") or {}).items():
        if node_labels.get(key) != value:
            raise UnsupportedFieldError(f"spec.nodeSelector.{key}", f"the one node has {key}={node_labels.get(key)!r}")
    for kind, terms in (spec.get("affinity") or {}).items():
        if kind not in ("podAffinity", "podAntiAffinity", "nodeAffinity"):
            raise UnsupportedFieldError(f"spec.affinity.{kind}")
        for key, value in (terms or {}).items():
            if key.startswith("required") and _present(value):
                raise UnsupportedFieldError(f"spec.affinity.{kind}.{key}", "only preferences on a one-node cluster")
    if spec.get("dnsPolicy") not in (None, "ClusterFirst", "Default"):
        raise UnsupportedFieldError("spec.dnsPolicy", f"{spec.get('dnsPolicy')!r}")
    for i, volume in enumerate(spec.get("volumes") or []):
        path = f"spec.volumes[{i}]"
        sources = [k for k in volume if k != "name"]
        if len(sources) != 1 or sources[0] not in VOLUME_SOURCES:
            kinds = ", ".join(sorted(VOLUME_SOURCES))
            raise UnsupportedFieldError(f"{path}.{sources[0] if sources else 'name'}", f"volumes: {kinds}")
        source = volume[sources[0]] or {}
        allowed = {
            "configMap": {"name", "items", "defaultMode", "optional"},
            "secret": {"secretName", "items", "defaultMode", "optional"},
            "emptyDir": {"sizeLimit", "medium"},
            "persistentVolumeClaim": {"claimName", "readOnly"},
        }[sources[0]]
        _only(source, allowed, f"{path}.{sources[0]}")
        if source.get("medium") not in (None, "", "Memory"):
            raise UnsupportedFieldError(f"{path}.emptyDir.medium", f"{source.get('medium')!r}")
        for j, item in enumerate(source.get("items") or []):
            _only(item, {"key", "path", "mode"}, f"{path}.{sources[0]}.items[{j}]")
    containers = spec.get("containers") or []
    if len(containers) != 1:
        raise UnsupportedFieldError("spec.containers", f"{len(containers)} containers: it runs pods of one container")
    for i, container in enumerate(containers):
        path = f"spec.containers[{i}]"
        _only(container, CONTAINER_FIELDS, path)
        _check_security(container.get("securityContext") or {}, CONTAINER_SECURITY_FIELDS, f"{path}.securityContext")
        for name in ("readinessProbe", "livenessProbe", "startupProbe"):
            if container.get(name):
                _check_probe(container[name], f"{path}.{name}")
        for kind in ("limits", "requests"):
            for resource in (container.get("resources") or {}).get(kind) or {}:
                if resource not in RESOURCES:
                    raise UnsupportedFieldError(f"{path}.resources.{kind}.{resource}")
        _only(container.get("resources") or {}, {"limits", "requests"}, f"{path}.resources")
        for j, mount in enumerate(container.get("volumeMounts") or []):
            _only(mount, {"name", "mountPath", "readOnly", "subPath"}, f"{path}.volumeMounts[{j}]")
        for j, port in enumerate(container.get("ports") or []):
            _only(port, {"name", "containerPort", "protocol"}, f"{path}.ports[{j}]")
            if port.get("protocol") not in (None, "TCP"):
                raise UnsupportedFieldError(f"{path}.ports[{j}].protocol", f"{port.get('protocol')!r}")
        for j, item in enumerate(container.get("env") or []):
            source = item.get("valueFrom") or {}
            _only(source, {"fieldRef", "configMapKeyRef", "secretKeyRef", "resourceFieldRef"},
                  f"{path}.env[{j}].valueFrom")  # fmt: skip
            ref = (source.get("fieldRef") or {}).get("fieldPath")
            if ref is not None and ref not in FIELD_REFS and not re.fullmatch(
                r"metadata\.(labels|annotations)\['[^']+'\]", ref
            ):
                raise UnsupportedFieldError(f"{path}.env[{j}].valueFrom.fieldRef.fieldPath", repr(ref))
        for j, item in enumerate(container.get("envFrom") or []):
            _only(item, {"configMapRef", "secretRef", "prefix"}, f"{path}.envFrom[{j}]")
        if container.get("terminationMessagePolicy") not in (None, "File", "FallbackToLogsOnError"):
            raise UnsupportedFieldError(f"{path}.terminationMessagePolicy")


def with_defaults(pod: Mapping[str, Any]) -> Obj:
    """The pod with the defaults a real API server would have written (pod and container level)."""
    pod = copy.deepcopy(dict(pod))
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("securityContext", {})
    spec["serviceAccountName"] = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    for container in spec.get("containers") or []:
        image = str(container.get("image", ""))
        tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
        latest = not tagged or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        for probe in (container.get(k) for k in ("readinessProbe", "livenessProbe", "startupProbe")):
            if probe:
                probe.setdefault("periodSeconds", 10)
                probe.setdefault("timeoutSeconds", 1)
                probe.setdefault("successThreshold", 1)
                probe.setdefault("failureThreshold", 3)
                probe.setdefault("initialDelaySeconds", 0)
                if "httpGet" in probe:
                    probe["httpGet"].setdefault("path", "/")
                    probe["httpGet"].setdefault("scheme", "HTTP")
    return pod


# --- quantities ---------------------------------------------------------------------------------------

_SUFFIXES = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
}  # fmt: skip


def quantity(value: Any) -> float:
    """A Kubernetes resource quantity (``512Mi``, ``100m``, ``1.5``, ``2e3``) as a number."""
    text = str(value).strip()
    match = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)", text)
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


# --- users ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunAs:
    """Who the container's processes are: user, primary group, supplementary groups."""

    user: int | None  # None: the image's USER
    group: int | None
    groups: tuple[int, ...]
    non_root: bool


def run_as(spec: Mapping[str, Any], container: Mapping[str, Any]) -> RunAs:
    pod_ctx, ctx = spec.get("securityContext") or {}, container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return ctx.get(key) if ctx.get(key) is not None else pod_ctx.get(key)

    groups = [int(g) for g in pod_ctx.get("supplementalGroups") or []]
    if pod_ctx.get("fsGroup") is not None:
        groups.append(int(pod_ctx["fsGroup"]))
    user, group = pick("runAsUser"), pick("runAsGroup")
    return RunAs(None if user is None else int(user), None if group is None else int(group), tuple(groups),
                 bool(pick("runAsNonRoot")))  # fmt: skip


def image_user(config_user: str) -> tuple[int | None, int | None, str]:
    """The image's USER as (uid, gid) when numeric; the text for the error when it is a name."""
    user, _, group = (config_user or "").partition(":")
    uid = int(user) if user.isdigit() else (0 if not user else None)
    gid = int(group) if group.isdigit() else None
    return uid, gid, config_user


# --- environment ---------------------------------------------------------------------------------------

_VAR = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined variables are replaced, ``$$`` is a literal ``$``,
    anything else stays as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1 and text[i + 2 : end] in env:
            out.append(env[text[i + 2 : end]])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _decoded(secret: Mapping[str, Any], key: str) -> str | None:
    if key in (secret.get("data") or {}):
        return base64.b64decode(secret["data"][key]).decode()
    return (secret.get("stringData") or {}).get(key)


def _field(pod: Mapping[str, Any], path: str) -> str:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"), "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"), "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"), "status.hostIP": status.get("hostIP"),
    }  # fmt: skip
    if path in simple:
        return str(simple[path] or "")
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    assert match is not None  # check() let only these through
    return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))


def _resource_field(container: Mapping[str, Any], ref: Mapping[str, Any], node: Mapping[str, float]) -> str:
    kind, _, resource = str(ref.get("resource", "")).partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
    amount = quantity(value) if value is not None else node[resource]  # unset limits: the node's capacity
    divisor = quantity(ref.get("divisor", "1"))
    return str(int(-(-amount // divisor)))  # rounded up, as the kubelet does


def environment(
    pod: Mapping[str, Any], container: Mapping[str, Any], lookup: Lookup, base: Mapping[str, str],
    node: Mapping[str, float],
) -> dict[str, str]:
    """The container's environment: ``base`` (service links), then ``envFrom``, then ``env`` in order,
    each value ``$(VAR)``-expanded against what is defined before it. Raises :class:`NotReadyError` for a
    missing ConfigMap, Secret or key that is not optional (CreateContainerConfigError)."""
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, ref in (("ConfigMap", source.get("configMapRef")), ("Secret", source.get("secretRef"))):
            if not ref:
                continue
            found = lookup(kind, ref["name"])
            if found is None:
                if ref.get("optional"):
                    continue
                raise NotReadyError("CreateContainerConfigError", f'{kind.lower()} "{ref["name"]}" not found')
            keys = set(found.get("data") or {}) | set(found.get("stringData") or {})
            for key in sorted(keys):
                name = prefix + key
                if not _VAR.match(name):
                    continue  # the kubelet skips (and reports) keys that are no variable names
                value = _decoded(found, key) if kind == "Secret" else str(found["data"][key])
                env[name] = value or ""
    for item in container.get("env") or []:
        name = item["name"]
        source = item.get("valueFrom")
        if source is None:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        if "fieldRef" in source:
            env[name] = _field(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            env[name] = _resource_field(container, source["resourceFieldRef"], node)
        else:
            kind, ref = ("ConfigMap", source["configMapKeyRef"]) if "configMapKeyRef" in source else (
                "Secret", source["secretKeyRef"])  # fmt: skip
            found = lookup(kind, ref["name"])
            value = None
            if found is not None:
                value = _decoded(found, ref["key"]) if kind == "Secret" else (found.get("data") or {}).get(ref["key"])
            if value is None:
                if ref.get("optional"):
                    continue
                what = f'{kind.lower()} "{ref["name"]}"'
                if found is not None:
                    what = f'key {ref["key"]} in {kind} {ref["name"]}'
                raise NotReadyError("CreateContainerConfigError", f"couldn't find {what}")
            env[name] = str(value)
    return env


def service_links(services: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The Docker-link style variables the kubelet writes for each Service of the namespace."""
    env: dict[str, str] = {}
    for service in services:
        spec = service.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            continue
        prefix = service["metadata"]["name"].upper().replace("-", "_")
        ports = spec.get("ports") or []
        if not ports:
            continue
        first = ports[0]
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(first["port"])
        env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for port in ports:
            protocol = port.get("protocol", "TCP")
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(port["port"])
            base = f"{prefix}_PORT_{port['port']}_{protocol}"
            env[base] = f"{protocol.lower()}://{ip}:{port['port']}"
            env[f"{base}_PROTO"] = protocol.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = ip
    return env


# --- probes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One probe of a container, with its timing."""

    kind: str  # httpGet | tcpSocket | exec
    port: int | None
    path: str
    scheme: str
    headers: tuple[tuple[str, str], ...]
    command: tuple[str, ...]
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int
    grace: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def port_number(container: Mapping[str, Any], port: Any, path: str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for item in container.get("ports") or []:
        if item.get("name") == port:
            return int(item["containerPort"])
    raise UnsupportedFieldError(path, f"no container port is named {port!r}")


def probe(container: Mapping[str, Any], name: str, path: str) -> Probe | None:
    spec = container.get(name)
    if not spec:
        return None
    kind = next(k for k in ("httpGet", "tcpSocket", "exec") if k in spec)
    action = spec[kind]
    port = port_number(container, action["port"], f"{path}.{name}.{kind}.port") if kind != "exec" else None
    return Probe(
        kind=kind, port=port, path=str(action.get("path", "/")), scheme=str(action.get("scheme", "HTTP")),
        headers=tuple((h["name"], h["value"]) for h in action.get("httpHeaders") or []),
        command=tuple(action.get("command") or ()), initial_delay=float(spec["initialDelaySeconds"]),
        period=float(spec["periodSeconds"]), timeout=float(spec["timeoutSeconds"]),
        success_threshold=int(spec["successThreshold"]), failure_threshold=int(spec["failureThreshold"]),
        grace=spec.get("terminationGracePeriodSeconds"),
    )  # fmt: skip


def qos_class(container: Mapping[str, Any]) -> str:
    resources = container.get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    if not limits and not requests:
        return "BestEffort"
    if all(r in limits for r in RESOURCES) and all(requests.get(r, limits[r]) == limits[r] for r in RESOURCES):
        return "Guaranteed"
    return "Burstable"
