"""The CRDs in crds/ are what the API models generate, and they hold what users need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from k8sschemas import openapi_to_jsonschema, problems
from modelops import crdgen
from modelops.api import KINDS

REPO = Path(__file__).resolve().parents[2]
CRDS = {path.name: yaml.safe_load(path.read_text()) for path in sorted((REPO / "crds").glob("*.yaml"))}
EXAMPLES = [doc for path in sorted((REPO / "manifests" / "examples").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("directory", ["crds", "charts/modelops-operator/crds"])
def test_crds_directory_matches_the_models(directory: str) -> None:
    generated = crdgen.generate()
    ours = sorted(p.name for p in (REPO / directory).glob("modelops.io_*.yaml"))
    assert sorted(generated) == ours, "run: make crds"
    for name, text in generated.items():
        assert (REPO / directory / name).read_text() == text, f"{directory}/{name} is stale; run: make crds"


def test_check_mode_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert crdgen.main(["-o", str(tmp_path)]) == 0
    assert crdgen.main(["-o", str(tmp_path), "--check"]) == 0
    victim = next(tmp_path.glob("*.yaml"))
    victim.write_text(victim.read_text().replace("description: ", "description: edited ", 1))
    assert crdgen.main(["-o", str(tmp_path), "--check"]) == 1
    assert victim.name in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(CRDS))
def test_crd_is_a_valid_kubernetes_object(name: str) -> None:
    assert problems(CRDS[name]) == []


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        for key, child in (node.get("properties") or {}).items():
            found.append((f"{path}.{key}", child))
            found.extend(_walk(child, f"{path}.{key}"))
        if isinstance(node.get("items"), dict):
            found.extend(_walk(node["items"], f"{path}[]"))
        if isinstance(node.get("additionalProperties"), dict):
            found.extend(_walk(node["additionalProperties"], f"{path}{{}}"))
    return found


@pytest.mark.parametrize("name", sorted(CRDS))
def test_every_field_has_explain_text(name: str) -> None:
    schema = CRDS[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    undocumented = [path for path, node in _walk(schema) if not node.get("description")
                    and path not in {".metadata"}]
    assert undocumented == []


@pytest.mark.parametrize("name", sorted(CRDS))
def test_schema_is_structural(name: str) -> None:
    schema = CRDS[name]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node, path
        assert "title" not in node, path
        assert "anyOf" not in node or node.get("x-kubernetes-int-or-string"), path
        assert node.get("type") or node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        ), f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path


def test_kinds_have_short_names_category_and_status() -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in CRDS.values()}
    assert {k: v["spec"]["names"]["shortNames"] for k, v in by_kind.items()} == {
        "TrainingRun": ["tr"], "ModelVersion": ["mv"], "ModelDeployment": ["mdep"], "DriftPolicy": ["dp"],
    }
    for crd in by_kind.values():
        assert crd["spec"]["names"]["categories"] == ["modelops"]
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["properties"]["observedGeneration"]["default"] == -1
        conditions = status["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        columns = [c["name"] for c in version["additionalPrinterColumns"]]
        assert columns[-3:] == ["Ready", "Message", "Age"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda d: d["kind"])
def test_example_validates_against_its_crd_schema(example: dict[str, Any]) -> None:
    crd = next(c for c in CRDS.values() if c["spec"]["names"]["kind"] == example["kind"])
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate(example, openapi_to_jsonschema(schema))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda d: d["kind"])
def test_example_parses_into_its_model(example: dict[str, Any]) -> None:
    info = next(k for k in KINDS if k.kind == example["kind"])
    info.spec.model_validate(example["spec"])


def test_examples_cover_every_kind() -> None:
    assert sorted(d["kind"] for d in EXAMPLES) == sorted(k.kind for k in KINDS)
