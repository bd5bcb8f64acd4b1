"""What the watches delivered, as reconciles read it (controller/watched.py): ordering, absence, forgetting."""

from __future__ import annotations

from typing import Any

import pytest

from modelops.controller import watched
from modelops.controller.watched import UNKNOWN, Watched


def obj(name: str, version: str, *, kind: str = "Service", owner: str = "iris", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1" if kind != "Deployment" else "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "ml", "resourceVersion": version,
                     "labels": {"modelops.io/deployment": owner}, "managedFields": [{"manager": "x"}]},
        **extra,
    }  # fmt: skip


def test_an_object_never_seen_is_unknown_and_a_read_keeps_what_it_found() -> None:
    store = Watched()
    assert store.get("v1", "Service", "ml", "iris") is UNKNOWN
    store.read("v1", "Service", "ml", "iris", None)
    assert store.get("v1", "Service", "ml", "iris") is None
    store.read("v1", "Service", "ml", "other", obj("other", "3"))
    kept = store.get("v1", "Service", "ml", "other")
    assert isinstance(kept, dict)
    assert "managedFields" not in kept["metadata"]


def test_a_late_event_never_replaces_a_newer_state() -> None:
    store = Watched()
    store.record(None, obj("iris", "10", spec={"v": "new"}))
    store.record("MODIFIED", obj("iris", "9", spec={"v": "old"}))
    assert store.get("v1", "Service", "ml", "iris")["spec"] == {"v": "new"}  # type: ignore[index]
    store.record("DELETED", obj("iris", "11"))
    assert store.get("v1", "Service", "ml", "iris") is None
    store.record("ADDED", obj("iris", "12", spec={"v": "again"}))
    assert store.get("v1", "Service", "ml", "iris")["spec"] == {"v": "again"}  # type: ignore[index]


def test_a_read_does_not_override_what_a_watch_delivered_meanwhile() -> None:
    store = Watched()
    store.record("ADDED", obj("iris", "5", spec={"v": "watched"}))
    store.read("v1", "Service", "ml", "iris", None)  # a read answered before the event was taken
    assert store.get("v1", "Service", "ml", "iris")["spec"] == {"v": "watched"}  # type: ignore[index]


def test_listing_by_label_and_forgetting_an_owner() -> None:
    store = Watched()
    store.record(None, obj("iris-model-a", "1", kind="ConfigMap"))
    store.record(None, obj("wine-model-a", "2", kind="ConfigMap", owner="wine"))
    store.absent("v1", "ConfigMap", "ml", "iris-model-b")
    assert [o["metadata"]["name"] for o in store.listed("ConfigMap", "ml", "modelops.io/deployment", "iris")] == [
        "iris-model-a"
    ]
    store.forget("ml", "modelops.io/deployment", "iris")
    assert store.get("v1", "ConfigMap", "ml", "iris-model-a") is UNKNOWN
    assert store.get("v1", "ConfigMap", "ml", "iris-model-b") is UNKNOWN
    assert store.get("v1", "ConfigMap", "ml", "wine-model-a") is not UNKNOWN
    assert len(store) == 1


def test_a_missing_api_and_a_namespace_are_remembered_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("modelops.controller.watched.time.monotonic", lambda: clock[0])
    store = Watched()
    store.missing_api("monitoring.coreos.com/v1", "ServiceMonitor")
    assert store.get("monitoring.coreos.com/v1", "ServiceMonitor", "ml", "iris") is None
    store.namespace_read({"metadata": {"name": "ml", "labels": {"env": "prod"}}})
    assert store.namespace("ml") == {"metadata": {"name": "ml", "labels": {"env": "prod"}}}
    clock[0] += watched.NAMESPACE_SECONDS
    assert store.namespace("ml") is None
    assert store.api_missing("monitoring.coreos.com/v1", "ServiceMonitor")
    clock[0] += watched.MISSING_API_SECONDS
    assert not store.api_missing("monitoring.coreos.com/v1", "ServiceMonitor")
    assert store.get("monitoring.coreos.com/v1", "ServiceMonitor", "ml", "iris") is UNKNOWN
