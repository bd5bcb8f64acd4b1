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

from modelops.api import API_VERSION
from modelops.controller import runtime
from modelops.controller.kube import KubeError

ANNOTATION = "modelops.io/requeue-at"

logger = logging.getLogger(__name__)


def cancel(kind: str, namespace: str, name: str) -> None:
    """Forget a pending look (the object was just reconciled and needs none)."""
    task = runtime.current().pending.pop((kind, namespace, name), None)
    if task is not None and task is not asyncio.current_task():
        task.cancel()


def schedule(kind: str, namespace: str, name: str, delay: float) -> None:
    """Reconcile the object again in ``delay`` seconds, replacing any pending look."""
    cancel(kind, namespace, name)
    pending = runtime.current().pending
    key = (kind, namespace, name)
    task = asyncio.create_task(
        _later(kind, namespace, name, max(delay, 0.0)), name=f"requeue {kind} {namespace}/{name}"
    )
    pending[key] = task
    task.add_done_callback(lambda done: pending.pop(key, None) if pending.get(key) is done else None)


async def _later(kind: str, namespace: str, name: str, delay: float) -> None:
    await asyncio.sleep(delay)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        await runtime.kube().patch(
            API_VERSION, kind, namespace, name, {"metadata": {"annotations": {ANNOTATION: stamp}}}
        )
    except KubeError as error:
        if error.status != 404:  # gone meanwhile: nothing to look at
            logger.warning("cannot requeue %s %s/%s: %s", kind, namespace, name, error)
    except Exception as error:  # a look later must never take the operator down
        logger.warning("cannot requeue %s %s/%s: %s", kind, namespace, name, error)
