"""Who trained a version, for four eyes: the creators behind a TrainingRun and the runs it retrains.

Read through the operator's client by the admission webhooks (who may approve) and by the
TrainingRun reconcile (``spec.trainedBy`` of the version it registers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from modelops.api import API_VERSION, keys
from modelops.controller import common
from modelops.controller.kube import KubeError
from modelops.logic import governance
from modelops.logic.driftloop import FROM_VERSION_ANNOTATION

log = logging.getLogger(__name__)


def annotations_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


# A retrain's run is created by the operator; four eyes follows it back to the people behind it.
MAX_RETRAIN_DEPTH = 5


async def _retrained(
    run: Mapping[str, Any] | None, namespace: str, *, strict: bool = False
) -> tuple[str | None, dict[str, Any] | None]:
    """The version a run retrains (``modelops.io/retrained-from``): its name and the object, if it exists.

    A read that fails is logged and treated as missing, or raised when ``strict``.
    """
    origin = annotations_of(run).get(FROM_VERSION_ANNOTATION)
    if not origin:
        return None, None
    try:
        return origin, await common.kube().get(API_VERSION, "ModelVersion", namespace, str(origin))
    except KubeError as error:
        if strict:
            raise
        log.warning("cannot read ModelVersion %s/%s for four eyes: %s", namespace, origin, error)
        return origin, None


async def trainingrun_creators(version: Mapping[str, Any], depth: int = 0) -> list[str]:
    """Who created the version's TrainingRun (its created-by annotation), if it is known.

    A run the operator created to retrain (annotated ``modelops.io/retrained-from: <version>``)
    also brings the creators behind that version, its own creator and its run's, so nobody
    approves the retrain of a model they trained themselves.
    """
    ref = ((version.get("spec") or {}).get("lineage") or {}).get("trainingRun") or {}
    if not ref.get("name"):
        return []
    namespace = str(ref.get("namespace") or (version.get("metadata") or {}).get("namespace") or "")
    try:
        run = await common.kube().get(API_VERSION, "TrainingRun", namespace, str(ref["name"]))
    except KubeError as error:
        log.warning("cannot read TrainingRun %s/%s for four eyes: %s", namespace, ref["name"], error)
        return []
    creator, _ = governance.parse_creator(annotations_of(run).get(keys.CREATED_BY))
    creators = [creator] if creator else []
    origin, earlier = await _retrained(run, namespace) if depth < MAX_RETRAIN_DEPTH else (None, None)
    if origin and earlier is not None:
        own, _ = governance.parse_creator(annotations_of(earlier).get(keys.CREATED_BY))
        creators += ([own] if own else []) + await trainingrun_creators(earlier, depth + 1)
    return list(dict.fromkeys(creators))


async def registered_trainers(run: Mapping[str, Any]) -> list[dict[str, str]]:
    """``spec.trainedBy`` for the version a run registers: the run's creator and, for a retrain, the people
    behind the version it retrains (that version's own trainedBy and creator), so the chain never depends
    on a run that may be deleted later."""
    meta = run.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    found: list[dict[str, str]] = []

    def add(record: str | None, via: str) -> None:
        try:
            data = json.loads(record) if record else None
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("user"), str) and data["user"]:
            found.append({"user": data["user"], **({"uid": str(data["uid"])} if data.get("uid") else {}), "via": via})

    add(annotations_of(run).get(keys.CREATED_BY), f"created TrainingRun {namespace}/{name}")
    # Recorded once and for ever: a version that cannot be read now fails the registration (retried),
    # only one that no longer exists is left out.
    origin, earlier = await _retrained(run, namespace, strict=True)
    if origin and earlier is not None:
        for entry in (earlier.get("spec") or {}).get("trainedBy") or []:
            if isinstance(entry, dict) and isinstance(entry.get("user"), str):
                found.append({k: str(v) for k, v in entry.items() if k in ("user", "uid", "via") and v})
        add(annotations_of(earlier).get(keys.CREATED_BY), f"created ModelVersion {origin}, which this retrains")
        for person in await trainingrun_creators(earlier):  # an earlier version registered without trainedBy
            found.append({"user": person, "via": f"created the TrainingRun of {origin}, which this retrains"})
    unique: dict[str, dict[str, str]] = {}
    for entry in found:
        unique.setdefault(entry["user"], entry)
    return list(unique.values())
