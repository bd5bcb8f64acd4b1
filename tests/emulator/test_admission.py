"""Fidelity of dynamic admission control: the emulator calls real HTTPS webhooks as kube-apiserver does."""
from __future__ import annotations

import pathlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.webhookpeer import Review, WebhookPeer, allow, json_patch
from emulator.widgets import WIDGETS, WidgetFactory
from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient

ADMISSION = 'admissionregistration.k8s.io/v1'


@pytest.fixture
def peer(tmp_path: pathlib.Path) -> Iterator[WebhookPeer]:
    with WebhookPeer(tmp_path / 'certs') as server:
        yield server


def webhook(name: str, client_config: dict[str, str], *, resources: list[str], operations: list[str] | None = None,
            groups: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {'name': name, 'clientConfig': client_config, 'sideEffects': 'None', 'admissionReviewVersions': ['v1'],
            'rules': [{'operations': operations or ['CREATE', 'UPDATE'], 'apiGroups': groups or [''],
                       'apiVersions': ['*'], 'resources': resources}], **extra}


def register(kube: KubeClient, kind: str, *hooks: dict[str, Any], name: str = 'test') -> None:
    kube.create({'apiVersion': ADMISSION, 'kind': f'{kind}WebhookConfiguration', 'metadata': {'name': name},
                 'webhooks': list(hooks)})


def cm(name: str, namespace: str = 'default', **labels: str) -> dict[str, Any]:
    return {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': name, 'namespace': namespace,
                                                                  'labels': labels}, 'data': {'k': 'v'}}


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def test_mutating_webhook_patch_is_applied_and_review_is_complete(
        emulator: Emulator, kube: KubeClient, peer: WebhookPeer) -> None:
    peer.handlers['/mutate'] = lambda r: json_patch(
        {'op': 'add', 'path': '/metadata/labels/stamped', 'value': r['userInfo']['username'].replace(':', '.')})
    register(kube, 'Mutating', webhook('stamp.kubeemu.dev', peer.client_config('/mutate'), resources=['configmaps']))
    emulator.add_user('alice-token', 'alice', ['team-a'], uid='u-1')
    emulator.grant('alice', [{'apiGroups': [''], 'resources': ['configmaps'], 'verbs': ['create']}],
                   namespace='default')

    created = emulator.client('alice-token').create(cm('one'))

    assert created['metadata']['labels']['stamped'] == 'alice'
    assert kube.get('v1', 'ConfigMap', 'default', 'one')['metadata']['labels']['stamped'] == 'alice'
    [review] = peer.reviews('/mutate')
    assert review['operation'] == 'CREATE'
    assert review['kind'] == {'group': '', 'version': 'v1', 'kind': 'ConfigMap'}
    assert review['resource'] == {'group': '', 'version': 'v1', 'resource': 'configmaps'}
    assert review['requestResource'] == review['resource']
    assert (review['name'], review['namespace']) == ('one', 'default')
    assert review['userInfo'] == {'username': 'alice', 'uid': 'u-1', 'groups': ['team-a', 'system:authenticated']}
    assert review['object']['data'] == {'k': 'v'}
    assert review['oldObject'] is None
    assert review['dryRun'] is False
    assert review['options']['kind'] == 'CreateOptions'
    assert 'subResource' not in review
    received_path = peer.received[0][0]
    assert received_path == '/mutate?timeout=10s'  # the apiserver passes its timeout


def test_validating_denial_has_the_apiservers_message_and_code(kube: KubeClient, peer: WebhookPeer) -> None:
    peer.handlers['/deny'] = lambda r: {'allowed': False, 'status': {'code': 422, 'reason': 'Invalid',
                                                                     'message': 'k must not be v'}}
    peer.handlers['/silent'] = lambda r: {'allowed': False}
    register(kube, 'Validating', webhook('deny.kubeemu.dev', peer.client_config('/deny'), resources=['configmaps']))
    register(kube, 'Validating', webhook('silent.kubeemu.dev', peer.client_config('/silent'),
                                         resources=['secrets']), name='silent')

    with pytest.raises(ApiError) as denied:
        kube.create(cm('one'))
    assert denied.value.status == 422
    assert denied.value.body['reason'] == 'Invalid'
    assert denied.value.message == 'admission webhook "deny.kubeemu.dev" denied the request: k must not be v'
    assert not kube.exists('v1', 'ConfigMap', 'default', 'one')

    with pytest.raises(ApiError) as silent:
        kube.create({'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 's', 'namespace': 'default'}})
    assert silent.value.status == 403  # a denial without a code is Forbidden
    assert silent.value.message == 'admission webhook "silent.kubeemu.dev" denied the request without explanation'


def test_update_sends_old_object_and_validating_sees_the_mutated_object(
        kube: KubeClient, peer: WebhookPeer) -> None:
    kube.create(cm('one'))
    peer.handlers['/mutate'] = lambda r: json_patch({'op': 'replace', 'path': '/data/k', 'value': 'mutated'})
    peer.handlers['/validate'] = allow
    register(kube, 'Mutating', webhook('m.kubeemu.dev', peer.client_config('/mutate'), resources=['configmaps'],
                                       operations=['UPDATE']))
    register(kube, 'Validating', webhook('v.kubeemu.dev', peer.client_config('/validate'), resources=['configmaps'],
                                         operations=['UPDATE']))

    updated = kube.patch('v1', 'ConfigMap', 'default', 'one', {'data': {'k': 'edited'}})

    assert updated['data'] == {'k': 'mutated'}
    [mutating] = peer.reviews('/mutate')
    [validating] = peer.reviews('/validate')
    assert mutating['operation'] == validating['operation'] == 'UPDATE'
    assert mutating['oldObject']['data'] == {'k': 'v'}
    assert mutating['object']['data'] == {'k': 'edited'}
    assert mutating['options']['kind'] == 'PatchOptions'
    assert validating['object']['data'] == {'k': 'mutated'}
    assert validating['oldObject']['data'] == {'k': 'v'}


def test_status_subresource_is_matched_only_by_status_rules(
        widgets: Emulator, kube: KubeClient, peer: WebhookPeer, make_widget: WidgetFactory) -> None:
    peer.handlers['/main'] = allow
    peer.handlers['/status'] = allow
    group = ['test.kubeemu.dev']
    register(kube, 'Validating',
             webhook('main.kubeemu.dev', peer.client_config('/main'), resources=['widgets'], groups=group),
             webhook('status.kubeemu.dev', peer.client_config('/status'), resources=['widgets/status'],
                     groups=group, operations=['UPDATE']))

    kube.create(make_widget('w1'))
    kube.patch_status(WIDGETS, 'Widget', 'default', 'w1', {'status': {'phase': 'Ready'}})
    kube.patch(WIDGETS, 'Widget', 'default', 'w1', {'spec': {'replicas': 2}})

    assert [r['operation'] for r in peer.reviews('/main')] == ['CREATE', 'UPDATE']
    assert all('subResource' not in r for r in peer.reviews('/main'))
    [status] = peer.reviews('/status')
    assert status['subResource'] == 'status'
    assert status['resource'] == {'group': 'test.kubeemu.dev', 'version': 'v1', 'resource': 'widgets'}
    assert status['kind']['kind'] == 'Widget'
    assert status['object']['status'] == {'phase': 'Ready'}


def test_mutation_of_a_custom_resource_is_pruned_defaulted_and_validated(
        widgets: Emulator, kube: KubeClient, peer: WebhookPeer, make_widget: WidgetFactory) -> None:
    peer.handlers['/mutate'] = lambda r: json_patch(
        {'op': 'add', 'path': '/spec/unknownField', 'value': 1},
        {'op': 'remove', 'path': '/spec/mode'},
        *([{'op': 'replace', 'path': '/spec/replicas', 'value': 99}] if r['name'] == 'bad' else []))
    register(kube, 'Mutating', webhook('m.kubeemu.dev', peer.client_config('/mutate'), resources=['widgets'],
                                       groups=['test.kubeemu.dev']))

    created = kube.create(make_widget('good'))
    assert 'unknownField' not in created['spec']  # pruned after the patch
    assert created['spec']['mode'] == 'fast'  # defaulted again after the patch
    with pytest.raises(ApiError) as invalid:
        kube.create(make_widget('bad'))
    assert invalid.value.status == 422  # the schema is checked after mutation
    assert 'spec.replicas' in invalid.value.message


def test_failure_policy_fail_and_ignore_with_an_unreachable_webhook(kube: KubeClient, peer: WebhookPeer) -> None:
    dead = {'url': f'https://127.0.0.1:{unused_port()}/nowhere', 'caBundle': peer.client_config('/')['caBundle']}
    register(kube, 'Validating',
             webhook('closed.kubeemu.dev', dead, resources=['configmaps'], failurePolicy='Fail'),
             webhook('open.kubeemu.dev', dead, resources=['secrets'], failurePolicy='Ignore', timeoutSeconds=2))

    with pytest.raises(ApiError) as failed:
        kube.create(cm('one'))
    assert failed.value.status == 500
    assert failed.value.body['reason'] == 'InternalError'
    assert failed.value.message.startswith('Internal error occurred: failed calling webhook "closed.kubeemu.dev": '
                                           'failed to call webhook: Post "https://127.0.0.1:')
    assert 'connection refused' in failed.value.message
    assert not kube.exists('v1', 'ConfigMap', 'default', 'one')

    kube.create({'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 's', 'namespace': 'default'}})
    assert kube.exists('v1', 'Secret', 'default', 's')


def test_untrusted_certificate_is_a_call_failure(kube: KubeClient, peer: WebhookPeer,
                                                 tmp_path: pathlib.Path) -> None:
    with WebhookPeer(tmp_path / 'other') as stranger:  # its caBundle does not sign the peer's certificate
        peer.handlers['/validate'] = allow
        config = {'url': peer.url + '/validate', 'caBundle': stranger.client_config('/')['caBundle']}
        register(kube, 'Validating', webhook('tls.kubeemu.dev', config, resources=['configmaps']))
        with pytest.raises(ApiError) as failed:
            kube.create(cm('one'))
    assert failed.value.status == 500
    assert 'x509' in failed.value.message
    assert peer.reviews('/validate') == []


def test_object_and_namespace_selectors_skip_webhooks(kube: KubeClient, peer: WebhookPeer) -> None:
    peer.handlers['/deny'] = lambda r: {'allowed': False, 'status': {'message': 'no'}}
    kube.create({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'guarded',
                                                                       'labels': {'guard': 'on'}}})
    register(kube, 'Validating',
             webhook('ns.kubeemu.dev', peer.client_config('/deny'), resources=['configmaps'],
                     namespaceSelector={'matchLabels': {'guard': 'on'}}),
             webhook('obj.kubeemu.dev', peer.client_config('/deny'), resources=['secrets'],
                     objectSelector={'matchExpressions': [{'key': 'protected', 'operator': 'Exists'}]}),
             webhook('byname.kubeemu.dev', peer.client_config('/deny'), resources=['services'],
                     namespaceSelector={'matchLabels': {'kubernetes.io/metadata.name': 'guarded'}}))

    kube.create(cm('free'))  # namespace default is not labelled
    with pytest.raises(ApiError) as in_guarded:
        kube.create(cm('held', namespace='guarded'))
    assert 'ns.kubeemu.dev' in in_guarded.value.message
    kube.create({'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 'plain', 'namespace': 'default'}})
    with pytest.raises(ApiError) as labelled:
        kube.create({'apiVersion': 'v1', 'kind': 'Secret',
                     'metadata': {'name': 'p', 'namespace': 'default', 'labels': {'protected': 'yes'}}})
    assert 'obj.kubeemu.dev' in labelled.value.message
    with pytest.raises(ApiError) as by_name:  # the namespace's automatic kubernetes.io/metadata.name label
        kube.create({'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'svc', 'namespace': 'guarded'},
                     'spec': {'ports': [{'port': 80}]}})
    assert 'byname.kubeemu.dev' in by_name.value.message
    assert len(peer.reviews('/deny')) == 3


def test_delete_is_admitted_with_old_object_and_delete_options(kube: KubeClient, peer: WebhookPeer) -> None:
    kube.create(cm('keep'))
    kube.create(cm('drop'))
    peer.handlers['/validate'] = lambda r: ({'allowed': False, 'status': {'message': 'kept'}}
                                            if r['name'] == 'keep' else {'allowed': True})
    register(kube, 'Validating', webhook('del.kubeemu.dev', peer.client_config('/validate'),
                                         resources=['configmaps'], operations=['DELETE']))

    with pytest.raises(ApiError) as denied:
        kube.delete('v1', 'ConfigMap', 'default', 'keep')
    assert denied.value.status == 403
    kube.delete('v1', 'ConfigMap', 'default', 'drop', propagation_policy='Foreground')

    assert kube.exists('v1', 'ConfigMap', 'default', 'keep')
    assert not kube.exists('v1', 'ConfigMap', 'default', 'drop')
    review = peer.reviews('/validate')[-1]
    assert review['operation'] == 'DELETE'
    assert review['object'] is None
    assert review['oldObject']['metadata']['name'] == 'drop'
    assert review['options']['kind'] == 'DeleteOptions'
    assert review['options']['propagationPolicy'] == 'Foreground'


def test_dry_run_reaches_webhooks_without_side_effects_only(kube: KubeClient, peer: WebhookPeer) -> None:
    peer.handlers['/validate'] = allow
    register(kube, 'Validating',
             webhook('pure.kubeemu.dev', peer.client_config('/validate'), resources=['configmaps']),
             webhook('effects.kubeemu.dev', peer.client_config('/validate'), resources=['secrets'],
                     sideEffects='Some'))
    path = kube.url('v1', 'ConfigMap', 'default')
    kube.request('POST', path, params={'dryRun': 'All'}, body=cm('dry'))
    [review] = peer.reviews('/validate')
    assert review['dryRun'] is True
    assert not kube.exists('v1', 'ConfigMap', 'default', 'dry')

    with pytest.raises(ApiError) as unsupported:
        kube.request('POST', kube.url('v1', 'Secret', 'default'), params={'dryRun': 'All'},
                     body={'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 's'}})
    assert unsupported.value.status == 400
    assert unsupported.value.message == 'admission webhook "effects.kubeemu.dev" does not support dry run'


def test_webhook_calling_back_into_the_emulator_does_not_deadlock(
        emulator: Emulator, kube: KubeClient, peer: WebhookPeer) -> None:
    """The operator's webhook asks the API server a SubjectAccessReview while the request waits for it."""
    def decide(request: Review) -> dict[str, Any]:
        user = request['userInfo']
        review = kube.create({'apiVersion': 'authorization.k8s.io/v1', 'kind': 'SubjectAccessReview', 'spec': {
            'user': user['username'], 'groups': user['groups'],
            'resourceAttributes': {'namespace': request['namespace'], 'verb': 'approve', 'group': '',
                                   'resource': 'configmaps', 'name': request['name']}}})
        if review['status']['allowed']:
            return {'allowed': True, 'warnings': ['approved by RBAC']}
        return {'allowed': False, 'status': {'code': 403, 'reason': 'Forbidden',
                                             'message': f'{user["username"]} may not approve configmaps'}}

    peer.handlers['/sar'] = decide
    register(kube, 'Validating', webhook('sar.kubeemu.dev', peer.client_config('/sar'), resources=['configmaps'],
                                         timeoutSeconds=5))
    kube.create({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'Role',
                 'metadata': {'name': 'approver', 'namespace': 'default'},
                 'rules': [{'apiGroups': [''], 'resources': ['configmaps'], 'verbs': ['approve']}]})
    kube.create({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'RoleBinding',
                 'metadata': {'name': 'alice-approves', 'namespace': 'default'},
                 'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'Role', 'name': 'approver'},
                 'subjects': [{'kind': 'User', 'apiGroup': 'rbac.authorization.k8s.io', 'name': 'alice'}]})
    emulator.add_user('alice-token', 'alice')
    emulator.add_user('bob-token', 'bob')
    for person in ('alice', 'bob'):  # both may create; only the webhook's access review tells them apart
        emulator.grant(person, [{'apiGroups': [''], 'resources': ['configmaps'], 'verbs': ['create']}],
                       namespace='default')

    response = emulator.client('alice-token').request('POST', kube.url('v1', 'ConfigMap', 'default'), body=cm('a'))
    assert response.status_code == 201
    assert response.headers['Warning'] == '299 - "approved by RBAC"'
    with pytest.raises(ApiError) as denied:
        emulator.client('bob-token').create(cm('b'))
    assert denied.value.message == ('admission webhook "sar.kubeemu.dev" denied the request: '
                                    'bob may not approve configmaps')
    assert [c.outcome for c in emulator.webhook_calls] == ['allowed', 'denied']


def test_service_client_config_through_the_service_map(emulator: Emulator, kube: KubeClient,
                                                       tmp_path: pathlib.Path) -> None:
    """A ``service`` clientConfig: the emulator's map gives the address, TLS verifies NAME.NAMESPACE.svc."""
    with WebhookPeer(tmp_path / 'svc', hosts=['hooks.modelops.svc']) as peer:
        peer.handlers['/validate'] = lambda r: {'allowed': False, 'status': {'message': 'via service'}}
        emulator.webhook_services[('modelops', 'hooks')] = peer.url
        config = {'service': {'namespace': 'modelops', 'name': 'hooks', 'path': '/validate', 'port': 443},
                  'caBundle': peer.client_config('/')['caBundle']}
        register(kube, 'Validating', webhook('svc.kubeemu.dev', config, resources=['configmaps']))
        with pytest.raises(ApiError) as denied:
            kube.create(cm('one'))
    assert denied.value.message == 'admission webhook "svc.kubeemu.dev" denied the request: via service'


def test_mutating_webhooks_run_in_name_order_and_if_needed_ones_are_reinvoked(
        kube: KubeClient, peer: WebhookPeer) -> None:
    peer.handlers['/a'] = lambda r: json_patch({'op': 'add', 'path': '/metadata/labels/seen-b',
                                                'value': 'yes' if 'b' in r['object']['metadata']['labels'] else 'no'})
    peer.handlers['/b'] = lambda r: json_patch({'op': 'add', 'path': '/metadata/labels/b', 'value': '1'})
    register(kube, 'Mutating', webhook('b.kubeemu.dev', peer.client_config('/b'), resources=['configmaps']),
             name='2-second')
    register(kube, 'Mutating', webhook('a.kubeemu.dev', peer.client_config('/a'), resources=['configmaps'],
                                       reinvocationPolicy='IfNeeded'), name='1-first')

    created = kube.create(cm('one'))

    assert created['metadata']['labels'] == {'b': '1', 'seen-b': 'yes'}
    assert [r['metadata']['labels'] for r in (x['object'] for x in peer.reviews('/a'))] == [{}, {'b': '1',
                                                                                                 'seen-b': 'no'}]
    assert len(peer.reviews('/b')) == 1


def test_rules_must_match_the_api_version(kube: KubeClient, peer: WebhookPeer) -> None:
    peer.handlers['/v'] = allow
    hook = webhook('exact.kubeemu.dev', peer.client_config('/v'), resources=['configmaps'])
    hook['rules'][0]['apiVersions'] = ['v2']
    register(kube, 'Validating', dict(hook, matchPolicy='Exact'))
    kube.create(cm('one'))
    assert peer.reviews('/v') == []  # configmaps are served as v1 only


def test_a_write_during_admission_retries_a_plain_patch_and_conflicts_a_precondition(
        kube: KubeClient, peer: WebhookPeer) -> None:
    """As kube-apiserver's retrying update: only a client's own resourceVersion makes it a 409."""
    interleave: dict[str, Any] = {'next': True, 'writer': 'first'}

    def decide(request: Review) -> dict[str, Any]:
        if request['name'] == 'race' and interleave['next']:
            interleave['next'] = False  # another client's write lands while this request waits
            kube.patch('v1', 'ConfigMap', 'default', 'race', {'metadata': {'labels': {'other': interleave['writer']}}})
        return {'allowed': True}

    peer.handlers['/slow'] = decide
    kube.create(cm('race'))
    register(kube, 'Validating', webhook('slow.kubeemu.dev', peer.client_config('/slow'), resources=['configmaps'],
                                         operations=['UPDATE']))
    patched = kube.patch('v1', 'ConfigMap', 'default', 'race', {'data': {'k': 'mine'}})
    assert patched['data'] == {'k': 'mine'}
    assert patched['metadata']['labels'] == {'other': 'first'}  # both writes kept, no 409

    interleave.update(next=True, writer='second')
    stale = patched['metadata']['resourceVersion']
    with pytest.raises(ApiError) as caught:
        kube.patch('v1', 'ConfigMap', 'default', 'race',
                   {'metadata': {'resourceVersion': stale}, 'data': {'k': 'again'}})
    assert caught.value.status == 409
