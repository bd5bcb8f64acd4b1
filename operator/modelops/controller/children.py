"""Children brought to what is desired, the one way for every kind: read, decide, write.

The decision is :func:`modelops.logic.children.plan` (pure: create, patch or nothing); this
module reads the live child and carries the decision out through the run's client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelops.controller.kube import KubeError
from modelops.controller.runtime import kube
from modelops.logic import children


@dataclass(frozen=True)
class Applied:
    """The child as the API server has it now, and what was done to it."""

    obj: dict[str, Any]
    action: children.Action

    @property
    def changed(self) -> bool:
        return self.action is not None

    @property
    def created(self) -> bool:
        return isinstance(self.action, children.Create)


async def apply(desired: Mapping[str, Any], *, immutable: bool = False, create_first: bool = False) -> Applied:
    """Create the child when missing, patch it when it differs, else leave it (see ``plan``).

    A create that loses a race with another writer (409) reads the winner and leaves it.
    ``create_first``: the child is most likely missing (its owner is new), so try the create before
    any read — one request instead of two; a 409 falls back to read and decide."""
    meta = desired["metadata"]
    api_version, kind, namespace, name = desired["apiVersion"], desired["kind"], meta.get("namespace"), meta["name"]
    if create_first:
        try:
            return Applied(await kube().create(dict(desired)), children.Create(desired))
        except KubeError as error:
            if error.status != 409:
                raise
    current = await kube().get(api_version, kind, namespace, name)
    action = children.plan(desired, current, immutable=immutable)
    if isinstance(action, children.Create):
        try:
            return Applied(await kube().create(dict(desired)), action)
        except KubeError as error:
            if error.status != 409:
                raise
            found = await kube().get(api_version, kind, namespace, name)
            return Applied(found or dict(desired), None)
    if isinstance(action, children.Patch):
        return Applied(await kube().patch(api_version, kind, namespace, name, action.patch), action)
    assert current is not None  # plan creates whatever is missing
    return Applied(current, None)
