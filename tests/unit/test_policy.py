"""The governance policy file: defaults, parsing, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.logic import policy


def test_defaults_match_the_documented_policy() -> None:
    loaded = policy.load(None)
    assert loaded.stage("Staging").approvals == 0
    assert loaded.stage("Staging").four_eyes is False
    assert loaded.stage("Production").approvals == 1
    assert loaded.stage("Production").four_eyes is True
    assert loaded.stage("Archived").approvals == 0
    assert loaded.production_label() == ("modelops.io/environment", "production")
    assert loaded.trusted_appliers == ()
    assert loaded.operator_users == ()
    assert loaded.allow_pickle == "never"


def test_a_policy_file_is_read_with_the_documented_names(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        """
stages:
  Staging:
    gates: [{metric: accuracy, op: ">=", threshold: 0.8}]
  Production:
    approvals: 2
    fourEyes: false
trustedAppliers: [system:serviceaccount:argocd:argocd-application-controller]
productionNamespaceLabel: tier
operatorUsers: [system:serviceaccount:modelops-system:modelops-operator]
"""
    )
    loaded = policy.load(path)
    assert loaded.stage("Staging").gates[0].metric == "accuracy"
    assert loaded.stage("Staging").approvals == 0
    assert loaded.stage("Production").approvals == 2
    assert loaded.stage("Production").four_eyes is False
    assert loaded.trusted_appliers == ("system:serviceaccount:argocd:argocd-application-controller",)
    # A bare key matches any value.
    assert loaded.is_production_namespace({"tier": "anything"})
    assert not loaded.is_production_namespace({"other": "x"})


@pytest.mark.parametrize(
    ("labels", "production"),
    [
        ({"modelops.io/environment": "production"}, True),
        ({"modelops.io/environment": "staging"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_production_namespaces_by_label(labels: dict[str, str] | None, production: bool) -> None:
    assert policy.DEFAULT.is_production_namespace(labels) is production


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("stages: {Production: {approvals: -1}}", "stages.Production.approvals"),
        ("stages: {Production: {gates: [{metric: f1, op: '=', threshold: 1}]}}", "stages.Production.gates.0.op"),
        ("trustedApplier: [x]", "trustedApplier"),
    ],
)
def test_a_bad_policy_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(policy.PolicyError, match=field.replace(".", r"\.")):
        policy.load(path)


def test_missing_or_non_yaml_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(policy.PolicyError, match="cannot read"):
        policy.load(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("stages: [")
    with pytest.raises(policy.PolicyError, match="not YAML"):
        policy.load(tmp_path / "bad.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert policy.load(tmp_path / "empty.yaml") == policy.DEFAULT


def test_the_operator_refuses_to_start_with_a_bad_policy(tmp_path: Path) -> None:
    from modelops.controller import run

    path = tmp_path / "policy.yaml"
    path.write_text("stages: {Production: {approvals: -1}}")
    assert run.main(["--policy", str(path), "--standalone", "--metrics-port", "0"]) == 2


@pytest.mark.parametrize(
    ("rule", "in_production", "elsewhere"),
    [("never", False, False), ("nonProduction", False, True), ("always", True, True)],
)
def test_allow_pickle_by_namespace(rule: str, in_production: bool, elsewhere: bool) -> None:
    loaded = policy.parse({"allowPickle": rule})
    assert loaded.pickle_allowed(production=True) is in_production
    assert loaded.pickle_allowed(production=False) is elsewhere
    for production, allowed in ((True, in_production), (False, elsewhere)):
        refusal = loaded.artifact_refusal("joblib", "ml", production)
        assert (refusal is None) is allowed
        assert loaded.artifact_refusal("skops", "ml", production) is None  # skops is never refused
        if refusal is not None:
            assert refusal.startswith("spec.artifact.format: joblib artifacts are pickles that run code when loaded")
            assert f"(allowPickle: {rule})" in refusal
            assert ("production namespace ml" in refusal) is production


def test_an_unknown_allow_pickle_value_names_the_field() -> None:
    with pytest.raises(policy.PolicyError, match="policy: allowPickle: "):
        policy.parse({"allowPickle": "sometimes"})
