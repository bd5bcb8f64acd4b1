"""Children brought to what is desired, the one way for every kind: read, decide, write.

The decision is :func:`modelops.logic.children.plan` (pure: create, patch or nothing); this
module reads the live child (or takes what the caller already knows of it, e.g. from a watch)
and carries the decision out through the run's client.
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
    # The cluster does not serve the child's kind (an optional API such as the Prometheus Operator's).
    missing_api: bool = False

    @property
    def changed(self) -> bool:
        return self.action is not None and not self.missing_api

    @property
    def created(self) -> bool:
        return isinstance(self.action, children.Create) and not self.missing_api


async def apply(
    desired: Mapping[str, Any],
    *,
    immutable: bool = False,
    create_first: bool = False,
    known: Mapping[str, Any] | children.Unread | None = children.UNREAD,
    optional_api: bool = False,
) -> Applied:
    """Create the child when missing, patch it when it differs, else leave it (see ``plan``).

    A create that loses a race with another writer (409) reads the winner, and patches it unless immutable.
    ``create_first``: the child is most likely missing (its owner is new), so try the create before
    any read — one request instead of two; a 409 falls back to read and decide.
    ``known``: the live child as the caller last saw it (None: absent), instead of a read; a patch of a
    child that has gone since creates it.
    ``optional_api``: a kind the cluster may not serve; a 404 on its create is no error
    (``Applied.missing_api``)."""
    meta = desired["metadata"]
    api_version, kind, namespace, name = desired["apiVersion"], desired["kind"], meta.get("namespace"), meta["name"]

    async def create() -> Applied | None:
        """The create; None when another writer made it first (409)."""
        try:
            return Applied(await kube().create(dict(desired)), children.Create(desired))
        except KubeError as error:
            if error.status == 404 and optional_api:
                return Applied(dict(desired), children.Create(desired), missing_api=True)
            if error.status != 409:
                raise
            return None

    if create_first and isinstance(known, children.Unread):
        made = await create()
        if made is not None:
            return made
        known = children.UNREAD
    current = await kube().get(api_version, kind, namespace, name) if isinstance(known, children.Unread) else known
    action = children.plan(desired, current, immutable=immutable)
    if isinstance(action, children.Create):
        made = await create()
        if made is not None:
            return made
        found = await kube().get(api_version, kind, namespace, name)
        if found is None:  # made and gone again meanwhile: its deletion event brings the owner back
            return Applied(dict(desired), None)
        return await apply(desired, immutable=immutable, known=found, optional_api=optional_api)
    if isinstance(action, children.Patch):
        try:
            return Applied(await kube().patch(api_version, kind, namespace, name, action.patch), action)
        except KubeError as error:
            if error.status != 404 or isinstance(known, children.Unread):
                raise
        # What the caller knew is out of date: the child has gone since. Decide again from the server.
        return await apply(desired, immutable=immutable, optional_api=optional_api)
    assert current is not None  # plan creates whatever is missing
    return Applied(dict(current), None)
