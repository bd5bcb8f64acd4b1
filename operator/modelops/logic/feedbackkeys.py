"""The namespace's feedback keys: the Secret the model servers sign prediction ids with, and its rotation.

The contract is ``docs/contracts.md`` ("Keys: the Secret, the directory, rotation"); in short:

- one Secret per namespace, :data:`SECRET_NAME` (a fixed name, so that RBAC can grant it alone),
  labelled as the operator's, owned (no controller) by every ModelDeployment of the namespace that
  mounts it;
- ``data``: ``key-<g>`` (32 random bytes) for generations ``current-2`` … ``current+1``, and
  ``current``; the annotation :data:`ROTATED_AT` says when ``current`` last moved;
- every rotation period: ``current`` moves on by one, a fresh ``next`` key is added, the oldest of
  the four is dropped. A key is distributed one period before it signs, and accepted two periods
  after it stopped signing, so an id lives its whole lifetime (one period) on every pod while the
  kubelet propagates the Secret faster than a period.

Pure: these functions take the Secret as the API returned it (or None) and random bytes from the
caller, and return the object or merge patch to write. The controller writes it with the Secret's
``resourceVersion`` as a precondition, so a rotation is a compare-and-swap and happens once however
many reconciles decide it at the same moment.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelops.api.common import API_VERSION

SECRET_NAME = "modelops-feedback-keys"
MOUNT_PATH = "/etc/modelops/feedback-keys"
VOLUME = "feedback-keys"
ROTATED_AT = "modelops.io/rotated-at"
COMPONENT = "feedback-keys"
MANAGED_BY = "modelops-operator"
KEY_BYTES = 32
#: Generations kept before the current one (and one after it, the next).
KEPT_BEFORE = 2
DEFAULT_ROTATION_SECONDS = 7 * 24 * 3600
LABELS = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/component": COMPONENT}

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True)
class KeyState:
    """What a well-formed Secret holds."""

    current: int
    generations: tuple[int, ...]
    rotated_at: datetime.datetime


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def owner_ref(name: str, uid: str) -> dict[str, Any]:
    """A ModelDeployment's reference on the Secret: an owner among several, not its controller."""
    return {"apiVersion": API_VERSION, "kind": "ModelDeployment", "name": name, "uid": uid}


def is_ours(secret: Mapping[str, Any]) -> bool:
    labels = (secret.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in LABELS.items())


def state_of(secret: Mapping[str, Any]) -> KeyState | None:
    """The keys' state, or None when the Secret is not well-formed (edited by hand, truncated)."""
    data = secret.get("data") or {}
    try:
        current = int(base64.b64decode(data["current"]).decode().strip())
        generations = tuple(sorted(int(k.removeprefix("key-")) for k in data if k.startswith("key-")))
        if current not in generations:
            return None
        for g in generations:
            if len(base64.b64decode(data[f"key-{g}"])) < KEY_BYTES:
                return None
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        rotated_at = datetime.datetime.fromisoformat(str(annotations[ROTATED_AT]).replace("Z", "+00:00"))
    except (KeyError, ValueError, TypeError):
        return None
    if rotated_at.tzinfo is None:
        return None
    return KeyState(current, generations, rotated_at)


def fresh(
    namespace: str, owners: Sequence[Mapping[str, Any]], now: datetime.datetime, random_bytes: RandomBytes
) -> dict[str, Any]:
    """A new Secret: generation 1 signs, generation 2 is next."""
    data = {f"key-{g}": _encode(random_bytes(KEY_BYTES)) for g in (1, 2)}
    data["current"] = _encode(b"1")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": SECRET_NAME,
            "namespace": namespace,
            "labels": dict(LABELS),
            "annotations": {ROTATED_AT: _iso(now)},
            "ownerReferences": [dict(o) for o in owners],
        },
        "data": data,
    }


def reset_patch(now: datetime.datetime, random_bytes: RandomBytes, secret: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that makes a malformed Secret of ours fresh again (every id issued before is refused)."""
    new = fresh("", [], now, random_bytes)
    data: dict[str, Any] = dict.fromkeys(secret.get("data") or {})
    data.update(new["data"])
    meta = {"resourceVersion": secret["metadata"].get("resourceVersion"), "annotations": {ROTATED_AT: _iso(now)}}
    return {"metadata": meta, "data": data}


def owner_patch(secret: Mapping[str, Any], owner: Mapping[str, Any]) -> dict[str, Any] | None:
    """A merge patch adding a ModelDeployment to the Secret's owners, or None when it is one already."""
    meta = secret.get("metadata") or {}
    refs = list(meta.get("ownerReferences") or [])
    if any(ref.get("uid") == owner["uid"] for ref in refs):
        return None
    return {"metadata": {"resourceVersion": meta.get("resourceVersion"), "ownerReferences": [*refs, dict(owner)]}}


def seconds_to_rotation(state: KeyState, now: datetime.datetime, period: float) -> float:
    """How long until the next rotation is due (0 or less: due now)."""
    return period - (now - state.rotated_at).total_seconds()


def rotation_patch(
    secret: Mapping[str, Any], state: KeyState, now: datetime.datetime, random_bytes: RandomBytes
) -> dict[str, Any]:
    """The merge patch of one rotation: current + 1, a fresh next key, the oldest past ``current - 2`` dropped."""
    current = state.current + 1
    data: dict[str, Any] = {"current": _encode(str(current).encode())}
    wanted = set(range(current - KEPT_BEFORE, current + 2))
    for g in state.generations:
        if g not in wanted:
            data[f"key-{g}"] = None
    for g in sorted(wanted - set(state.generations)):
        if g >= 1:
            data[f"key-{g}"] = _encode(random_bytes(KEY_BYTES))
    meta = secret.get("metadata") or {}
    return {"metadata": {"resourceVersion": meta.get("resourceVersion"), "annotations": {ROTATED_AT: _iso(now)}},
            "data": data}  # fmt: skip


def server_args(scope: str, ttl: int) -> list[str]:
    """The ``modelops serve`` flags of a server that signs with the mounted keys, bound to ``scope``."""
    return ["--feedback-keys", MOUNT_PATH, "--feedback-scope", scope, "--feedback-ttl", str(ttl)]


def volume() -> dict[str, Any]:
    # 0440 and the pod's fsGroup: the server (not root) reads the keys through its group.
    return {"name": VOLUME, "secret": {"secretName": SECRET_NAME, "defaultMode": 0o440}}


def mount() -> dict[str, Any]:
    return {"name": VOLUME, "mountPath": MOUNT_PATH, "readOnly": True}
