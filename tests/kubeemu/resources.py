"""
The catalogue of served resources and the discovery documents rendered from it.

A :class:`ResourceInfo` describes one resource (group, served versions, names,
scope, subresources, verbs and — for custom resources — the per-version schema).
:data:`BUILTINS` lists the built-in resources served out of the box;
:func:`from_crd` turns a CustomResourceDefinition into a ResourceInfo.
The ``render_*`` functions produce ``/api``, ``/api/v1``, ``/apis``,
``/apis/<group>`` and ``/apis/<group>/<version>`` as the real server does.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

REVIEW_KINDS = ('SubjectAccessReview', 'SelfSubjectAccessReview', 'LocalSubjectAccessReview')
ALL_VERBS = ('create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch')
SUBRESOURCE_VERBS = ('get', 'patch', 'update')

ResourceKey = tuple[str, str]  # (group, plural)


@dataclasses.dataclass
class ResourceInfo:
    group: str
    versions: list[str]  # served versions, the preferred (storage) one first
    plural: str
    kind: str
    namespaced: bool
    singular: str = ''
    short_names: list[str] = dataclasses.field(default_factory=list)
    categories: list[str] = dataclasses.field(default_factory=list)
    subresources: set[str] = dataclasses.field(default_factory=set)
    verbs: tuple[str, ...] = ALL_VERBS
    tracks_generation: bool = False
    custom: bool = False
    schemas: dict[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    selectable_fields: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()

    @property
    def key(self) -> ResourceKey:
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f'{self.kind}List'

    def api_version(self, version: str | None = None) -> str:
        version = version or self.versions[0]
        return f'{self.group}/{version}' if self.group else version

    @property
    def field_selectors(self) -> frozenset[str]:
        base = {'metadata.name'} | ({'metadata.namespace'} if self.namespaced else set())
        return frozenset(base) | self.selectable_fields


def _builtin(group: str, version: str, plural: str, kind: str, namespaced: bool = True, *,
             short: Iterable[str] = (), categories: Iterable[str] = (), status: bool = False,
             generation: bool = False, fields: Iterable[str] = ()) -> ResourceInfo:
    return ResourceInfo(group=group, versions=[version], plural=plural, kind=kind, namespaced=namespaced,
                        short_names=list(short), categories=list(categories),
                        subresources={'status'} if status else set(), tracks_generation=generation,
                        selectable_fields=frozenset(fields))


def _with_log(info: ResourceInfo) -> ResourceInfo:
    """Pods also serve ``pods/log`` (GET only; the text a test's kubelet stand-in recorded)."""
    info.subresources.add('log')
    return info


def builtins() -> list[ResourceInfo]:
    """A fresh copy of the built-in catalogue (each emulator owns and may modify its own)."""
    return [
        _builtin('', 'v1', 'namespaces', 'Namespace', False, short=['ns'], status=True,
                 fields=['status.phase']),
        _builtin('', 'v1', 'events', 'Event', short=['ev'],
                 fields=['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name',
                         'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion',
                         'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type']),
        _builtin('', 'v1', 'configmaps', 'ConfigMap', short=['cm']),
        _builtin('', 'v1', 'secrets', 'Secret', fields=['type']),
        _builtin('', 'v1', 'services', 'Service', short=['svc'], categories=['all'], status=True),
        _with_log(_builtin('', 'v1', 'pods', 'Pod', short=['po'], categories=['all'], status=True, generation=True,
                           fields=['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName',
                                   'spec.serviceAccountName', 'spec.hostNetwork', 'status.phase', 'status.podIP',
                                   'status.nominatedNodeName'])),
        _builtin('', 'v1', 'serviceaccounts', 'ServiceAccount', short=['sa']),
        _builtin('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim', short=['pvc'], status=True),
        _builtin('events.k8s.io', 'v1', 'events', 'Event', short=['ev']),
        _builtin('apps', 'v1', 'deployments', 'Deployment', short=['deploy'], categories=['all'],
                 status=True, generation=True),
        _builtin('batch', 'v1', 'jobs', 'Job', categories=['all'], status=True, generation=True),
        _builtin('autoscaling', 'v2', 'horizontalpodautoscalers', 'HorizontalPodAutoscaler', short=['hpa'],
                 categories=['all'], status=True, generation=True),
        _builtin('policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget', short=['pdb'], status=True,
                 generation=True),
        _builtin('coordination.k8s.io', 'v1', 'leases', 'Lease'),
        _builtin('networking.k8s.io', 'v1', 'networkpolicies', 'NetworkPolicy', short=['netpol'], generation=True),
        _builtin('rbac.authorization.k8s.io', 'v1', 'roles', 'Role'),
        _builtin('rbac.authorization.k8s.io', 'v1', 'rolebindings', 'RoleBinding'),
        _builtin('rbac.authorization.k8s.io', 'v1', 'clusterroles', 'ClusterRole', False),
        _builtin('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', 'ClusterRoleBinding', False),
        _builtin('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', False,
                 short=['crd', 'crds'], categories=['api-extensions'], status=True, generation=True),
        *[dataclasses.replace(_builtin('authorization.k8s.io', 'v1', plural, kind, namespaced), verbs=('create',))
          for plural, kind, namespaced in (('subjectaccessreviews', 'SubjectAccessReview', False),
                                           ('selfsubjectaccessreviews', 'SelfSubjectAccessReview', False),
                                           ('localsubjectaccessreviews', 'LocalSubjectAccessReview', True))],
        _builtin('admissionregistration.k8s.io', 'v1', 'validatingwebhookconfigurations',
                 'ValidatingWebhookConfiguration', False, categories=['api-extensions'], generation=True),
        _builtin('admissionregistration.k8s.io', 'v1', 'mutatingwebhookconfigurations',
                 'MutatingWebhookConfiguration', False, categories=['api-extensions'], generation=True),
    ]


def from_crd(crd: Mapping[str, Any]) -> ResourceInfo:
    """Build the served resource from a (validated) CRD object."""
    spec = crd['spec']
    names = spec['names']
    served = [v for v in spec['versions'] if v.get('served', True)]
    served.sort(key=lambda v: not v.get('storage', False))  # the storage version is the preferred one
    subresources: set[str] = set()
    schemas: dict[str, Mapping[str, Any]] = {}
    for version in served:
        subresources |= set((version.get('subresources') or {}).keys())
        schemas[version['name']] = (version.get('schema') or {}).get('openAPIV3Schema') or {}
    return ResourceInfo(
        group=spec['group'], versions=[v['name'] for v in served], plural=names['plural'],
        kind=names['kind'], namespaced=spec.get('scope', 'Namespaced') == 'Namespaced',
        singular=names.get('singular') or names['kind'].lower(), short_names=list(names.get('shortNames') or []),
        categories=list(names.get('categories') or []), subresources=subresources & {'status', 'scale'},
        tracks_generation=True, custom=True, schemas=schemas,
        selectable_fields=frozenset(f['jsonPath'].lstrip('.') for v in served
                                    for f in v.get('selectableFields') or []),
    )


def render_resource_list(group: str, version: str, resources: Iterable[ResourceInfo]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for info in sorted(resources, key=lambda r: r.plural):
        entry: dict[str, Any] = {
            'name': info.plural, 'singularName': info.singular, 'namespaced': info.namespaced,
            'kind': info.kind, 'verbs': list(info.verbs),
        }
        if info.short_names:
            entry['shortNames'] = list(info.short_names)
        if info.categories:
            entry['categories'] = list(info.categories)
        entries.append(entry)
        for sub in sorted(info.subresources):
            kind = info.kind if sub in ('status', 'log') else 'Scale'
            verbs = ['get'] if sub == 'log' else list(SUBRESOURCE_VERBS)
            entries.append({'name': f'{info.plural}/{sub}', 'singularName': '', 'namespaced': info.namespaced,
                            'kind': kind, 'verbs': verbs})
    return {'kind': 'APIResourceList', 'apiVersion': 'v1',
            'groupVersion': f'{group}/{version}' if group else version, 'resources': entries}


def render_group(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{'groupVersion': f'{group}/{v}', 'version': v} for v in versions]
    return {'kind': 'APIGroup', 'apiVersion': 'v1', 'name': group, 'versions': gvs, 'preferredVersion': gvs[0]}


def group_versions(resources: Iterable[ResourceInfo]) -> dict[str, list[str]]:
    """Map each API group to its served versions, preferred first (the core group is keyed as '')."""
    result: dict[str, list[str]] = {}
    for info in resources:
        known = result.setdefault(info.group, [])
        for version in info.versions:
            if version not in known:
                known.append(version)
    return result
