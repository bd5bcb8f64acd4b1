"""The Argo CD health checks (deploy/argocd/), run by the real Lua 5.1 that Argo CD embeds.

A harness sets the global ``obj`` from a Lua table literal generated from a Python dict, runs
the script exactly as shipped in argocd-cm.yaml, and prints ``hs.status`` and ``hs.message``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import render_argocd
import yaml
from chartkit import REPO

LUA = shutil.which("lua5.1") or "/usr/bin/lua5.1"
ARGOCD = REPO / "deploy" / "argocd"
KINDS = ("TrainingRun", "ModelVersion", "ModelDeployment", "DriftPolicy")

pytestmark = pytest.mark.skipif(not Path(LUA).exists(), reason="needs lua5.1 (Debian package lua5.1)")


def lua_literal(value: Any) -> str:
    """A Python value (parsed JSON/YAML) as a Lua expression, as Argo CD hands objects to Lua."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string literal with \" and \n escapes is a valid Lua literal
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"[{json.dumps(str(k))}] = {lua_literal(v)}" for k, v in value.items() if v is not None)
            + "}"
        )
    raise TypeError(f"no Lua literal for {type(value).__name__}")


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The scripts as shipped in argocd-cm.yaml, each in a file the harness loads."""
    data = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())["data"]
    folder = tmp_path_factory.mktemp("argocd")
    found = {}
    for kind in KINDS:
        path = folder / f"{kind}.lua"
        path.write_text(data[f"resource.customizations.health.modelops.io_{kind}"])
        found[kind] = path
    return found


def health(script: Path, obj: dict[str, Any]) -> tuple[str, str]:
    harness = "\n".join(
        [
            f"obj = {lua_literal(obj)}",
            f"local hs = assert(loadfile({json.dumps(str(script))}))()",
            "print(hs.status)",
            "print(hs.message)",
        ]
    )
    done = subprocess.run([LUA, "-"], input=harness, capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    status, message = done.stdout.rstrip("\n").split("\n", 1)
    return status, message


def condition(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


def resource(
    kind: str, generation: int = 3, observed: int | None = 3, *conds: dict[str, Any], **status: Any
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ml", "generation": generation},
        "spec": {},
    }
    if observed is not None or conds or status:
        obj["status"] = {"observedGeneration": observed, "conditions": list(conds), **status}
    return obj


def test_argocd_cm_embeds_the_scripts_verbatim_for_the_four_kinds() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    assert cm["data"] == {
        f"resource.customizations.health.modelops.io_{kind}": (ARGOCD / "health" / f"{kind}.lua").read_text()
        for kind in KINDS
    }


def test_the_scripts_are_the_template_with_each_kinds_rules_and_up_to_date() -> None:
    files = render_argocd.rendered()
    assert {path: path.read_text() for path in files} == files  # else: python tests/packaging/render_argocd.py
    template = render_argocd.TEMPLATE.read_text()
    shared = template[template.index("if conditions.Stalled") : template.index("-- @RULES-BEFORE-READY@")]
    for kind in KINDS:
        text = files[ARGOCD / "health" / f"{kind}.lua"]
        assert shared in text
        assert "@" not in text.splitlines()[0]
        for rules in render_argocd.RULES.glob(f"{kind}.*.lua"):
            assert rules.read_text() in text
    assert "Training failed" in files[ARGOCD / "health" / "TrainingRun.lua"]
    assert "Training failed" not in files[ARGOCD / "health" / "DriftPolicy.lua"]


def test_a_rules_file_for_no_kind_fails_the_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for rules in render_argocd.RULES.glob("*.lua"):
        (tmp_path / rules.name).write_text(rules.read_text())
    (tmp_path / "TrainingRuns.before-ready.lua").write_text("-- a typo in the kind\n")
    monkeypatch.setattr(render_argocd, "RULES", tmp_path)
    assert render_argocd.main(["--check"]) == 1


def test_lua_literal_round_trips_through_lua(scripts: dict[str, Path]) -> None:
    """The harness itself: a message with quotes and newlines reaches Lua intact."""
    tricky = 'said "no"\nthen left\\'
    status, message = health(
        scripts["DriftPolicy"], resource("DriftPolicy", 1, 1, condition("Ready", "True", "Ok", tricky))
    )
    assert status == "Healthy"
    assert message == f"Ready=True (Ok): {tricky}"


@pytest.mark.parametrize("kind", KINDS)
def test_common_rules(scripts: dict[str, Path], kind: str) -> None:
    script = scripts[kind]
    # Healthy: the operator saw this generation and says Ready.
    assert health(script, resource(kind, 3, 3, condition("Ready", "True", "Ready", "all good"))) == (
        "Healthy",
        "Ready=True (Ready): all good",
    )
    # Progressing: no status yet; a generation the operator has not observed (even if Ready was True).
    assert health(script, resource(kind, 1, None))[0] == "Progressing"
    assert health(script, resource(kind, 1, -1))[0] == "Progressing"
    status, message = health(script, resource(kind, 4, 3, condition("Ready", "True")))
    assert (status, message) == ("Progressing", "Waiting for the operator to observe generation 4")
    # Progressing: reconciling, with the operator's words.
    status, message = health(
        script,
        resource(
            kind,
            2,
            2,
            condition("Ready", "False", "Reconciling", "creating children"),
            condition("Reconciling", "True"),
        ),
    )
    assert (status, message) == ("Progressing", "Ready=False (Reconciling): creating children")
    assert health(script, resource(kind, 2, 2, condition("Reconciling", "True", "Waiting", "for x")))[1] == (
        "Reconciling=True (Waiting): for x"
    )
    # Degraded: Stalled wins over everything else the operator says.
    status, message = health(
        script,
        resource(
            kind,
            5,
            5,
            condition("Ready", "False", "InvalidSpec"),
            condition("Stalled", "True", "InvalidSpec", "spec.model: required"),
        ),
    )
    assert (status, message) == ("Degraded", "Stalled=True (InvalidSpec): spec.model: required")
    # Stalled=False is not degraded.
    assert (
        health(script, resource(kind, 5, 5, condition("Stalled", "False"), condition("Ready", "True")))[0] == "Healthy"
    )


def test_model_version_awaiting_approval_is_suspended(scripts: dict[str, Path]) -> None:
    script = scripts["ModelVersion"]
    approved_false = condition("Approved", "False", "AwaitingApproval", "Production needs 1 approval, has 0")
    status, message = health(
        script, resource("ModelVersion", 2, 2, condition("Ready", "False", "GatesPassed"), approved_false)
    )
    assert (status, message) == ("Suspended", "Approved=False (AwaitingApproval): Production needs 1 approval, has 0")
    status, _ = health(
        script, resource("ModelVersion", 2, 2, condition("Ready", "False", "AwaitingApproval", "needs 1"))
    )
    assert status == "Suspended"
    # Ready=False for any other reason is still work in progress; Ready=True is healthy.
    assert (
        health(script, resource("ModelVersion", 2, 2, condition("Ready", "False", "GatesPending")))[0] == "Progressing"
    )
    assert health(script, resource("ModelVersion", 2, 2, condition("Ready", "True"), condition("Approved", "True")))[
        0
    ] == ("Healthy")
    # Gates that failed are Stalled by the operator: degraded, not suspended.
    failed = resource(
        "ModelVersion", 2, 2, condition("Stalled", "True", "GatesFailed", "accuracy 0.7 < 0.9"), approved_false
    )
    assert health(script, failed)[0] == "Degraded"


def test_model_deployment_paused_is_suspended_and_rollback_degraded(scripts: dict[str, Path]) -> None:
    script = scripts["ModelDeployment"]
    paused = resource("ModelDeployment", 4, 4, condition("Ready", "True"), phase="Paused", canaryWeight=20)
    assert health(script, paused) == ("Suspended", "Rollout paused at canary weight 20")
    rolled_back = resource(
        "ModelDeployment",
        4,
        4,
        condition("Ready", "True", "StableServing"),
        condition("Degraded", "True", "AnalysisFailed", "error rate 0.2 > 0.05"),
        phase="RolledBack",
    )
    assert health(script, rolled_back) == ("Degraded", "Degraded=True (AnalysisFailed): error rate 0.2 > 0.05")
    assert health(script, resource("ModelDeployment", 4, 4, phase="RolledBack")) == ("Degraded", "Rollout RolledBack")
    progressing = resource(
        "ModelDeployment", 4, 4, condition("Ready", "False", "CanaryProgressing"), phase="Progressing"
    )
    assert health(script, progressing)[0] == "Progressing"
    healthy = resource(
        "ModelDeployment", 4, 4, condition("Ready", "True"), condition("Degraded", "False"), phase="Healthy"
    )
    assert health(script, healthy)[0] == "Healthy"


def test_training_run_failure_is_degraded(scripts: dict[str, Path]) -> None:
    script = scripts["TrainingRun"]
    failed = resource(
        "TrainingRun", 1, 1, condition("Ready", "False", "BackoffLimitExceeded", "trainer: no column y"), phase="Failed"
    )
    assert health(script, failed) == ("Degraded", "Ready=False (BackoffLimitExceeded): trainer: no column y")
    running = resource("TrainingRun", 1, 1, condition("Ready", "False", "Running", "2/4 trials"), phase="Running")
    assert health(script, running) == ("Progressing", "Ready=False (Running): 2/4 trials")
    # The other kinds have no phase rule: a DriftPolicy with phase Failed is judged by its conditions.
    assert (
        health(scripts["DriftPolicy"], resource("DriftPolicy", 1, 1, condition("Ready", "True"), phase="Failed"))[0]
        == "Healthy"
    )
