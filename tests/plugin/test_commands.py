"""kubectl modelops against the emulator: every command, its JSON, its errors and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import helmchart
from kubeemu import Emulator
from kubeemu.cluster import Identity
from kubeemu.errors import StatusError
from kubeemu.resources import ResourceInfo
from modelops.plugin import cli
from plugin.pluginkit import API, NS, SHA, Run, Seeded


def rows(section: str, out: str) -> list[list[str]]:
    """The rows (split on runs of spaces) of one section of `status`'s table output."""
    lines = out.split(f"\n{section}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [line.split() for line in lines[1:]]


def annotations(seeded: Seeded, kind: str, name: str) -> dict[str, str]:
    result: dict[str, str] = seeded.kube.get(API, kind, NS, name)["metadata"].get("annotations") or {}
    return result


# --- status ----------------------------------------------------------------------------------


def test_status_shows_the_whole_pipeline_of_one_model(seeded: Seeded, run: Run) -> None:
    result = run("status", "iris")
    assert result.code == 0, result.err
    assert result.out.startswith("Model iris in namespace ml\n")
    assert rows("TRAININGRUNS", result.out) == [
        ["iris-retrain-1", "Running", "0/1", "-", "-"],
        ["iris-rf", "Succeeded", "3/3", "iris-v2", "accuracy=0.9667", "f1=0.9661"],
    ]
    assert [r[:6] for r in rows("MODELVERSIONS", result.out)] == [
        ["iris-v1", "1", "Archived", "Archived", "joblib", "True"],
        ["iris-v2", "2", "Production", "Production", "skops", "True"],
        ["iris-v3", "3", "Production", "Staging", "skops", "False"],
    ]
    assert rows("MODELDEPLOYMENTS", result.out) == [
        ["iris", "track:Production", "iris-v3", "iris-v2", "Progressing", "iris-v3", "20%", "1"]
    ]
    assert rows("DRIFTPOLICIES", result.out) == [
        ["iris-drift", "iris", "psi", "yes", "petal_length", "2026-11-22T07:00:00Z", "iris-retrain-1"]
    ]
    # Live quality beside the training metrics, with the labels (rows, for the estimate) behind each figure.
    assert rows("LIVE QUALITY", result.out) == [
        ["iris", "iris-v2", "stable", "1h", "accuracy=0.9512", "macroF1=0.9433", "(1205", "labels)",
         "accuracy=0.9587", "macroF1=0.95", "(5120", "rows)", "accuracy=0.9667", "f1=0.9661"],
        ["iris", "iris-v3", "canary", "1h", "(0", "labels)", "accuracy=0.9401", "macroF1=0.9322", "(310", "rows)",
         "accuracy=0.97", "f1=0.969"],
    ]  # fmt: skip
    assert "wine" not in result.out
    assert "\033[" not in result.out  # not a terminal: no colour


def test_status_as_json_and_yaml_carries_the_fields(seeded: Seeded, run: Run) -> None:
    data = run("status", "iris", "-o", "json").json()
    assert data["model"] == "iris"
    assert data["namespace"] == NS
    assert [v["name"] for v in data["modelVersions"]] == ["iris-v1", "iris-v2", "iris-v3"]
    v3 = data["modelVersions"][2]
    assert (v3["askedStage"], v3["grantedStage"], v3["ready"]) == ("Production", "Staging", "False")
    assert v3["metrics"] == {"accuracy": 0.97, "f1": 0.969}
    (deployment,) = data["modelDeployments"]
    assert deployment | {"message": None} == {
        "name": "iris",
        "source": "track:Production",
        "desiredVersion": "iris-v3",
        "servingVersion": "iris-v2",
        "phase": "Progressing",
        "canaryVersion": "iris-v3",
        "canaryWeight": 20,
        "step": 1,
        "ready": "True",
        "message": None,
    }
    (policy,) = data["driftPolicies"]
    assert policy["driftedFeatures"] == ["petal_length"]
    assert policy["retrains"] == ["iris-retrain-1"]
    assert data["trainingRuns"][1]["modelVersion"] == "iris-v2"
    stable, canary = data["quality"]
    assert stable == {
        "deployment": "iris", "version": "iris-v2", "role": "stable", "window": "1h", "labels": 1204.6,
        "live": {"accuracy": 0.9512, "macroF1": 0.9433}, "predictions": 5120.0,
        "estimated": {"accuracy": 0.9587, "macroF1": 0.95}, "training": {"accuracy": 0.9667, "f1": 0.9661},
        "measuredAt": "2026-11-22T07:01:00Z", "estimateTrusted": None,  # no training ECE recorded
    }  # fmt: skip
    assert (canary["labels"], canary["live"]) == (0.0, {})
    # flags after the command or before it mean the same
    assert yaml.safe_load(run("-o", "yaml", "status", "iris").out) == data


def test_status_of_an_unknown_model_fails_with_one_line(seeded: Seeded, run: Run) -> None:
    result = run("status", "nope")
    assert result.code == 1
    assert result.err == "error: model nope has no TrainingRuns, ModelVersions or ModelDeployments in namespace ml\n"
    assert result.out == ""


def test_the_namespace_defaults_to_the_kubeconfig_context(
    seeded: Seeded, run: Run, emulator: Emulator, tmp_path: Path
) -> None:
    result = run("status", "iris", namespace=None)  # the fixture's context says namespace: default
    assert result.code == 1
    assert "in namespace default" in result.err

    config = yaml.safe_load(seeded.kubeconfig.read_text())
    config["contexts"].append({"name": "ml", "context": {"cluster": "kubeemu", "user": "kubeemu", "namespace": NS}})
    config["clusters"].append({"name": "gone", "cluster": {"server": "http://127.0.0.1:1"}})
    config["contexts"].append({"name": "broken", "context": {"cluster": "gone", "user": "kubeemu"}})
    config["current-context"] = "broken"
    path = tmp_path / "two-contexts"
    path.write_text(yaml.safe_dump(config))

    assert cli.main(["--kubeconfig", str(path), "--context", "ml", "history", "iris-v2", "-o", "json"]) == 0
    assert cli.main(["--kubeconfig", str(path), "history", "iris-v2"]) == 1  # the current context is unreachable
    assert cli.main(["--kubeconfig", str(path), "--context", "nope", "history", "iris-v2"]) == 1


def test_an_unreachable_server_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config"
    config.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert cli.main(["status", "iris"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the API server at http://127.0.0.1:1")
    assert len(err.strip().splitlines()) == 1


# --- approve ---------------------------------------------------------------------------------


def test_approve_sets_exactly_the_annotation_and_sends_no_user_name(
    seeded: Seeded, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.add_user("tok-carol", "carol", groups=["ml-reviewers"])
    helmchart.bind_user_role(seeded.kube, "modelops-approver", [], NS, groups=["ml-reviewers"])
    config = emulator.write_kubeconfig(tmp_path / "carol", token="tok-carol")
    seen: list[tuple[str, Any, Any, str]] = []

    def admission(op: str, info: ResourceInfo, new: Any, old: Any, user: Identity, sub: str | None, dry: bool) -> Any:
        seen.append((op, new, old, user.username))
        return new

    before = seeded.kube.get(API, "ModelVersion", NS, "iris-v3")
    emulator.cluster.admission = admission
    audit_start = len(emulator.audit)

    assert cli.main(["--kubeconfig", str(config), "-n", NS, "approve", "iris-v3"]) == 0

    after = seeded.kube.get(API, "ModelVersion", NS, "iris-v3")
    assert after["metadata"].get("annotations") == {"modelops.io/approve": "Production"}
    assert after["spec"] == before["spec"]
    assert after["status"] == before["status"]
    assert "carol" not in json.dumps(after)  # the name comes from authentication, never from the plugin
    ((op, new, _old, user),) = seen
    assert (op, user) == ("UPDATE", "carol")
    assert "carol" not in json.dumps(new)
    writes = [r for r in emulator.audit[audit_start:] if r.verb not in ("get", "list", "watch")]
    assert [(r.verb, r.resource, r.name, r.user, r.code) for r in writes] == [
        ("patch", "modelversions", "iris-v3", "carol", 200)
    ]
    assert writes[0].user_agent.startswith("kubectl-modelops/")


def test_approve_shows_the_record_the_webhook_made(seeded: Seeded, emulator: Emulator, run: Run) -> None:
    def mutating_webhook(
        op: str, info: ResourceInfo, new: Any, old: Any, user: Identity, sub: str | None, dry: bool
    ) -> Any:
        meta = new["metadata"]
        stage = (meta.get("annotations") or {}).get("modelops.io/approve")
        if info.plural == "modelversions" and sub is None and stage:
            record = {"stage": stage, "user": user.username, "at": "2026-11-25T10:00:00Z"}
            meta["annotations"]["modelops.io/approvals"] = json.dumps([record])
        return new

    emulator.cluster.admission = mutating_webhook
    result = run("approve", "iris-v3", "--stage", "Production")
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "modelversion iris-v3: approval of Production requested",
        "  recorded: Production approved by system:admin at 2026-11-25T10:00:00Z",
    ]
    data = run("approve", "mv/iris-v1", "--stage", "Staging", "-o", "json").json()
    assert data["annotations"] == {"modelops.io/approve": "Staging"}
    assert data["recorded"] == [{"stage": "Staging", "user": "system:admin", "at": "2026-11-25T10:00:00Z"}]


def test_approve_with_a_reviewer_and_without_one_afterwards(seeded: Seeded, run: Run) -> None:
    result = run("approve", "iris-v3", "--reviewer", "dana", "-o", "json")
    assert result.code == 0, result.err
    assert result.json()["annotations"] == {"modelops.io/approve": "Production", "modelops.io/reviewer": "dana"}
    assert annotations(seeded, "ModelVersion", "iris-v3") == {
        "modelops.io/approve": "Production",
        "modelops.io/reviewer": "dana",
    }
    # a later approval by a person does not carry the applier's reviewer along
    assert run("approve", "iris-v3", "--stage", "Staging").code == 0
    assert annotations(seeded, "ModelVersion", "iris-v3") == {"modelops.io/approve": "Staging"}


def test_a_denied_approval_shows_the_servers_message_and_a_hint(seeded: Seeded, emulator: Emulator, run: Run) -> None:
    message = (
        'admission webhook "validate-modelversion.modelops.io" denied the request: user "system:admin" may not '
        'approve modelversions.modelops.io "iris-v3": it needs the verb approve'
    )

    def deny(op: str, info: ResourceInfo, new: Any, old: Any, user: Identity, sub: str | None, dry: bool) -> Any:
        raise StatusError(403, "Forbidden", message)

    emulator.cluster.admission = deny
    result = run("approve", "iris-v3")
    assert result.code == 1
    lines = result.err.splitlines()
    assert lines[0] == f"error: the API server denied the approval of iris-v3 for Production (403 Forbidden): {message}"
    assert lines[1].startswith("hint: approving needs the 'approve' verb on modelversions.modelops.io")
    assert "modelops-approver ClusterRole" in lines[1]
    assert "modelops.io/approve" not in annotations(seeded, "ModelVersion", "iris-v3")

    result = run("approve", "iris-v3", "--reviewer", "dana")
    assert result.code == 1
    assert "hint: only the policy's trustedAppliers may assert --reviewer" in result.err


def test_approving_a_missing_version_fails_with_one_line(seeded: Seeded, run: Run) -> None:
    result = run("approve", "iris-v9")
    assert (result.code, result.err) == (1, "error: modelversion iris-v9 not found in namespace ml\n")


# --- promote, abort, retry -------------------------------------------------------------------


def test_promote_a_version_asks_for_the_stage(seeded: Seeded, run: Run) -> None:
    result = run("promote", "iris-v1", "--stage", "Staging")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == (
        "modelversion iris-v1: asked for stage Staging (was Archived); granted stage: Archived"
    )
    assert "the operator grants it once gates pass and approvals suffice" in result.out
    assert seeded.kube.get(API, "ModelVersion", NS, "iris-v1")["spec"]["stage"] == "Staging"

    data = run("promote", "mv/iris-v3", "--stage", "Archived", "-o", "json").json()
    assert data == {
        "kind": "ModelVersion",
        "name": "iris-v3",
        "namespace": NS,
        "previousAskedStage": "Production",
        "askedStage": "Archived",
        "grantedStage": "Staging",
        "message": "Production needs 1 approval (0 so far)",
    }


def test_a_denied_stage_change_shows_the_servers_message(seeded: Seeded, emulator: Emulator, run: Run) -> None:
    message = (
        'ModelVersion.modelops.io "iris-v3" is invalid: spec.stage: Forbidden: namespace ml serves Production only'
    )

    def deny(op: str, info: ResourceInfo, new: Any, old: Any, user: Identity, sub: str | None, dry: bool) -> Any:
        raise StatusError(422, "Invalid", message)

    emulator.cluster.admission = deny
    result = run("promote", "iris-v3", "--stage", "Staging")
    assert result.code == 1
    assert result.err.splitlines() == [
        f"error: the API server denied the move of iris-v3 to Staging (422 Invalid): {message}",
        "hint: spec.stage is one of None, Staging, Production, Archived",
    ]


def test_deployment_actions_write_distinct_nonces(seeded: Seeded, run: Run) -> None:
    values = []
    for args, verb in (
        (("promote", "iris"), "promote"),
        (("promote", "mdep/iris"), "promote"),
        (("abort", "iris"), "abort"),
        (("retry", "modeldeployment/iris"), "retry"),
    ):
        result = run(*args)
        assert result.code == 0, result.err
        value = annotations(seeded, "ModelDeployment", "iris")["modelops.io/action"]
        assert value.startswith(f"{verb}/")
        assert result.out == f"modeldeployment iris: {verb} requested (modelops.io/action={value})\n"
        values.append(value)
    assert len(set(values)) == 4
    assert annotations(seeded, "ModelDeployment", "iris") == {"modelops.io/action": values[-1]}
    data = run("abort", "iris", "-o", "json").json()
    assert data["action"] == "abort"
    assert data["phase"] == "Progressing"
    assert data["annotations"]["modelops.io/action"] > values[-1].replace("retry/", "abort/")


def test_actions_on_a_missing_deployment_fail(seeded: Seeded, run: Run) -> None:
    for verb in ("promote", "abort", "retry"):
        result = run(verb, "nope")
        assert (result.code, result.err) == (1, "error: modeldeployment nope not found in namespace ml\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("promote", "mv/iris-v1"), "promoting a ModelVersion needs --stage"),
        (("promote", "mdep/iris", "--stage", "Staging"), "--stage applies to a ModelVersion"),
        (("promote", "pod/iris"), "cannot tell what 'pod/iris' names"),
        (("promote", "iris-v1", "--stage", "Prod"), "invalid choice: 'Prod'"),
        (("approve", "iris-v1", "--stage", "Archived"), "invalid choice: 'Archived'"),
        (("status",), "the following arguments are required: MODEL"),
        (("launch", "iris"), "invalid choice: 'launch'"),
        (("status", "iris", "-o", "wide"), "invalid choice: 'wide'"),
        ((), "the following arguments are required: COMMAND"),
    ],
)
def test_bad_usage_exits_2(run: Run, args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.code == 2
    first, *rest = result.err.splitlines()
    assert message in first  # one line saying what is wrong, as kubectl does; no usage block
    assert first.startswith("kubectl modelops")
    assert ": error: " in first
    assert all(line.startswith("hint: run 'kubectl modelops") for line in rest), result.err
    assert len(rest) <= 1
    assert result.out == ""


def test_help_exits_0(run: Run) -> None:
    result = run("--help")
    assert result.code == 0
    for command in ("status", "approve", "promote", "abort", "retry", "history", "card"):
        assert command in result.out


# --- history ---------------------------------------------------------------------------------


def test_history_of_a_version(seeded: Seeded, run: Run) -> None:
    result = run("history", "iris-v3")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["TIME", "VERSION", "EVENT", "FROM", "TO", "BY", "REASON"]
    assert lines[1].split()[:6] == [
        "2026-11-20T09:00:00Z",
        "iris-v3",
        "transition",
        "None",
        "Staging",
        "system:serviceaccount:modelops-system:modelops",
    ]
    assert lines[2].split()[:6] == ["2026-11-21T08:30:00Z", "iris-v3", "rejection", "-", "-", "ml/iris"]
    assert lines[2].endswith("error-rate=0.12: canary error rate 12% > 5%")
    assert len(lines) == 3


def test_history_of_a_model_merges_its_versions_by_time(seeded: Seeded, run: Run) -> None:
    data = run("history", "iris", "-o", "json").json()
    assert data["model"] == "iris"
    events = data["events"]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    assert [(e["version"], e["event"], e.get("to")) for e in events] == [
        ("iris-v1", "transition", "Staging"),
        ("iris-v1", "approval", "Production"),
        ("iris-v1", "transition", "Production"),
        ("iris-v2", "transition", "Staging"),
        ("iris-v2", "approval", "Production"),
        ("iris-v1", "transition", "Archived"),
        ("iris-v2", "transition", "Production"),
        ("iris-v3", "transition", "Staging"),
        ("iris-v3", "rejection", None),
    ]
    approval = events[4]
    assert approval["by"] == "system:serviceaccount:argocd:argocd-application-controller"
    assert approval["reviewer"] == "bob"
    assert all(e["version"] != "wine-v1" for e in events)
    assert run("history", "model/wine", "-o", "json").json()["events"] == []
    assert run("history", "wine").out == "no stage transitions, approvals or rejections yet\n"


def test_history_of_an_unknown_name_fails(seeded: Seeded, run: Run) -> None:
    assert run("history", "nope").err == "error: no modelversion or model named nope in namespace ml\n"
    result = run("history", "mv/iris-v9")
    assert (result.code, result.err) == (1, "error: modelversion iris-v9 not found in namespace ml\n")


# --- card ------------------------------------------------------------------------------------


def section(markdown: str, title: str) -> str:
    return markdown.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_card_of_a_model_describes_its_production_version(seeded: Seeded, run: Run) -> None:
    result = run("card", "iris")
    assert result.code == 0, result.err
    card = result.out
    assert card.startswith("# Model card: iris-v2\n")
    assert "Stage: **Production** (asked: Production)." in card
    assert section(card, "Description").strip() == "Classifies iris flowers into three species from four measurements."
    assert section(card, "Intended use").strip() == "Teaching and demos of the modelops pipeline."
    assert section(card, "Limitations").strip() == "150 samples from one 1936 study; not for field botany."
    assert section(card, "Owners").strip() == "- ml-platform@example.com"
    data = section(card, "Data")
    assert "- Dataset: `sklearn://iris`" in data
    assert "- SHA-256: `2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae`" in data
    assert "- Rows: 150" in data
    artifact = f"- Artifact: `pvc://artifacts/iris/iris-v2/model.skops` (skops, sha256 `{SHA}`)"
    assert artifact in section(card, "Training")
    assert "| petal_length | numeric | 4 |" in data
    assert "| roc_auc | 0.998 |" in section(card, "Metrics")
    assert "| Production | f1 | >= 0.95 | 0.9661 | pass | policy |" in section(card, "Gates")
    assert "| bob |" in section(card, "Approvals")
    assert "| 2026-11-10T12:00:00Z | Staging | Production |" in section(card, "Stage history")
    assert "| iris | stable | Progressing | 80 |" in section(card, "Rollouts")
    drift = section(card, "Drift")
    assert "DriftPolicy **iris-drift** on iris (psi): drifted, last evaluation 2026-11-22T07:00:00Z." in drift
    assert "| petal_length | 0.31 | 0.2 | yes |" in drift
    assert "Retrains: iris-retrain-1" in drift
    assert "wine" not in card


def test_the_card_of_a_rejected_canary_version(seeded: Seeded, run: Run) -> None:
    card = run("card", "mv/iris-v3").out
    assert card.startswith("# Model card: iris-v3\n")
    assert "Stage: **Staging** (asked: Production)." in card
    rollouts = section(card, "Rollouts")
    assert "| iris | canary | Progressing | 20 |" in rollouts
    assert "**Rejected** by a canary on ml/iris at 2026-11-21T08:30:00Z: error-rate = 0.12" in rollouts
    assert section(card, "Approvals").strip() == "_none_"


def test_the_card_as_json(seeded: Seeded, run: Run) -> None:
    data = run("card", "iris-v2", "-o", "json").json()
    assert data["name"] == "iris-v2"
    assert data["modelCard"]["intendedUse"] == "Teaching and demos of the modelops pipeline."
    assert data["data"]["dataset"] == {
        "uri": "sklearn://iris",
        "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        "rows": 150,
    }
    assert data["data"]["referenceFeatures"] == [
        {"name": "petal_length", "kind": "numeric", "bins": 4},
        {"name": "sepal_width", "kind": "numeric", "bins": 4},
    ]
    assert data["gates"][0]["passed"] is True
    assert [r["name"] for r in data["rollouts"]] == ["iris"]
    assert data["drift"][0]["driftedFeatures"] == ["petal_length"]
    assert run("card", "nope").code == 1


def test_rejected_credentials_are_an_error_with_a_hint(
    seeded: Seeded, emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = emulator.write_kubeconfig(tmp_path / "stale", token="expired-token")
    assert cli.main(["--kubeconfig", str(config), "-n", NS, "approve", "iris-v3"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("error: ")
    assert "Unauthorized" in lines[0] or "401" in lines[0]
    assert lines[1] == "hint: the API server did not accept your credentials: check --kubeconfig and --context"
    assert "modelops.io/approve" not in annotations(seeded, "ModelVersion", "iris-v3")


def test_an_estimate_from_poorly_calibrated_probabilities_is_marked_untrusted() -> None:
    from modelops.plugin import views

    deployment = {"metadata": {"name": "iris"}, "status": {"quality": [
        {"version": "iris-v2", "role": "stable", "window": "1h", "predictions": 900.0, "estimatedAccuracy": 0.93},
        {"version": "iris-v3", "role": "canary", "window": "1h", "predictions": 100.0, "estimatedAccuracy": 0.97},
        {"version": "diab-v1", "role": "canary", "window": "1h", "predictions": 100.0},
    ]}}  # fmt: skip
    versions = [
        {"metadata": {"name": "iris-v2"}, "spec": {"metrics": {"accuracy": 0.95, "ece": 0.021}}},
        {"metadata": {"name": "iris-v3"}, "spec": {"metrics": {"accuracy": 0.96, "ece": 0.083}}},
        {"metadata": {"name": "diab-v1"}, "spec": {"metrics": {"mae": 40.1}}},
    ]
    table = views.quality_rows([deployment], versions)
    assert [r["estimateTrusted"] for r in table] == [True, False, None]
    text = cli.status_text({"model": "iris", "namespace": NS, "trainingRuns": [], "modelVersions": [],
                            "modelDeployments": [], "driftPolicies": [], "quality": table}, colour=False)  # fmt: skip
    [v2, v3, diab] = rows("LIVE QUALITY", text)
    assert "untrusted:" not in " ".join(v2)
    assert "untrusted:" not in " ".join(diab)
    assert "(untrusted: training ece=0.083 > 0.05)" in " ".join(v3)


def test_the_operators_estimate_trusted_condition_wins_over_the_plugins_own_reading() -> None:
    from modelops.plugin import views

    deployment = {"metadata": {"name": "iris"}, "status": {"quality": [
        {"version": "iris-v2", "role": "stable", "window": "1h", "predictions": 900.0, "estimatedAccuracy": 0.93},
        {"version": "iris-v3", "role": "canary", "window": "1h", "predictions": 100.0, "estimatedAccuracy": 0.97},
    ]}}  # fmt: skip

    def condition(status: str, reason: str) -> dict[str, Any]:
        return {"conditions": [{"type": "EstimateTrusted", "status": status, "reason": reason}]}

    versions = [  # v2's ECE alone would be trusted, v3 has none: the conditions decide
        {"metadata": {"name": "iris-v2"}, "spec": {"metrics": {"ece": 0.021}}, "status": condition("False", "X")},
        {"metadata": {"name": "iris-v3"}, "spec": {"metrics": {}}, "status": condition("False", "NoProbabilities")},
    ]
    table = views.quality_rows([deployment], versions)
    assert [r["estimateTrusted"] for r in table] == [False, False]
    text = cli.status_text({"model": "iris", "namespace": NS, "trainingRuns": [], "modelVersions": [],
                            "modelDeployments": [], "driftPolicies": [], "quality": table}, colour=False)  # fmt: skip
    [v2, v3] = rows("LIVE QUALITY", text)
    for row in (v2, v3):
        assert "(untrusted: the version's EstimateTrusted condition is False)" in " ".join(row)


def test_status_shows_each_fairness_thresholds_last_reading() -> None:
    from modelops.plugin import views

    policy = {"metadata": {"name": "iris-fair"}, "spec": {"deployment": "iris", "method": "psi"}, "status": {
        "fairnessDegraded": True,
        "fairness": [
            {"feature": "sex", "metric": "equalizedOddsDifference", "value": 0.31234, "max": 0.1, "evidence": 42.0,
             "degraded": True, "message": "above"},
            {"feature": "age", "metric": "demographicParityDifference", "max": 0.2, "degraded": False},
        ],
    }}  # fmt: skip
    row = views.drift_policy_row(policy)
    assert [f["feature"] for f in row["fairness"]] == ["sex", "age"]
    text = cli.status_text({"model": "iris", "namespace": NS, "trainingRuns": [], "modelVersions": [],
                            "modelDeployments": [], "driftPolicies": [row], "quality": []}, colour=False)  # fmt: skip
    sex, age = rows("LIVE FAIRNESS", text)
    assert sex == ["iris-fair", "sex", "equalizedOddsDifference", "0.3123", "0.1", "42", "yes"]
    assert age[:3] == ["iris-fair", "age", "demographicParityDifference"]
    assert "0.2" in age
    assert age[-1] == "no"
