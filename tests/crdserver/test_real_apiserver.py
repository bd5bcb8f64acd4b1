"""The generated CRDs on the real Kubernetes apiextensions-apiserver.

Proves what no emulator can: a real server accepts ``crds/`` as structural schemas,
stores the examples as written (no field pruned), defaults status so a new object never
looks current, serves the printer columns, and enforces the CEL rules with our messages.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from realapi import REPO, RealServer

pytestmark = pytest.mark.crdserver

PLURALS = {
    "TrainingRun": "trainingruns",
    "ModelVersion": "modelversions",
    "ModelDeployment": "modeldeployments",
    "DriftPolicy": "driftpolicies",
}
EXAMPLES = sorted((REPO / "manifests" / "examples").glob("*.yaml"))


def _path(kind: str, namespace: str, name: str | None = None) -> str:
    path = f"/apis/modelops.io/v1alpha1/namespaces/{namespace}/{PLURALS[kind]}"
    return f"{path}/{name}" if name else path


def _example(kind: str) -> dict[str, Any]:
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == kind:
                return dict(doc)
    raise AssertionError(f"no example of {kind}")


def _create(server: RealServer, obj: dict[str, Any], namespace: str) -> Any:
    obj = copy.deepcopy(obj)
    obj["metadata"]["namespace"] = namespace
    return server.request("POST", _path(obj["kind"], namespace), json=obj)


def _missing_leaves(sent: Any, stored: Any, path: str = "") -> list[str]:
    """Paths of leaves that were sent but are not stored with the same value."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [path or "."]
        missing = []
        for key, value in sent.items():
            if key not in stored:
                missing.append(f"{path}.{key}")
            else:
                missing.extend(_missing_leaves(value, stored[key], f"{path}.{key}"))
        return missing
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(sent) != len(stored):
            return [path]
        return [
            m for i, (a, b) in enumerate(zip(sent, stored, strict=True)) for m in _missing_leaves(a, b, f"{path}[{i}]")
        ]
    return [] if sent == stored else [f"{path} ({sent!r} → {stored!r})"]


def test_every_crd_is_established_with_names_and_categories(real_server: RealServer) -> None:
    for kind, plural in PLURALS.items():
        crd = real_server.request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.modelops.io"
        )
        assert crd.status_code == 200
        status = crd.json()["status"]
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions["Established"] == "True", (kind, conditions)
        assert conditions["NamesAccepted"] == "True", (kind, conditions)
        assert conditions.get("NonStructuralSchema") is None
        assert "modelops" in status["acceptedNames"]["categories"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: Path(p).stem)
def test_examples_are_stored_as_written(real_server: RealServer, namespace: str, example: Path) -> None:
    obj = yaml.safe_load(example.read_text())
    response = _create(real_server, obj, namespace)
    assert response.status_code == 201, response.text
    stored = real_server.request("GET", _path(obj["kind"], namespace, obj["metadata"]["name"])).json()
    assert _missing_leaves(obj["spec"], stored["spec"]) == []
    # A new object never looks current: status is defaulted before the operator writes it.
    assert stored["status"]["observedGeneration"] == -1
    assert stored["metadata"]["generation"] == 1


def test_signature_inputs_keep_typed_categories_and_nulls(real_server: RealServer, namespace: str) -> None:
    """What the model server reads to convert request values: categories of any JSON type, null for gaps."""
    obj = copy.deepcopy(_example("ModelVersion"))
    obj["metadata"]["name"] = "typed-signature"
    obj["spec"]["signature"]["inputs"] = [
        {"name": "num_products", "datatype": "INT64", "categorical": True, "categories": [1, 2, 3],
         "acceptsMissing": False},
        {"name": "plan", "datatype": "BYTES", "categorical": True, "categories": ["basic", "pro", None],
         "acceptsMissing": True},
        {"name": "flag", "datatype": "BYTES", "categorical": True, "categories": [False, True, 2.5, "x", None]},
        {"name": "income", "datatype": "FP64", "acceptsMissing": True},
    ]  # fmt: skip
    response = _create(real_server, obj, namespace)
    assert response.status_code == 201, response.text
    stored = real_server.request("GET", _path("ModelVersion", namespace, "typed-signature")).json()
    assert stored["spec"]["signature"]["inputs"] == obj["spec"]["signature"]["inputs"]


def test_defaults_fill_in_what_the_user_left_out(real_server: RealServer, namespace: str) -> None:
    obj = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "minimal"},
        "spec": {"model": "iris", "modelVersion": "iris-v1"},
    }
    response = _create(real_server, obj, namespace)
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["replicas"] == 2
    assert spec["rollout"]["strategy"] == "Canary"
    assert spec["analysis"]["inconclusivePolicy"] == "Pause"
    assert spec["analysis"]["builtin"]["errorRate"]["maxRatio"] == 0.05
    assert spec["server"]["port"] == 8080


def test_printer_columns_show_ready_and_its_message(real_server: RealServer, namespace: str) -> None:
    obj = _example("ModelVersion")
    assert _create(real_server, obj, namespace).status_code == 201
    table = real_server.request(
        "GET", _path("ModelVersion", namespace), headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    ).json()
    names = [column["name"] for column in table["columnDefinitions"]]
    assert names[:5] == ["Name", "Model", "Version", "Stage", "Requested"]
    assert {"Ready", "Message", "Age", "Estimate"} <= set(names)
    row = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert row["Model"] == "breast-cancer"
    assert row["Version"] == 1


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        (
            "TrainingRun",
            lambda spec: spec.update(image="example.com/train:1"),
            "exactly one of spec.estimator and spec.image must be set",
        ),
        (
            "TrainingRun",
            lambda spec: spec["sweep"].update(strategy="random"),
            "spec.sweep.trials is required when spec.sweep.strategy is random",
        ),
        (
            "ModelDeployment",
            lambda spec: spec.update(modelVersion="breast-cancer-v1"),
            "exactly one of spec.modelVersion and spec.track must be set",
        ),
        (
            "ModelDeployment",
            lambda spec: spec["rollout"]["steps"].append({"setWeight": 20, "pause": {}}),
            "a canary step sets exactly one of setWeight, pause, analysis or shadow",
        ),
        (
            "ModelDeployment",
            lambda spec: spec.setdefault("analysis", {}).setdefault("builtin", {}).update(
                quality={"metric": "estimatedF1"}),
            "quality metrics precision, recall, f1 and their estimates need positiveClass",
        ),
        (
            "DriftPolicy",
            lambda spec: spec.update(quality={"thresholds": [{"metric": "accuracy", "threshold": 0.9,
                                                               "positiveClass": "1"}]}),
            "positiveClass applies to precision, recall, f1 and their estimates",
        ),
        (
            "DriftPolicy",
            lambda spec: spec.update(quality={"thresholds": [{"metric": "macroF1", "maxDrop": 0.1}]}),
            "maxDrop applies to accuracy, mae, rmse, precision, recall, f1 and their estimates",
        ),
    ],
)
def test_cel_rules_refuse_contradictions(
    real_server: RealServer, namespace: str, kind: str, change: Any, message: str
) -> None:
    obj = copy.deepcopy(_example(kind))
    change(obj["spec"])
    response = _create(real_server, obj, namespace)
    assert response.status_code == 422, response.text
    assert message in response.json()["message"]


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("artifact", lambda spec: spec["artifact"].update(sha256="0" * 64)),
        ("metrics", lambda spec: spec["metrics"].update(accuracy=0.999)),
        ("lineage", lambda spec: spec.pop("lineage")),
        ("metrics", lambda spec: spec.pop("metrics")),
    ],
)
def test_modelversion_evidence_is_immutable(real_server: RealServer, namespace: str, field: str, change: Any) -> None:
    obj = _example("ModelVersion")
    created = _create(real_server, obj, namespace)
    assert created.status_code == 201, created.text
    stored = created.json()
    assert_immutable(real_server, namespace, stored, change, field)


def assert_immutable(real_server: RealServer, namespace: str, stored: dict[str, Any], change: Any, field: str) -> None:
    """A PUT of a stored ModelVersion with ``change`` made to its spec is refused naming ``spec.<field>``."""
    change(stored["spec"])
    response = real_server.request("PUT", _path("ModelVersion", namespace, stored["metadata"]["name"]), json=stored)
    assert response.status_code == 422, response.text
    body = response.json()
    assert f"spec.{field} is immutable once set" in body["message"]
    assert any(cause.get("field") == f"spec.{field}" for cause in body["details"]["causes"]), body


def test_modelversion_stage_and_card_may_change(real_server: RealServer, namespace: str) -> None:
    obj = _example("ModelVersion")
    stored = _create(real_server, obj, namespace).json()
    stored["spec"]["stage"] = "Production"
    stored["spec"]["modelCard"]["limitations"] = "Only adults."
    response = real_server.request("PUT", _path("ModelVersion", namespace, obj["metadata"]["name"]), json=stored)
    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["generation"] == 2


def test_estimated_per_class_thresholds_are_accepted(real_server: RealServer, namespace: str) -> None:
    policy = copy.deepcopy(_example("DriftPolicy"))
    policy["spec"]["quality"] = {"thresholds": [{"metric": "estimatedF1", "maxDrop": 0.1},
                                                {"metric": "estimatedRecall", "threshold": 0.6, "positiveClass": "1"}]}
    assert _create(real_server, policy, namespace).status_code == 201
    deployment = copy.deepcopy(_example("ModelDeployment"))
    deployment["spec"].setdefault("analysis", {}).setdefault("builtin", {})["quality"] = {
        "metric": "estimatedPrecision", "positiveClass": "1"}
    response = _create(real_server, deployment, namespace)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("TrainingRun", lambda spec: spec.update(model="Breast_Cancer"), "spec.model"),
        ("TrainingRun", lambda spec: spec["dataset"].update(uri="ftp://data/x.csv"), "spec.dataset.uri"),
        ("TrainingRun", lambda spec: spec["dataset"].update(testSize=1.5), "spec.dataset.testSize"),
        ("ModelVersion", lambda spec: spec["artifact"].update(sha256="not-a-digest"), "spec.artifact.sha256"),
        ("ModelVersion", lambda spec: spec.update(stage="Prod"), "spec.stage"),
        (
            "ModelDeployment",
            lambda spec: spec["rollout"]["steps"].append({"setWeight": 150}),
            "spec.rollout.steps[5].setWeight",
        ),
        ("DriftPolicy", lambda spec: spec.update(method="kl"), "spec.method"),
        ("DriftPolicy", lambda spec: spec.update(window="an hour"), "spec.window"),
    ],
)
def test_schema_rejects_bad_values_naming_the_field(
    real_server: RealServer, namespace: str, kind: str, change: Any, field: str
) -> None:
    obj = copy.deepcopy(_example(kind))
    change(obj["spec"])
    response = _create(real_server, obj, namespace)
    assert response.status_code == 422, response.text
    causes = response.json()["details"]["causes"]
    assert any(cause.get("field") == field for cause in causes), causes


def test_status_is_a_subresource(real_server: RealServer, namespace: str) -> None:
    obj = _example("DriftPolicy")
    stored = _create(real_server, obj, namespace).json()
    # Writing status through the main endpoint is ignored...
    stored["status"] = {"observedGeneration": 1, "drifted": True}
    path = _path("DriftPolicy", namespace, obj["metadata"]["name"])
    after = real_server.request("PUT", path, json=stored).json()
    assert after["status"].get("drifted") is None
    # ...and through /status it lands without bumping the generation.
    after["status"] = {"observedGeneration": 1, "drifted": True}
    written = real_server.request("PUT", path + "/status", json=after)
    assert written.status_code == 200, written.text
    assert written.json()["status"]["drifted"] is True
    assert written.json()["metadata"]["generation"] == 1
