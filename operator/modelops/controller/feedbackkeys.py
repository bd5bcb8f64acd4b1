"""Keeping each namespace's feedback-keys Secret: made before its model servers, rotated on schedule.

The decisions are pure (:mod:`modelops.logic.feedbackkeys`); this module reads the Secret, writes
what they return with the Secret's ``resourceVersion`` as a precondition, and reads again on a
conflict, so that two reconciles (or two operators) never rotate twice or lose an owner. The
ModelDeployment reconcile calls :func:`ensure` before it writes the server Deployments that mount
the Secret; a timer on every ModelDeployment calls it too, which rotates when a period has passed
and puts a deleted Secret back. The deployments of a namespace share its Secret, so their timers
share one read per check interval: a timer whose deployment the Secret named at a read less than
an interval old has nothing to do (kept for the operator run in its Runtime), instead of every deployment
reading the same Secret every interval.
"""

from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass
from typing import Any, cast

import kopf

from modelops.api import GROUP, VERSION
from modelops.controller import runtime
from modelops.controller.kube import KubeError
from modelops.controller.runtime import kube
from modelops.logic import feedbackkeys as logic
from modelops.logic.conditions import Reason

_ATTEMPTS = 8


def rotation_seconds() -> int:
    """The rotation period, which is also every prediction id's lifetime (``feedback.keyRotationSeconds``)."""
    return int(os.environ.get("MODELOPS_FEEDBACK_KEY_ROTATION_SECONDS") or logic.DEFAULT_ROTATION_SECONDS)


def check_seconds() -> float:
    """How often the timer looks whether a rotation is due."""
    configured = os.environ.get("MODELOPS_FEEDBACK_KEY_CHECK_SECONDS")
    return float(configured) if configured else max(1.0, min(60.0, rotation_seconds() / 4))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Seen:
    """A namespace's Secret as last read in good order: when, and the uids of the deployments it named."""

    at: float  # time.monotonic()
    owners: frozenset[str]


def fresh_enough(seen: dict[str, Seen], namespace: str, owner_uid: str) -> bool:
    """The Secret was read less than a check interval ago, needed nothing, and named this deployment."""
    last = seen.get(namespace)
    return last is not None and time.monotonic() - last.at < check_seconds() and owner_uid in last.owners


async def ensure(namespace: str, owner_name: str, owner_uid: str, *, seen: dict[str, Seen] | None = None) -> str | None:
    """The Secret exists, names this ModelDeployment among its owners and is rotated when due; or the problem.

    ``seen`` records the read that found nothing to do (the timers' shared memory)."""
    owner = logic.owner_ref(owner_name, owner_uid)
    async with runtime.current().lock("feedback-keys", namespace):
        for _ in range(_ATTEMPTS):
            try:
                if await _step(namespace, owner, seen):
                    return None
            except KubeError as error:
                if error.status != 409:
                    return f"Secret {namespace}/{logic.SECRET_NAME}: {error.message}"
    return f"Secret {namespace}/{logic.SECRET_NAME} kept changing; will try again"


async def _step(namespace: str, owner: dict[str, Any], seen: dict[str, Seen] | None = None) -> bool:
    """One read and at most one write; True when nothing more is to be done."""
    secret = await kube().get("v1", "Secret", namespace, logic.SECRET_NAME)
    now = _now()
    if secret is None:
        await kube().create(logic.fresh(namespace, [owner], now, os.urandom))
        return True
    if not logic.is_ours(secret):
        raise _NotOursError()
    state = logic.state_of(secret)
    if state is None:
        await _patch(namespace, logic.reset_patch(now, os.urandom, secret))
        message = "the feedback keys were malformed and are made anew: earlier prediction ids are refused"
        kopf.warn(kopf.Body(cast(kopf.RawBody, secret)), reason=Reason.FEEDBACK_KEYS_RESET, message=message)
        return False
    patch = logic.owner_patch(secret, owner)
    if patch is not None:  # then go on from what the patch answered (the keys are as they were)
        secret = await _patch(namespace, patch)
        state = logic.state_of(secret)
        if state is None:
            return False
    if logic.seconds_to_rotation(state, now, rotation_seconds()) <= 0:
        await _patch(namespace, logic.rotation_patch(secret, state, now, os.urandom))
    elif seen is not None:
        owners = (secret.get("metadata") or {}).get("ownerReferences") or []
        seen[namespace] = Seen(time.monotonic(), frozenset(str(o.get("uid")) for o in owners))
    return True


class _NotOursError(KubeError):
    """A Secret of the name that the operator did not make: never overwritten."""

    def __init__(self) -> None:
        super().__init__(403, "NotOurs", "a Secret of that name exists and is not the operator's (its labels)")


async def _patch(namespace: str, patch: dict[str, Any]) -> dict[str, Any]:
    return await kube().patch("v1", "Secret", namespace, logic.SECRET_NAME, patch)


async def ensure_shared(namespace: str, owner_name: str, owner_uid: str) -> str | None:
    """``ensure`` for a reconcile: nothing when a read less than a check interval old found the Secret in order
    and naming this deployment (the timers' shared memory, which this read refreshes)."""
    seen = _seen(runtime.current())
    if fresh_enough(seen, namespace, owner_uid):
        return None
    return await ensure(namespace, owner_name, owner_uid, seen=seen)


def _seen(state: runtime.Runtime) -> dict[str, Seen]:
    seen: dict[str, Seen] = state.kept("feedback-keys-seen", dict)
    return seen


def shared_seen(memo: Any) -> dict[str, Seen]:
    """The timers' memory of the last reads, by namespace (one per operator run, in its Runtime)."""
    return _seen(runtime.of(memo))


async def keep_keys(
    name: str, namespace: str | None, uid: str | None, logger: Any, memo: kopf.Memo, **_: Any
) -> None:
    """The timer: rotate when due, put a deleted Secret back; nothing when another deployment's timer just
    found the Secret in order."""
    if not namespace or not uid:
        return
    seen = shared_seen(memo)
    if fresh_enough(seen, namespace, uid):
        return
    problem = await ensure(namespace, name, uid, seen=seen)
    if problem is not None:
        logger.warning(f"feedback keys: {problem}")


def setup(registry: kopf.OperatorRegistry) -> None:
    kopf.on.timer(
        GROUP, VERSION, "modeldeployments", id="feedback-keys", registry=registry,
        interval=check_seconds(),
    )(runtime.bound(keep_keys))  # fmt: skip
