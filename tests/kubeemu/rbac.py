"""
RBAC evaluation over the stored RBAC objects: every request's authorization, and ``SubjectAccessReview``.

The HTTP layer asks :meth:`Authorizer.decide` for every request (resource attributes, or the
path of a non-resource request such as discovery) and refuses with 403 what it does not allow;
access reviews are answered by the same decision. It decides as the real RBAC authorizer: the subject
(user, groups) is bound by ``ClusterRoleBinding`` s anywhere and by ``RoleBinding`` s
in the request's namespace (to a ``Role`` there or a ``ClusterRole``); a rule allows
when its ``verbs``, ``apiGroups``, ``resources`` (``plural``, ``plural/sub``, ``*``,
``*/sub``) and ``resourceNames`` match (``nonResourceURLs`` with a trailing ``*`` for
non-resource requests, which only cluster roles can grant). Subjects are ``User``,
``Group`` and ``ServiceAccount`` (``system:serviceaccount:NS:NAME``). Members of
``system:masters`` are allowed everything. A ``ClusterRole`` with an
``aggregationRule`` has the rules of the cluster roles its selectors pick (evaluated
on the fly instead of by the aggregation controller). The groups of a review are taken
as given: ``system:authenticated`` is not added.

:func:`bootstrap` gives the roles and bindings the API server creates at start that every
cluster has and requests depend on: ``cluster-admin`` (bound to ``system:masters``),
``system:discovery``, ``system:basic-user`` and ``system:public-info-viewer`` (discovery,
``/version``, health paths and self access reviews for every authenticated user).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kubeemu import errors
from kubeemu.admission import selector_matches
from kubeemu.cluster import Cluster, Identity, Obj

_RBAC = 'rbac.authorization.k8s.io'


def bootstrap() -> list[Obj]:
    """The bootstrap ClusterRoles and ClusterRoleBindings of the RBAC authorizer (a subset)."""
    labels = {'kubernetes.io/bootstrapping': 'rbac-defaults'}
    annotations = {'rbac.authorization.kubernetes.io/autoupdate': 'true'}
    discovery = ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/openapi', '/openapi/*', '/readyz',
                 '/version', '/version/']
    roles: dict[str, list[dict[str, Any]]] = {
        'cluster-admin': [{'apiGroups': ['*'], 'resources': ['*'], 'verbs': ['*']},
                          {'nonResourceURLs': ['*'], 'verbs': ['*']}],
        'system:discovery': [{'nonResourceURLs': discovery, 'verbs': ['get']}],
        'system:basic-user': [{'apiGroups': ['authorization.k8s.io'],
                               'resources': ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'],
                               'verbs': ['create']}],
        'system:public-info-viewer': [{'nonResourceURLs': ['/healthz', '/livez', '/readyz', '/version', '/version/'],
                                       'verbs': ['get']}],
    }
    bindings = {'cluster-admin': ['system:masters'], 'system:discovery': ['system:authenticated'],
                'system:basic-user': ['system:authenticated'],
                'system:public-info-viewer': ['system:authenticated', 'system:unauthenticated']}
    objects: list[Obj] = []
    for name, rules in roles.items():
        meta = {'name': name, 'labels': dict(labels), 'annotations': dict(annotations)}
        objects.append({'apiVersion': f'{_RBAC}/v1', 'kind': 'ClusterRole', 'metadata': meta, 'rules': rules})
    for name, groups in bindings.items():
        meta = {'name': name, 'labels': dict(labels), 'annotations': dict(annotations)}
        objects.append({'apiVersion': f'{_RBAC}/v1', 'kind': 'ClusterRoleBinding', 'metadata': meta,
                        'roleRef': {'apiGroup': _RBAC, 'kind': 'ClusterRole', 'name': name},
                        'subjects': [{'apiGroup': _RBAC, 'kind': 'Group', 'name': g} for g in groups]})
    return objects


def _subject_matches(subject: Mapping[str, Any], binding_ns: str | None, user: str, groups: Sequence[str]) -> bool:
    kind, name = subject.get('kind'), subject.get('name')
    if kind == 'User':
        return bool(name) and name == user
    if kind == 'Group':
        return bool(name) and name in groups
    if kind == 'ServiceAccount':
        namespace = subject.get('namespace') or binding_ns or ''
        return user == f'system:serviceaccount:{namespace}:{name}'
    return False


def _has(items: Sequence[str] | None, value: str) -> bool:
    return '*' in (items or []) or value in (items or [])


def rule_allows(rule: Mapping[str, Any], attrs: Mapping[str, Any]) -> bool:
    """One ``PolicyRule`` against resourceAttributes (``attrs`` with ``resource``) or nonResourceAttributes."""
    if not _has(rule.get('verbs'), str(attrs.get('verb') or '')):
        return False
    if 'path' in attrs:
        path = str(attrs['path'])
        for url in rule.get('nonResourceURLs') or []:
            if url == '*' or url == path or (url.endswith('*') and path.startswith(url[:-1])):
                return True
        return False
    if not _has(rule.get('apiGroups'), str(attrs.get('group') or '')):
        return False
    resource, sub = str(attrs.get('resource') or ''), str(attrs.get('subresource') or '')
    combined = f'{resource}/{sub}' if sub else resource
    resources = rule.get('resources') or []
    if not any(r == '*' or r == combined or (sub and r == f'*/{sub}') for r in resources):
        return False
    names = rule.get('resourceNames') or []
    return not names or str(attrs.get('name') or '') in names


class Authorizer:
    """Decides access reviews from the RBAC objects stored in a :class:`~kubeemu.cluster.Cluster`."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def _objects(self, plural: str) -> list[Obj]:
        return list(self.cluster.objects.get((_RBAC, plural), {}).values())

    def _cluster_role_rules(self, name: str) -> list[Mapping[str, Any]]:
        role = self.cluster.objects.get((_RBAC, 'clusterroles'), {}).get(('', name))
        if role is None:
            return []
        rules: list[Mapping[str, Any]] = [r for r in role.get('rules') or [] if isinstance(r, dict)]
        aggregation = role.get('aggregationRule') or {}
        selectors_ = aggregation.get('clusterRoleSelectors') or []
        if selectors_:
            for other in self._objects('clusterroles'):
                if other is role or other.get('aggregationRule'):
                    continue
                labels = (other.get('metadata') or {}).get('labels') or {}
                if any(selector_matches(s, labels) for s in selectors_ if isinstance(s, dict)):
                    rules.extend(r for r in other.get('rules') or [] if isinstance(r, dict))
        return rules

    def _bound_rules(self, user: str, groups: Sequence[str], namespace: str | None
                     ) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
        """(description of the grant, rule, subject) for every rule bound to the subject."""
        for binding in self._objects('clusterrolebindings'):
            ref = binding.get('roleRef') or {}
            for subject in binding.get('subjects') or []:
                if isinstance(subject, dict) and _subject_matches(subject, None, user, groups) \
                        and ref.get('kind') == 'ClusterRole':
                    grant = (f'ClusterRoleBinding "{binding["metadata"]["name"]}" of ClusterRole '
                             f'"{ref.get("name")}" to {subject.get("kind")} "{subject.get("name")}"')
                    for rule in self._cluster_role_rules(str(ref.get('name'))):
                        yield grant, rule, subject
        if not namespace:
            return
        for binding in self._objects('rolebindings'):
            meta = binding.get('metadata') or {}
            if meta.get('namespace') != namespace:
                continue
            ref = binding.get('roleRef') or {}
            for subject in binding.get('subjects') or []:
                if not isinstance(subject, dict) or not _subject_matches(subject, namespace, user, groups):
                    continue
                if ref.get('kind') == 'ClusterRole':
                    rules = self._cluster_role_rules(str(ref.get('name')))
                else:
                    role = self.cluster.objects.get((_RBAC, 'roles'), {}).get((namespace, str(ref.get('name'))))
                    rules = [r for r in (role or {}).get('rules') or [] if isinstance(r, dict)]
                grant = (f'RoleBinding "{meta.get("name")}/{namespace}" of {ref.get("kind")} '
                         f'"{ref.get("name")}" to {subject.get("kind")} "{subject.get("name")}"')
                for rule in rules:
                    yield grant, rule, subject

    def decide(self, user: str, groups: Sequence[str], attrs: Mapping[str, Any]) -> tuple[bool, str]:
        """(allowed, reason) for resource attributes (``resource`` …) or non-resource ones (``path``)."""
        if 'system:masters' in groups:
            return True, ''
        namespace = None if 'path' in attrs else (attrs.get('namespace') or None)
        for grant, rule, _ in self._bound_rules(user, groups, namespace):
            if rule_allows(rule, attrs):
                return True, f'RBAC: allowed by {grant}'
        return False, ''

    def review(self, body: Any, kind: str, requester: Identity, url_namespace: str | None) -> Obj:
        """Answer a SubjectAccessReview, LocalSubjectAccessReview or SelfSubjectAccessReview body."""
        if not isinstance(body, dict):
            raise errors.bad_request('the body of the request must be a JSON object')
        spec: Obj = body['spec'] if isinstance(body.get('spec'), dict) else {}
        resource_attrs, non_resource = spec.get('resourceAttributes'), spec.get('nonResourceAttributes')
        causes: list[dict[str, str]] = []
        if kind == 'SelfSubjectAccessReview':
            user, groups = requester.username, list(requester.groups)
        else:
            user, groups = str(spec.get('user') or ''), [str(g) for g in spec.get('groups') or []]
            if not user and not groups:
                causes.append({'reason': 'FieldValueRequired', 'field': 'spec.user',
                               'message': 'Invalid value: "": at least one of user or group must be specified'})
        if bool(resource_attrs) == bool(non_resource):
            causes.append({'reason': 'FieldValueRequired', 'field': 'spec.resourceAttributes',
                           'message': 'Required value: exactly one of nonResourceAttributes or '
                                      'resourceAttributes must be specified'})
        if kind == 'LocalSubjectAccessReview' and isinstance(resource_attrs, dict) \
                and resource_attrs.get('namespace') != url_namespace:
            causes.append({'reason': 'FieldValueInvalid', 'field': 'spec.resourceAttributes.namespace',
                           'message': f'Invalid value: "{resource_attrs.get("namespace")}": must match '
                                      f'metadata.namespace'})
        if causes:
            raise errors.invalid('authorization.k8s.io', kind, '', causes)
        attrs: Obj = dict(non_resource) if isinstance(non_resource, dict) else dict(resource_attrs or {})
        allowed, reason = self.decide(user, groups, attrs)
        status: Obj = {'allowed': allowed}
        if reason:
            status['reason'] = reason
        out_spec = dict(spec)
        if kind == 'SelfSubjectAccessReview':
            out_spec = {k: v for k, v in spec.items() if k in ('resourceAttributes', 'nonResourceAttributes')}
        metadata: Obj = dict(body['metadata']) if isinstance(body.get('metadata'), dict) else {}
        metadata.setdefault('creationTimestamp', None)
        return {'kind': kind, 'apiVersion': 'authorization.k8s.io/v1', 'metadata': metadata,
                'spec': out_spec, 'status': status}
