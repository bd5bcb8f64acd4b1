"""Fidelity of LIST/WATCH: selectors, resumption from a resourceVersion, 410 Gone, bookmarks, timeouts."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient


def cm(name: str, namespace: str = 'default', **labels: str) -> dict[str, Any]:
    return {'apiVersion': 'v1', 'kind': 'ConfigMap',
            'metadata': {'name': name, 'namespace': namespace, 'labels': labels}}


def names(items: list[dict[str, Any]]) -> list[str]:
    return sorted(o['metadata']['name'] for o in items)


@pytest.fixture
def labelled(kube: KubeClient) -> KubeClient:
    kube.create(cm('a', app='web', tier='front'))
    kube.create(cm('b', app='web', tier='back'))
    kube.create(cm('c', app='db'))
    kube.create(cm('d'))
    return kube


@pytest.mark.parametrize(('selector', 'expected'), [
    ('app=web', ['a', 'b']),
    ('app==web', ['a', 'b']),
    ('app!=web', ['c', 'd']),
    ('app in (db, web),tier notin (back)', ['a', 'c']),
    ('tier', ['a', 'b']),
    ('!tier', ['c', 'd']),
    ('app=web,tier=front', ['a']),
])
def test_label_selectors(labelled: KubeClient, selector: str, expected: list[str]) -> None:
    assert names(labelled.list('v1', 'ConfigMap', 'default', label_selector=selector)) == expected


def test_malformed_label_selector_is_400(labelled: KubeClient) -> None:
    with pytest.raises(ApiError) as err:
        labelled.list('v1', 'ConfigMap', 'default', label_selector='app in web')
    assert err.value.status == 400


def test_field_selectors_and_cluster_wide_lists(labelled: KubeClient) -> None:
    labelled.create({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'other'}})
    labelled.create(cm('a', namespace='other'))
    everywhere = labelled.list('v1', 'ConfigMap', None, field_selector='metadata.name=a')
    assert sorted(o['metadata']['namespace'] for o in everywhere) == ['default', 'other']
    only = labelled.list('v1', 'ConfigMap', None, field_selector='metadata.namespace!=default')
    assert [(o['metadata']['namespace'], o['metadata']['name']) for o in only] == [('other', 'a')]
    with pytest.raises(ApiError) as err:
        labelled.list('v1', 'ConfigMap', None, field_selector='data.k=v')
    assert err.value.status == 400


def collect(stream: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    events = []
    for event in stream:
        events.append(event)
        if len(events) >= count:
            break
    return events


def test_watch_resumes_after_the_list_version_without_losing_changes(kube: KubeClient) -> None:
    kube.create(cm('before'))
    listing = kube.list_object('v1', 'ConfigMap', 'default')
    # Changes between the list and the watch must all arrive, in order, and nothing older.
    kube.create(cm('between'))
    kube.patch('v1', 'ConfigMap', 'default', 'before', {'data': {'x': '1'}})
    kube.delete('v1', 'ConfigMap', 'default', 'between')
    stream = kube.watch('v1', 'ConfigMap', 'default', resource_version=listing['metadata']['resourceVersion'],
                        timeout_seconds=5)
    events = collect(stream, 3)
    assert [(e['type'], e['object']['metadata']['name']) for e in events] == [
        ('ADDED', 'between'), ('MODIFIED', 'before'), ('DELETED', 'between')]
    rvs = [int(e['object']['metadata']['resourceVersion']) for e in events]
    assert rvs == sorted(rvs)
    assert rvs[0] > int(listing['metadata']['resourceVersion'])
    assert events[0]['object']['kind'] == 'ConfigMap'


def test_watch_delivers_live_changes_and_honours_timeout(kube: KubeClient) -> None:
    rv = kube.list_object('v1', 'ConfigMap', 'default')['metadata']['resourceVersion']
    received: list[dict[str, Any]] = []
    done = threading.Event()

    def consume() -> None:
        received.extend(kube.watch('v1', 'ConfigMap', 'default', resource_version=rv, timeout_seconds=1))
        done.set()

    started = time.monotonic()
    thread = threading.Thread(target=consume)
    thread.start()
    kube.create(cm('live'))
    assert done.wait(10), 'the watch did not end after timeoutSeconds'
    thread.join()
    assert 0.9 <= time.monotonic() - started < 5
    assert [(e['type'], e['object']['metadata']['name']) for e in received] == [('ADDED', 'live')]


def test_watch_without_version_starts_with_synthetic_added(kube: KubeClient) -> None:
    kube.create(cm('x'))
    events = list(kube.watch('v1', 'ConfigMap', 'default', timeout_seconds=1))
    assert [(e['type'], e['object']['metadata']['name']) for e in events] == [('ADDED', 'x')]


def test_too_old_resource_version_is_410_gone_error_event(emulator: Emulator, kube: KubeClient) -> None:
    old = kube.create(cm('x'))['metadata']['resourceVersion']
    kube.patch('v1', 'ConfigMap', 'default', 'x', {'data': {'a': 'b'}})
    emulator.compact()
    events = list(kube.watch('v1', 'ConfigMap', 'default', resource_version=old, timeout_seconds=2))
    assert len(events) == 1
    assert events[0]['type'] == 'ERROR'
    status = events[0]['object']
    assert (status['kind'], status['code'], status['reason']) == ('Status', 410, 'Expired')


def test_history_limit_makes_old_versions_gone() -> None:
    with Emulator(history_limit=3) as emu:
        kube = emu.client()
        start = kube.create(cm('x'))['metadata']['resourceVersion']
        for index in range(5):
            kube.patch('v1', 'ConfigMap', 'default', 'x', {'data': {'i': str(index)}})
        events = list(kube.watch('v1', 'ConfigMap', 'default', resource_version=start, timeout_seconds=1))
        assert events[0]['object']['code'] == 410


def test_watch_bookmarks_and_initial_events_end(kube: KubeClient) -> None:
    kube.create(cm('x'))
    stream = kube.watch('v1', 'ConfigMap', 'default', allow_bookmarks=True, send_initial_events=True,
                        timeout_seconds=3)
    first, second = collect(stream, 2)
    assert first['type'] == 'ADDED'
    assert second['type'] == 'BOOKMARK'
    assert second['object']['metadata']['annotations'] == {'k8s.io/initial-events-end': 'true'}
    assert int(second['object']['metadata']['resourceVersion']) >= int(
        first['object']['metadata']['resourceVersion'])


def test_watch_with_label_selector_sees_objects_entering_and_leaving(kube: KubeClient) -> None:
    rv = kube.create(cm('x'))['metadata']['resourceVersion']
    kube.patch('v1', 'ConfigMap', 'default', 'x', {'metadata': {'labels': {'app': 'web'}}})
    kube.patch('v1', 'ConfigMap', 'default', 'x', {'data': {'a': 'b'}})
    kube.patch('v1', 'ConfigMap', 'default', 'x', {'metadata': {'labels': {'app': 'db'}}})
    events = list(kube.watch('v1', 'ConfigMap', 'default', resource_version=rv, label_selector='app=web',
                             timeout_seconds=1))
    assert [e['type'] for e in events] == ['ADDED', 'MODIFIED', 'DELETED']


def test_cluster_wide_watch_sees_all_namespaces(kube: KubeClient) -> None:
    rv = kube.list_object('v1', 'ConfigMap', None)['metadata']['resourceVersion']
    kube.create({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'other'}})
    kube.create(cm('a', namespace='other'))
    kube.create(cm('b'))
    events = list(kube.watch('v1', 'ConfigMap', None, resource_version=rv, timeout_seconds=1))
    assert [(e['object']['metadata']['namespace'], e['object']['metadata']['name']) for e in events] == [
        ('other', 'a'), ('default', 'b')]
