"""Fidelity of object semantics: metadata, resourceVersion/409, generation, status split, verbs, errors."""
from __future__ import annotations

from typing import Any

import pytest

from emulator.widgets import WIDGETS, WidgetFactory
from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient


def cm(name: str, namespace: str = 'default', **labels: str) -> dict[str, Any]:
    return {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': name, 'namespace': namespace,
                                                                  'labels': labels}, 'data': {'k': 'v'}}


def test_system_metadata_is_set_on_create(kube: KubeClient) -> None:
    obj = kube.create(cm('a'))
    meta = obj['metadata']
    assert meta['namespace'] == 'default'
    assert len(meta['uid']) == 36
    assert meta['creationTimestamp'].endswith('Z')
    assert meta['resourceVersion'].isdigit()
    assert 'generation' not in meta  # ConfigMaps do not track generation


def test_resource_version_is_one_global_increasing_counter(kube: KubeClient) -> None:
    a = kube.create(cm('a'))
    b = kube.create({'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 'b'}, 'stringData': {'x': 'y'}})
    c = kube.patch('v1', 'ConfigMap', 'default', 'a', {'data': {'k': 'w'}})
    rvs = [int(o['metadata']['resourceVersion']) for o in (a, b, c)]
    assert rvs == sorted(rvs)
    assert len(set(rvs)) == 3
    listed = kube.list_object('v1', 'ConfigMap', 'default')
    assert int(listed['metadata']['resourceVersion']) >= rvs[-1]


def test_stale_resource_version_is_409_conflict_on_put_and_patch(kube: KubeClient) -> None:
    first = kube.create(cm('a'))
    kube.patch('v1', 'ConfigMap', 'default', 'a', {'data': {'k': 'newer'}})
    stale = dict(first, data={'k': 'stale'})
    with pytest.raises(ApiError) as err:
        kube.replace(stale)
    assert err.value.status == 409
    assert err.value.reason == 'Conflict'
    assert 'the object has been modified' in err.value.message
    with pytest.raises(ApiError) as err:
        kube.patch('v1', 'ConfigMap', 'default', 'a',
                   {'metadata': {'resourceVersion': first['metadata']['resourceVersion']}, 'data': {'k': 'x'}})
    assert err.value.status == 409
    assert kube.get('v1', 'ConfigMap', 'default', 'a')['data'] == {'k': 'newer'}


def test_put_with_the_current_resource_version_succeeds_and_keeps_system_fields(kube: KubeClient) -> None:
    obj = kube.create(cm('a'))
    body = dict(obj, data={'k': 'put'})
    body['metadata'] = dict(obj['metadata'], uid=obj['metadata']['uid'], creationTimestamp='2000-01-01T00:00:00Z')
    replaced = kube.replace(body)
    assert replaced['data'] == {'k': 'put'}
    assert replaced['metadata']['creationTimestamp'] == obj['metadata']['creationTimestamp']
    assert int(replaced['metadata']['resourceVersion']) > int(obj['metadata']['resourceVersion'])


def test_no_op_write_keeps_the_resource_version(kube: KubeClient) -> None:
    obj = kube.create(cm('a'))
    same = kube.patch('v1', 'ConfigMap', 'default', 'a', {'data': {'k': 'v'}})
    assert same['metadata']['resourceVersion'] == obj['metadata']['resourceVersion']


def test_duplicate_create_is_409_already_exists(kube: KubeClient) -> None:
    kube.create(cm('a'))
    with pytest.raises(ApiError) as err:
        kube.create(cm('a'))
    assert err.value.status == 409
    assert err.value.reason == 'AlreadyExists'
    assert err.value.body['details'] == {'name': 'a', 'group': '', 'kind': 'configmaps'}


def test_not_found_is_a_proper_status(kube: KubeClient, widgets: Emulator) -> None:
    with pytest.raises(ApiError) as err:
        kube.get(WIDGETS, 'Widget', 'default', 'nope')
    body = err.value.body
    assert (body['kind'], body['status'], body['code'], body['reason']) == ('Status', 'Failure', 404, 'NotFound')
    assert body['message'] == 'widgets.test.kubeemu.dev "nope" not found'


def test_create_in_a_missing_namespace_is_404(kube: KubeClient) -> None:
    with pytest.raises(ApiError) as err:
        kube.create(cm('a', namespace='ghost'))
    assert err.value.status == 404
    assert err.value.message == 'namespaces "ghost" not found'
    kube.create({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'ghost'}})
    assert kube.create(cm('a', namespace='ghost'))['metadata']['namespace'] == 'ghost'


def test_default_namespace_exists_and_is_active(kube: KubeClient) -> None:
    names = {ns['metadata']['name'] for ns in kube.list('v1', 'Namespace')}
    assert {'default', 'kube-system'} <= names
    assert kube.get('v1', 'Namespace', None, 'default')['status']['phase'] == 'Active'


def test_generate_name(kube: KubeClient) -> None:
    body = cm('')
    body['metadata'] = {'generateName': 'job-', 'namespace': 'default'}
    one, two = kube.create(body), kube.create(body)
    assert one['metadata']['name'].startswith('job-')
    assert len(one['metadata']['name']) == len('job-') + 5
    assert one['metadata']['name'] != two['metadata']['name']
    body['metadata'] = {'namespace': 'default'}
    with pytest.raises(ApiError) as err:
        kube.create(body)
    assert err.value.status == 422


def test_generation_bumps_on_spec_changes_only(kube: KubeClient, widgets: Emulator,
                                               make_widget: WidgetFactory) -> None:
    obj = kube.create(make_widget())
    assert obj['metadata']['generation'] == 1
    obj = kube.patch(WIDGETS, 'Widget', 'default', 'w1', {'metadata': {'labels': {'a': 'b'}}})
    assert obj['metadata']['generation'] == 1
    obj = kube.patch_status(WIDGETS, 'Widget', 'default', 'w1', {'status': {'phase': 'Ready'}})
    assert obj['metadata']['generation'] == 1
    obj = kube.patch(WIDGETS, 'Widget', 'default', 'w1', {'spec': {'replicas': 3}})
    assert obj['metadata']['generation'] == 2


def test_generation_counts_status_without_the_status_subresource(kube: KubeClient, widgets: Emulator) -> None:
    obj = kube.create({'apiVersion': WIDGETS, 'kind': 'Gadget', 'metadata': {'name': 'g'}, 'spec': {'a': 1}})
    obj = kube.patch(WIDGETS, 'Gadget', None, 'g', {'status': {'phase': 'x'}})
    assert obj['metadata']['generation'] == 2
    assert obj['status'] == {'phase': 'x'}


def test_status_subresource_split(kube: KubeClient, widgets: Emulator, make_widget: WidgetFactory) -> None:
    body = make_widget()
    body['status'] = {'phase': 'Injected'}
    obj = kube.create(body)
    assert 'status' not in obj  # dropped on create with the status subresource
    obj = kube.patch(WIDGETS, 'Widget', 'default', 'w1', {'spec': {'replicas': 2}, 'status': {'phase': 'Main'}})
    assert obj['spec']['replicas'] == 2
    assert 'status' not in obj
    obj = kube.patch_status(WIDGETS, 'Widget', 'default', 'w1',
                            {'spec': {'replicas': 9}, 'status': {'phase': 'Ready'}})
    assert obj['status'] == {'phase': 'Ready'}
    assert obj['spec']['replicas'] == 2
    obj['status'] = {'phase': 'Replaced'}
    obj['spec']['replicas'] = 5
    obj = kube.replace_status(obj)
    assert obj['status'] == {'phase': 'Replaced'}
    assert obj['spec']['replicas'] == 2


def test_json_patch_all_ops_and_failed_test_is_422(kube: KubeClient) -> None:
    obj = kube.create(cm('a'))
    rv = obj['metadata']['resourceVersion']
    patched = kube.patch('v1', 'ConfigMap', 'default', 'a', [
        {'op': 'test', 'path': '/metadata/resourceVersion', 'value': rv},
        {'op': 'add', 'path': '/data/x', 'value': '1'},
        {'op': 'copy', 'from': '/data/x', 'path': '/data/y'},
        {'op': 'move', 'from': '/data/k', 'path': '/data/z'},
        {'op': 'replace', 'path': '/data/x', 'value': '2'},
        {'op': 'remove', 'path': '/data/y'},
        {'op': 'add', 'path': '/metadata/finalizers', 'value': []},
        {'op': 'add', 'path': '/metadata/finalizers/-', 'value': 'x/y'},
    ], patch_type='json')
    assert patched['data'] == {'x': '2', 'z': 'v'}
    assert patched['metadata']['finalizers'] == ['x/y']
    with pytest.raises(ApiError) as err:
        kube.patch('v1', 'ConfigMap', 'default', 'a', [
            {'op': 'test', 'path': '/metadata/resourceVersion', 'value': rv},
            {'op': 'replace', 'path': '/data/x', 'value': '3'}], patch_type='json')
    assert err.value.status == 422
    with pytest.raises(ApiError) as err:
        kube.patch('v1', 'ConfigMap', 'default', 'a', [{'op': 'remove', 'path': '/data/nope'}], patch_type='json')
    assert err.value.status == 422
    assert kube.get('v1', 'ConfigMap', 'default', 'a')['data'] == {'x': '2', 'z': 'v'}


def test_strategic_merge_patch_merges_lists_by_key(kube: KubeClient) -> None:
    kube.create({'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'd'}, 'spec': {
        'selector': {'matchLabels': {'a': 'b'}},
        'template': {'metadata': {'labels': {'a': 'b'}}, 'spec': {'containers': [
            {'name': 'main', 'image': 'one', 'env': [{'name': 'A', 'value': '1'}]},
            {'name': 'side', 'image': 'two'}]}}}})
    obj = kube.patch('apps/v1', 'Deployment', 'default', 'd', {'spec': {'template': {'spec': {'containers': [
        {'name': 'main', 'image': 'uno', 'env': [{'name': 'B', 'value': '2'}]},
        {'name': 'side', '$patch': 'delete'}]}}}}, patch_type='strategic')
    containers = obj['spec']['template']['spec']['containers']
    assert containers == [{'name': 'main', 'image': 'uno', 'env': [{'name': 'A', 'value': '1'},
                                                                    {'name': 'B', 'value': '2'}]}]
    assert obj['metadata']['generation'] == 2


def test_strategic_merge_is_415_for_custom_resources(kube: KubeClient, widgets: Emulator,
                                                     make_widget: WidgetFactory) -> None:
    kube.create(make_widget())
    with pytest.raises(ApiError) as err:
        kube.patch(WIDGETS, 'Widget', 'default', 'w1', {'spec': {'replicas': 2}}, patch_type='strategic')
    assert err.value.status == 415


def test_server_side_apply_creates_then_merges(kube: KubeClient) -> None:
    created = kube.apply(cm('a', x='1'), field_manager='me')
    assert created['data'] == {'k': 'v'}
    body = cm('a')
    body['data'] = {'other': 'w'}
    merged = kube.apply(body, field_manager='me')
    assert merged['data'] == {'k': 'v', 'other': 'w'}
    assert merged['metadata']['uid'] == created['metadata']['uid']
    with pytest.raises(ApiError) as err:
        kube.request('PATCH', kube.url('v1', 'ConfigMap', 'default', 'a'), body=cm('a'),
                      content_type='application/apply-patch+yaml')
    assert err.value.status == 400  # fieldManager is required


def test_unknown_patch_content_type_is_415(kube: KubeClient) -> None:
    kube.create(cm('a'))
    with pytest.raises(ApiError) as err:
        kube.request('PATCH', kube.url('v1', 'ConfigMap', 'default', 'a'), body={}, content_type='text/plain')
    assert err.value.status == 415


def test_list_has_kind_api_version_and_pagination(kube: KubeClient) -> None:
    for index in range(5):
        kube.create(cm(f'c{index}'))
    raw = kube.request('GET', '/api/v1/namespaces/default/configmaps', params={'limit': 2}).json()
    assert raw['kind'] == 'ConfigMapList'
    assert raw['apiVersion'] == 'v1'
    assert len(raw['items']) == 2
    assert raw['metadata']['continue']
    assert 'kind' not in raw['items'][0]  # built-in list items carry no kind, as on the real server
    assert [o['metadata']['name'] for o in kube.list('v1', 'ConfigMap', 'default')] == [f'c{i}' for i in range(5)]


def test_dry_run_does_not_persist(kube: KubeClient) -> None:
    kube.create(cm('a'), params={'dryRun': 'All'})
    assert not kube.exists('v1', 'ConfigMap', 'default', 'a')


def test_builtin_services_get_a_cluster_ip_and_pods_a_pending_phase(kube: KubeClient) -> None:
    svc = kube.create({'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 's'},
                       'spec': {'selector': {'a': 'b'}, 'ports': [{'port': 80}]}})
    assert svc['spec']['clusterIP'].startswith('10.96.')
    assert svc['spec']['ports'][0]['targetPort'] == 80
    pod = kube.create({'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'p'},
                       'spec': {'containers': [{'name': 'c', 'image': 'i'}]}})
    assert pod['status']['phase'] == 'Pending'
    for api_version, kind in [('events.k8s.io/v1', 'Event'), ('batch/v1', 'Job'),
                              ('autoscaling/v2', 'HorizontalPodAutoscaler'), ('policy/v1', 'PodDisruptionBudget'),
                              ('coordination.k8s.io/v1', 'Lease'), ('rbac.authorization.k8s.io/v1', 'Role'),
                              ('v1', 'ServiceAccount'), ('v1', 'PersistentVolumeClaim')]:
        assert kube.list(api_version, kind, 'default') == []
