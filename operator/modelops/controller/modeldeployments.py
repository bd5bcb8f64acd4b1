"""ModelDeployment: model-server children, the canary rollout, rollback and promotion.

One idempotent reconcile (create, update, resume): resolve the version wanted (pinned, or the
model's version granted ``spec.track``), let the pure state machine (``logic.rollout``) decide
the next step — measuring the canary through ``controller.analysis`` when it asks — write the
rollout state to status, then converge the children (``logic.serving``) to it.

Two watchers keep things current without polling:
- children (labelled ``modelops.io/deployment``) edited or deleted by hand are put back from
  the owner's status, so only the children that differ from the desired ones are rewritten;
  and a change of the stable or canary Deployment (its status above all: the deployment
  controller reporting replicas available) re-triggers the owner's reconcile through the
  ``modelops.io/observed-deployments`` annotation (a digest of what availability is computed
  from), so ``Ready`` follows the pods. The repair never touches status and the annotation is
  on the owner, so the two do not fight; a Deployment change that leaves the digest as it was
  writes nothing;
- a ModelVersion change (e.g. a stage granted) re-triggers the ModelDeployments of the model:
  those that track it through the ``modelops.io/tracked-version`` annotation, and every one whose
  versions (pinned, stable, canary) changed stage, uid or digest through
  ``modelops.io/observed-versions``.

Governance at every reconcile, not only at admission: each role serves the exact version it was
bound to (``logic.rollout``: name, uid, digest) and is rendered from nothing else; in a production
namespace a version that does not hold Production starts no rollout; the ``Governed`` condition
(and a Warning Event when it turns) says when what serves is no longer what governance allows
(``logic.governance.serving_condition``). A canary's rollback is recorded on the exact version
that failed, by compare-and-swap.

``Ready`` means serving (see ``logic.rollout``): while it waits for the stable Deployment the
reconcile finishes without a Kopf retry delay — a delayed handler would not run on the nudge
above — and a timer on the waiting objects (every ``MODELOPS_WAIT_RETRY_SECONDS``) recomputes
the digest, nudging only when it moved, in case a watch event was missed.

A per-object lock orders the reconcile and the repairs in one process, and the reconcile writes
the rollout state to status before it touches children, so a repair never reads a state older
than the children it sees.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import importlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import kopf

from modelops.api import GROUP, VERSION, kind_info
from modelops.api.modeldeployment import AnalysisSpec, ModelDeploymentSpec
from modelops.controller import artifactpolicy, audit, feedbackkeys, metrics, quality, requeue, runtime
from modelops.controller import children as child_objects
from modelops.controller.common import API, kube, run_as_user, wait_retry_seconds, waiting_for
from modelops.controller.framework import Context, Outcome, register
from modelops.controller.kube import KubeError
from modelops.controller.watched import Watched
from modelops.logic import analysis as analysis_logic
from modelops.logic import audit as audit_records
from modelops.logic import children as child_logic
from modelops.logic import conditions as cond
from modelops.logic import governance, rollout, rolloutstate, serving, workloads
from modelops.logic.policy import DEFAULT, Policy
from modelops.logic.rules import rule_labels
from modelops.logic.validation import parse

TRACKED_ANNOTATION = "modelops.io/tracked-version"
VERSIONS_ANNOTATION = "modelops.io/observed-versions"
GOVERNED = "Governed"
OBSERVED_ANNOTATION = "modelops.io/observed-deployments"
DEFAULT_IMAGE = "ghcr.io/modelops/modelops-operator:0.1.0"
INVALID_VERSION = cond.Reason.INVALID_VERSION
WORKLOAD_NOT_ALLOWED = cond.Reason.WORKLOAD_NOT_ALLOWED
PICKLE_NOT_ALLOWED = cond.Reason.PICKLE_NOT_ALLOWED

# (apiVersion, kind, plural group, plural) of every child kind, for watching and removal.
CHILD_KINDS: tuple[tuple[str, str, str, str], ...] = (
    ("apps/v1", "Deployment", "apps", "deployments"),
    ("v1", "Service", "", "services"),
    ("v1", "ConfigMap", "", "configmaps"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "autoscaling", "horizontalpodautoscalers"),
    ("policy/v1", "PodDisruptionBudget", "policy", "poddisruptionbudgets"),
    ("monitoring.coreos.com/v1", "ServiceMonitor", "monitoring.coreos.com", "servicemonitors"),
    ("monitoring.coreos.com/v1", "PrometheusRule", "monitoring.coreos.com", "prometheusrules"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", "gateway.networking.k8s.io", "httproutes"),
)


def image() -> str:
    return os.environ.get("MODELOPS_IMAGE") or DEFAULT_IMAGE


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _lock(namespace: str, name: str) -> asyncio.Lock:
    """One reconcile of a deployment at a time (the run's lock, gone when nobody holds it)."""
    return runtime.current().lock("modeldeployment", namespace, name)


def watched() -> Watched:
    """What the watches delivered of the deployments, their children and the versions (one per run)."""
    return runtime.current().kept("modeldeployment-watched", Watched)


async def read(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """An object as the watches last delivered it; read from the API server (and kept) when never seen."""
    store = watched()
    found = store.get(api_version, kind, namespace, name)
    if not isinstance(found, child_logic.Unread):
        return found
    live = await kube().get(api_version, kind, namespace, name)
    store.read(api_version, kind, namespace, name, live)
    return live


# --- the analysis, through the Prometheus analysis module ---------------------------------------


class _Measure(Protocol):
    async def __call__(
        self,
        spec: AnalysisSpec,
        target: analysis_logic.AnalysisTarget,
        previous: Sequence[rolloutstate.AnalysisResult] | None,
        *,
        now: str,
    ) -> analysis_logic.Verdict: ...


async def measure(
    spec: AnalysisSpec,
    target: analysis_logic.AnalysisTarget,
    previous: Sequence[rolloutstate.AnalysisResult] | None,
    now: str,
) -> analysis_logic.Verdict:
    """One analysis round through ``controller.analysis.measure``."""
    try:
        module = importlib.import_module("modelops.controller.analysis")
    except ImportError:
        module = None
    function: _Measure | None = getattr(module, "measure", None) if module is not None else None
    if function is None:  # pragma: no cover - only while the analysis module is missing
        measurements = analysis_logic.all_inconclusive(spec, "the Prometheus analysis is not available")
        return analysis_logic.decide(
            measurements,
            failure_limit=spec.failure_limit,
            inconclusive_policy=spec.inconclusive_policy,
            previous=previous,
            now=now,
        )
    return await function(spec, target, previous, now=now)


# --- the version wanted -----------------------------------------------------------------------


def _version_number(obj: Mapping[str, Any]) -> int:
    value = (obj.get("spec") or {}).get("version")
    return value if isinstance(value, int) else -1


def tracked(spec: ModelDeploymentSpec, versions: Sequence[Mapping[str, Any]]) -> str | None:
    """The model's version granted ``spec.track`` (the highest number if several are)."""
    granted = [
        v
        for v in versions
        if (v.get("spec") or {}).get("model") == spec.model
        and (v.get("status") or {}).get("stage") == spec.track
        and not (v.get("metadata") or {}).get("deletionTimestamp")
    ]
    if not granted:
        return None
    return str(max(granted, key=_version_number)["metadata"]["name"])


async def _model_versions(namespace: str, model: str) -> list[dict[str, Any]]:
    return await kube().list(API, "ModelVersion", namespace, label_selector=f"{serving.MODEL_LABEL}={model}")


async def resolve(spec: ModelDeploymentSpec, namespace: str) -> tuple[str | None, str, str | None]:
    """(version wanted, the field it comes from, the problem when there is none)."""
    if spec.model_version is not None:
        return spec.model_version, "spec.modelVersion", None
    listed = await _model_versions(namespace, spec.model)
    if not listed:  # versions registered by hand may lack the label
        listed = await kube().list(API, "ModelVersion", namespace)
    found = tracked(spec, listed)
    if found is None:
        return None, "spec.track", f"no ModelVersion of {spec.model} has been granted stage {spec.track} yet"
    return found, f"ModelVersion {found}'s spec.stage", None


# --- children ---------------------------------------------------------------------------------


def _owner(body: Mapping[str, Any]) -> serving.Owner:
    meta = body["metadata"]
    return serving.Owner(name=str(meta["name"]), namespace=str(meta["namespace"]), uid=str(meta["uid"]))


def _describe(bound: rolloutstate.VersionBinding) -> str:
    return f"{bound.name} (uid {bound.uid[:8]}…, sha256 {bound.sha256[:12]}…)"


async def bound_versions(
    namespace: str, traffic: serving.Traffic, status: Mapping[str, Any] | rolloutstate.RolloutState
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]:
    """(stable, canary) ModelVersion objects the Deployments are bound to, None where that object is gone
    (deleted, or another object under its name), and a note per role left as it is."""
    stable_binding, canary_binding = rollout.bindings_of(status)
    found: list[dict[str, Any] | None] = []
    notes: list[str] = []
    roles = (("stable", traffic.stable_version, stable_binding),
             ("canary", traffic.canary_version or traffic.stable_version, canary_binding))  # fmt: skip
    for role, name, bound in roles:
        live = await read(API, "ModelVersion", namespace, name)
        if live is not None and rollout.same_version(bound, rollout.binding(live)):
            found.append(live)
            continue
        found.append(None)
        what = _describe(bound) if bound is not None else name
        if live is None:
            notes.append(f"the {role}'s version {what} was deleted")
        else:
            notes.append(f"the {role}'s version {what} was replaced by another object under its name "
                         f"({_describe(rollout.binding(live))})")  # fmt: skip
    return found[0], found[1], notes


Bound = tuple[dict[str, Any] | None, dict[str, Any] | None, list[str]]


async def converge(
    spec: ModelDeploymentSpec,
    body: Mapping[str, Any],
    traffic: serving.Traffic,
    status: Mapping[str, Any] | rolloutstate.RolloutState,
    bound: Bound | None = None,
    policy: Policy = DEFAULT,
) -> tuple[list[str], str | None]:
    """Make the children match the traffic; (what was changed, the problem that stopped it).

    ``bound`` is what ``bound_versions`` found for this traffic, if the caller has read it already.
    """
    owner = _owner(body)
    stable_version, canary_version, _ = bound or await bound_versions(owner.namespace, traffic, status)
    present = [v for v in (stable_version, canary_version) if v is not None]
    allow_pickle = await artifactpolicy.pickle_allowed(policy, owner.namespace, present)
    stable_now: int | None = None
    store = watched()
    current_stable = await read("apps/v1", "Deployment", owner.namespace, serving.stable_name(owner.name))
    if spec.autoscaling is not None and current_stable is not None:
        replicas = (current_stable.get("spec") or {}).get("replicas")
        stable_now = replicas if isinstance(replicas, int) else None
    try:
        labels = rule_labels(os.environ.get("MODELOPS_RULE_LABELS"))
        children = serving.desired_children(
            spec, owner, traffic, stable=stable_version, canary=canary_version, image=image(), rule_labels=labels,
            stable_replicas_now=stable_now, allow_pickle=allow_pickle, run_as=run_as_user(),
            feedback_ttl=feedbackkeys.rotation_seconds(),
        )  # fmt: skip
    except (serving.InvalidVersionError, ValueError) as error:
        return [], str(error)
    changed: list[str] = []
    kept_mounts: set[str] = set()
    for name in children.frozen:  # its bound version is gone: left exactly as it is, its ConfigMap too
        current = await read("apps/v1", "Deployment", owner.namespace, name)
        if current is None:
            return [], f"Deployment {name} cannot be put back: the version it served no longer exists"
        kept_mounts |= serving.mounted_config_maps(current)
    for obj in children.keep:  # a child as the watches last delivered it costs no request when it is as desired
        api_version, kind, name = obj["apiVersion"], obj["kind"], obj["metadata"]["name"]
        optional = serving.optional_api(api_version)  # the cluster may lack it (no prometheus-operator, Gateway API)
        if optional and store.api_missing(api_version, kind):
            continue
        # Never seen: most likely a new owner's, so create before any read (a 409 reads and decides).
        applied = await child_objects.apply(
            obj, known=store.get(api_version, kind, owner.namespace, name), optional_api=optional, create_first=True
        )
        if applied.missing_api:
            store.missing_api(api_version, kind)
            continue
        store.record(None, applied.obj, api_version=api_version, kind=kind)
        if applied.changed:
            changed.append(f"{kind} {name}")
    for api_version, kind, name in children.remove:
        if store.api_missing(api_version, kind):
            continue
        existing = await read(api_version, kind, owner.namespace, name)
        if existing is not None and _owned_by(existing, owner):
            await kube().delete(api_version, kind, owner.namespace, name)
            store.absent(api_version, kind, owner.namespace, name)
            changed.append(f"{kind} {name} removed")
    configmaps = store.listed("ConfigMap", owner.namespace, serving.DEPLOYMENT_LABEL, owner.name)
    for name in serving.stale_config_maps(owner.name, configmaps, children.keep, kept_mounts):
        await kube().delete("v1", "ConfigMap", owner.namespace, name)
        store.absent("v1", "ConfigMap", owner.namespace, name)
    return changed, None


def _owned_by(obj: Mapping[str, Any], owner: serving.Owner) -> bool:
    return any(ref.get("uid") == owner.uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


# --- availability of the server Deployments -----------------------------------------------------


async def _server_deployments(
    namespace: str, name: str, *, fresh: bool = False
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The stable and canary Deployments as the watches last delivered them; ``fresh``: read from the API server."""
    found: list[dict[str, Any] | None] = []
    for deployment in (serving.stable_name(name), serving.canary_name(name)):
        if fresh:
            live = await kube().get("apps/v1", "Deployment", namespace, deployment)
            watched().fetched("apps/v1", "Deployment", namespace, deployment, live)
            found.append(live)
        else:
            found.append(await read("apps/v1", "Deployment", namespace, deployment))
    return found[0], found[1]


async def availabilities(
    spec: ModelDeploymentSpec, namespace: str, name: str, status: Mapping[str, Any], *, fresh: bool = False
) -> tuple[serving.Availability | None, serving.Availability | None]:
    """(stable, canary) availability for the traffic in status; None before a first rollout. ``fresh``: from
    the API server, not from what the watches delivered (for a person's action, decided on the latest)."""
    traffic = rollout.traffic_of(spec, status)
    if traffic is None:
        return None, None
    stable, canary = await _server_deployments(namespace, name, fresh=fresh)
    replicas_now = ((stable or {}).get("spec") or {}).get("replicas") if spec.autoscaling is not None else None
    stable_count, canary_count = serving.expected_replicas(
        spec, traffic, replicas_now if isinstance(replicas_now, int) else None
    )
    return (
        serving.availability(stable, name=serving.stable_name(name), version=traffic.stable_version,
                             replicas=stable_count),
        serving.availability(canary, name=serving.canary_name(name),
                             version=traffic.canary_version or traffic.stable_version, replicas=canary_count),
    )  # fmt: skip


def deployments_digest(*deployments: Mapping[str, Any] | None) -> str:
    """A short digest of what availability is read from (spec size, template version, status)."""
    seen: list[Any] = []
    for obj in deployments:
        if obj is None:
            seen.append(None)
            continue
        status = obj.get("status") or {}
        spec = obj.get("spec") or {}
        seen.append(
            [
                (obj.get("metadata") or {}).get("uid"),
                (obj.get("metadata") or {}).get("generation"),
                spec.get("replicas"),
                ((spec.get("template") or {}).get("metadata") or {}).get("labels", {}).get(serving.VERSION_LABEL),
                {k: status.get(k) for k in ("observedGeneration", "replicas", "updatedReplicas", "availableReplicas")},
                sorted(
                    (str(c.get("type")), str(c.get("status")), str(c.get("reason")))
                    for c in status.get("conditions") or []
                    if isinstance(c, Mapping)
                ),
            ]
        )
    return hashlib.sha256(json.dumps(seen, sort_keys=True).encode()).hexdigest()[:16]


async def nudge(namespace: str, name: str) -> bool:
    """Re-trigger the owner's reconcile when its Deployments changed since it last looked (all three as the
    watches last delivered them: a patch only when the digest moved)."""
    body = await read(API, "ModelDeployment", namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return False
    digest = deployments_digest(*await _server_deployments(namespace, name))
    if ((body["metadata"].get("annotations") or {}).get(OBSERVED_ANNOTATION)) == digest:
        return False
    patch = {"metadata": {"annotations": {OBSERVED_ANNOTATION: digest}}}
    try:
        patched = await kube().patch(API, "ModelDeployment", namespace, name, patch)
    except KubeError as error:
        if error.status != 404:
            raise
        watched().absent(API, "ModelDeployment", namespace, name)
        return False
    watched().record(None, patched)
    return True


# --- the reconcile ----------------------------------------------------------------------------


def _invalid(message: str, reason: str = cond.Reason.INVALID_SPEC) -> Outcome:
    return Outcome(
        summary=cond.Summary(ready=False, reason=reason, message=message, stalled=True),
        status={"message": message},
    )


async def _reject(
    namespace: str, name: str, rejection: rollout.Rejection, bound: rolloutstate.VersionBinding | None, at: str
) -> None:
    """Record the rollback on the exact version that failed (compare-and-swap; governed status)."""
    record: dict[str, Any] = {
        "deployment": f"{namespace}/{name}",
        "metric": rejection.metric,
        "message": rejection.message,
        "at": at,
    }
    if rejection.value is not None:
        record["value"] = rejection.value
    for _ in range(8):
        version = await kube().get(API, "ModelVersion", namespace, rejection.version)
        if version is None or not rollout.same_version(bound, rollout.binding(version)):
            return  # the object that failed is gone; another under its name has no such evidence
        precondition = {"resourceVersion": version["metadata"]["resourceVersion"]}
        patch = {"metadata": precondition, "status": {"rejected": record}}
        try:
            await kube().patch(API, "ModelVersion", namespace, rejection.version, patch, subresource="status")
        except KubeError as error:
            if error.status not in (404, 409):
                raise
            continue
        audit.write([audit_records.rollback_event(version, record, by=governance.OPERATOR_IDENTITY)])
        # A status write does not make the version reconcile: ask it to look now (the rejection may
        # withdraw its Production grant).
        requeue.schedule("ModelVersion", namespace, rejection.version, 0)
        return
    raise kopf.TemporaryError(f"ModelVersion {namespace}/{rejection.version} kept changing; rejection not recorded")


async def _is_production_namespace(policy: Policy, namespace: str) -> tuple[bool, str | None]:
    """Whether the namespace serves only Production; unreadable counts as production (fail closed)."""
    store = watched()
    found = store.namespace(namespace)
    if found is None:
        try:
            found = await kube().call("GET", f"/api/v1/namespaces/{namespace}")
        except KubeError as error:
            return True, f"cannot read namespace {namespace} ({error.message}): treated as production"
        store.namespace_read(found)
    return policy.is_production_namespace((found.get("metadata") or {}).get("labels")), None


def _governed_events(old: Mapping[str, Any], condition: tuple[bool, str, str]) -> list[tuple[str, str, str]]:
    """A Warning when the Governed condition turns False or says something new; Normal when it recovers."""
    before = cond.find(old.get("conditions"), GOVERNED) or {}
    ok, reason, message = condition
    if (before.get("status") == ("True" if ok else "False")) and before.get("reason") == reason and (
        ok or before.get("message") == message
    ):
        return []
    if ok:
        return [] if not before else [("Normal", reason, message)]
    return [("Warning", reason, message)]


def make_reconcile(policy: Policy) -> Any:
    async def reconcile(spec: ModelDeploymentSpec, ctx: Context) -> Outcome:
        return await reconcile_modeldeployment(spec, ctx, policy)

    reconcile.__name__ = "reconcile_modeldeployment"
    return reconcile


async def reconcile_modeldeployment(spec: ModelDeploymentSpec, ctx: Context, policy: Policy = DEFAULT) -> Outcome:
    problem = rollout.check_spec(spec)
    if problem is not None:
        return _invalid(problem)
    production, unreadable = await _is_production_namespace(policy, ctx.namespace)
    where = workloads.governed_where(policy, ctx.namespace, production)
    problems = workloads.deployment_problems(ctx.body.get("spec") or {}, policy, where) if where else []
    if problems:
        # Admitted before the rule (or without the webhook): no pod of it is made; what runs is left alone.
        return _invalid("; ".join(problems), WORKLOAD_NOT_ALLOWED)
    desired, source, problem = await resolve(spec, ctx.namespace)
    if desired is None:
        return waiting_for(source, problem or "", {"phase": "Progressing", "desiredVersion": None})
    try:
        found = await read(API, "ModelVersion", ctx.namespace, desired)
    except KubeError as error:
        problem, found = f"cannot read ModelVersion {ctx.namespace}/{desired}: {error.message}", None
    else:
        problem = None if found is not None else f"ModelVersion {ctx.namespace}/{desired} does not exist"
    if found is None:
        return waiting_for(source, problem or "", {"phase": "Progressing", "desiredVersion": desired})
    version = found
    if (version.get("spec") or {}).get("model") != spec.model:
        return _invalid(
            f"{source}: {desired} is a version of {(version.get('spec') or {}).get('model')!r}, not of {spec.model!r}"
        )
    try:
        serving.model_result(version)
    except serving.InvalidVersionError as error:
        return _invalid(f"{source}: {error}", INVALID_VERSION)
    refused = policy.artifact_refusal(serving.artifact_format_of(version), ctx.namespace, production)
    if refused is not None:
        return _invalid(f"{source}: ModelVersion {desired}'s {refused}", PICKLE_NOT_ALLOWED)

    annotations = (ctx.body.get("metadata") or {}).get("annotations") or {}
    stage = (version.get("status") or {}).get("stage")
    blocked = governance.rollout_blocked(
        production_namespace=production, namespace=ctx.namespace, version=desired, stage=stage
    )
    if blocked is not None and unreadable:
        blocked = f"{blocked} ({unreadable})"
    async with _lock(ctx.namespace, ctx.name):
        # Read the freshest status: a repair or a previous run may have moved on since the event.
        fresh = await kube().get(API, "ModelDeployment", ctx.namespace, ctx.name)
        watched().fetched(API, "ModelDeployment", ctx.namespace, ctx.name, fresh)
        if fresh is None:
            metrics.ROLLOUTS.forget(ctx.namespace, ctx.name)
            return Outcome(summary=cond.Summary(ready=False, reason=cond.Reason.NOT_FOUND, message="deleted"))
        status = fresh.get("status") or ctx.status
        now = _now()
        # A person's new action (promote needs an available canary) is decided on the Deployments as they are now.
        action = annotations.get(rollout.ACTION_ANNOTATION)
        new_action = bool(action) and action != status.get("lastAction")
        stable_now, canary_now = await availabilities(spec, ctx.namespace, ctx.name, status, fresh=new_action)
        inputs = rollout.Inputs(
            spec=spec, namespace=ctx.namespace, name=ctx.name, status=status, desired=desired, now=now,
            desired_field=source, action=action,
            stable=stable_now, canary=canary_now, desired_binding=rollout.binding(version), blocked=blocked,
        )  # fmt: skip
        decision = rollout.decide(inputs)
        if decision.measure is not None:
            verdict = await measure(
                spec.analysis, decision.measure, rollout.previous_results(status), cond.now_iso(now)
            )
            decision = rollout.decide(rollout.Inputs(**{**inputs.__dict__, "verdict": verdict}))
        owner = _owner(fresh)
        new_status = {**decision.status, "url": serving.service_url(owner, spec.model)}
        moved = any(status.get(k) != v for k, v in new_status.items())
        metrics.ROLLOUTS.observe(ctx.namespace, ctx.name, {**status, **new_status})
        if moved:
            written = await kube().patch(API, "ModelDeployment", ctx.namespace, ctx.name, {"status": new_status},
                                         subresource="status")  # fmt: skip
            watched().record(None, written)
        if decision.rejection is not None:
            await _reject(ctx.namespace, ctx.name, decision.rejection, decision.state.failed_binding, cond.now_iso(now))
        problem = None
        events = list(decision.events)
        replaced: list[str] = []
        stable_stage: str | None = None
        if decision.traffic is not None:
            bound = await bound_versions(ctx.namespace, decision.traffic, decision.state)
            stable_obj, _, replaced = bound
            stable_stage = str((stable_obj.get("status") or {}).get("stage") or "None") if stable_obj else None
            # The servers mount the namespace's feedback keys: the Secret comes first.
            problem = await feedbackkeys.ensure_shared(ctx.namespace, ctx.name, str(fresh["metadata"]["uid"]))
            put_back: list[str] = []
            if problem is None:
                put_back, problem = await converge(spec, fresh, decision.traffic, decision.state, bound, policy)
            if put_back and not moved:  # the rollout stood still, yet children differed: a repair
                events.append(("Normal", cond.Reason.CHILD_REPAIRED, f"put back: {', '.join(put_back)}"))
        stable_name = decision.state.stable_version
        serving_desired = stable_name == desired and rollout.same_version(
            decision.state.stable_binding, rollout.binding(version)
        )  # then the question is whether the stable may go on serving, not whether a rollout may start
        governed = governance.serving_condition(governance.Serving(
            namespace=ctx.namespace, production_namespace=production, stable=stable_name, stable_stage=stable_stage,
            replaced=replaced, blocked=None if serving_desired else blocked,
        ))  # fmt: skip
        events += _governed_events(status, governed)
        conditions = [*decision.conditions, cond.Condition(GOVERNED, *governed)]
    if problem is not None:
        return Outcome(
            summary=cond.Summary(ready=False, reason=cond.Reason.CHILDREN_FAILED, message=problem, reconciling=True),
            status=new_status,
            conditions=conditions,
            events=events,
            requeue_after=wait_retry_seconds(),
        )
    return Outcome(
        summary=decision.summary,
        status=new_status,
        conditions=conditions,
        events=events,
        requeue_after=decision.requeue_after,
    )


# --- watchers ---------------------------------------------------------------------------------


async def repair(namespace: str, name: str, logger: Any, policy: Policy = DEFAULT) -> list[str]:
    """Put the children of one ModelDeployment back as its status says they should be."""
    async with _lock(namespace, name):
        # As last delivered or written: the reconcile records the status it writes before it touches children.
        body = await read(API, "ModelDeployment", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return []
        parsed = parse(ModelDeploymentSpec, body.get("spec") or {})
        if parsed.model is None or rollout.check_spec(parsed.model) is not None:
            return []
        spec: ModelDeploymentSpec = parsed.model
        status = body.get("status") or {}
        traffic = rollout.traffic_of(spec, status)
        if traffic is None:
            return []
        changed, problem = await converge(spec, body, traffic, status, policy=policy)
    if problem is not None:
        logger.warning(f"cannot repair the children of {namespace}/{name}: {problem}")
    if changed:
        message = f"put back: {', '.join(changed)}"
        kopf.event(
            kopf.Body(cast(kopf.RawBody, body)), type="Normal", reason=cond.Reason.CHILD_REPAIRED, message=message
        )
    return changed


async def on_child_event(
    event: kopf.RawEvent, body: kopf.Body, logger: Any, policy: Policy = DEFAULT, **_: Any
) -> None:
    """A child changed (any object of the children's kinds: a child whose label was taken away by hand is
    still known by what was kept of it): keep it, put it back if needed, and let Ready follow its status."""
    meta = body.get("metadata") or {}
    namespace, store = meta.get("namespace"), watched()
    owner = (meta.get("labels") or {}).get(serving.DEPLOYMENT_LABEL)
    if not owner:
        kept = store.get(str(body.get("apiVersion")), str(body.get("kind")), str(namespace), str(meta.get("name")))
        if not isinstance(kept, dict):
            return  # not a deployment's child
        owner = ((kept.get("metadata") or {}).get("labels") or {}).get(serving.DEPLOYMENT_LABEL)
    if not owner or not namespace:
        return
    if event.get("type") == "DELETED" and not isinstance(store.get(API, "ModelDeployment", namespace, owner), dict):
        store.drop(body)  # a child of a deployment not kept (gone, or not seen yet): nothing to remember
    else:
        store.record(event.get("type"), body)
    ours = any(r.get("kind") == "ModelDeployment" for r in meta.get("ownerReferences") or [])
    if event.get("type") == "DELETED" or (event.get("type") == "MODIFIED" and ours):
        # A MODIFIED child that is not (or no longer) ours is left alone: the repair would only
        # fight whoever took it.
        await repair(str(namespace), str(owner), logger, policy)
    if body.get("kind") == "Deployment" and (meta.get("labels") or {}).get(serving.ROLE_LABEL) in ("stable", "canary"):
        # Every event, the initial listing included: Ready follows the Deployments' status.
        await nudge(str(namespace), str(owner))


def _waiting_for_pods(status: kopf.Status, **_: Any) -> bool:
    conditions: Any = dict(status or {}).get("conditions")
    ready = cond.find(conditions, cond.READY) or {}
    waiting = (cond.Reason.UNAVAILABLE, cond.Reason.CANARY_UNAVAILABLE, cond.Reason.PROGRESS_DEADLINE_EXCEEDED)
    return ready.get("status") == "False" and ready.get("reason") in waiting


async def recheck_deployments(name: str, namespace: str | None, **_: Any) -> None:
    """A resync for objects waiting on their pods: nudge only if a Deployment event was missed."""
    await nudge(str(namespace), str(name))


async def on_model_version_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """A version changed: nudge the ModelDeployments that track its model."""
    watched().record(event.get("type"), body, api_version=API, kind="ModelVersion")
    if event.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
        return
    namespace = body.get("metadata", {}).get("namespace")
    model = (body.get("spec") or {}).get("model")
    if not namespace or not model:
        return
    deployments = await kube().list(API, "ModelDeployment", str(namespace))
    watching = [d for d in deployments if (d.get("spec") or {}).get("model") == model]
    if not watching:
        return
    versions = await _model_versions(str(namespace), str(model))
    if not versions:
        versions = await kube().list(API, "ModelVersion", str(namespace))
    for deployment in watching:
        parsed = parse(ModelDeploymentSpec, deployment.get("spec") or {})
        if parsed.model is None:
            continue
        annotations = deployment["metadata"].get("annotations") or {}
        changes: dict[str, str | None] = {}
        if parsed.model.track:
            wanted = tracked(parsed.model, versions) or ""
            if annotations.get(TRACKED_ANNOTATION, "") != wanted:
                changes[TRACKED_ANNOTATION] = wanted or None
        seen = versions_digest(deployment, versions)
        if annotations.get(VERSIONS_ANNOTATION) != seen:
            changes[VERSIONS_ANNOTATION] = seen
        if not changes:
            continue
        patch = {"metadata": {"annotations": changes}}
        try:
            await kube().patch(API, "ModelDeployment", str(namespace), deployment["metadata"]["name"], patch)
        except KubeError as error:
            if error.status != 404:
                raise


def versions_digest(deployment: Mapping[str, Any], versions: Sequence[Mapping[str, Any]]) -> str:
    """A short digest of the versions a deployment refers to (pinned, stable, canary): name, uid, digest, stage."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    names = {spec.get("modelVersion"), status.get("stableVersion"), status.get("canaryVersion")} - {None}
    seen = sorted(
        (str(v["metadata"].get("name")), str(v["metadata"].get("uid")),
         str(((v.get("spec") or {}).get("artifact") or {}).get("sha256")), str((v.get("status") or {}).get("stage")))
        for v in versions
        if (v.get("metadata") or {}).get("name") in names
    )  # fmt: skip
    return hashlib.sha256(json.dumps([sorted(map(str, names)), seen]).encode()).hexdigest()[:16]


async def on_deployment_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    """Keep the deployment as the watch delivered it; once deleted, forget its series and its children."""
    watched().record(event.get("type"), body, api_version=API, kind="ModelDeployment")
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    if event.get("type") == "DELETED":
        metrics.ROLLOUTS.forget(namespace, name)
        watched().forget(namespace, serving.DEPLOYMENT_LABEL, name, (API, "ModelDeployment", namespace, name))


def setup(registry: kopf.OperatorRegistry, *, policy: Policy = DEFAULT) -> None:
    """Add this kind's handlers to an operator's registry: the reconcile, the two watchers, the keys' and the
    live quality's timers."""

    async def on_child(event: kopf.RawEvent, body: kopf.Body, logger: Any, **_: Any) -> None:
        await on_child_event(event, body, logger, policy)

    register(registry, kind_info("ModelDeployment"), make_reconcile(policy))
    feedbackkeys.setup(registry)
    quality.setup(registry)
    for api_version, _kind, group, plural in CHILD_KINDS:
        version = api_version.rsplit("/", 1)[-1]
        # Every object of the kind, not only the labelled ones: a child whose label is taken away by hand must
        # be seen so (Kopf filters labels in the operator anyway; the watch is the same).
        kopf.on.event(group, version, plural, id=f"repair-{plural}", registry=registry)(runtime.bound(on_child))
    kopf.on.event(GROUP, VERSION, "modelversions", id="track-versions", registry=registry)(
        runtime.bound(on_model_version_event)
    )
    kopf.on.event(GROUP, VERSION, "modeldeployments", id="keep-deployments", registry=registry)(
        runtime.bound(on_deployment_event)
    )
    kopf.on.timer(
        GROUP, VERSION, "modeldeployments", id="recheck-deployments", registry=registry,
        interval=wait_retry_seconds(), when=_waiting_for_pods,
    )(runtime.bound(recheck_deployments))  # fmt: skip
