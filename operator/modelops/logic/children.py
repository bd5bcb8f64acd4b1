"""One way to bring a child object to what is desired: create it, patch it, or leave it.

:func:`plan` is the pure decision every kind's children go through; the controller carries it
out (``controller/children.py``). What counts as a difference: anything the desired object sets
that the live one lacks or changes (fields the API server adds, such as defaults, are fine), a
key added by hand to a map that must match exactly (a Service's selector), and an optional
field the operator sets only sometimes that it does not want now (a shadow step's mirror).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Create:
    """The child does not exist: create it as desired."""

    obj: Mapping[str, Any]


@dataclass(frozen=True)
class Patch:
    """The child differs: a JSON merge patch that makes it what is desired."""

    patch: JsonDict


Action = Create | Patch | None  # None: leave the child as it is


class Unread:
    """What a caller knows of a live child when it has not read it (to tell from None: known absent)."""

    def __repr__(self) -> str:
        return "UNREAD"


UNREAD: Final = Unread()


def plan(desired: Mapping[str, Any], current: Mapping[str, Any] | None, *, immutable: bool = False) -> Action:
    """What to do with a child: create it when missing, patch it when it differs, else nothing.

    ``immutable``: once created it is never changed (a Job's pod template, the ConfigMap a running
    Job reads). A child being deleted is left alone: its deletion event brings the owner back.
    """
    if current is None:
        return Create(desired)
    if immutable or (current.get("metadata") or {}).get("deletionTimestamp"):
        return None
    if not needs_repair(desired, current):
        return None
    return Patch(repair_patch(desired, current))


def differs(desired: Any, actual: Any) -> bool:
    """Whether ``actual`` lacks or changes anything ``desired`` sets (fields the server adds are fine)."""
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return True
        return any(differs(value, actual.get(key)) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            return True
        return any(differs(d, a) for d, a in zip(desired, actual, strict=True))
    if isinstance(desired, (int, float)) and isinstance(actual, (int, float)) and not isinstance(desired, bool):
        return desired != actual
    return bool(desired != actual)


# Maps where a key added by hand changes behaviour, so they must match exactly (not as a subset).
EXACT_MAPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Service": (("spec", "selector"),),
    "Deployment": (("spec", "selector", "matchLabels"),),
}


def _at(obj: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


# Optional fields the operator sets only sometimes: present but not desired is a difference too
# ("*" walks every item of a list). A shadow step's RequestMirror must go when the step ends.
OWNED_OPTIONAL: dict[str, tuple[tuple[str, ...], ...]] = {
    "HTTPRoute": (("spec", "rules", "*", "filters"),),
}


def _present(obj: Any, path: Sequence[str]) -> list[tuple[int, ...]]:
    """The list indexes at which ``path`` exists in ``obj`` (``*`` steps through list items)."""
    if not path:
        return [()]
    head, rest = path[0], path[1:]
    if head == "*":
        if not isinstance(obj, list):
            return []
        return [(i, *found) for i, item in enumerate(obj) for found in _present(item, rest)]
    if not isinstance(obj, Mapping) or head not in obj:
        return []
    return _present(obj[head], rest)


def needs_repair(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Whether a child differs from what is desired, counting keys added to its exact maps and
    optional fields it should not have."""
    if differs(desired, actual):
        return True
    for path in OWNED_OPTIONAL.get(str(desired.get("kind")), ()):
        if set(_present(actual, path)) - set(_present(desired, path)):
            return True
    for path in EXACT_MAPS.get(str(desired.get("kind")), ()):
        wanted, found = _at(desired, path), _at(actual, path)
        if isinstance(found, Mapping) and isinstance(wanted, Mapping) and set(found) - set(wanted):
            return True
    return False


def repair_patch(desired: Mapping[str, Any], actual: Mapping[str, Any]) -> JsonDict:
    """A JSON merge patch that makes ``actual`` what is desired, removing keys added to exact maps."""
    patch: JsonDict = json.loads(json.dumps(desired))
    for path in EXACT_MAPS.get(str(desired.get("kind")), ()):
        wanted, found = _at(patch, path), _at(actual, path)
        if isinstance(found, Mapping) and isinstance(wanted, dict):
            for extra in set(found) - set(wanted):
                wanted[extra] = None
    return patch
