"""Optimistic concurrency of writes as a table that two servers answer alike.

Every write of the operator that governs something (a stage, an approval record, a rejection)
is a compare-and-swap on ``metadata.resourceVersion``; that only means something if the API
answers a stale, missing or malformed precondition as the real server does. Each :class:`Case`
is one request against an object that has moved on since the client read it, with the answer
the real ``apiextensions-apiserver`` gives (code, reason, message). ``tests/emulator`` runs the
table against the emulator, ``tests/crdserver`` against the real server, both through
:class:`kubeemu.client.KubeClient`, so the two cannot drift apart unnoticed.
"""
from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeemu.client import ApiError, KubeClient

GROUP = 'preconditions.kubeemu.dev'
PLURAL = 'rvprobes'
KIND = 'RvProbe'
API_VERSION = f'{GROUP}/v1'
NAMESPACE = 'default'

PROBE_CRD: dict[str, Any] = {
    'apiVersion': 'apiextensions.k8s.io/v1',
    'kind': 'CustomResourceDefinition',
    'metadata': {'name': f'{PLURAL}.{GROUP}'},
    'spec': {
        'group': GROUP, 'scope': 'Namespaced', 'names': {'plural': PLURAL, 'kind': KIND},
        'versions': [{'name': 'v1', 'served': True, 'storage': True, 'subresources': {'status': {}},
                      'schema': {'openAPIV3Schema': {'type': 'object',
                                                     'x-kubernetes-preserve-unknown-fields': True}}}],
    },
}

Obj = dict[str, Any]
MERGE = 'application/merge-patch+json'
JSON_PATCH = 'application/json-patch+json'
APPLY = 'application/apply-patch+yaml'
PUT = 'application/json'
CONFLICT = 'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; please apply your ' \
           'changes to the latest version and try again'
MUST_SPECIFY = '{resource} "{name}" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for ' \
               'an update'


@dataclass(frozen=True)
class Seen:
    """What the client read (``stale``), and what is stored now (``current``)."""

    stale: Obj
    current: Obj

    @property
    def stale_rv(self) -> str:
        return str(self.stale['metadata']['resourceVersion'])


@dataclass(frozen=True)
class Case:
    """One write and the real server's answer (``code`` 200: accepted)."""

    id: str
    method: str
    content_type: str
    body: Callable[[Seen], Any]
    code: int
    reason: str | None = None
    message: str = ''  # with {resource}, {kind}, {name}, {uid}, {stale_rv}, {rv}; a leading '…': a part of it
    status: bool = False  # the status subresource
    params: dict[str, str] = field(default_factory=dict)


def _without_rv(obj: Obj, **changes: Any) -> Obj:
    body = copy.deepcopy(obj)
    body['metadata'].pop('resourceVersion', None)
    body.update(changes)
    return body


def _with(obj: Obj, **meta: Any) -> Obj:
    body = copy.deepcopy(obj)
    body['metadata'].update(meta)
    return body


CASES: tuple[Case, ...] = (
    Case('merge-patch-stale', 'PATCH', MERGE,
         lambda s: {'metadata': {'resourceVersion': s.stale_rv}, 'spec': {'a': 3}}, 409, 'Conflict', CONFLICT),
    Case('status-merge-patch-stale', 'PATCH', MERGE,
         lambda s: {'metadata': {'resourceVersion': s.stale_rv}, 'status': {'stage': 'Production'}},
         409, 'Conflict', CONFLICT, status=True),
    Case('status-merge-patch-current', 'PATCH', MERGE,
         lambda s: {'metadata': {'resourceVersion': s.current['metadata']['resourceVersion']},
                    'status': {'stage': 'Production'}}, 200, status=True),
    Case('status-merge-patch-without-precondition', 'PATCH', MERGE,
         lambda s: {'status': {'stage': 'Production'}}, 200, status=True),
    Case('put-stale', 'PUT', PUT, lambda s: dict(s.stale, spec={'a': 3}), 409, 'Conflict', CONFLICT),
    Case('status-put-stale', 'PUT', PUT, lambda s: dict(s.stale, status={'stage': 'Production'}),
         409, 'Conflict', CONFLICT, status=True),
    # Custom resources allow no unconditional update: a PUT must carry a resourceVersion.
    Case('put-without-resource-version', 'PUT', PUT, lambda s: _without_rv(s.current, spec={'a': 3}),
         422, 'Invalid', MUST_SPECIFY),
    Case('status-put-without-resource-version', 'PUT', PUT,
         lambda s: _without_rv(s.current, status={'stage': 'Production'}), 422, 'Invalid', MUST_SPECIFY, status=True),
    # A patch that blanks or drops the resourceVersion leaves none: the same rule.
    Case('merge-patch-empty-resource-version', 'PATCH', MERGE,
         lambda s: {'metadata': {'resourceVersion': ''}, 'spec': {'a': 3}}, 422, 'Invalid', MUST_SPECIFY),
    Case('merge-patch-null-resource-version', 'PATCH', MERGE,
         lambda s: {'metadata': {'resourceVersion': None}, 'spec': {'a': 3}}, 422, 'Invalid', MUST_SPECIFY),
    Case('status-merge-patch-empty-resource-version', 'PATCH', MERGE,
         lambda s: {'metadata': {'resourceVersion': ''}, 'status': {'stage': 'Production'}},
         422, 'Invalid', MUST_SPECIFY, status=True),
    Case('merge-patch-number-resource-version', 'PATCH', MERGE,
         lambda s: {'metadata': {'resourceVersion': int(s.stale_rv)}, 'spec': {'a': 3}}, 422, 'Invalid',
         '…json: cannot unmarshal number into Go struct field ObjectMeta.resourceVersion of type string'),
    Case('merge-patch-malformed-resource-version', 'PATCH', MERGE,
         lambda s: {'metadata': {'resourceVersion': 'abc'}, 'spec': {'a': 3}},
         500, None, 'strconv.ParseUint: parsing "abc": invalid syntax'),
    Case('json-patch-replace-stale', 'PATCH', JSON_PATCH,
         lambda s: [{'op': 'replace', 'path': '/metadata/resourceVersion', 'value': s.stale_rv},
                    {'op': 'replace', 'path': '/spec/a', 'value': 3}], 409, 'Conflict', CONFLICT),
    Case('json-patch-test-stale', 'PATCH', JSON_PATCH,
         lambda s: [{'op': 'test', 'path': '/metadata/resourceVersion', 'value': s.stale_rv},
                    {'op': 'replace', 'path': '/spec/a', 'value': 3}],
         422, 'Invalid', 'the server rejected our request due to an error in our request'),
    Case('json-patch-test-current', 'PATCH', JSON_PATCH,
         lambda s: [{'op': 'test', 'path': '/metadata/resourceVersion',
                     'value': s.current['metadata']['resourceVersion']},
                    {'op': 'replace', 'path': '/spec/a', 'value': 3}], 200),
    Case('apply-stale', 'PATCH', APPLY,
         lambda s: {'apiVersion': API_VERSION, 'kind': KIND,
                    'metadata': {'name': s.current['metadata']['name'], 'resourceVersion': s.stale_rv},
                    'spec': {'a': 3}}, 409, 'Conflict', CONFLICT, params={'fieldManager': 'probe', 'force': 'true'}),
    # A patch has no uid precondition: another uid is a change of an immutable field.
    Case('merge-patch-other-uid', 'PATCH', MERGE, lambda s: {'metadata': {'uid': 'not-the-uid'}, 'spec': {'a': 3}},
         422, 'Invalid', '{kind}.' + GROUP + ' "{name}" is invalid: metadata.uid: Invalid value: "not-the-uid": field '
         'is immutable'),
    # A PUT's uid is a precondition of the storage.
    Case('put-other-uid', 'PUT', PUT, lambda s: _with(s.current, uid='not-the-uid'), 409, 'Conflict',
         'Operation cannot be fulfilled on {resource} "{name}": StorageError: invalid object, Code: 4, Key: '
         '/registry/apiextensions.kubernetes.io/' + GROUP + '/' + PLURAL + '/' + NAMESPACE + '/{name}, '
         'ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: not-the-uid, UID in '
         'object meta: {uid}'),
    Case('delete-stale', 'DELETE', PUT, lambda s: {'preconditions': {'resourceVersion': s.stale_rv}}, 409, 'Conflict',
         'Operation cannot be fulfilled on {kind}.' + GROUP + ' "{name}": the ResourceVersion in the precondition '
         '({stale_rv}) does not match the ResourceVersion in record ({rv}). The object might have been modified'),
    Case('delete-other-uid', 'DELETE', PUT, lambda s: {'preconditions': {'uid': 'not-the-uid'}}, 409, 'Conflict',
         'Operation cannot be fulfilled on {kind}.' + GROUP + ' "{name}": the UID in the precondition (not-the-uid) '
         'does not match the UID in record ({uid}). The object might have been deleted and then recreated'),
)


def path(name: str = '', status: bool = False) -> str:
    base = f'/apis/{API_VERSION}/namespaces/{NAMESPACE}/{PLURAL}'
    return f'{base}/{name}' + ('/status' if status else '') if name else base


def seen(client: KubeClient) -> Seen:
    """An object read once (``stale``) and then changed by someone else (``current``)."""
    name = f'p-{uuid.uuid4().hex[:10]}'
    stale = client.request('POST', path(), body={'apiVersion': API_VERSION, 'kind': KIND, 'metadata': {'name': name},
                                                  'spec': {'a': 1}}).json()
    current = client.request('PATCH', path(name), body={'spec': {'a': 2}}, content_type=MERGE).json()
    assert current['metadata']['resourceVersion'] != stale['metadata']['resourceVersion']
    return Seen(stale=stale, current=current)


def answer(client: KubeClient, case: Case) -> tuple[int, str | None, str, Seen]:
    """Send one case's request: (code, reason, message, what was seen)."""
    before = seen(client)
    name = before.current['metadata']['name']
    data = json.dumps(case.body(before))  # JSON is YAML too, for the apply case
    try:
        response = client.request(case.method, path(name, case.status), body=data, content_type=case.content_type,
                                  params=case.params)
    except ApiError as error:
        status = error.body if isinstance(error.body, dict) else {}
        return error.status, status.get('reason'), str(status.get('message', '')), before
    return response.status_code, None, '', before


def expected_message(case: Case, before: Seen) -> str:
    meta = before.current['metadata']
    return case.message.format(resource=f'{PLURAL}.{GROUP}', kind=KIND, name=meta['name'], uid=meta['uid'],
                               stale_rv=before.stale_rv, rv=meta['resourceVersion'])


def check(client: KubeClient, case: Case) -> None:
    """The server answers ``case`` as the real one does; a refused write changed nothing."""
    code, reason, message, before = answer(client, case)
    assert code == case.code, (case.id, code, reason, message)
    if case.code < 300:
        return
    assert reason == case.reason, (case.id, reason, message)
    wanted = expected_message(case, before)
    if wanted.startswith('…'):
        assert wanted[1:] in message, (case.id, message)
    else:
        assert message == wanted, (case.id, message)
    after = client.request('GET', path(before.current['metadata']['name'])).json()
    assert after['metadata']['resourceVersion'] == before.current['metadata']['resourceVersion'], case.id
