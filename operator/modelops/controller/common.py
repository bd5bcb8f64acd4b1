"""What the kinds' reconciles share: intervals, settings of the pods, reading what a spec names.

The API client is the run's (:func:`modelops.controller.runtime.kube`), re-exported here as ``kube``."""

from __future__ import annotations

import os
from typing import Any

from modelops.api import API_VERSION
from modelops.controller.framework import Outcome
from modelops.controller.kube import KubeError
from modelops.controller.runtime import kube as kube  # re-exported: the kinds import it from here
from modelops.logic import conditions as cond
from modelops.logic import pods

API = API_VERSION  # the name the kinds' modules import


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
