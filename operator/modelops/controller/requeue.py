"""Looking at an object again later, without holding back its changes meanwhile.

A Kopf handler that raises ``TemporaryError(delay=…)`` is not run again before the delay has
passed, even when the object changes in between: a DriftPolicy evaluated every five minutes
would ignore a spec change for up to five minutes. Instead, a reconcile that wants another
look schedules one here: after the delay, the object's ``modelops.io/requeue-at`` annotation
is set to the current time, which Kopf sees as a change and reconciles at once. A change that
comes first is reconciled at once too, and its reconcile replaces the pending look. After an
operator restart, Kopf's resume handlers reconcile every object and schedule afresh.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

from modelops.controller.common import kube
from modelops.controller.kube import KubeError

ANNOTATION = "modelops.io/requeue-at"
API_VERSION = "modelops.io/v1alpha1"

logger = logging.getLogger(__name__)
# (event loop, kind, namespace, name) → the pending look; several operators may run in one process (tests).
_pending: dict[tuple[int, str, str, str], asyncio.Task[None]] = {}


def _key(kind: str, namespace: str, name: str) -> tuple[int, str, str, str]:
    return (id(asyncio.get_running_loop()), kind, namespace, name)


def cancel(kind: str, namespace: str, name: str) -> None:
    """Forget a pending look (the object was just reconciled and needs none)."""
    task = _pending.pop(_key(kind, namespace, name), None)
    if task is not None and task is not asyncio.current_task():
        task.cancel()


async def cancel_all(**_: object) -> None:
    """Forget every pending look of this operator run (at its cleanup)."""
    loop = id(asyncio.get_running_loop())
    for key in [k for k in _pending if k[0] == loop]:
        task = _pending.pop(key, None)
        if task is not None:
            task.cancel()


def schedule(kind: str, namespace: str, name: str, delay: float) -> None:
    """Reconcile the object again in ``delay`` seconds, replacing any pending look."""
    cancel(kind, namespace, name)
    key = _key(kind, namespace, name)
    task = asyncio.create_task(
        _later(kind, namespace, name, max(delay, 0.0)), name=f"requeue {kind} {namespace}/{name}"
    )
    _pending[key] = task
    task.add_done_callback(lambda done: _pending.pop(key, None) if _pending.get(key) is done else None)


async def _later(kind: str, namespace: str, name: str, delay: float) -> None:
    await asyncio.sleep(delay)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        await kube().patch(API_VERSION, kind, namespace, name, {"metadata": {"annotations": {ANNOTATION: stamp}}})
    except KubeError as error:
        if error.status != 404:  # gone meanwhile: nothing to look at
            logger.warning("cannot requeue %s %s/%s: %s", kind, namespace, name, error)
    except Exception as error:  # a look later must never take the operator down
        logger.warning("cannot requeue %s %s/%s: %s", kind, namespace, name, error)
