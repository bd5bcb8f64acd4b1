"""The README's first hour stays true: its laptop blocks run as written, its examples are valid.

The shell blocks of "Try it on your laptop" are taken from README.md and run by bash in an
empty directory (``-e``: any failing command fails the test), with the venv's console scripts
first on PATH. The one change made to them: the model server's port 8080 becomes a free port, as
every port in these tests is. The examples the README points to beside ``manifests/examples``
(``manifests/examples/more``) are checked like the others: against their CRD's schema and their
pydantic model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from k8sschemas import openapi_to_jsonschema, problems
from modelops.api import KINDS
from operatorkit import free_port

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
MORE = sorted((REPO / "manifests" / "examples" / "more").glob("*.yaml"))


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL)


def test_the_laptop_section_has_the_blocks_it_promises() -> None:
    blocks = shell_blocks(section("Try it on your laptop"))
    assert len(blocks) == 2
    assert "current.csv" in blocks[0]
    assert '"categoricalFeatures"' in blocks[1]
    assert '"uri": "file://$PWD/' in blocks[1]  # an absolute path, whatever the directory


@pytest.mark.slow
def test_the_laptop_blocks_run_as_written(tmp_path: Path) -> None:
    port = free_port()
    script = "\n".join(block.replace("8080", str(port)) for block in shell_blocks(section("Try it on your laptop")))
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=900, check=False)  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in out + result.stderr
    assert (tmp_path / "out" / "result.json").is_file()
    assert '"name":"iris"' in out.replace(" ", "")  # the model's metadata
    assert '"name":"predict_proba"' in out.replace(" ", "")
    assert "modelops_feature_bucket{" in out
    # Both drift commands found drift, and said where: the iris petals, the churn table's plan only.
    assert out.count("drift found (exit code 1)") == 2
    summaries = [line for line in out.splitlines() if line.startswith("psi: drift in")]
    assert summaries[0].endswith(": petal length (cm)")
    assert summaries[1] == "psi: drift in 1 of 5 features (drifted when score >= 0.2): plan"


def test_the_readme_links_exist() -> None:
    for target in re.findall(r"\]\(((?:docs|manifests|deploy|bench)/[^)#]+)\)", README):
        assert (REPO / target).exists(), target


@pytest.mark.parametrize("path", MORE, ids=lambda p: p.name)
def test_more_examples_are_valid(path: Path) -> None:
    loaded = (yaml.safe_load(crd.read_text()) for crd in (REPO / "crds").glob("*.yaml"))
    crds = {crd["spec"]["names"]["kind"]: crd for crd in loaded}
    docs: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert docs
    for doc in docs:
        if doc["kind"] in crds:
            schema = crds[doc["kind"]]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            jsonschema.validate(doc, openapi_to_jsonschema(schema))
            next(k for k in KINDS if k.kind == doc["kind"]).spec.model_validate(doc["spec"])
        else:
            assert problems(doc) == []
