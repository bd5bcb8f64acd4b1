"""What the kinds' reconciles share: the API client, intervals, and small child helpers."""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

from modelops.controller.framework import Outcome
from modelops.controller.kube import Kube, KubeError, forget_run_credentials, run_credentials
from modelops.logic import conditions as cond
from modelops.logic import pods

API = "modelops.io/v1alpha1"


# Intervals are read at each use, so a test (or an operator restart with new env) can change them.
def wait_retry_seconds() -> float:
    """How soon to look again while waiting for an object that another resource names."""
    return float(os.environ.get("MODELOPS_WAIT_RETRY_SECONDS", "15"))


def poll_seconds() -> float:
    """How often a running training is re-checked in case a watch event on its Job or pods was missed."""
    return float(os.environ.get("MODELOPS_POLL_SECONDS", "30"))


# The image of training pods (the operator's own, which carries `modelops train`).
TRAINER_IMAGE = os.environ.get("MODELOPS_IMAGE", "ghcr.io/modelops/modelops-operator:0.1.0")
# Where runs without spec.artifactStore write their artifacts, e.g. pvc://modelops-artifacts.
ARTIFACT_STORE = os.environ.get("MODELOPS_ARTIFACT_STORE") or None


def run_as_user() -> int | None:
    """The user id of the pods the operator writes (MODELOPS_RUN_AS_USER, default the image's 10001);
    empty: none, the platform assigns one (OpenShift's restricted policy)."""
    value = os.environ.get("MODELOPS_RUN_AS_USER", str(pods.IMAGE_UID)).strip()
    if not value:
        return None
    if not value.isdigit() or int(value) == 0:
        raise ValueError(f"MODELOPS_RUN_AS_USER={value!r}: a non-root numeric user id, or empty")
    return int(value)
_kube: Kube | None = None
_kube_loop: asyncio.AbstractEventLoop | None = None
# Loops whose operator has shut its client: a timer or watch that still fires there gets no new one.
_closed_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


class ShuttingDownError(RuntimeError):
    """The operator closed its API client: nothing more is sent from this event loop."""


def kube() -> Kube:
    """One client per operator run, made on first use inside the operator's event loop.

    A client belongs to the loop it was made in: a call from another loop (the next operator
    run in the same process, as in the tests) gets a fresh one.
    """
    global _kube, _kube_loop  # a lazily made client shared by the handlers
    loop = asyncio.get_running_loop()
    if loop in _closed_loops:
        raise ShuttingDownError("the operator is shutting down: its Kubernetes API client is closed")
    if _kube is None or _kube_loop is not loop:
        _kube, _kube_loop = Kube(run_credentials()), loop
    return _kube


async def close_client(**_: Any) -> None:
    # Several operator runs in one process (tests) must not share a client of an old server.
    global _kube, _kube_loop
    loop = asyncio.get_running_loop()
    _closed_loops.add(loop)
    if _kube is not None and _kube_loop is loop:
        await _kube.close()
    _kube, _kube_loop = None, None
    forget_run_credentials()


async def ensure(obj: dict[str, Any]) -> dict[str, Any]:
    """Create a child unless it exists; an existing one is left as it is (Jobs are immutable)."""
    meta = obj["metadata"]
    existing = await kube().get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    if existing is not None:
        return existing
    try:
        return await kube().create(obj)
    except KubeError as error:
        if error.status != 409:
            raise
        found = await kube().get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        return found or obj


async def lookup(api_version: str, kind: str, namespace: str, name: str) -> tuple[Any, str | None]:
    try:
        found = await kube().get(api_version, kind, namespace, name)
    except KubeError as error:
        return None, f"cannot read {kind} {namespace}/{name}: {error.message}"
    if found is None:
        return None, f"{kind} {namespace}/{name} does not exist"
    return found, None


def waiting_for(field: str, problem: str, status: dict[str, Any] | None = None) -> Outcome:
    """Not ready while a referenced object is missing; look again soon, it may be created later."""
    return Outcome(
        summary=cond.Summary(
            ready=False, reason=cond.Reason.NOT_FOUND, message=f"{field}: {problem}", reconciling=True
        ),
        status=status or {},
        requeue_after=wait_retry_seconds(),
    )
