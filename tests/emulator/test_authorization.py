"""Fidelity of SubjectAccessReview: RBAC decisions over the stored Roles, ClusterRoles and bindings."""
from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient

RBAC = 'rbac.authorization.k8s.io/v1'
AUTHZ = 'authorization.k8s.io/v1'


def role(kind: str, name: str, rules: list[dict[str, Any]], namespace: str | None = None,
         **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {'name': name, **({'namespace': namespace} if namespace else {}),
                            **extra.pop('metadata', {})}
    return {'apiVersion': RBAC, 'kind': kind, 'metadata': meta, 'rules': rules, **extra}


def binding(kind: str, name: str, role_kind: str, role_name: str, subjects: list[dict[str, Any]],
            namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {'name': name, **({'namespace': namespace} if namespace else {})}
    return {'apiVersion': RBAC, 'kind': kind, 'metadata': meta, 'subjects': subjects,
            'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': role_kind, 'name': role_name}}


def user(name: str) -> dict[str, str]:
    return {'kind': 'User', 'apiGroup': 'rbac.authorization.k8s.io', 'name': name}


def group(name: str) -> dict[str, str]:
    return {'kind': 'Group', 'apiGroup': 'rbac.authorization.k8s.io', 'name': name}


def can(kube: KubeClient, who: str = '', groups: tuple[str, ...] = (), **attrs: str) -> bool:
    spec: dict[str, Any] = {'resourceAttributes': attrs}
    if who:
        spec['user'] = who
    if groups:
        spec['groups'] = list(groups)
    review = kube.create({'apiVersion': AUTHZ, 'kind': 'SubjectAccessReview', 'spec': spec})
    assert review['kind'] == 'SubjectAccessReview'
    return bool(review['status']['allowed'])


APPROVE = {'verb': 'approve', 'group': 'modelops.io', 'resource': 'modelversions'}


def test_custom_verb_through_cluster_role_binding(kube: KubeClient) -> None:
    kube.create(role('ClusterRole', 'modelops-approver',
                     [{'apiGroups': ['modelops.io'], 'resources': ['modelversions'], 'verbs': ['approve']}]))
    kube.create(binding('ClusterRoleBinding', 'alice-approves', 'ClusterRole', 'modelops-approver', [user('alice')]))

    review = kube.create({'apiVersion': AUTHZ, 'kind': 'SubjectAccessReview', 'spec': {
        'user': 'alice', 'groups': ['system:authenticated'],
        'resourceAttributes': {**APPROVE, 'namespace': 'ml', 'name': 'iris-v1'}}})
    assert review['status']['allowed'] is True
    assert review['status']['reason'] == ('RBAC: allowed by ClusterRoleBinding "alice-approves" of ClusterRole '
                                          '"modelops-approver" to User "alice"')
    assert review['spec']['user'] == 'alice'  # the spec is echoed
    assert can(kube, 'alice', namespace='other', **APPROVE)  # cluster-wide
    assert not can(kube, 'bob', ('system:authenticated',), namespace='ml', **APPROVE)
    assert not can(kube, 'alice', namespace='ml', verb='update', group='modelops.io', resource='modelversions')
    assert not can(kube, 'alice', namespace='ml', verb='approve', group='', resource='modelversions')


def test_role_binding_is_limited_to_its_namespace_and_may_bind_a_cluster_role(kube: KubeClient) -> None:
    kube.create({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'ml'}})
    kube.create(role('Role', 'approver', [{'apiGroups': ['modelops.io'], 'resources': ['modelversions'],
                                           'verbs': ['approve', 'get']}], namespace='ml'))
    kube.create(binding('RoleBinding', 'carol', 'Role', 'approver', [user('carol')], namespace='ml'))
    kube.create(role('ClusterRole', 'reader', [{'apiGroups': ['*'], 'resources': ['*'], 'verbs': ['get', 'list']}]))
    kube.create(binding('RoleBinding', 'dave-reads', 'ClusterRole', 'reader', [user('dave')], namespace='ml'))

    assert can(kube, 'carol', namespace='ml', **APPROVE)
    assert not can(kube, 'carol', namespace='default', **APPROVE)
    assert not can(kube, 'carol', **APPROVE)  # cluster-wide request: a RoleBinding does not grant it
    assert can(kube, 'dave', namespace='ml', verb='list', group='apps', resource='deployments')
    assert not can(kube, 'dave', namespace='default', verb='list', group='apps', resource='deployments')
    assert not can(kube, 'dave', namespace='ml', verb='delete', group='apps', resource='deployments')


def test_groups_service_accounts_and_system_masters(kube: KubeClient) -> None:
    kube.create(role('ClusterRole', 'editor', [{'apiGroups': [''], 'resources': ['configmaps'], 'verbs': ['*']}]))
    kube.create(binding('ClusterRoleBinding', 'team', 'ClusterRole', 'editor', [group('team-a')]))
    kube.create(binding('RoleBinding', 'sa', 'ClusterRole', 'editor',
                        [{'kind': 'ServiceAccount', 'name': 'robot', 'namespace': 'default'}], namespace='default'))
    kube.create(binding('ClusterRoleBinding', 'all-sas', 'ClusterRole', 'editor',
                        [group('system:serviceaccounts:ci')]))
    cm = {'group': '', 'resource': 'configmaps', 'namespace': 'default'}

    assert can(kube, 'erin', ('team-a',), verb='delete', **cm)
    assert not can(kube, 'erin', ('team-b',), verb='delete', **cm)
    assert can(kube, 'system:serviceaccount:default:robot', verb='patch', **cm)
    assert not can(kube, 'system:serviceaccount:other:robot', verb='patch', **cm)
    assert can(kube, 'system:serviceaccount:ci:builder', ('system:serviceaccounts', 'system:serviceaccounts:ci'),
               verb='create', **cm)
    assert can(kube, 'root', ('system:masters',), verb='escalate', group='rbac.authorization.k8s.io',
               resource='clusterroles')
    assert not can(kube, 'root', ('system:authenticated',), verb='escalate', group='rbac.authorization.k8s.io',
                   resource='clusterroles')


def test_resource_names_subresources_and_wildcards(kube: KubeClient) -> None:
    kube.create(role('ClusterRole', 'narrow', [
        {'apiGroups': ['modelops.io'], 'resources': ['modelversions'], 'resourceNames': ['iris-v1'],
         'verbs': ['approve']},
        {'apiGroups': ['modelops.io'], 'resources': ['modelversions/status'], 'verbs': ['update']},
        {'apiGroups': ['apps'], 'resources': ['*/scale'], 'verbs': ['patch']},
        {'nonResourceURLs': ['/metrics', '/debug/*'], 'verbs': ['get']},
    ]))
    kube.create(binding('ClusterRoleBinding', 'frank', 'ClusterRole', 'narrow', [user('frank')]))
    ns = {'namespace': 'ml'}

    assert can(kube, 'frank', name='iris-v1', **APPROVE, **ns)
    assert not can(kube, 'frank', name='iris-v2', **APPROVE, **ns)
    assert not can(kube, 'frank', **APPROVE, **ns)  # no name: resourceNames do not match
    assert can(kube, 'frank', verb='update', group='modelops.io', resource='modelversions', subresource='status',
               **ns)
    assert not can(kube, 'frank', verb='update', group='modelops.io', resource='modelversions', **ns)
    assert can(kube, 'frank', verb='patch', group='apps', resource='deployments', subresource='scale', **ns)
    assert not can(kube, 'frank', verb='patch', group='apps', resource='deployments', **ns)

    def non_resource(path: str, verb: str = 'get') -> bool:
        review = kube.create({'apiVersion': AUTHZ, 'kind': 'SubjectAccessReview', 'spec': {
            'user': 'frank', 'nonResourceAttributes': {'path': path, 'verb': verb}}})
        return bool(review['status']['allowed'])
    assert non_resource('/metrics')
    assert non_resource('/debug/pprof')
    assert not non_resource('/metrics', 'post')
    assert not non_resource('/healthz')


def test_cluster_role_aggregation(kube: KubeClient) -> None:
    kube.create(role('ClusterRole', 'modelops-view', [], aggregationRule={
        'clusterRoleSelectors': [{'matchLabels': {'modelops.io/aggregate-to-view': 'true'}}]}))
    kube.create(role('ClusterRole', 'mv-read', [{'apiGroups': ['modelops.io'], 'resources': ['modelversions'],
                                                 'verbs': ['get']}],
                     metadata={'labels': {'modelops.io/aggregate-to-view': 'true'}}))
    kube.create(role('ClusterRole', 'unlabelled', [{'apiGroups': ['*'], 'resources': ['*'], 'verbs': ['*']}]))
    kube.create(binding('ClusterRoleBinding', 'gina', 'ClusterRole', 'modelops-view', [user('gina')]))

    assert can(kube, 'gina', verb='get', group='modelops.io', resource='modelversions', namespace='ml')
    assert not can(kube, 'gina', verb='delete', group='modelops.io', resource='modelversions', namespace='ml')


def test_review_validation_self_review_and_verbs(emulator: Emulator, kube: KubeClient) -> None:
    with pytest.raises(ApiError) as nobody:
        kube.create({'apiVersion': AUTHZ, 'kind': 'SubjectAccessReview',
                     'spec': {'resourceAttributes': {'verb': 'get', 'resource': 'pods'}}})
    assert nobody.value.status == 422
    assert 'at least one of user or group must be specified' in nobody.value.message
    with pytest.raises(ApiError) as listing:
        kube.request('GET', '/apis/authorization.k8s.io/v1/subjectaccessreviews')
    assert listing.value.status == 405

    kube.create(role('Role', 'cm', [{'apiGroups': [''], 'resources': ['configmaps'], 'verbs': ['get']}],
                     namespace='default'))
    kube.create(binding('RoleBinding', 'hank', 'Role', 'cm', [user('hank')], namespace='default'))
    emulator.add_user('hank-token', 'hank')
    mine = emulator.client('hank-token').create({'apiVersion': AUTHZ, 'kind': 'SelfSubjectAccessReview', 'spec': {
        'resourceAttributes': {'verb': 'get', 'resource': 'configmaps', 'namespace': 'default'}}})
    assert mine['status']['allowed'] is True
    local = kube.create({'apiVersion': AUTHZ, 'kind': 'LocalSubjectAccessReview',
                         'metadata': {'namespace': 'default'}, 'spec': {
                             'user': 'hank', 'resourceAttributes': {'verb': 'list', 'resource': 'configmaps',
                                                                    'namespace': 'default'}}})
    assert local['status']['allowed'] is False

    discovery = kube.request('GET', '/apis/authorization.k8s.io/v1').json()
    verbs = {r['name']: r['verbs'] for r in discovery['resources']}
    assert verbs['subjectaccessreviews'] == ['create']


def test_every_request_is_authorized_as_the_api_server_words_it(emulator: Emulator, kube: KubeClient) -> None:
    kube.create({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'ml'}})
    kube.create(role('Role', 'cm-reader', [{'apiGroups': [''], 'resources': ['configmaps'],
                                            'verbs': ['get', 'list', 'watch']}], namespace='ml'))
    kube.create(binding('RoleBinding', 'ivy', 'Role', 'cm-reader', [user('ivy')], namespace='ml'))
    kube.create({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'a', 'namespace': 'ml'}})
    emulator.add_user('ivy-token', 'ivy')
    ivy = emulator.client('ivy-token')

    assert ivy.get('v1', 'ConfigMap', 'ml', 'a')['metadata']['name'] == 'a'
    assert [c['metadata']['name'] for c in ivy.list('v1', 'ConfigMap', 'ml')] == ['a']
    assert ivy.request('GET', '/api/v1/namespaces/ml/configmaps?watch=true&timeoutSeconds=1').status_code == 200
    # Discovery, /version and health are every authenticated user's (system:discovery and friends).
    assert ivy.request('GET', '/apis').status_code == 200
    assert ivy.request('GET', '/version').status_code == 200

    def refused(call: Any) -> ApiError:
        with pytest.raises(ApiError) as error:
            call()
        assert error.value.status == 403
        assert error.value.reason == 'Forbidden'
        return error.value

    denied = refused(lambda: ivy.create({'apiVersion': 'v1', 'kind': 'ConfigMap',
                                         'metadata': {'name': 'b', 'namespace': 'ml'}}))
    assert denied.message == ('configmaps is forbidden: User "ivy" cannot create resource "configmaps" in API '
                              'group "" in the namespace "ml"')
    denied = refused(lambda: ivy.patch('v1', 'ConfigMap', 'ml', 'a', {'data': {'k': 'v'}}))
    assert denied.message.startswith('configmaps "a" is forbidden: User "ivy" cannot patch resource')
    assert denied.body['details'] == {'name': 'a', 'kind': 'configmaps'}
    denied = refused(lambda: ivy.list('v1', 'ConfigMap', None))
    assert denied.message.endswith('cannot list resource "configmaps" in API group "" at the cluster scope')
    denied = refused(lambda: ivy.get('v1', 'ConfigMap', 'default', 'kube-root-ca.crt'))
    assert 'in the namespace "default"' in denied.message
    denied = refused(lambda: ivy.patch_status('apps/v1', 'Deployment', 'ml', 'web', {'status': {}}))
    assert 'cannot patch resource "deployments/status" in API group "apps"' in denied.message
    assert kube.get('v1', 'ConfigMap', 'ml', 'a').get('data') is None  # nothing was written
    codes = [(r.verb, r.code) for r in emulator.audit if r.user == 'ivy' and r.resource == 'configmaps']
    assert ('create', 403) in codes
    assert ('get', 200) in codes

    # Without credentials: system:admin in system:masters, bound to cluster-admin at start.
    assert kube.get('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', None, 'cluster-admin')['subjects'] == [
        {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'Group', 'name': 'system:masters'}]


def test_a_watch_the_client_closes_is_audited_as_a_watch(emulator: Emulator, kube: KubeClient) -> None:
    """The API server's audit log records a watch as verb `watch` on its resource, however it ends."""
    emulator.add_user('tok-wendy', 'wendy', groups=['system:masters'])
    kube.create({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'ml'}})
    start = len(emulator.audit)
    with requests.get(f'{emulator.url}/api/v1/namespaces/ml/configmaps', params={'watch': 'true'}, stream=True,
                      headers={'Authorization': 'Bearer tok-wendy'}, timeout=30) as response:
        assert response.status_code == 200
    # The server learns of the close when its stream next notices; wait for the record, with a deadline.
    deadline = time.monotonic() + 30
    while not [r for r in emulator.audit[start:] if r.user == 'wendy'] and time.monotonic() < deadline:
        kube.get('v1', 'Namespace', None, 'ml')  # keeps the loop turning; no sleep as synchronisation
    records = [(r.verb, r.resource, r.namespace, r.code) for r in emulator.audit[start:] if r.user == 'wendy']
    assert records == [('watch', 'configmaps', 'ml', 200)]
