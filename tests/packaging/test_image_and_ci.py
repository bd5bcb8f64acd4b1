"""The Dockerfile, the CI script and the e2e workflow, read statically (tests/image builds and runs the image)."""

from __future__ import annotations

import re
import tomllib

import yaml
from chartkit import CHART_DIR, REPO

from k8sschemas import problems


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines = [line for line in (REPO / "Dockerfile").read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_is_multi_stage_on_a_pinned_slim_base() -> None:
    steps = _instructions()
    args = dict(rest.split("=", 1) for word, rest in steps if word == "ARG" and "=" in rest)
    stages: list[str] = []
    bases = []
    for word, rest in steps:
        if word != "FROM":
            continue
        source, *alias = rest.split()
        if source not in stages:  # a stage built on an earlier stage has no base of its own
            bases.append(source.replace("${PYTHON_IMAGE}", args.get("PYTHON_IMAGE", "")))
        if alias[:1] == ["AS"]:
            stages.append(alias[1])
    assert len(stages) >= 2, "build stages and a runtime stage"
    assert len(bases) >= 2, "the build and the runtime start from the same pinned base"
    for base in bases:
        # An exact patch release and Debian release, never latest or a floating minor tag.
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base


def test_image_runs_modelops_as_a_non_root_user_the_chart_agrees_with() -> None:
    steps = _instructions()
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "numeric, so that runAsNonRoot can verify it"
    assert int(uid) != 0
    chart_values = (CHART_DIR / "values.yaml").read_text()
    assert f"\nrunAsUser: {uid}\n" in chart_values
    assert [rest for word, rest in final if word == "ENTRYPOINT"] == ['["modelops"]']
    assert [rest for word, rest in final if word == "CMD"] == ['["operator"]']
    assert not any(word == "COPY" and "--from" not in rest for word, rest in final), "sources stay in the build stage"


def test_image_ships_both_console_scripts() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"modelops", "kubectl-modelops"} <= set(scripts)
    build = " ".join(rest for word, rest in _instructions() if word == "RUN")
    assert "modelops --help" in build
    assert "kubectl-modelops" in build


def test_docker_context_holds_what_the_build_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in ignore, "a small context: everything excluded, then the few inputs"
    for needed in ("!pyproject.toml", "!README.md", "!operator/"):
        assert needed in ignore


def test_e2e_workflow_brings_up_kind_and_runs_the_e2e_marker() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "e2e.yml").read_text())
    job = workflow["jobs"]["kind"]
    runs = [step.get("run", "") for step in job["steps"]]
    assert any(run.startswith("make kind-up") for run in runs)
    assert any(run.startswith("make e2e") for run in runs)
    assert job["timeout-minutes"] <= 60
    assert workflow["permissions"] == {"contents": "read"}
    cleanup = job["steps"][-1]
    assert cleanup["if"] == "always()"
    assert "kind-down" in cleanup["run"]
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^e2e:.*\n(\t.*\n)*\t.*pytest -m e2e", makefile, re.MULTILINE), "make e2e runs pytest -m e2e"


def test_kind_artifact_claim_is_the_one_the_examples_name() -> None:
    claim = yaml.safe_load((REPO / "deploy" / "kind" / "artifacts-pvc.yaml").read_text())
    assert problems(claim) == []
    examples = "".join(p.read_text() for p in sorted((REPO / "manifests" / "examples").glob("*.yaml")))
    assert f"pvc://{claim['metadata']['name']}/" in examples
    assert f"namespace: {claim['metadata']['namespace']}" in examples
