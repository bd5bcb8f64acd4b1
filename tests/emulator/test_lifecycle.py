"""Fidelity of deletion: finalizers, deletionTimestamp, garbage collection, namespace termination."""
from __future__ import annotations

from typing import Any

import pytest

from emulator.widgets import WIDGET_CRD, WIDGETS, WidgetFactory
from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient


def cm(name: str, owner: dict[str, Any] | None = None, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {'name': name, 'namespace': 'default'}
    if owner is not None:
        meta['ownerReferences'] = [{'apiVersion': owner['apiVersion'], 'kind': owner['kind'],
                                    'name': owner['metadata']['name'], 'uid': owner['metadata']['uid'],
                                    'blockOwnerDeletion': True}]
    if finalizers:
        meta['finalizers'] = finalizers
    return {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': meta}


def absent(obj: dict[str, Any] | None) -> bool:
    return obj is None


def test_finalizers_keep_the_object_until_removed(kube: KubeClient, widgets: Emulator,
                                                  make_widget: WidgetFactory) -> None:
    body = make_widget()
    body['metadata']['finalizers'] = ['test/one', 'test/two']
    created = kube.create(body)
    deleting = kube.delete(WIDGETS, 'Widget', 'default', 'w1')
    assert deleting['metadata']['deletionTimestamp']
    assert deleting['metadata']['deletionGracePeriodSeconds'] == 0
    assert deleting['metadata']['generation'] == created['metadata']['generation'] + 1
    with pytest.raises(ApiError) as err:  # no new finalizers once deleting
        kube.patch(WIDGETS, 'Widget', 'default', 'w1', {'metadata': {'finalizers': ['test/one', 'test/two',
                                                                                    'test/new']}})
    assert err.value.status == 422
    assert 'no new finalizers' in err.value.message
    kube.patch(WIDGETS, 'Widget', 'default', 'w1', {'metadata': {'finalizers': ['test/two']}})
    assert kube.exists(WIDGETS, 'Widget', 'default', 'w1')
    kube.patch(WIDGETS, 'Widget', 'default', 'w1', [{'op': 'remove', 'path': '/metadata/finalizers/0'}],
               patch_type='json')
    assert not kube.exists(WIDGETS, 'Widget', 'default', 'w1')


def test_deleted_event_carries_a_new_resource_version(kube: KubeClient) -> None:
    created = kube.create(cm('a'))
    deleted = kube.delete('v1', 'ConfigMap', 'default', 'a')
    assert int(deleted['metadata']['resourceVersion']) > int(created['metadata']['resourceVersion'])
    events = list(kube.watch('v1', 'ConfigMap', 'default', resource_version=created['metadata']['resourceVersion'],
                             timeout_seconds=1))
    assert [e['type'] for e in events] == ['DELETED']


def test_delete_preconditions(kube: KubeClient) -> None:
    kube.create(cm('a'))
    with pytest.raises(ApiError) as err:
        kube.delete('v1', 'ConfigMap', 'default', 'a', preconditions={'uid': 'wrong'})
    assert err.value.status == 409


def test_background_gc_deletes_dependents_in_cascade(kube: KubeClient) -> None:
    owner = kube.create(cm('owner'))
    child = kube.create(cm('child', owner=owner))
    kube.create(cm('grandchild', owner=child))
    kube.delete('v1', 'ConfigMap', 'default', 'owner')
    kube.wait_for('v1', 'ConfigMap', 'default', 'child', absent, timeout=5)
    kube.wait_for('v1', 'ConfigMap', 'default', 'grandchild', absent, timeout=5)


def test_gc_keeps_dependents_with_other_live_owners(kube: KubeClient) -> None:
    one, two = kube.create(cm('one')), kube.create(cm('two'))
    body = cm('child', owner=one)
    body['metadata']['ownerReferences'] += cm('x', owner=two)['metadata']['ownerReferences']
    kube.create(body)
    kube.delete('v1', 'ConfigMap', 'default', 'one')
    child = kube.wait_for('v1', 'ConfigMap', 'default', 'child',
                          lambda o: o is not None and len(o['metadata']['ownerReferences']) == 1, timeout=5)
    assert child is not None
    assert child['metadata']['ownerReferences'][0]['uid'] == two['metadata']['uid']


def test_orphan_propagation_leaves_dependents(kube: KubeClient) -> None:
    owner = kube.create(cm('owner'))
    kube.create(cm('child', owner=owner))
    kube.delete('v1', 'ConfigMap', 'default', 'owner', propagation_policy='Orphan')
    kube.wait_for('v1', 'ConfigMap', 'default', 'owner', absent, timeout=5)
    child = kube.get('v1', 'ConfigMap', 'default', 'child')
    assert not child['metadata'].get('ownerReferences')


def test_foreground_propagation_deletes_dependents_first(kube: KubeClient) -> None:
    owner = kube.create(cm('owner'))
    kube.create(cm('child', owner=owner, finalizers=['test/hold']))
    deleting = kube.delete('v1', 'ConfigMap', 'default', 'owner', propagation_policy='Foreground')
    assert 'foregroundDeletion' in deleting['metadata']['finalizers']
    kube.wait_for('v1', 'ConfigMap', 'default', 'child',
                  lambda o: o is not None and 'deletionTimestamp' in o['metadata'], timeout=5)
    assert kube.exists('v1', 'ConfigMap', 'default', 'owner')  # blocked by the child's finalizer
    kube.patch('v1', 'ConfigMap', 'default', 'child', {'metadata': {'finalizers': None}})
    kube.wait_for('v1', 'ConfigMap', 'default', 'owner', absent, timeout=5)


def test_namespace_deletion_terminates_its_content(kube: KubeClient) -> None:
    kube.create({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'gone'}})
    body = cm('a')
    body['metadata']['namespace'] = 'gone'
    kube.create(body)
    terminating = kube.delete('v1', 'Namespace', None, 'gone')
    assert terminating['status']['phase'] == 'Terminating'
    kube.wait_for('v1', 'Namespace', None, 'gone', absent, timeout=5)
    assert kube.list('v1', 'ConfigMap', 'gone') == []


def test_crd_deletion_removes_the_resource_and_its_objects(kube: KubeClient, widgets: Emulator,
                                                           make_widget: WidgetFactory) -> None:
    kube.create(make_widget())
    kube.delete('apiextensions.k8s.io/v1', 'CustomResourceDefinition', None, WIDGET_CRD['metadata']['name'])
    kube.wait_for('apiextensions.k8s.io/v1', 'CustomResourceDefinition', None, WIDGET_CRD['metadata']['name'],
                  absent, timeout=5)
    with pytest.raises(ApiError) as err:
        kube.request('GET', '/apis/test.kubeemu.dev/v1/namespaces/default/widgets')
    assert err.value.status == 404


def test_deletecollection_by_label(kube: KubeClient) -> None:
    for name, app in [('a', 'x'), ('b', 'x'), ('c', 'y')]:
        body = cm(name)
        body['metadata']['labels'] = {'app': app}
        kube.create(body)
    kube.request('DELETE', '/api/v1/namespaces/default/configmaps', params={'labelSelector': 'app=x'})
    assert [o['metadata']['name'] for o in kube.list('v1', 'ConfigMap', 'default')] == ['c']
