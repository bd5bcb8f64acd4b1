"""Fidelity of CRDs: discovery, schema defaulting, pruning and 422 validation with field paths; auth."""
from __future__ import annotations

import pytest

from emulator.widgets import WIDGET_CRD, WIDGETS, WidgetFactory
from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient


def test_discovery_of_a_registered_crd(kube: KubeClient, widgets: Emulator) -> None:
    groups = kube.request('GET', '/apis').json()
    group = next(g for g in groups['groups'] if g['name'] == 'test.kubeemu.dev')
    assert group['preferredVersion'] == {'groupVersion': WIDGETS, 'version': 'v1'}
    assert kube.request('GET', '/apis/test.kubeemu.dev').json()['kind'] == 'APIGroup'
    resources = {r['name']: r for r in kube.request('GET', f'/apis/{WIDGETS}').json()['resources']}
    widget = resources['widgets']
    assert widget['namespaced'] is True
    assert widget['kind'] == 'Widget'
    assert widget['singularName'] == 'widget'
    assert widget['shortNames'] == ['wdg']
    assert widget['categories'] == ['kubeemu-test']
    assert 'watch' in widget['verbs']
    assert 'deletecollection' in widget['verbs']
    assert resources['widgets/status']['verbs'] == ['get', 'patch', 'update']
    assert resources['gadgets']['namespaced'] is False
    assert 'gadgets/status' not in resources
    crd = kube.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', None, WIDGET_CRD['metadata']['name'])
    conditions = {c['type']: c['status'] for c in crd['status']['conditions']}
    assert conditions == {'Established': 'True', 'NamesAccepted': 'True'}
    assert crd['status']['acceptedNames']['listKind'] == 'WidgetList'


def test_core_discovery_and_version(kube: KubeClient) -> None:
    assert kube.request('GET', '/api').json()['versions'] == ['v1']
    core = {r['name']: r for r in kube.request('GET', '/api/v1').json()['resources']}
    assert core['namespaces']['namespaced'] is False
    assert core['pods/status']['kind'] == 'Pod'
    assert core['configmaps']['shortNames'] == ['cm']
    apps = {r['name'] for r in kube.request('GET', '/apis/apps/v1').json()['resources']}
    assert {'deployments', 'deployments/status'} <= apps
    assert kube.request('GET', '/version').json()['major'] == '1'
    assert kube.request('GET', '/healthz').text == 'ok'
    with pytest.raises(ApiError) as err:
        kube.request('GET', '/apis/nonexistent.example.com/v1')
    assert err.value.status == 404


def test_shipped_extra_crds_are_served(kube: KubeClient) -> None:
    for api_version, kind, namespaced in [('monitoring.coreos.com/v1', 'ServiceMonitor', True),
                                          ('monitoring.coreos.com/v1', 'PrometheusRule', True),
                                          ('gateway.networking.k8s.io/v1', 'HTTPRoute', True),
                                          ('kopf.dev/v1', 'KopfPeering', True),
                                          ('kopf.dev/v1', 'ClusterKopfPeering', False)]:
        assert kube.resource(api_version, kind)['namespaced'] is namespaced
    created = kube.create({'apiVersion': 'monitoring.coreos.com/v1', 'kind': 'ServiceMonitor',
                           'metadata': {'name': 'm'}, 'spec': {'anything': {'goes': [1, 2]}}})
    assert created['spec'] == {'anything': {'goes': [1, 2]}}


def test_defaulting(kube: KubeClient, widgets: Emulator, make_widget: WidgetFactory) -> None:
    obj = kube.create(make_widget(mode=None))
    assert obj['spec']['replicas'] == 1
    assert obj['spec']['mode'] == 'fast'
    assert obj['spec']['dataset'] == {'uri': 'sklearn://iris', 'format': 'csv'}


def test_pruning_unknown_fields_but_preserving_where_asked(kube: KubeClient, widgets: Emulator,
                                                          make_widget: WidgetFactory) -> None:
    body = make_widget(bogus=1, extra={'free': {'form': True}}, labels={'a': 'b'})
    body['spec']['dataset']['junk'] = 'x'
    body['topLevelJunk'] = 1
    obj = kube.create(body)
    assert 'bogus' not in obj['spec']
    assert 'junk' not in obj['spec']['dataset']
    assert 'topLevelJunk' not in obj
    assert obj['spec']['extra'] == {'free': {'form': True}}
    assert obj['spec']['labels'] == {'a': 'b'}
    with pytest.raises(ApiError) as err:
        kube.create(make_widget('w2', bogus=1), params={'fieldValidation': 'Strict'})
    assert err.value.status == 400
    assert 'spec.bogus' in err.value.message


@pytest.mark.parametrize(('spec', 'field', 'reason', 'words'), [
    ({'dataset': {}}, 'spec.dataset.uri', 'FieldValueRequired', 'Required value'),
    ({'dataset': {'uri': 'ftp://x'}}, 'spec.dataset.uri', 'FieldValueInvalid', 'should match'),
    ({'replicas': 0}, 'spec.replicas', 'FieldValueInvalid', 'greater than or equal to 1'),
    ({'replicas': 11}, 'spec.replicas', 'FieldValueInvalid', 'less than or equal to 10'),
    ({'replicas': 'two'}, 'spec.replicas', 'FieldValueTypeInvalid', 'must be of type integer'),
    ({'mode': 'warp'}, 'spec.mode', 'FieldValueNotSupported', 'supported values: "fast", "slow"'),
    ({'tags': ['a', 'b', 'c', 'd']}, 'spec.tags', 'FieldValueTooMany', 'must have at most 3 items'),
    ({'tags': ['']}, 'spec.tags[0]', 'FieldValueInvalid', 'at least 1 chars long'),
    ({'labels': {'a': 1}}, 'spec.labels.a', 'FieldValueTypeInvalid', 'must be of type string'),
    ({'when': 'yesterday'}, 'spec.when', 'FieldValueInvalid', 'date-time'),
])
def test_validation_is_422_with_field_paths(kube: KubeClient, widgets: Emulator, make_widget: WidgetFactory,
                                            spec: dict[str, object], field: str, reason: str, words: str) -> None:
    with pytest.raises(ApiError) as err:
        kube.create(make_widget(**spec))
    assert err.value.status == 422
    assert err.value.reason == 'Invalid'
    causes = err.value.body['details']['causes']
    assert [(c['field'], c['reason']) for c in causes] == [(field, reason)]
    assert words in causes[0]['message']
    assert err.value.message.startswith(f'Widget.test.kubeemu.dev "w1" is invalid: {field}: ')


def test_validation_applies_to_updates_too(kube: KubeClient, widgets: Emulator, make_widget: WidgetFactory) -> None:
    kube.create(make_widget())
    with pytest.raises(ApiError) as err:
        kube.patch(WIDGETS, 'Widget', 'default', 'w1', {'spec': {'replicas': 100}})
    assert err.value.status == 422
    with pytest.raises(ApiError) as err:
        kube.patch(WIDGETS, 'Widget', 'default', 'w1', {'spec': {'dataset': None}})
    assert err.value.body['details']['causes'][0]['field'] == 'spec.dataset'


def test_invalid_crd_is_rejected(kube: KubeClient) -> None:
    crd = {**WIDGET_CRD, 'metadata': {'name': 'wrong.name'}}
    with pytest.raises(ApiError) as err:
        kube.create(crd)
    assert err.value.status == 422
    assert err.value.body['details']['causes'][0]['field'] == 'metadata.name'


def test_authentication_by_bearer_token(emulator: Emulator) -> None:
    emulator.add_user('t0ken', 'alice', ['team-a'], uid='u-1')
    emulator.grant('alice', [{'apiGroups': [''], 'resources': ['configmaps'], 'verbs': ['create']}])
    alice = emulator.client(token='t0ken')
    alice.create({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'a'}})
    anonymous = emulator.client()
    anonymous.get('v1', 'ConfigMap', 'default', 'a')
    with pytest.raises(ApiError) as err:
        emulator.client(token='wrong').get('v1', 'ConfigMap', 'default', 'a')
    assert err.value.status == 401
    users = {(r.verb, r.user) for r in emulator.audit if r.resource == 'configmaps'}
    assert users == {('create', 'alice'), ('get', 'system:admin')}
    assert [r.code for r in emulator.audit if r.user == ''] == [401]
    assert emulator.handler.users['t0ken'].groups == ('team-a', 'system:authenticated')
