"""A ModelDeployment's children, as pure functions of its spec, its rollout state and its versions.

``desired_children`` returns every object the operator keeps in the cluster for one
ModelDeployment, whole (labels and ownerReferences included):

- a ConfigMap per served version object (named by the version and its uid, so another object
  re-created under the same name never overwrites it) holding the ``result.json`` that
  ``modelops serve --model-dir`` reads, synthesised from the ModelVersion (model, task, artifact
  with its sha256, signature, reference statistics);
- Deployments ``<name>-stable`` and ``<name>-canary`` running ``modelops serve`` on the version's
  artifact (a ``pvc://`` claim mounted read-only, other stores fetched into an emptyDir cache),
  v2 health probes, a locked-down security context and graceful shutdown, and the namespace's
  feedback keys (``logic.feedbackkeys``) mounted so that every answer carries a prediction id;
- a Service over both (selector ``modelops.io/deployment``), a ServiceMonitor and a
  PrometheusRule with error-rate and latency alerts and the live-quality and live-fairness
  recording rules (``logic.qualityrules``, ``logic.fairnessrules``), carrying the cluster's rule labels;
- optionally an HPA for the stable Deployment and a PodDisruptionBudget;
- with Gateway API routing, per-role Services and an HTTPRoute whose backend weights split the
  traffic (and whose RequestMirror filter shadows the canary).

Each role is rendered only from the exact version it is bound to (``logic.rollout``: name, uid
and digest); a role whose bound version no longer exists, or was replaced by another object under
its name, is passed as None and left exactly as it is (``Children.frozen``): it keeps serving the
digest it was admitted with, and its ConfigMap is kept.

Traffic by replica ratio (the default) follows Argo Rollouts' basic canary
(``utils/replicaset/canary.go``): the canary gets ``ceil(replicas * weight / 100)`` replicas (at
least one while its weight is above zero) and the stable ``ceil(replicas * (100 - weight) / 100)``.
Both round up, so during a canary the two together may run one replica more than
``spec.replicas``, never fewer: the stable is never starved to make room. With an HTTPRoute the
weights split traffic exactly, so the stable keeps all its replicas and the canary gets its share.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelops.api import keys
from modelops.api.modeldeployment import ModelDeploymentSpec, ServerSpec
from modelops.logic import fairnessrules, feedbackkeys, policy, qualityrules

# The children are compared by the one diff every kind uses (modelops.logic.children).
from modelops.logic.children import needs_repair as needs_repair
from modelops.logic.children import repair_patch as repair_patch
from modelops.logic.names import child_name, owner_reference
from modelops.logic.pods import IMAGE_UID, container_security, pod_security, scheduling

JsonDict = dict[str, Any]

DEPLOYMENT_LABEL = "modelops.io/deployment"
ROLE_LABEL = "modelops.io/role"
VERSION_LABEL = "modelops.io/version"
MODEL_LABEL = keys.MODEL_LABEL
CONTAINER = "server"
MODEL_DIR = "/etc/modelops/model"
CACHE_DIR = "/var/cache/modelops"
PVC_ROOT = "/mnt/pvc"
SERVICE_PORT = 80
GRACEFUL_TIMEOUT = 20
TERMINATION_GRACE = 30  # the server's drain time plus headroom for the endpoints to drop the pod
DEFAULT_FORMAT = "skops"  # the CRD's default for spec.artifact.format
PICKLE_FORMAT = policy.PICKLE_FORMAT
# Every scraped series gets the pod's ModelDeployment as the label ``deployment``, so canary
# analysis and drift tell apart two deployments serving one version in one namespace.
SCRAPE_RELABELINGS = [{"sourceLabels": ["__meta_kubernetes_pod_label_modelops_io_deployment"],
                       "targetLabel": "deployment", "action": "replace"}]  # fmt: skip


class InvalidVersionError(ValueError):
    """A ModelVersion the model server cannot serve (names the field)."""


@dataclass(frozen=True)
class Owner:
    """The ModelDeployment the children belong to."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class Traffic:
    """Which versions run where and how traffic is split."""

    stable_version: str
    canary_version: str | None  # the canary Deployment's version (kept, scaled to 0, after a canary)
    canary_weight: int = 0  # percent of traffic to the canary
    canary_active: bool = False  # the canary runs (a weight step, an analysis or a shadow)
    mirror_percent: int | None = None  # a shadow step: share of requests mirrored to the canary


def stable_name(owner: str) -> str:
    return child_name(owner, "stable")


def canary_name(owner: str) -> str:
    return child_name(owner, "canary")


def model_config_name(owner: str, version: str, uid: str | None = None) -> str:
    """The ConfigMap of one version object: its name, and its uid's start when known."""
    return child_name(owner, f"model-{version}" + (f"-{uid[:8]}" if uid else ""))


def _config_name(owner: Owner, version: Mapping[str, Any]) -> str:
    meta = version.get("metadata") or {}
    return model_config_name(owner.name, str(meta.get("name")), str(meta["uid"]) if meta.get("uid") else None)


def service_url(owner: Owner, model: str) -> str:
    return f"http://{owner.name}.{owner.namespace}.svc:{SERVICE_PORT}/v2/models/{model}"


def replica_counts(replicas: int, weight: int, *, gateway: bool, canary_active: bool) -> tuple[int, int]:
    """(stable, canary) replicas for a canary weight (see the module docstring)."""
    weight = max(0, min(100, weight))
    if not canary_active:
        return replicas, 0
    canary = math.ceil(replicas * weight / 100)
    if replicas > 0 and (weight > 0 or gateway):
        canary = max(canary, 1)  # a shadowed or analysed canary needs a pod even at weight 0
    if gateway:
        return replicas, canary
    stable = math.ceil(replicas * (100 - weight) / 100)
    return stable, canary


def uses_gateway(spec: ModelDeploymentSpec) -> bool:
    """Whether traffic is split by a Gateway API HTTPRoute (else by the Services' replica counts)."""
    return spec.traffic_routing is not None and spec.traffic_routing.gateway_api is not None


def expected_replicas(
    spec: ModelDeploymentSpec, traffic: Traffic, stable_replicas_now: int | None = None
) -> tuple[int | None, int]:
    """(stable, canary) replicas the Deployments should have; the stable's is None when an HPA owns it.

    With an HPA, ``stable_replicas_now`` (the stable Deployment's current count, the HPA's choice)
    sizes the canary, or ``minReplicas`` before the Deployment exists.
    """
    gateway = uses_gateway(spec)
    base = spec.replicas
    if spec.autoscaling is not None:
        base = stable_replicas_now if stable_replicas_now is not None else spec.autoscaling.min_replicas
    stable, canary = replica_counts(base, traffic.canary_weight, gateway=gateway, canary_active=traffic.canary_active)
    return (None if spec.autoscaling is not None else stable), canary


@dataclass(frozen=True)
class Availability:
    """Whether a model-server Deployment serves what it should, read from its status.

    ``available`` means the deployment controller has observed the Deployment's current
    generation and at least ``required`` replicas of the current pod template are available.
    ``stalled`` is the deployment controller's own verdict (``Progressing=False``, reason
    ``ProgressDeadlineExceeded``).
    """

    name: str
    available: bool
    ready: int  # available replicas of the current template (a lower bound while old pods remain)
    required: int
    message: str
    stalled: bool = False
    scaled_to_zero: bool = False


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def availability(
    deployment: Mapping[str, Any] | None, *, name: str, version: str, replicas: int | None
) -> Availability:
    """How available a Deployment is for serving ``version`` with ``replicas`` pods.

    ``replicas`` None means an HPA owns the count: then one available replica of the current
    template (``min(1, spec.replicas)``) is enough to serve, so an HPA scaling up never makes the
    ModelDeployment unready. Otherwise every replica must be available (the Deployments use
    ``maxUnavailable: 0``). Zero replicas wanted is available, and says it is scaled to zero.
    Pods of an older template still counted in ``availableReplicas`` are not counted as serving:
    ``ready = availableReplicas - (replicas - updatedReplicas)``, as ``kubectl rollout status``
    waits for old replicas to go.
    """
    if deployment is None:
        return Availability(name, False, 0, replicas or 0, f"Deployment {name} does not exist yet")
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    meta = deployment.get("metadata") or {}
    current = spec.get("replicas")
    current = current if isinstance(current, int) else 1  # the API server's default
    if replicas is not None and current != replicas:
        return Availability(name, False, 0, replicas, f"Deployment {name} is scaled to {current}, not {replicas} yet")
    required = replicas if replicas is not None else min(1, current)
    if required == 0:
        return Availability(name, True, 0, 0, f"Deployment {name} is scaled to zero", scaled_to_zero=True)
    running = ((spec.get("template") or {}).get("metadata") or {}).get("labels", {}).get(VERSION_LABEL)
    if running != version:
        return Availability(name, False, 0, required, f"Deployment {name} runs {running}, not {version} yet")
    generation = meta.get("generation")
    observed = status.get("observedGeneration")
    if isinstance(generation, int) and (not isinstance(observed, int) or observed < generation):
        return Availability(
            name, False, 0, required,
            f"Deployment {name}: generation {generation} not yet observed by the deployment controller",
        )  # fmt: skip
    updated = _count(status.get("updatedReplicas"))
    old = max(0, _count(status.get("replicas")) - updated)
    ready = max(0, min(updated, _count(status.get("availableReplicas")) - old))
    stalled = any(
        c.get("type") == "Progressing" and c.get("status") == "False" and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or []
        if isinstance(c, Mapping)
    )
    message = f"Deployment {name}: {ready}/{current} replicas of {version} available"
    if replicas is None:
        message += f" (autoscaled: {required} is enough to serve)"
    if ready >= required:
        return Availability(name, True, ready, required, message)
    if stalled:
        message += " (ProgressDeadlineExceeded: the deployment controller gave up waiting)"
    return Availability(name, False, ready, required, message, stalled=stalled)


def artifact_format_of(version: Mapping[str, Any]) -> str:
    """A ModelVersion's ``spec.artifact.format`` (the CRD's default when absent)."""
    artifact = (version.get("spec") or {}).get("artifact") or {}
    return str(artifact.get("format") or DEFAULT_FORMAT)


def model_result(version: Mapping[str, Any]) -> JsonDict:
    """The ``result.json`` (docs/contracts.md) that ``modelops serve`` reads, from a ModelVersion."""
    meta = version.get("metadata") or {}
    spec = version.get("spec") or {}
    name = meta.get("name", "?")
    artifact = spec.get("artifact") or {}
    if not artifact.get("uri") or not artifact.get("sha256"):
        raise InvalidVersionError(f"ModelVersion {name}: spec.artifact needs a uri and a sha256 to be served")
    signature = spec.get("signature") or {}
    if not signature.get("inputs"):
        raise InvalidVersionError(
            f"ModelVersion {name}: spec.signature.inputs is empty; the model server needs the model's inputs"
        )
    artifact_format = artifact_format_of(version)
    result: JsonDict = {
        "resultVersion": 1,
        "model": spec.get("model"),
        "version": name,
        "artifact": {
            "uri": artifact["uri"],
            "path": f"model.{artifact_format}",
            "sha256": artifact["sha256"],
            "format": artifact_format,
        },
        "signature": signature,
        "framework": spec.get("framework") or {"name": "scikit-learn"},
    }
    if artifact.get("sizeBytes") is not None:
        result["artifact"]["sizeBytes"] = artifact["sizeBytes"]
    for key in ("task", "referenceStats", "metrics", "fairness"):
        if spec.get(key) is not None:
            result[key] = spec[key]
    return result


def _labels(owner: Owner, model: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "modelops-server",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "modelops-operator",
        DEPLOYMENT_LABEL: owner.name,
        MODEL_LABEL: model,
    }


def _meta(owner: Owner, name: str, labels: Mapping[str, str]) -> JsonDict:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner_reference("ModelDeployment", owner.name, owner.uid)],
    }


def _config_map(owner: Owner, model: str, version: Mapping[str, Any]) -> JsonDict:
    name = str((version.get("metadata") or {}).get("name"))
    labels = {**_labels(owner, model), VERSION_LABEL: name}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(owner, _config_name(owner, version), labels),
        "data": {"result.json": json.dumps(model_result(version), indent=2, sort_keys=True)},
    }


def _artifact_volume(uri: str) -> tuple[list[JsonDict], list[JsonDict]]:
    """Volumes and mounts that make the artifact reachable: a pvc:// claim, read-only."""
    if not uri.startswith("pvc://"):
        return [], []
    claim = uri.removeprefix("pvc://").partition("/")[0]
    return (
        [{"name": "artifacts", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
        [{"name": "artifacts", "mountPath": f"{PVC_ROOT}/{claim}", "readOnly": True}],
    )



#: ServerSpec field -> ``modelops serve`` flag, for what a client may cost a worker (docs/serve-limits.md).
SERVER_FLAGS: tuple[tuple[str, str], ...] = (
    ("max_body_bytes", "--max-body-bytes"),
    ("max_header_bytes", "--max-header-bytes"),
    ("max_url_bytes", "--max-url-bytes"),
    ("max_connections", "--max-connections"),
    ("header_timeout_seconds", "--header-timeout"),
    ("body_timeout_seconds", "--body-timeout"),
    ("send_timeout_seconds", "--send-timeout"),
    ("keepalive_seconds", "--keepalive"),
    ("explain_max_rows", "--explain-max-rows"),
)


def server_limit_args(server: ServerSpec) -> list[str]:
    """The server's flags for the limits the spec sets; an unset one keeps the server's default."""
    args: list[str] = []
    for field_name, flag in SERVER_FLAGS:
        value = getattr(server, field_name)
        if value is not None:
            args += [flag, str(value)]
    return args


def _deployment(
    spec: ModelDeploymentSpec,
    owner: Owner,
    version: Mapping[str, Any],
    *,
    role: str,
    replicas: int | None,
    image: str,
    run_as: int | None,
    allow_pickle: bool = False,
    feedback_ttl: int = feedbackkeys.DEFAULT_ROTATION_SECONDS,
) -> JsonDict:
    version_name = str((version.get("metadata") or {}).get("name"))
    artifact = (version.get("spec") or {}).get("artifact") or {}
    name = stable_name(owner.name) if role == "stable" else canary_name(owner.name)
    selector = {DEPLOYMENT_LABEL: owner.name, ROLE_LABEL: role}
    pod_labels = {**_labels(owner, spec.model), ROLE_LABEL: role, VERSION_LABEL: version_name}
    port = spec.server.port
    args = [
        "serve",
        "--model-dir", MODEL_DIR,
        "--host", "0.0.0.0",  # a pod's server listens on the pod's address
        "--port", str(port),
        "--name", spec.model,
        "--version", version_name,
        "--artifact-uri", str(artifact.get("uri")),
        "--sha256", str(artifact.get("sha256")),
        "--cache-dir", CACHE_DIR,
        "--graceful-timeout", str(GRACEFUL_TIMEOUT),
        *feedbackkeys.server_args(f"{owner.namespace}/{owner.name}", feedback_ttl),
    ]  # fmt: skip
    if spec.server.workers is not None:
        args += ["--workers", str(spec.server.workers)]
    args += server_limit_args(spec.server)
    if allow_pickle and artifact_format_of(version) == PICKLE_FORMAT:
        args.append("--allow-pickle")  # only for a pickle, and only where the governance policy allows them
    pvc_volumes, pvc_mounts = _artifact_volume(str(artifact.get("uri")))
    env: list[JsonDict] = [{"name": "MODELOPS_PVC_ROOT", "value": PVC_ROOT}]
    pod = spec.pod
    if pod and pod.env:
        env.extend(e.model_dump(by_alias=True, exclude_none=True) for e in pod.env)

    def probe(path: str, period: int, failures: int) -> JsonDict:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        }

    container: JsonDict = {
        "name": CONTAINER,
        "image": spec.server.image or image,
        "command": ["modelops"],
        "args": args,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "readinessProbe": probe("/v2/health/ready", 5, 3),
        "livenessProbe": {**probe("/v2/health/live", 10, 3), "initialDelaySeconds": 10},
        "startupProbe": probe("/v2/health/live", 2, 60),
        "volumeMounts": [
            {"name": "model", "mountPath": MODEL_DIR, "readOnly": True},
            {"name": "cache", "mountPath": CACHE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            feedbackkeys.mount(),
            *pvc_mounts,
        ],
        "securityContext": container_security(),
    }
    if pod and pod.resources:
        container["resources"] = pod.resources.model_dump(by_alias=True, exclude_none=True)
    pod_spec: JsonDict = {
        "containers": [container],
        "terminationGracePeriodSeconds": TERMINATION_GRACE,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(run_as),
        "volumes": [
            {"name": "model", "configMap": {"name": _config_name(owner, version)}},
            {"name": "cache", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            feedbackkeys.volume(),
            *pvc_volumes,
        ],
    }
    pod_spec.update(scheduling(pod))
    deployment_spec: JsonDict = {
        "selector": {"matchLabels": selector},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)},
            },
            "spec": pod_spec,
        },
    }
    if replicas is not None:
        deployment_spec["replicas"] = replicas
    labels = {**_labels(owner, spec.model), ROLE_LABEL: role, VERSION_LABEL: version_name}
    metadata = _meta(owner, name, labels)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": deployment_spec}


def _service(spec: ModelDeploymentSpec, owner: Owner, name: str, role: str | None) -> JsonDict:
    selector = {DEPLOYMENT_LABEL: owner.name}
    labels = _labels(owner, spec.model)
    if role is not None:
        selector[ROLE_LABEL] = role
        labels = {**labels, ROLE_LABEL: role}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(owner, name, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _service_monitor(spec: ModelDeploymentSpec, owner: Owner) -> JsonDict:
    relabelings = copy.deepcopy(SCRAPE_RELABELINGS)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(owner, owner.name, _labels(owner, spec.model)),
        "spec": {
            # The Service over both roles only (not the per-role ones of Gateway API routing): one scrape
            # target per pod, stable and canary alike, so no request is counted twice.
            "selector": {
                "matchLabels": {DEPLOYMENT_LABEL: owner.name, "app.kubernetes.io/component": "model-server"},
                "matchExpressions": [{"key": ROLE_LABEL, "operator": "DoesNotExist"}],
            },
            "namespaceSelector": {"matchNames": [owner.namespace]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s", "relabelings": relabelings}],
        },
    }


def _prometheus_rule(spec: ModelDeploymentSpec, owner: Owner, extra_labels: Mapping[str, str]) -> JsonDict:
    match = f'namespace="{owner.namespace}",deployment="{owner.name}",model="{spec.model}"'
    error = spec.analysis.builtin.error_rate
    latency = spec.analysis.builtin.latency
    max_ratio = error.max_ratio if error is not None else 0.05
    max_seconds = latency.max_seconds if latency is not None else 0.5
    annotations_common = {"deployment": f"{owner.namespace}/{owner.name}"}
    rules: list[JsonDict] = [
        {
            "alert": "ModelServerErrorRateHigh",
            "expr": (
                f'sum by (version) (rate(modelops_requests_total{{{match},code=~"5.."}}[5m])) / '
                f"sum by (version) (rate(modelops_requests_total{{{match}}}[5m])) > {max_ratio}"
            ),
            "for": "5m",
            "labels": {"severity": "warning", "model": spec.model},
            "annotations": {
                **annotations_common,
                "summary": f"Model {spec.model} version {{{{ $labels.version }}}} answers more than "
                f"{max_ratio:.0%} of requests with 5xx",
            },
        },
        {
            "alert": "ModelServerLatencyHigh",
            "expr": (
                "histogram_quantile(0.99, sum by (version, le) "
                f"(rate(modelops_request_duration_seconds_bucket{{{match}}}[5m]))) > {max_seconds}"
            ),
            "for": "5m",
            "labels": {"severity": "warning", "model": spec.model},
            "annotations": {
                **annotations_common,
                "summary": f"Model {spec.model} version {{{{ $labels.version }}}} p99 latency above {max_seconds}s",
            },
        },
    ]
    labels = {**_labels(owner, spec.model), **extra_labels}
    scope = qualityrules.Scope(owner.namespace, owner.name, spec.model)
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta(owner, owner.name, labels),
        "spec": {
            "groups": [
                {"name": f"modelops-{owner.namespace}-{owner.name}", "rules": rules},
                qualityrules.rule_group(scope, spec.quality.windows),
                fairnessrules.rule_group(scope, spec.quality.windows),
            ]
        },
    }


def _hpa(spec: ModelDeploymentSpec, owner: Owner) -> JsonDict:
    assert spec.autoscaling is not None
    scaling = spec.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(owner, owner.name, _labels(owner, spec.model)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": stable_name(owner.name)},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": max(scaling.max_replicas, scaling.min_replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization},
                    },
                }
            ],
        },
    }


def _pdb(spec: ModelDeploymentSpec, owner: Owner) -> JsonDict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(owner, owner.name, _labels(owner, spec.model)),
        "spec": {"minAvailable": spec.min_available, "selector": {"matchLabels": {DEPLOYMENT_LABEL: owner.name}}},
    }


def _http_route(spec: ModelDeploymentSpec, owner: Owner, traffic: Traffic) -> JsonDict:
    gateway = spec.traffic_routing.gateway_api if spec.traffic_routing else None
    assert gateway is not None
    weight = traffic.canary_weight if traffic.canary_active else 0
    rule: JsonDict = {
        "matches": [{"path": {"type": "PathPrefix", "value": gateway.path}}],
        "backendRefs": [
            {"name": stable_name(owner.name), "port": SERVICE_PORT, "weight": 100 - weight},
            {"name": canary_name(owner.name), "port": SERVICE_PORT, "weight": weight},
        ],
    }
    if traffic.canary_active and traffic.mirror_percent:
        rule["filters"] = [
            {
                "type": "RequestMirror",
                "requestMirror": {
                    "backendRef": {"name": canary_name(owner.name), "port": SERVICE_PORT},
                    "percent": traffic.mirror_percent,
                },
            }
        ]
    route_spec: JsonDict = {"parentRefs": [dict(ref) for ref in gateway.parent_refs], "rules": [rule]}
    if gateway.hostnames:
        route_spec["hostnames"] = list(gateway.hostnames)
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(owner, owner.name, _labels(owner, spec.model)),
        "spec": route_spec,
    }


@dataclass(frozen=True)
class Children:
    """What to keep (applied), what to remove (kind, apiVersion, name), and which server Deployments to
    leave exactly as they are (their bound version is gone) for one ModelDeployment."""

    keep: list[JsonDict]
    remove: list[tuple[str, str, str]]
    frozen: list[str] = field(default_factory=list)


# Optional children by (apiVersion, kind, name suffix or "" for the owner's own name).
OPTIONAL: tuple[tuple[str, str, str], ...] = (
    ("autoscaling/v2", "HorizontalPodAutoscaler", ""),
    ("policy/v1", "PodDisruptionBudget", ""),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", ""),
    ("v1", "Service", "stable"),
    ("v1", "Service", "canary"),
)


def desired_children(
    spec: ModelDeploymentSpec,
    owner: Owner,
    traffic: Traffic,
    *,
    stable: Mapping[str, Any] | None,
    canary: Mapping[str, Any] | None,
    image: str,
    rule_labels: Mapping[str, str] | None = None,
    stable_replicas_now: int | None = None,
    allow_pickle: bool = False,
    run_as: int | None = IMAGE_UID,
    feedback_ttl: int = feedbackkeys.DEFAULT_ROTATION_SECONDS,
) -> Children:
    """Every child of a ModelDeployment for the given traffic.

    ``stable`` and ``canary`` are the ModelVersion objects the two Deployments are bound to (the
    canary Deployment's is the stable's when no canary ran yet); None leaves that Deployment as it
    is (see the module docstring). With an HPA the stable Deployment's replica count is the HPA's
    (``spec.replicas`` omitted); ``stable_replicas_now`` (the Deployment's current count) then
    sizes the canary. ``allow_pickle`` (the governance policy's verdict for the namespace) lets a
    joblib version's server load it. The servers run as ``run_as`` (None: as the platform assigns).
    ``feedback_ttl`` is the prediction ids' lifetime, the keys' rotation period.
    Raises InvalidVersionError when a version cannot be served.
    """
    gateway = uses_gateway(spec)
    stable_count, canary_count = expected_replicas(spec, traffic, stable_replicas_now)
    keep: list[JsonDict] = []
    frozen: list[str] = []
    for role, version, count in (("stable", stable, stable_count), ("canary", canary, canary_count)):
        if version is None:
            frozen.append(stable_name(owner.name) if role == "stable" else canary_name(owner.name))
            continue
        config = _config_map(owner, spec.model, version)
        if all(c["metadata"]["name"] != config["metadata"]["name"] for c in keep):
            keep.append(config)
        keep.append(
            _deployment(
                spec, owner, version, role=role, replicas=count, image=image, run_as=run_as,
                allow_pickle=allow_pickle, feedback_ttl=feedback_ttl,
            )
        )
    keep.append(_service(spec, owner, owner.name, None))
    keep.append(_service_monitor(spec, owner))
    keep.append(_prometheus_rule(spec, owner, dict(rule_labels or {})))
    remove: list[tuple[str, str, str]] = []
    optional: dict[tuple[str, str, str], JsonDict | None] = {
        ("autoscaling/v2", "HorizontalPodAutoscaler", ""): _hpa(spec, owner) if spec.autoscaling else None,
        ("policy/v1", "PodDisruptionBudget", ""): _pdb(spec, owner) if spec.min_available is not None else None,
        ("gateway.networking.k8s.io/v1", "HTTPRoute", ""): _http_route(spec, owner, traffic) if gateway else None,
        ("v1", "Service", "stable"): (_service(spec, owner, stable_name(owner.name), "stable") if gateway else None),
        ("v1", "Service", "canary"): (_service(spec, owner, canary_name(owner.name), "canary") if gateway else None),
    }
    for (api_version, kind, suffix), obj in optional.items():
        if obj is not None:
            keep.append(obj)
        else:
            remove.append((api_version, kind, child_name(owner.name, suffix) if suffix else owner.name))
    return Children(keep=keep, remove=remove, frozen=frozen)


def optional_api(api_version: str) -> bool:
    """Whether a child's API may be missing from a cluster (the Prometheus Operator's, the Gateway API)."""
    return api_version.startswith(("monitoring.coreos.com/", "gateway.networking.k8s.io/"))


def mounted_config_maps(deployment: Mapping[str, Any] | None) -> set[str]:
    """The ConfigMaps a Deployment's pods mount (a frozen Deployment's must stay)."""
    pod = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    return {
        str(volume["configMap"]["name"])
        for volume in pod.get("volumes") or []
        if isinstance(volume, Mapping)
        and isinstance(volume.get("configMap"), Mapping)
        and volume["configMap"].get("name")
    }


def stale_config_maps(
    owner: str, existing: Sequence[Mapping[str, Any]], keep: Sequence[Mapping[str, Any]], also: set[str] | None = None
) -> list[str]:
    """Names of the owner's model ConfigMaps that no child mounts any more (``also``: mounted by frozen ones)."""
    wanted = {str(obj["metadata"]["name"]) for obj in keep if obj.get("kind") == "ConfigMap"} | (also or set())
    return sorted(
        str(cm["metadata"]["name"])
        for cm in existing
        if (cm.get("metadata") or {}).get("labels", {}).get(DEPLOYMENT_LABEL) == owner
        and str(cm["metadata"]["name"]) not in wanted
    )
