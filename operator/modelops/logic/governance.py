"""Stage decisions for ModelVersions: what may be granted, and what is still missing.

The foundation policy has no gates and needs no approvals, so a requested stage is
granted at once and recorded in the history; gates and approvals build on this function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPERATOR_IDENTITY = "system:serviceaccount:modelops-system:modelops-operator"


@dataclass(frozen=True)
class StageDecision:
    """The stage to hold after this reconcile, and the history entry to add if it moved."""

    stage: str
    transition: dict[str, Any] | None
    message: str


def decide_stage(requested: str, granted: str, *, now: str, by: str = OPERATOR_IDENTITY) -> StageDecision:
    """Grant the requested stage (no gates, no approvals in the foundation policy)."""
    if requested == granted:
        return StageDecision(stage=granted, transition=None, message=f"stage {granted} granted")
    transition = {
        "from": granted,
        "to": requested,
        "by": by,
        "at": now,
        "reason": "the policy asks no gates or approvals for this stage",
    }
    return StageDecision(stage=requested, transition=transition, message=f"stage {requested} granted")


def append_history(history: Sequence[Mapping[str, Any]] | None, entry: Mapping[str, Any] | None) -> list[Any]:
    """History with an entry appended (history is append-only)."""
    result = [dict(item) for item in history or ()]
    if entry is not None:
        result.append(dict(entry))
    return result
