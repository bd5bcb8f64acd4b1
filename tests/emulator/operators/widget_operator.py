"""
A throwaway Kopf operator for the emulator's fidelity tests (run via ``kopf run`` in a subprocess).

It handles the test Widget kind (status subresource), keeps Kopf's bookkeeping
under ``modelops.io/`` annotations and ``status``, as our operator does, and
prints one marker line per handler call so the test can count them.
"""
from __future__ import annotations

from typing import Any

import kopf

GROUP, VERSION, PLURAL = 'test.kubeemu.dev', 'v1', 'widgets'


def configure(settings: kopf.OperatorSettings) -> None:
    settings.persistence.finalizer = 'modelops.io/finalizer'
    settings.persistence.progress_storage = kopf.MultiProgressStorage([
        kopf.AnnotationsProgressStorage(prefix='modelops.io'),
        kopf.StatusProgressStorage(field='status.kopf.progress'),
    ])
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix='modelops.io', key='last-handled-configuration')
    settings.posting.level = 0
    settings.watching.server_timeout = 10


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    configure(settings)


@kopf.on.create(GROUP, VERSION, PLURAL)
def create_fn(name: str, patch: kopf.Patch, **_: Any) -> dict[str, Any]:
    print(f'HANDLER-CREATE {name}', flush=True)
    patch.status['phase'] = 'Ready'
    return {'handled': True}


@kopf.on.delete(GROUP, VERSION, PLURAL)
def delete_fn(name: str, **_: Any) -> None:
    print(f'HANDLER-DELETE {name}', flush=True)
