"""Invalid specs become one message that names the field; valid ones parse."""

from __future__ import annotations

from modelops.api.driftpolicy import DriftPolicySpec
from modelops.api.modeldeployment import ModelDeploymentSpec
from modelops.api.trainingrun import TrainingRunSpec
from modelops.logic.validation import parse

RUN = {
    "model": "iris",
    "dataset": {"uri": "sklearn://iris", "target": "target"},
    "estimator": {"className": "sklearn.ensemble.RandomForestClassifier"},
}


def test_valid_spec_parses_with_defaults() -> None:
    parsed = parse(TrainingRunSpec, RUN)
    assert parsed.invalid is None
    assert parsed.model is not None
    assert parsed.model.dataset.test_size == 0.2
    assert parsed.model.backoff_limit == 1


def test_pattern_violation_names_the_nested_field() -> None:
    parsed = parse(TrainingRunSpec, {**RUN, "dataset": {"uri": "ftp://x", "target": "t"}})
    assert parsed.model is None
    assert parsed.invalid is not None
    assert parsed.invalid.field == "spec.dataset.uri"
    assert parsed.invalid.message.startswith("spec.dataset.uri: String should match pattern")


def test_unknown_and_missing_fields_are_named() -> None:
    parsed = parse(TrainingRunSpec, {"model": "iris", "dataset": {"uri": "sklearn://iris"}, "estimater": {}})
    assert parsed.invalid is not None
    assert "spec.dataset.target: required field is missing" in parsed.invalid.problems
    assert "spec.estimater: unknown field" in parsed.invalid.problems


def test_list_positions_are_named() -> None:
    spec = {"model": "iris", "modelVersion": "iris-v1", "rollout": {"steps": [{"setWeight": 10}, {"setWeight": 101}]}}
    parsed = parse(ModelDeploymentSpec, spec)
    assert parsed.invalid is not None
    assert parsed.invalid.field == "spec.rollout.steps[1].setWeight"


def test_cross_field_rules_match_the_crd_cel_rules() -> None:
    both = parse(TrainingRunSpec, {**RUN, "image": "example.com/train:1"})
    assert both.invalid is not None
    assert both.invalid.message == "spec: exactly one of spec.estimator and spec.image must be set"
    neither = parse(ModelDeploymentSpec, {"model": "iris"})
    assert neither.invalid is not None
    assert "exactly one of spec.modelVersion and spec.track must be set" in neither.invalid.message
    two_actions = parse(ModelDeploymentSpec, {"model": "iris", "track": "Production",
                                              "rollout": {"steps": [{"setWeight": 10, "pause": {}}]}})
    assert two_actions.invalid is not None
    assert two_actions.invalid.field == "spec.rollout.steps[0]"
    random_without_trials = parse(TrainingRunSpec, {**RUN, "sweep": {"strategy": "random",
                                                                     "parameters": {"max_depth": [1]}, "metric": "f1"}})
    assert random_without_trials.invalid is not None
    assert random_without_trials.invalid.field == "spec.sweep"


def test_parse_never_raises_on_garbage() -> None:
    for garbage in (None, {}, {"deployment": 5}, {"deployment": "x", "method": "kl"}):
        parsed = parse(DriftPolicySpec, garbage)
        assert (parsed.model is None) != (parsed.invalid is None)
