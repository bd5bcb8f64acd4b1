"""
The emulated cluster state and the object semantics of the Kubernetes API server.

Everything here is synchronous and runs on the emulator's event loop thread, so
each verb is atomic: no other request interleaves between reading the current
state, checking preconditions, writing, and publishing the watch event. This is
also what makes watch subscription race-free: the replay from the history and
the registration of the live queue happen in one synchronous step.

Responsibilities: the resource catalogue (built-ins and CRD-defined), storage
of objects, the global ``resourceVersion`` counter and the watch-event history,
create/get/list/update/patch/delete with the real server's rules (system
metadata, generation, status-subresource split, optimistic concurrency,
finalizers and ``deletionTimestamp``, schema processing of custom resources),
and the in-process "controllers" that a real control plane runs: the garbage
collector (ownerReferences; Background/Foreground/Orphan), namespace
termination and CRD cleanup.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import copy
import dataclasses
import datetime
import json
import random
import re
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any, TypeVar

from kubeemu import errors, patching, resources, schema, selectors
from kubeemu.resources import ResourceInfo, ResourceKey

Obj = dict[str, Any]

_DNS_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
_DNS_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
_GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'
_CRD_CLEANUP = 'customresourcecleanup.apiextensions.k8s.io'
_BUILTIN_NAMESPACES = ('default', 'kube-system', 'kube-public', 'kube-node-lease')


@dataclasses.dataclass(frozen=True)
class Identity:
    """The authenticated user of a request (as it would appear in AdmissionReview ``userInfo``)."""
    username: str
    groups: tuple[str, ...] = ()
    uid: str = ''
    extra: Mapping[str, list[str]] = dataclasses.field(default_factory=dict)

    def to_user_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {'username': self.username, 'groups': list(self.groups)}
        if self.uid:
            info['uid'] = self.uid
        if self.extra:
            info['extra'] = {k: list(v) for k, v in self.extra.items()}
        return info


ADMIN = Identity('system:admin', ('system:masters', 'system:authenticated'))
CONTROLLER = Identity('system:serviceaccount:kube-system:generic-garbage-collector',
                      ('system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'))


@dataclasses.dataclass(frozen=True)
class Event:
    rv: int
    key: ResourceKey
    namespace: str | None
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None


@dataclasses.dataclass(eq=False)
class Watcher:
    key: ResourceKey
    namespace: str | None  # None for all namespaces
    matcher: selectors.Matcher
    queue: asyncio.Queue[Event | None]

    def translate(self, event: Event) -> tuple[str, Obj] | None:
        """The event as this watcher sees it through its selectors (objects entering/leaving the set)."""
        now = self.matcher(event.obj)
        if event.type != 'MODIFIED':
            return (event.type, event.obj) if now else None
        before = event.old is not None and self.matcher(event.old)
        if now and before:
            return ('MODIFIED', event.obj)
        if now:
            return ('ADDED', event.obj)
        if before:
            return ('DELETED', event.obj)
        return None


# In-process admission hook (tests): called in the mutating phase with (operation, info, new, old, user,
# subresource, dry_run); returns the possibly mutated new object or raises StatusError to deny.
AdmissionHook = Callable[[str, ResourceInfo, Obj | None, Obj | None, Identity, str | None, bool], Obj | None]
T = TypeVar('T')


@dataclasses.dataclass(frozen=True)
class AdmissionRequest:
    """One admission phase of a write, as the write verbs yield it to their driver.

    ``phase`` is ``mutating`` (the driver answers with the possibly mutated ``new``) or
    ``validating`` (the driver answers ``None`` or raises a ``StatusError`` to deny).
    """
    phase: str  # mutating | validating
    operation: str  # CREATE | UPDATE | DELETE
    info: ResourceInfo
    version: str
    namespace: str | None
    name: str
    new: Obj | None
    old: Obj | None
    user: Identity
    subresource: str | None
    dry_run: bool
    options: Obj


# A write verb as a generator: it yields each admission phase and receives the driver's answer.
Steps = Generator[AdmissionRequest, Obj | None, T]


class StaleError(Exception):
    """The object changed while admission ran and the request had no precondition: run the verb again."""


def _patch_sets_rv(patch: Any) -> bool:
    """Whether a patch names a resourceVersion itself (then it is a precondition)."""
    if isinstance(patch, dict):
        meta = patch.get('metadata')
        return isinstance(meta, dict) and meta.get('resourceVersion') not in (None, '')
    if isinstance(patch, list):
        return any(isinstance(op, dict) and str(op.get('path', '')).startswith('/metadata/resourceVersion')
                   for op in patch)
    return False


def _check_resource_version(info: ResourceInfo, name: str, given: Any, stored: str) -> bool:
    """A client's resourceVersion against the stored one, as the registry's update does.

    Returns whether the write is conditional (a precondition to re-check at commit). No
    resourceVersion is an unconditional update where the strategy allows one; custom resources
    never do (``AllowUnconditionalUpdate`` is false for them): 422. A value that is not a string
    cannot be decoded into ObjectMeta (422), one that is not a number fails the versioner's
    parse (a bare 500), and another number is a 409.
    """
    if given is None or given == '':
        if info.custom:
            raise errors.invalid(info.group, info.plural, name, [{
                'reason': 'FieldValueInvalid', 'field': 'metadata.resourceVersion',
                'message': 'Invalid value: 0: must be specified for an update'}])
        return False
    if not isinstance(given, str):
        raise errors.invalid('', '', '', [{
            'reason': 'FieldValueInvalid', 'field': 'patch',
            'message': 'Invalid value: the patched object: json: cannot unmarshal number into Go struct field '
                       'ObjectMeta.resourceVersion of type string'}])
    if not given.isdigit():
        raise errors.StatusError(500, '', f'strconv.ParseUint: parsing {json.dumps(given)}: invalid syntax')
    if given != stored:
        raise errors.conflict(info.group, info.plural, name)
    return True


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get('metadata')
    return meta if isinstance(meta, dict) else {}


def _without_rv(obj: Mapping[str, Any]) -> Obj:
    stripped = dict(obj)
    meta = dict(_meta(obj))
    meta.pop('resourceVersion', None)
    meta.pop('managedFields', None)
    stripped['metadata'] = meta
    return stripped


class Cluster:
    """The in-memory API server state; see the module docstring."""

    def __init__(self, *, history_limit: int = 10000) -> None:
        self.resources: dict[ResourceKey, ResourceInfo] = {}
        self.objects: dict[ResourceKey, dict[tuple[str, str], Obj]] = {}
        self.uids: dict[str, tuple[ResourceKey, str, str]] = {}
        self.rv = 0
        self.history: collections.deque[Event] = collections.deque()
        self.history_limit = history_limit
        self.compacted_rv = 0  # watch events with rv <= this are no longer available
        self.watchers: set[Watcher] = set()
        self.admission: AdmissionHook | None = None
        # (namespace, pod, container) -> (pod uid, text): what a kubelet would serve as pods/log.
        self.container_logs: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._controllers_scheduled = False
        self._cluster_ips = 0
        for info in resources.builtins():
            self.register(info)
        for name in _BUILTIN_NAMESPACES:
            self.create(self.resources['', 'namespaces'], 'v1', None,
                        {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': name}})

    # --- catalogue -------------------------------------------------------------------------------

    def register(self, info: ResourceInfo) -> None:
        self.resources[info.key] = info
        self.objects.setdefault(info.key, {})

    def find(self, group: str, version: str, plural: str) -> ResourceInfo:
        info = self.resources.get((group, plural))
        if info is None or version not in info.versions:
            raise errors.endpoint_not_found()
        return info

    def by_kind(self, api_version: str, kind: str) -> ResourceInfo | None:
        group, _, version = api_version.rpartition('/')
        for info in self.resources.values():
            if info.group == group and info.kind == kind and version in info.versions:
                return info
        return None

    # --- storage & events ------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _emit(self, kind: str, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        meta = _meta(obj)
        event = Event(int(meta['resourceVersion']), info.key, meta.get('namespace'), kind, obj, old)
        self.history.append(event)
        while len(self.history) > self.history_limit:
            self.compacted_rv = self.history.popleft().rv
        for watcher in list(self.watchers):
            if watcher.key == info.key and watcher.namespace in (None, event.namespace):
                watcher.queue.put_nowait(event)
        self._schedule_controllers()

    def compact(self) -> int:
        """Forget all watch history (as etcd compaction does); returns the compacted revision."""
        self.history.clear()
        self.compacted_rv = self.rv
        return self.rv

    def _put(self, info: ResourceInfo, obj: Obj) -> None:
        meta = _meta(obj)
        self.objects[info.key][meta.get('namespace') or '', meta['name']] = obj
        self.uids[meta['uid']] = (info.key, meta.get('namespace') or '', meta['name'])

    def _drop(self, info: ResourceInfo, obj: Obj) -> None:
        meta = _meta(obj)
        self.objects[info.key].pop((meta.get('namespace') or '', meta['name']), None)
        self.uids.pop(meta['uid'], None)

    def all_objects(self) -> Iterator[tuple[ResourceInfo, Obj]]:
        for key, objs in list(self.objects.items()):
            info = self.resources.get(key)
            if info is not None:
                for obj in list(objs.values()):
                    yield info, obj

    # --- reads -----------------------------------------------------------------------------------

    def get(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj:
        obj = self.objects[info.key].get(((namespace or '') if info.namespaced else '', name))
        if obj is None:
            raise errors.not_found(info.group, info.plural, name)
        return obj

    def list(self, info: ResourceInfo, namespace: str | None, matcher: selectors.Matcher,
             *, limit: int | None = None, continue_token: str | None = None) -> tuple[list[Obj], str, str]:
        """Matching objects sorted by namespace/name, the list resourceVersion, and a continue token."""
        items = sorted(((k, o) for k, o in self.objects[info.key].items()
                        if (namespace is None or k[0] == namespace) and matcher(o)), key=lambda kv: kv[0])
        list_rv = str(self.rv)
        if continue_token:
            try:
                state = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start, list_rv = tuple(state['start']), state['rv']
            except (ValueError, KeyError, TypeError) as exc:
                raise errors.bad_request('continue key is not valid: incorrect encoded start '
                                         'resourceVersion (version meta.k8s.io/v1)') from exc
            items = [kv for kv in items if kv[0] > start]
        token = ''
        if limit and len(items) > limit:
            items = items[:limit]
            raw = json.dumps({'rv': list_rv, 'start': list(items[-1][0])}).encode()
            token = base64.urlsafe_b64encode(raw).decode()
        return [o for _, o in items], list_rv, token

    def subscribe(self, info: ResourceInfo, namespace: str | None, matcher: selectors.Matcher,
                  since: int | None) -> tuple[Watcher, list[tuple[str, Obj]]]:
        """Atomically take the replay (initial state or history after ``since``) and start a live queue."""
        watcher = Watcher(info.key, namespace, matcher, asyncio.Queue())
        replay: list[tuple[str, Obj]] = []
        if since is None:
            objs, _, _ = self.list(info, namespace, matcher)
            replay = [('ADDED', obj) for obj in objs]
        else:
            if since < self.compacted_rv:
                raise errors.gone(since, self.compacted_rv + 1)
            for event in self.history:
                if event.rv > since and event.key == info.key and namespace in (None, event.namespace):
                    translated = watcher.translate(event)
                    if translated is not None:
                        replay.append(translated)
        self.watchers.add(watcher)
        return watcher, replay

    def unsubscribe(self, watcher: Watcher) -> None:
        self.watchers.discard(watcher)

    def close_watchers(self) -> None:
        for watcher in list(self.watchers):
            watcher.queue.put_nowait(None)

    # --- writes: helpers -------------------------------------------------------------------------

    def _check_namespace(self, info: ResourceInfo, namespace: str | None, name: str) -> None:
        if not info.namespaced:
            return
        ns = self.objects['', 'namespaces'].get(('', namespace or ''))
        if ns is None:
            raise errors.not_found('', 'namespaces', namespace or '')
        if 'deletionTimestamp' in _meta(ns):
            raise errors.forbidden(f'{info.plural} "{name}" is forbidden: unable to create new content in '
                                   f'namespace {namespace} because it is being terminated',
                                   {'name': name, 'kind': info.plural, 'causes': [{
                                       'reason': 'NamespaceTerminating', 'field': 'metadata.namespace',
                                       'message': f'namespace {namespace} is being terminated'}]})

    def _validate_meta(self, info: ResourceInfo, obj: Obj, name: str) -> None:
        meta = _meta(obj)
        causes: list[dict[str, str]] = []
        pattern = _DNS_LABEL if info.key == ('', 'namespaces') else _DNS_SUBDOMAIN
        limit = 63 if info.key == ('', 'namespaces') else 253
        if info.group == 'rbac.authorization.k8s.io':  # ValidateRBACName: any valid path segment
            if name in ('.', '..') or '/' in name or '%' in name or not name:
                causes.append({'reason': 'FieldValueInvalid', 'field': 'metadata.name',
                               'message': f'Invalid value: "{name}": may not be \'.\' or \'..\' and may not '
                                          f'contain \'/\' or \'%\''})
        elif not pattern.match(name) or len(name) > limit:
            causes.append({'reason': 'FieldValueInvalid', 'field': 'metadata.name',
                           'message': f'Invalid value: "{name}": a lowercase RFC 1123 '
                                      f'{"label" if limit == 63 else "subdomain"} must consist of lower case '
                                      f'alphanumeric characters, \'-\' or \'.\', and must start and end with '
                                      f'an alphanumeric character'})
        for key, value in (meta.get('labels') or {}).items():
            if not isinstance(value, str) or not selectors._VALUE.match(value) or len(value) > 63:
                causes.append({'reason': 'FieldValueInvalid', 'field': 'metadata.labels',
                               'message': f'Invalid value: "{value}": a valid label must be an empty string or '
                                          f'consist of alphanumeric characters, \'-\', \'_\' or \'.\', and must '
                                          f'start and end with an alphanumeric character'})
            if not selectors._KEY.match(key):
                causes.append({'reason': 'FieldValueInvalid', 'field': 'metadata.labels',
                               'message': f'Invalid value: "{key}": name part must consist of alphanumeric '
                                          f'characters, \'-\', \'_\' or \'.\''})
        for key, value in (meta.get('annotations') or {}).items():
            if not isinstance(value, str):
                causes.append({'reason': 'FieldValueTypeInvalid', 'field': f'metadata.annotations.{key}',
                               'message': 'Invalid value: annotation values must be strings'})
        if causes:
            raise errors.invalid(info.group, info.kind, name, causes)

    def _prune_and_default(self, info: ResourceInfo, version: str, obj: Obj,
                           field_validation: str | None) -> list[str]:
        """Prune and default a custom resource (as decoding does); return warnings for dropped fields."""
        if not info.custom:
            return []
        openapi = info.schemas.get(version) or {}
        dropped = schema.prune(obj, openapi)
        if dropped and field_validation == 'Strict':
            joined = ', '.join(f'unknown field "{path}"' for path in dropped)
            raise errors.bad_request(f'strict decoding error: {joined}')
        schema.apply_defaults(obj, openapi)
        if field_validation in ('Warn', None) and dropped:
            return [f'unknown field "{path}"' for path in dropped]
        return []

    def _validate_custom(self, info: ResourceInfo, version: str, obj: Obj, name: str) -> None:
        if not info.custom:
            return
        causes = schema.validate(obj, info.schemas.get(version) or {})
        if causes:
            raise errors.invalid(info.group, info.kind, name, causes)

    def _spec_part(self, info: ResourceInfo, obj: Mapping[str, Any]) -> Obj:
        skip = {'metadata', 'apiVersion', 'kind'} | ({'status'} if 'status' in info.subresources else set())
        return {k: v for k, v in obj.items() if k not in skip}

    def _admit(self, phase: str, operation: str, info: ResourceInfo, version: str, new: Obj | None,
               old: Obj | None, user: Identity, subresource: str | None, dry_run: bool, options: Obj | None,
               ) -> Steps[Obj | None]:
        """Yield one admission phase to the driver (not for the in-process controllers); return ``new``."""
        if user is CONTROLLER:
            return new
        meta = _meta(new if new is not None else old or {})
        if options is None:
            kind = {'CREATE': 'CreateOptions', 'UPDATE': 'UpdateOptions', 'DELETE': 'DeleteOptions'}[operation]
            options = {'kind': kind, 'apiVersion': 'meta.k8s.io/v1'}
        answer = yield AdmissionRequest(phase, operation, info, version, meta.get('namespace'),
                                        meta.get('name', ''), new, old, user, subresource, dry_run, options)
        return answer if (answer is not None and phase == 'mutating') else new

    def admit_in_process(self, request: AdmissionRequest) -> Obj | None:
        """The answer without webhooks: only the in-process :attr:`admission` hook, in the mutating phase."""
        if request.phase != 'mutating' or self.admission is None:
            return request.new
        return self.admission(request.operation, request.info, request.new, request.old, request.user,
                              request.subresource, request.dry_run)

    def drive(self, steps: Steps[T]) -> T:
        """Run a write verb's steps synchronously, admitting in-process only (no webhooks)."""
        try:
            request = next(steps)
            while True:
                request = steps.send(self.admit_in_process(request))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    # --- writes: verbs ---------------------------------------------------------------------------

    def create(self, info: ResourceInfo, version: str, namespace: str | None, body: Any, *,
               user: Identity = ADMIN, dry_run: bool = False, field_validation: str | None = None,
               ) -> tuple[Obj, list[str]]:
        """POST (in-process admission only); returns the stored object and warnings."""
        return self.drive(self.create_steps(info, version, namespace, body, user=user, dry_run=dry_run,
                                            field_validation=field_validation))

    def create_steps(self, info: ResourceInfo, version: str, namespace: str | None, body: Any, *,
                     user: Identity = ADMIN, dry_run: bool = False, field_validation: str | None = None,
                     options: Obj | None = None) -> Steps[tuple[Obj, list[str]]]:
        """POST as steps: decode, default, mutating admission, validation, validating admission, store."""
        if not isinstance(body, dict):
            raise errors.bad_request('the body of the request must be a JSON object')
        api_version = info.api_version(version)
        if not body.get('kind'):
            if info.custom:
                # Custom resources are decoded as unstructured objects: kind is required.
                raise errors.bad_request(f"Object 'Kind' is missing in '{json.dumps(body)[:200]}'")
            # Built-in kinds are decoded into their Go type: the endpoint says what the body is.
            body = {**body, 'kind': info.kind}
        if body.get('kind') != info.kind or body.get('apiVersion') not in (api_version, None):
            raise errors.bad_request(f'the API version in the data ({body.get("apiVersion")}) does not match '
                                     f'the expected API version ({api_version})')
        obj = copy.deepcopy(body)
        obj['apiVersion'] = api_version
        meta = obj.get('metadata')
        if not isinstance(meta, dict):
            meta = obj['metadata'] = {}
        if info.namespaced:
            if meta.get('namespace') and meta['namespace'] != namespace:
                raise errors.bad_request('the namespace of the provided object does not match the namespace '
                                         'sent on the request')
            meta['namespace'] = namespace
        else:
            meta.pop('namespace', None)
        name = meta.get('name') or ''
        if not name and meta.get('generateName'):
            name = meta['generateName'] + ''.join(random.choices(_GENERATE_ALPHABET, k=5))
            while ((namespace or '') if info.namespaced else '', name) in self.objects[info.key]:
                name = meta['generateName'] + ''.join(random.choices(_GENERATE_ALPHABET, k=5))
            meta['name'] = name
        if not name:
            raise errors.invalid(info.group, info.kind, '', [{
                'reason': 'FieldValueRequired', 'field': 'metadata.name',
                'message': 'Required value: name or generateName is required'}])
        self._check_namespace(info, namespace, name)
        for key in ('deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink',
                    'resourceVersion', 'uid', 'creationTimestamp', 'generation'):
            meta.pop(key, None)
        if 'status' in info.subresources and info.key != ('', 'pods'):
            obj.pop('status', None)
        self._default_builtin(info, obj, None)
        warnings = self._prune_and_default(info, version, obj, field_validation)
        mutated = yield from self._admit('mutating', 'CREATE', info, version, obj, None, user, None, dry_run,
                                         options)
        if mutated is not None and mutated != obj:
            obj = self._after_mutation(info, version, obj, mutated)
        meta = obj['metadata']
        meta['uid'] = str(uuid.uuid4())
        meta['creationTimestamp'] = now_rfc3339()
        if info.tracks_generation:
            meta['generation'] = 1
        self._validate_custom(info, version, obj, name)
        self._validate_meta(info, obj, name)
        if info.key == ('apiextensions.k8s.io', 'customresourcedefinitions'):
            self._prepare_crd(obj, creating=True)
        yield from self._admit('validating', 'CREATE', info, version, obj, None, user, None, dry_run, options)
        self._check_namespace(info, namespace, name)  # admission may have taken a while
        if ((namespace or '') if info.namespaced else '', name) in self.objects[info.key]:
            raise errors.already_exists(info.group, info.plural, name)
        if dry_run:
            meta['resourceVersion'] = str(self.rv)
            return obj, warnings
        meta['resourceVersion'] = self._next_rv()
        self._put(info, obj)
        if info.key == ('apiextensions.k8s.io', 'customresourcedefinitions'):
            self.register(resources.from_crd(obj))
        self._emit('ADDED', info, obj, None)
        return obj, warnings

    def _after_mutation(self, info: ResourceInfo, version: str, before: Obj, mutated: Obj) -> Obj:
        """What the server does with a mutated object: system fields kept, custom resources re-pruned/defaulted."""
        obj = copy.deepcopy(mutated)
        obj['apiVersion'] = before.get('apiVersion')
        obj['kind'] = before.get('kind')
        meta = obj.get('metadata')
        if not isinstance(meta, dict):
            meta = obj['metadata'] = {}
        for key in ('name', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp', 'generation',
                    'deletionTimestamp', 'deletionGracePeriodSeconds'):
            if key in before['metadata']:
                meta[key] = before['metadata'][key]
            else:
                meta.pop(key, None)
        self._prune_and_default(info, version, obj, None)
        return obj

    def _default_builtin(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        """Per-type defaults the real registry strategies set."""
        if info.key == ('', 'namespaces'):
            meta = obj['metadata']
            if not isinstance(meta.get('labels'), dict):
                meta['labels'] = {}
            meta['labels']['kubernetes.io/metadata.name'] = meta.get('name', '')  # as the real server sets it
        if info.key == ('', 'namespaces') and old is None:
            obj.setdefault('spec', {}).setdefault('finalizers', ['kubernetes'])
            obj['status'] = {'phase': 'Active'}
        elif info.key == ('', 'pods') and old is None:
            obj['status'] = {'phase': 'Pending', 'qosClass': 'BestEffort'}
        elif info.key == ('', 'services'):
            spec = obj.setdefault('spec', {})
            spec.setdefault('type', 'ClusterIP')
            spec.setdefault('sessionAffinity', 'None')
            if old is not None and 'clusterIP' in (old.get('spec') or {}):
                spec.setdefault('clusterIP', old['spec']['clusterIP'])
            elif spec.get('clusterIP') != 'None':
                self._cluster_ips += 1
                spec.setdefault('clusterIP', f'10.96.{self._cluster_ips // 250}.{self._cluster_ips % 250 + 1}')
            spec.setdefault('clusterIPs', [spec['clusterIP']])
            for port in spec.get('ports') or []:
                if isinstance(port, dict):
                    port.setdefault('protocol', 'TCP')
                    port.setdefault('targetPort', port.get('port'))

    def _prepare_crd(self, crd: Obj, *, creating: bool) -> None:
        spec = crd.get('spec') if isinstance(crd.get('spec'), dict) else {}
        names = spec.get('names') if isinstance(spec.get('names'), dict) else {}
        name = _meta(crd).get('name', '')
        causes: list[dict[str, str]] = []
        for key in ('kind', 'plural'):
            if not names.get(key):
                causes.append({'reason': 'FieldValueRequired', 'field': f'spec.names.{key}',
                               'message': 'Required value'})
        if not spec.get('group'):
            causes.append({'reason': 'FieldValueRequired', 'field': 'spec.group', 'message': 'Required value'})
        if names.get('plural') and spec.get('group') and name != f'{names["plural"]}.{spec["group"]}':
            causes.append({'reason': 'FieldValueInvalid', 'field': 'metadata.name',
                           'message': f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'})
        if spec.get('scope') not in ('Namespaced', 'Cluster'):
            causes.append({'reason': 'FieldValueNotSupported', 'field': 'spec.scope',
                           'message': f'Unsupported value: "{spec.get("scope")}": supported values: '
                                      f'"Cluster", "Namespaced"'})
        versions = spec.get('versions') if isinstance(spec.get('versions'), list) else []
        if not versions:
            causes.append({'reason': 'FieldValueInvalid', 'field': 'spec.versions',
                           'message': 'Invalid value: []: must have exactly one version marked as storage '
                                      'version'})
        elif sum(1 for v in versions if v.get('storage')) != 1:
            causes.append({'reason': 'FieldValueInvalid', 'field': 'spec.versions',
                           'message': 'Invalid value: must have exactly one version marked as storage '
                                      'version'})
        for index, version in enumerate(versions):
            if not (version.get('schema') or {}).get('openAPIV3Schema'):
                causes.append({'reason': 'FieldValueRequired',
                               'field': f'spec.versions[{index}].schema.openAPIV3Schema',
                               'message': 'Required value: schemas are required'})
        if causes:
            raise errors.invalid('apiextensions.k8s.io', 'CustomResourceDefinition', name, causes)
        names.setdefault('singular', names['kind'].lower())
        names.setdefault('listKind', f'{names["kind"]}List')
        spec.setdefault('conversion', {'strategy': 'None'})
        for version in versions:
            version.setdefault('served', True)
        if creating and _CRD_CLEANUP not in (_meta(crd).setdefault('finalizers', [])):
            _meta(crd)['finalizers'].append(_CRD_CLEANUP)
        stamp = now_rfc3339()
        crd['status'] = {
            'acceptedNames': copy.deepcopy(names),
            'storedVersions': [v['name'] for v in versions if v.get('storage')],
            'conditions': [
                {'type': 'NamesAccepted', 'status': 'True', 'reason': 'NoConflicts',
                 'message': 'no conflicts found', 'lastTransitionTime': stamp},
                {'type': 'Established', 'status': 'True', 'reason': 'InitialNamesAccepted',
                 'message': 'the initial names have been accepted', 'lastTransitionTime': stamp},
            ],
        }

    def update(self, info: ResourceInfo, version: str, namespace: str | None, name: str, body: Any, *,
               subresource: str | None = None, user: Identity = ADMIN, dry_run: bool = False,
               field_validation: str | None = None) -> tuple[Obj, list[str]]:
        """PUT (in-process admission only); returns the stored object and warnings."""
        return self.drive(self.update_steps(info, version, namespace, name, body, subresource=subresource,
                                            user=user, dry_run=dry_run, field_validation=field_validation))

    def update_steps(self, info: ResourceInfo, version: str, namespace: str | None, name: str, body: Any, *,
                     subresource: str | None = None, user: Identity = ADMIN, dry_run: bool = False,
                     field_validation: str | None = None, options: Obj | None = None,
                     unconditional: bool = False) -> Steps[tuple[Obj, list[str]]]:
        """PUT semantics as steps (also the final step of every PATCH).

        A PUT's resourceVersion is checked by the strategy's rules (``_check_resource_version``);
        ``unconditional`` is for a PATCH whose result kept the stored resourceVersion untouched.
        """
        old = self.get(info, namespace, name)
        if not isinstance(body, dict):
            raise errors.bad_request('the body of the request must be a JSON object')
        if body.get('kind') not in (None, info.kind if subresource != 'scale' else 'Scale'):
            raise errors.bad_request(f'the kind in the data ({body.get("kind")}) does not match the expected '
                                     f'kind ({info.kind})')
        new_meta = body.get('metadata') if isinstance(body.get('metadata'), dict) else {}
        given_rv = new_meta.get('resourceVersion')
        if unconditional:  # a patch that left the resourceVersion alone (see patch_steps)
            given_rv = None
        else:
            given_rv = given_rv if _check_resource_version(info, name, given_rv, _meta(old)['resourceVersion']) \
                else None
        if new_meta.get('name') not in (None, name):
            raise errors.bad_request(f'the name of the object ({new_meta.get("name")}) does not match the name '
                                     f'on the URL ({name})')
        if new_meta.get('uid') not in (None, '', _meta(old)['uid']):
            # A PUT's uid is a storage precondition (rest.DefaultUpdatedObjectInfo), failed in etcd3's words.
            key = (f'/registry/apiextensions.kubernetes.io/{info.group}/{info.plural}' if info.custom
                   else f'/registry/{info.plural}') + (f'/{namespace}' if info.namespaced else '') + f'/{name}'
            raise errors.conflict(info.group, info.plural, name,
                                  f'StorageError: invalid object, Code: 4, Key: {key}, ResourceVersion: 0, '
                                  f'AdditionalErrorMsg: Precondition failed: UID in precondition: '
                                  f'{new_meta.get("uid")}, UID in object meta: {_meta(old)["uid"]}')
        old_meta = _meta(old)
        if subresource == 'status':
            new = copy.deepcopy(old)
            if 'status' in body:
                new['status'] = copy.deepcopy(body['status'])
            else:
                new.pop('status', None)
        else:
            new = copy.deepcopy(body)
            new['metadata'] = meta = copy.deepcopy(new_meta)
            if 'status' in info.subresources:
                if 'status' in old:
                    new['status'] = copy.deepcopy(old['status'])
                else:
                    new.pop('status', None)
            for key in ('uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds',
                        'generation', 'namespace', 'name'):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            meta.pop('managedFields', None)
            meta.pop('selfLink', None)
            if 'deletionTimestamp' in old_meta:
                added = [f for f in meta.get('finalizers') or [] if f not in (old_meta.get('finalizers') or [])]
                if added:
                    raise errors.invalid(info.group, info.kind, name, [{
                        'reason': 'FieldValueForbidden', 'field': 'metadata.finalizers',
                        'message': f'Forbidden: no new finalizers can be added if the object is being '
                                   f'deleted, found new finalizers {json.dumps(added)}'}])
            self._default_builtin(info, new, old)
        new['apiVersion'] = info.api_version(version)
        new['kind'] = info.kind
        new['metadata']['resourceVersion'] = old_meta['resourceVersion']
        warnings = self._prune_and_default(info, version, new, field_validation)
        mutated = yield from self._admit('mutating', 'UPDATE', info, version, new, old, user, subresource,
                                         dry_run, options)
        if mutated is not None and mutated != new:
            new = self._after_mutation(info, version, new, mutated)
        if info.tracks_generation and self._spec_part(info, new) != self._spec_part(info, old):
            new['metadata']['generation'] = int(old_meta.get('generation') or 0) + 1
        self._validate_custom(info, version, new, name)
        self._validate_meta(info, new, name)
        if info.key == ('apiextensions.k8s.io', 'customresourcedefinitions') and subresource is None:
            self._prepare_crd(new, creating=False)
        yield from self._admit('validating', 'UPDATE', info, version, new, old, user, subresource, dry_run,
                               options)
        current = self.get(info, namespace, name)
        if current is not old:  # changed while admission ran (only possible with webhooks)
            if given_rv not in (None, ''):
                raise errors.conflict(info.group, info.plural, name)
            raise StaleError()
        if _without_rv(new) == _without_rv(old):
            return old, warnings  # a no-op write: no new resourceVersion, no watch event
        if dry_run:
            return new, warnings
        new['metadata']['resourceVersion'] = self._next_rv()
        if 'deletionTimestamp' in new['metadata'] and not new['metadata'].get('finalizers') \
                and info.key != ('', 'namespaces'):
            self._drop(info, new)
            self._emit('DELETED', info, new, old)
            self._after_removal(info, new)
            return new, warnings
        self._put(info, new)
        if info.key == ('apiextensions.k8s.io', 'customresourcedefinitions'):
            self.register(resources.from_crd(new))
        self._emit('MODIFIED', info, new, old)
        return new, warnings

    def patch(self, info: ResourceInfo, version: str, namespace: str | None, name: str, patch_type: str,
              patch: Any, *, subresource: str | None = None, user: Identity = ADMIN, dry_run: bool = False,
              field_manager: str | None = None, field_validation: str | None = None,
              ) -> tuple[Obj, list[str], bool]:
        """PATCH in one of the four flavours; returns (object, warnings, created-by-apply)."""
        return self.drive(self.patch_steps(info, version, namespace, name, patch_type, patch,
                                           subresource=subresource, user=user, dry_run=dry_run,
                                           field_manager=field_manager, field_validation=field_validation))

    def patch_steps(self, info: ResourceInfo, version: str, namespace: str | None, name: str, patch_type: str,
                    patch: Any, *, subresource: str | None = None, user: Identity = ADMIN, dry_run: bool = False,
                    field_manager: str | None = None, field_validation: str | None = None,
                    ) -> Steps[tuple[Obj, list[str], bool]]:
        """PATCH as steps: admitted as UPDATE (or CREATE when apply creates), with ``PatchOptions``."""
        options: Obj = {'kind': 'PatchOptions', 'apiVersion': 'meta.k8s.io/v1'}
        if field_manager:
            options['fieldManager'] = field_manager
        if dry_run:
            options['dryRun'] = ['All']
        if patch_type == 'apply':
            if not field_manager:
                raise errors.bad_request('PATCH, application/apply-patch+yaml, requires fieldManager to be set')
            if not isinstance(patch, dict):
                raise errors.bad_request('the applied configuration must be an object')
            try:
                current = self.get(info, namespace, name)
            except errors.StatusError:
                if subresource is not None:
                    raise
                body = copy.deepcopy(patch)
                body.setdefault('metadata', {}).setdefault('name', name)
                obj, warnings = yield from self.create_steps(info, version, namespace, body, user=user,
                                                             dry_run=dry_run, field_validation=field_validation,
                                                             options=options)
                return obj, warnings, True
            if patch.get('kind') != info.kind or patch.get('apiVersion') != info.api_version(version):
                raise errors.bad_request('apiVersion and kind of the applied configuration must match '
                                         'the resource')
            result = patching.apply_merge(current, patch, builtin=not info.custom)
        else:
            current = self.get(info, namespace, name)
            if patch_type == 'merge':
                if not isinstance(patch, dict):
                    raise errors.bad_request('json: cannot unmarshal into a merge patch: not an object')
                result = patching.merge_patch(current, patch)
            elif patch_type == 'json':
                result = patching.json_patch(current, patch)
            elif patch_type == 'strategic':
                if info.custom:
                    raise errors.StatusError(415, 'UnsupportedMediaType',
                                             'the body of the request was in an unknown format - accepted '
                                             'media types include: application/json-patch+json, '
                                             'application/merge-patch+json, application/apply-patch+yaml')
                result = patching.strategic_merge(current, patch)
            else:  # pragma: no cover  # filtered by the HTTP layer
                raise errors.unsupported_media_type(patch_type)
        if not isinstance(result, dict):
            raise errors.patch_invalid('the patched object is not a JSON object')
        patched_rv = _meta(result).get('resourceVersion')
        stored_rv = _meta(current)['resourceVersion']
        if _meta(result).get('uid') not in (None, _meta(current)['uid']):
            # A patch has no uid precondition: a changed uid is an update of an immutable field.
            raise errors.invalid(info.group, info.kind, name, [{
                'reason': 'FieldValueInvalid', 'field': 'metadata.uid',
                'message': f'Invalid value: {json.dumps(_meta(result).get("uid"))}: field is immutable'}])
        untouched = patched_rv == stored_rv and not _patch_sets_rv(patch)
        if untouched:
            # The resourceVersion came from the stored object, not from the client: it is no
            # precondition, so a change during admission retries the patch instead of a 409.
            # (A fresh metadata dict: a patch result may share it with the stored object.)
            result = {**result, 'metadata': {k: v for k, v in _meta(result).items() if k != 'resourceVersion'}}
        elif not _check_resource_version(info, name, patched_rv, stored_rv):
            untouched = True  # blanked by the patch, and the strategy allows an unconditional update
        obj, warnings = yield from self.update_steps(info, version, namespace, name, result,
                                                     subresource=subresource, user=user, dry_run=dry_run,
                                                     field_validation=field_validation, options=options,
                                                     unconditional=untouched)
        return obj, warnings, False

    def delete(self, info: ResourceInfo, namespace: str | None, name: str, *,
               propagation: str | None = None, preconditions: Mapping[str, Any] | None = None,
               user: Identity = ADMIN, dry_run: bool = False) -> Obj:
        """DELETE (in-process admission only); returns the object's last state."""
        return self.drive(self.delete_steps(info, namespace, name, propagation=propagation,
                                            preconditions=preconditions, user=user, dry_run=dry_run))

    def delete_steps(self, info: ResourceInfo, namespace: str | None, name: str, *,
                     propagation: str | None = None, preconditions: Mapping[str, Any] | None = None,
                     user: Identity = ADMIN, dry_run: bool = False) -> Steps[Obj]:
        """DELETE as steps: mutating and validating admission see ``oldObject`` only."""
        obj = self.get(info, namespace, name)
        meta = _meta(obj)
        preconditions = preconditions or {}
        # DeleteOptions.preconditions, worded as the registry's delete words them (on Kind.group).
        if preconditions.get('uid') not in (None, meta['uid']):
            raise errors.conflict(info.group, info.kind, name,
                                  f'the UID in the precondition ({preconditions["uid"]}) does not match the UID in '
                                  f'record ({meta["uid"]}). The object might have been deleted and then recreated')
        if preconditions.get('resourceVersion') not in (None, meta['resourceVersion']):
            raise errors.conflict(info.group, info.kind, name,
                                  f'the ResourceVersion in the precondition ({preconditions["resourceVersion"]}) '
                                  f'does not match the ResourceVersion in record ({meta["resourceVersion"]}). The '
                                  f'object might have been modified')
        if propagation not in (None, 'Background', 'Foreground', 'Orphan'):
            raise errors.invalid('meta.k8s.io', 'DeleteOptions', '', [{
                'reason': 'FieldValueNotSupported', 'field': 'propagationPolicy',
                'message': f'Unsupported value: "{propagation}": supported values: "Foreground", '
                           f'"Background", "Orphan", "nil"'}])
        options: Obj = {'kind': 'DeleteOptions', 'apiVersion': 'meta.k8s.io/v1'}
        if propagation:
            options['propagationPolicy'] = propagation
        if dry_run:
            options['dryRun'] = ['All']
        if preconditions:
            options['preconditions'] = dict(preconditions)
        version = info.versions[0]
        yield from self._admit('mutating', 'DELETE', info, version, None, obj, user, None, dry_run, options)
        yield from self._admit('validating', 'DELETE', info, version, None, obj, user, None, dry_run, options)
        if self.get(info, namespace, name) is not obj:  # changed while admission ran
            raise StaleError()
        if dry_run:
            return obj
        if 'deletionTimestamp' in meta:
            return obj  # already being deleted: nothing more to do
        finalizers = list(meta.get('finalizers') or [])
        if propagation == 'Orphan' and 'orphan' not in finalizers:
            finalizers.append('orphan')
        if propagation == 'Foreground' and 'foregroundDeletion' not in finalizers:
            finalizers.append('foregroundDeletion')
        if finalizers or info.key == ('', 'namespaces'):
            new = copy.deepcopy(obj)
            new_meta = new['metadata']
            new_meta['deletionTimestamp'] = now_rfc3339()
            new_meta['deletionGracePeriodSeconds'] = 0
            if finalizers:
                new_meta['finalizers'] = finalizers
            if info.tracks_generation:
                new_meta['generation'] = int(new_meta.get('generation') or 0) + 1
            if info.key == ('', 'namespaces'):
                new['status'] = {'phase': 'Terminating'}
            new_meta['resourceVersion'] = self._next_rv()
            self._put(info, new)
            self._emit('MODIFIED', info, new, obj)
            return new
        final = copy.deepcopy(obj)
        final['metadata']['resourceVersion'] = self._next_rv()
        self._drop(info, final)
        self._emit('DELETED', info, final, obj)
        self._after_removal(info, final)
        return final

    def _after_removal(self, info: ResourceInfo, obj: Obj) -> None:
        if info.key == ('apiextensions.k8s.io', 'customresourcedefinitions'):
            spec = obj.get('spec') or {}
            key = (spec.get('group', ''), (spec.get('names') or {}).get('plural', ''))
            if key in self.resources and self.resources[key].custom:
                del self.resources[key]
                self.objects.pop(key, None)

    # --- controllers -----------------------------------------------------------------------------

    def _schedule_controllers(self) -> None:
        if self._controllers_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # at bootstrap, outside of the loop: nothing to collect yet
            return
        self._controllers_scheduled = True
        loop.call_soon(self.run_controllers)

    def _fresh(self, obj: Obj) -> tuple[ResourceInfo, Obj] | None:
        """The current state of an object (by uid), or None if it is gone."""
        location = self.uids.get(_meta(obj).get('uid', ''))
        if location is None or location[0] not in self.resources:
            return None
        key, namespace, name = location
        current = self.objects[key].get((namespace, name))
        return (self.resources[key], current) if current is not None else None

    def _mutate(self, info: ResourceInfo, obj: Obj, fn: Callable[[Obj], None]) -> None:
        fresh = self._fresh(obj)
        if fresh is None:
            return
        new = copy.deepcopy(fresh[1])
        fn(new)
        meta = _meta(new)
        with contextlib.suppress(errors.StatusError):  # gone or changed meanwhile: the next pass retries
            self.update(info, info.versions[0], meta.get('namespace'), meta['name'], new, user=CONTROLLER)

    def _delete_quietly(self, info: ResourceInfo, obj: Obj, propagation: str) -> None:
        meta = _meta(obj)
        with contextlib.suppress(errors.StatusError):
            self.delete(info, meta.get('namespace'), meta['name'], propagation=propagation, user=CONTROLLER)

    def run_controllers(self) -> None:
        """One reconciliation of GC, namespace termination and CRD cleanup (re-scheduled on changes)."""
        self._controllers_scheduled = False
        dependents: dict[str, list[tuple[ResourceInfo, Obj]]] = collections.defaultdict(list)
        everything = list(self.all_objects())
        for info, obj in everything:
            for ref in _meta(obj).get('ownerReferences') or []:
                if isinstance(ref, dict) and ref.get('uid'):
                    dependents[ref['uid']].append((info, obj))

        for _, stale in everything:
            fresh = self._fresh(stale)
            if fresh is None:
                continue
            info, obj = fresh
            meta = _meta(obj)
            uid, finalizers = meta['uid'], meta.get('finalizers') or []
            deleting = 'deletionTimestamp' in meta
            if deleting and 'orphan' in finalizers:
                for dep_info, dep in dependents.get(uid, []):
                    self._mutate(dep_info, dep, lambda o, uid=uid: _meta(o).__setitem__(
                        'ownerReferences', [r for r in _meta(o).get('ownerReferences') or []
                                            if r.get('uid') != uid]))
                self._mutate(info, obj, lambda o: _meta(o).__setitem__(
                                 'finalizers', [f for f in _meta(o).get('finalizers') or [] if f != 'orphan']))
                continue
            if deleting and 'foregroundDeletion' in finalizers:
                deps = [(i, o) for i, o in dependents.get(uid, []) if self._exists(i, o)]
                for dep_info, dep in deps:
                    current = self._fresh(dep)
                    if current is not None and 'deletionTimestamp' not in _meta(current[1]):
                        self._delete_quietly(dep_info, dep, 'Foreground')
                if not deps:
                    self._mutate(info, obj, lambda o: _meta(o).__setitem__(
                        'finalizers', [f for f in _meta(o).get('finalizers') or [] if f != 'foregroundDeletion']))
                continue
            owners = [r for r in meta.get('ownerReferences') or [] if isinstance(r, dict)]
            if owners and not deleting and self._exists(info, obj):
                alive = [r for r in owners if r.get('uid') in self.uids]
                if not alive:
                    self._delete_quietly(info, obj, 'Background')
                elif len(alive) < len(owners):
                    self._mutate(info, obj, lambda o, alive=alive: _meta(o).__setitem__('ownerReferences', alive))
            if deleting and info.key == ('', 'namespaces'):
                self._terminate_namespace(info, obj)
            if deleting and info.key == ('apiextensions.k8s.io', 'customresourcedefinitions') \
                    and _CRD_CLEANUP in finalizers:
                self._cleanup_crd(info, obj)

    def _exists(self, info: ResourceInfo, obj: Obj) -> bool:
        meta = _meta(obj)
        return meta.get('uid') in self.uids and info.key in self.resources

    def _terminate_namespace(self, info: ResourceInfo, ns: Obj) -> None:
        name = _meta(ns)['name']
        remaining = [(i, o) for i, o in self.all_objects() if i.namespaced and _meta(o).get('namespace') == name]
        for obj_info, obj in remaining:
            if 'deletionTimestamp' not in _meta(obj):
                self._delete_quietly(obj_info, obj, 'Background')
        remaining = [(i, o) for i, o in self.all_objects() if i.namespaced and _meta(o).get('namespace') == name]
        if not remaining and not _meta(ns).get('finalizers'):
            final = copy.deepcopy(ns)
            final['metadata']['resourceVersion'] = self._next_rv()
            final.setdefault('spec', {})['finalizers'] = []
            self._drop(info, final)
            self._emit('DELETED', info, final, ns)

    def _cleanup_crd(self, info: ResourceInfo, crd: Obj) -> None:
        spec = crd.get('spec') or {}
        key = (spec.get('group', ''), (spec.get('names') or {}).get('plural', ''))
        served = self.resources.get(key)
        remaining = list(self.objects.get(key, {}).values()) if served is not None else []
        for obj in remaining:
            if served is not None and 'deletionTimestamp' not in _meta(obj):
                self._delete_quietly(served, obj, 'Background')
        if not self.objects.get(key):
            self._mutate(info, crd, lambda o: _meta(o).__setitem__(
                'finalizers', [f for f in _meta(o).get('finalizers') or [] if f != _CRD_CLEANUP]))
