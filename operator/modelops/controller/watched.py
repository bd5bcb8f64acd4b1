"""What the watches delivered, kept so that a reconcile reads it instead of asking the API server.

A :class:`Watched` holds the last state of each object its watches (Kopf event handlers) delivered,
and of each object the operator itself wrote or read, by (apiVersion, kind, namespace, name): a
body, or ``None`` when the object is known to be absent (a DELETED event, a delete, a read that
found nothing). An object it knows nothing of is :data:`UNKNOWN`: the caller reads it from the API
server and records what it found. This is how the controllers of the Kubernetes project read
their children (an informer's cache): the watch is the source, and a reconcile that finds its
children as desired costs no request.

What is kept can be older than the API server's state, never for long: a change the watch has not
delivered yet is delivered next, and its event makes the owner look again. A state older than the
one kept (a late event, by ``resourceVersion``) is ignored. Bodies are kept without
``managedFields`` (most of a live object's size, read by nobody here). A kind the cluster does not
serve (an optional API: the Prometheus Operator's, the Gateway API) is remembered for
:data:`MISSING_API_SECONDS`, so that every reconcile does not ask again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from modelops.logic.children import UNREAD, Unread

UNKNOWN: Final = UNREAD  # never seen: read it (the marker children.apply takes for "not read")
MISSING_API_SECONDS = 300.0
NAMESPACE_SECONDS = 10.0  # how long a Namespace read is used (its labels decide what is production)

Key = tuple[str, str, str, str]  # apiVersion, kind, namespace, name


def _version(meta: Mapping[str, Any]) -> int | None:
    value = str(meta.get("resourceVersion") or "")
    return int(value) if value.isdigit() else None


def _slim(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k != "managedFields"}
    return {**body, "metadata": meta}


class Watched:
    """The last known state of objects, by (apiVersion, kind, namespace, name); see the module's doc."""

    def __init__(self) -> None:
        # key → (resourceVersion it was at, or None when unknown; the body, or None when absent)
        self._objects: dict[Key, tuple[int | None, dict[str, Any] | None]] = {}
        self._missing_apis: dict[tuple[str, str], float] = {}
        self._namespaces: dict[str, tuple[float, dict[str, Any]]] = {}

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | Unread | None:
        """The object as last seen; None when known to be absent; :data:`UNKNOWN` when never seen."""
        found = self._objects.get((api_version, kind, namespace, name))
        if found is None:
            return None if self.api_missing(api_version, kind) else UNKNOWN
        return found[1]

    def record(self, event_type: str | None, body: Mapping[str, Any], *, api_version: str = "", kind: str = "") -> None:
        """One watch event (DELETED: the object is absent now), or an object the API server answered with."""
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace"), meta.get("name")
        api_version, kind = str(body.get("apiVersion") or api_version), str(body.get("kind") or kind)
        if not namespace or not name or not api_version or not kind:
            return
        key = (api_version, kind, str(namespace), str(name))
        version = _version(meta)
        kept = self._objects.get(key)
        if kept is not None and kept[0] is not None and version is not None and version < kept[0]:
            return  # older than what is kept: a late event
        self._objects[key] = (version, None if event_type == "DELETED" else _slim(body))

    def drop(self, body: Mapping[str, Any]) -> None:
        """Keep nothing of this object (neither it nor its absence): the next look reads it."""
        meta = body.get("metadata") or {}
        key = (str(body.get("apiVersion")), str(body.get("kind")), str(meta.get("namespace")), str(meta.get("name")))
        self._objects.pop(key, None)

    def absent(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """The object is known to be absent (deleted by us, or a read found nothing)."""
        key = (api_version, kind, namespace, name)
        kept = self._objects.get(key)
        self._objects[key] = (kept[0] if kept is not None else None, None)

    def read(
        self, api_version: str, kind: str, namespace: str, name: str, found: Mapping[str, Any] | None
    ) -> None:
        """What a read answered, kept unless a watch event has delivered something since."""
        if (api_version, kind, namespace, name) not in self._objects:
            self.fetched(api_version, kind, namespace, name, found)

    def fetched(
        self, api_version: str, kind: str, namespace: str, name: str, found: Mapping[str, Any] | None
    ) -> None:
        """What a read made on purpose to see the latest answered (ordered like any state by resourceVersion)."""
        if found is None:
            self.absent(api_version, kind, namespace, name)
        else:
            self.record(None, found, api_version=api_version, kind=kind)

    def listed(self, kind: str, namespace: str, label: str, value: str) -> list[dict[str, Any]]:
        """The present objects of a kind in a namespace whose ``label`` is ``value`` (those the watch delivered)."""
        return [
            body
            for (_, k, ns, _), (_, body) in self._objects.items()
            if k == kind and ns == namespace and body is not None
            and ((body.get("metadata") or {}).get("labels") or {}).get(label) == value
        ]  # fmt: skip

    def missing_api(self, api_version: str, kind: str) -> None:
        """The cluster answered that it does not serve this kind."""
        self._missing_apis[(api_version, kind)] = time.monotonic()

    def api_missing(self, api_version: str, kind: str) -> bool:
        at = self._missing_apis.get((api_version, kind))
        if at is None:
            return False
        if time.monotonic() - at >= MISSING_API_SECONDS:
            del self._missing_apis[(api_version, kind)]
            return False
        return True

    def namespace(self, name: str) -> dict[str, Any] | None:
        """The Namespace as read less than :data:`NAMESPACE_SECONDS` ago, else None (read it again)."""
        found = self._namespaces.get(name)
        if found is None or time.monotonic() - found[0] >= NAMESPACE_SECONDS:
            self._namespaces.pop(name, None)
            return None
        return found[1]

    def namespace_read(self, body: Mapping[str, Any]) -> None:
        name = (body.get("metadata") or {}).get("name")
        if name:
            self._namespaces[str(name)] = (time.monotonic(), _slim(body))

    def forget(self, namespace: str, label: str, value: str, *also: Key) -> None:
        """An owner is gone: drop what is kept of its children (by their ``label``; absent ones by their name,
        the owner's or starting with it: dropping too much only costs a read), and the keys ``also``."""
        dropped = [
            key
            for key, (_, body) in self._objects.items()
            if key[2] == namespace
            and (body is None or ((body.get("metadata") or {}).get("labels") or {}).get(label) == value)
            and (body is not None or key[3] == value or key[3].startswith(f"{value}-"))
        ]  # fmt: skip
        for key in (*dropped, *also):
            self._objects.pop(key, None)

    def __len__(self) -> int:
        return len(self._objects)
