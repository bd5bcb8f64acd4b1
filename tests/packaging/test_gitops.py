"""The Flux example (deploy/flux/) and what kstatus needs from the CRDs to judge health unaided."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from chartkit import REPO

FLUX = REPO / "deploy" / "flux"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _flux_objects() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = yaml.safe_load((FLUX / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for doc in _docs(FLUX / name):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def test_flux_example_wires_source_operator_and_models() -> None:
    objects = _flux_objects()
    source = objects[("GitRepository", "modelops")]
    assert source["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    operator = objects[("Kustomization", "modelops-operator")]
    models = objects[("Kustomization", "models")]
    for ks in (operator, models):
        assert ks["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
        assert ks["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "modelops"}
        assert (REPO / ks["spec"]["path"]).is_dir(), ks["spec"]["path"]
        assert ks["spec"]["prune"] is True
    assert operator["spec"]["path"] == "./manifests/install"
    assert operator["spec"]["wait"] is True
    assert models["spec"]["dependsOn"] == [{"name": "modelops-operator"}]


def test_flux_health_checks_name_every_model_resource_of_the_folder() -> None:
    models = _flux_objects()[("Kustomization", "models")]
    checks = {(c["apiVersion"], c["kind"], c["namespace"], c["name"]) for c in models["spec"]["healthChecks"]}
    applied = {
        (doc["apiVersion"], doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"])
        for path in sorted((REPO / models["spec"]["path"]).glob("*.yaml"))
        for doc in _docs(path)
        if doc["apiVersion"].startswith("modelops.io/")
    }
    assert checks == applied
    assert {kind for _, kind, _, _ in checks} == {"TrainingRun", "ModelVersion", "ModelDeployment", "DriftPolicy"}


def test_every_kind_carries_what_kstatus_reads() -> None:
    """kstatus: observedGeneration against generation, then Reconciling/Stalled/Ready conditions."""
    for path in sorted((REPO / "crds").glob("modelops.io_*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            assert version["subresources"].get("status") == {}, path.name
            status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
            assert status["observedGeneration"]["type"] == "integer", path.name
            assert status["observedGeneration"].get("default") == -1, f"{path.name}: a new object must not look current"
            condition = status["conditions"]["items"]["properties"]
            assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(condition), path.name
