"""Names and ownership of the objects the operator creates for a resource."""

from __future__ import annotations

import hashlib
from typing import Any

from modelops.api.common import API_VERSION

DNS_LABEL_MAX = 63


def child_name(owner: str, suffix: str) -> str:
    """``<owner>-<suffix>``; past 63 characters the owner part is cut and a hash of it added,
    so the name stays a valid DNS label, keeps its suffix, and stays unique per owner."""
    name = f"{owner}-{suffix}"
    if len(name) <= DNS_LABEL_MAX:
        return name
    digest = hashlib.sha256(owner.encode()).hexdigest()[:8]
    keep = max(DNS_LABEL_MAX - len(suffix) - len(digest) - 2, 1)
    return f"{owner[:keep].rstrip('-')}-{digest}-{suffix}"[:DNS_LABEL_MAX].rstrip("-")


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """The controller ownerReference of a child: deleted with its owner, which waits for it."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
