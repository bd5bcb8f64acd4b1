"""The one decision for every child object: create it, patch it, or leave it (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from modelops.logic.children import Create, Patch, plan

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "iris", "namespace": "ml", "labels": {"modelops.io/model": "iris"}},
    "spec": {"selector": {"app": "iris"}, "ports": [{"port": 80, "targetPort": 8080}]},
}


def live(**changes: Any) -> dict[str, Any]:
    """The Service as the API server returns it: defaults and bookkeeping added, then ``changes``."""
    obj: dict[str, Any] = {
        **SERVICE,
        "metadata": {**SERVICE["metadata"], "uid": "u1", "resourceVersion": "7"},
        "spec": {
            **SERVICE["spec"],
            "type": "ClusterIP",
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }
    for key, value in changes.items():
        obj[key] = value
    return obj


def test_a_missing_child_is_created_as_desired() -> None:
    assert plan(SERVICE, None) == Create(SERVICE)
    assert plan(SERVICE, None, immutable=True) == Create(SERVICE)


def test_a_child_that_differs_only_by_what_the_server_adds_is_left_alone() -> None:
    assert plan(SERVICE, live()) is None


@pytest.mark.parametrize(
    ("spec", "expected_selector"),
    [
        ({"selector": {"app": "wine"}, "ports": SERVICE["spec"]["ports"]}, {"app": "iris"}),
        # A key added by hand to a map that must match exactly is removed (null in a merge patch).
        (
            {"selector": {"app": "iris", "extra": "x"}, "ports": SERVICE["spec"]["ports"]},
            {"app": "iris", "extra": None},
        ),
    ],
)
def test_a_child_that_differs_is_patched_back(spec: dict[str, Any], expected_selector: dict[str, Any]) -> None:
    action = plan(SERVICE, live(spec=spec))
    assert isinstance(action, Patch)
    assert action.patch["spec"]["selector"] == expected_selector
    assert action.patch["metadata"]["labels"] == SERVICE["metadata"]["labels"]


def test_an_immutable_child_is_never_patched() -> None:
    edited = live(spec={"selector": {"app": "wine"}, "ports": []})
    assert plan(SERVICE, edited, immutable=True) is None


def test_a_child_being_deleted_is_left_to_its_deletion() -> None:
    going = live(spec={"selector": {"app": "wine"}, "ports": []})
    going["metadata"] = {**going["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}
    assert plan(SERVICE, going) is None


def test_a_desired_label_missing_on_the_live_child_is_patched() -> None:
    unlabelled = live()
    unlabelled["metadata"] = {k: v for k, v in unlabelled["metadata"].items() if k != "labels"}
    action = plan(SERVICE, unlabelled)
    assert isinstance(action, Patch)
    assert action.patch["metadata"]["labels"] == {"modelops.io/model": "iris"}
