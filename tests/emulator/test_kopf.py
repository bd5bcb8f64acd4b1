"""
The real Kopf operator against the emulator: in-process (KopfRunner) and as a ``kopf run`` subprocess.

Each test asserts that the create handler ran exactly once, its status patch
landed, Kopf's bookkeeping has the shape our operator configures (modelops.io/
finalizer and annotations, status), deletion with the finalizer completes, and
Kopf neither logged API errors nor received any 4xx/5xx answer.
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import threading
from typing import Any

import kopf
import kopf.testing
import pytest

from emulator.widgets import WIDGETS, WidgetFactory
from kubeemu import Emulator
from kubeemu.client import KubeClient

OPERATOR = pathlib.Path(__file__).parent / 'operators' / 'widget_operator.py'
API_ERRORS = re.compile(r'Patching failed|APIClientError|APIServerError|APIConflictError|APIForbiddenError|'
                        r'APINotFoundError|APIUnprocessableEntityError|Traceback|Unprocessable|'
                        r'failed with an exception|Could not apply the patch', re.IGNORECASE)


def handled(obj: dict[str, Any] | None) -> bool:
    return obj is not None and (obj.get('status') or {}).get('create_fn') is not None and \
        'modelops.io/last-handled-configuration' in (obj['metadata'].get('annotations') or {})


def assert_bookkeeping(obj: dict[str, Any]) -> None:
    meta = obj['metadata']
    assert meta['finalizers'] == ['modelops.io/finalizer']
    annotations = meta.get('annotations') or {}
    assert not any(key.startswith('kopf.zalando.org') for key in annotations)
    assert '"dataset"' in annotations['modelops.io/last-handled-configuration']
    assert obj['status']['phase'] == 'Ready'
    assert obj['status']['create_fn'] == {'handled': True}
    assert obj['metadata']['generation'] == 1  # Kopf's bookkeeping never touches the spec


def kopf_failures(emulator: Emulator) -> list[str]:
    return [f'{r.method} {r.path}?{r.query} -> {r.code}' for r in emulator.audit
            if r.user_agent.startswith('kopf') and r.code >= 400]


def test_kopf_runner_in_process(widgets: Emulator, kube: KubeClient, make_widget: WidgetFactory) -> None:
    registry = kopf.OperatorRegistry()
    calls: list[str] = []
    lock = threading.Lock()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=widgets.url, insecure=True)

    @kopf.on.startup(registry=registry)
    def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = 'modelops.io/finalizer'
        settings.persistence.progress_storage = kopf.MultiProgressStorage([
            kopf.AnnotationsProgressStorage(prefix='modelops.io'),
            kopf.StatusProgressStorage(field='status.kopf.progress')])
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix='modelops.io', key='last-handled-configuration')
        settings.watching.server_timeout = 10

    @kopf.on.create('test.kubeemu.dev', 'v1', 'widgets', id='create_fn', registry=registry)
    def create_fn(name: str, patch: kopf.Patch, **_: Any) -> dict[str, Any]:
        with lock:
            calls.append(f'create {name}')
        patch.status['phase'] = 'Ready'
        return {'handled': True}

    @kopf.on.delete('test.kubeemu.dev', 'v1', 'widgets', id='delete_fn', registry=registry)
    def delete_fn(name: str, **_: Any) -> None:
        with lock:
            calls.append(f'delete {name}')

    args = ['run', '--standalone', '--all-namespaces', '--verbose']
    with kopf.testing.KopfRunner(args, registry=registry, timeout=30) as runner:
        kube.create(make_widget('w1'))
        obj = kube.wait_for(WIDGETS, 'Widget', 'default', 'w1', handled, timeout=15)
        assert obj is not None
        assert_bookkeeping(obj)
        kube.delete(WIDGETS, 'Widget', 'default', 'w1')
        kube.wait_for(WIDGETS, 'Widget', 'default', 'w1', lambda o: o is None, timeout=15)

    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert calls == ['create w1', 'delete w1']
    assert not API_ERRORS.findall(runner.output), runner.output
    assert "Handler 'create_fn' succeeded" in runner.output
    assert not kopf_failures(widgets)


@pytest.mark.slow
def test_kopf_run_subprocess_with_kubeconfig(widgets: Emulator, kube: KubeClient, kubeconfig: pathlib.Path,
                                            make_widget: WidgetFactory, tmp_path: pathlib.Path) -> None:
    log = tmp_path / 'kopf.log'
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), PYTHONUNBUFFERED='1')
    cmd = [sys.executable, '-m', 'kopf', 'run', '--standalone', '--all-namespaces', '--verbose', str(OPERATOR)]
    with log.open('w') as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            kube.create(make_widget('w2'))
            obj = kube.wait_for(WIDGETS, 'Widget', 'default', 'w2', handled, timeout=30)
            assert obj is not None
            assert_bookkeeping(obj)
            kube.delete(WIDGETS, 'Widget', 'default', 'w2')
            kube.wait_for(WIDGETS, 'Widget', 'default', 'w2', lambda o: o is None, timeout=15)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    output = log.read_text()
    assert output.count('HANDLER-CREATE w2') == 1, output
    assert output.count('HANDLER-DELETE w2') == 1, output
    assert not API_ERRORS.findall(output), output
    assert not kopf_failures(widgets)
