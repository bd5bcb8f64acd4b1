"""spec.trainedBy of a ModelVersion on the real apiextensions-apiserver: set at creation or never, never changed.

The admission webhook says the same in the same words (logic/governance.py); the CRD's CEL rule
holds even where the webhook does not run.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from realapi import REPO, RealServer

API = "modelops.io/v1alpha1"
MESSAGE = "spec.trainedBy is recorded when the version is registered and cannot be set or changed later"


def example() -> dict[str, Any]:
    for document in yaml.safe_load_all((REPO / "manifests" / "examples" / "02-modelversion.yaml").read_text()):
        if document and document.get("kind") == "ModelVersion":
            return dict(document)
    raise AssertionError("no ModelVersion example")


def path(namespace: str, name: str = "") -> str:
    base = f"/apis/{API}/namespaces/{namespace}/modelversions"
    return f"{base}/{name}" if name else base


def create(server: RealServer, namespace: str, trained_by: list[dict[str, str]] | None) -> dict[str, Any]:
    obj = copy.deepcopy(example())
    obj["metadata"].pop("namespace", None)
    if trained_by is not None:
        obj["spec"]["trainedBy"] = trained_by
    response = server.request("POST", path(namespace), json=obj)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.parametrize(
    ("recorded", "change"),
    [
        ([{"user": "alice"}], lambda spec: spec.update(trainedBy=[{"user": "mallory"}])),
        ([{"user": "alice"}], lambda spec: spec.pop("trainedBy")),
        ([{"user": "alice"}, {"user": "bob"}], lambda spec: spec.update(trainedBy=[{"user": "bob"}])),
        (None, lambda spec: spec.update(trainedBy=[{"user": "alice"}])),
    ],
    ids=["rewritten", "removed", "shortened", "added-later"],
)
def test_trained_by_cannot_change_after_creation(
    real_server: RealServer, namespace: str, recorded: list[dict[str, str]] | None, change: Any
) -> None:
    stored = create(real_server, namespace, recorded)
    change(stored["spec"])
    response = real_server.request("PUT", path(namespace, stored["metadata"]["name"]), json=stored)
    assert response.status_code == 422, response.text
    body = response.json()
    assert MESSAGE in body["message"]
    assert any(cause.get("field") == "spec.trainedBy" for cause in body["details"]["causes"]), body


def test_other_edits_leave_trained_by_alone(real_server: RealServer, namespace: str) -> None:
    stored = create(real_server, namespace, [{"user": "alice", "via": "created TrainingRun ml/x"}])
    stored["spec"]["stage"] = "Staging"
    response = real_server.request("PUT", path(namespace, stored["metadata"]["name"]), json=stored)
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["trainedBy"] == [{"user": "alice", "via": "created TrainingRun ml/x"}]
