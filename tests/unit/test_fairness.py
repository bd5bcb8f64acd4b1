"""Fairness at training time, the pure parts: gates that name fairness metrics, insufficient evidence
and the policy's knobs, the record on the version (immutable), the TrainingRun's evaluation spec
refused before a pod starts, and the binning of numeric sensitive columns."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from pydantic import ValidationError

from k8sschemas import openapi_to_jsonschema
from modelops.api.modelversion import ModelVersionSpec
from modelops.api.trainingrun import EvaluationSpec, TrainingRunSpec
from modelops.logic import fairness, registration, training, validation
from modelops.logic import governance as gov
from modelops.logic.governance import DeniedError, Identity
from modelops.logic.policy import PolicyError, parse
from modelops.serve import contract as serve_contract
from modelops.serve import metrics as serve_metrics
from modelops.serve.contract import SensitiveGroups, default_bin_names
from modelops.train import fairness as trainer_fairness

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-01-02T00:00:00Z"


def group(name: str, count: int, **values: Any) -> dict[str, Any]:
    return {"group": name, "count": count, "insufficient": count < 30, **values}


RECORD: dict[str, Any] = {
    "library": "fairlearn 0.15.0",
    "rows": 400,
    "minGroupSize": 30,
    "positiveClass": "1",
    "overall": {"accuracy": 0.8, "selectionRate": 0.4},
    "features": [
        {"name": "sex", "kind": "categorical", "usedAsInput": False,
         "metrics": {"demographicParityDifference": 0.25, "demographicParityRatio": 0.55,
                     "equalizedOddsDifference": 0.12},
         "groups": [group("F", 180, positives=80, negatives=100, selectionRate=0.3, recall=0.7),
                    group("M", 220, positives=90, negatives=130, selectionRate=0.55, recall=0.8)]},
        {"name": "race", "kind": "categorical", "usedAsInput": True,
         "metrics": {"demographicParityDifference": 0.08, "demographicParityRatio": 0.9,
                     "equalizedOddsDifference": 0.3},
         "groups": [group("P", 250, positives=100, negatives=150, selectionRate=0.42),
                    group("Q", 138, positives=50, negatives=88, selectionRate=0.38),
                    group("R", 12, positives=0, negatives=12, selectionRate=0.4),
                    group("Z", 0)]},
        # A column whose name has a dot, and a group whose name has one too.
        {"name": "score.band", "kind": "binned", "usedAsInput": True, "bins": [0.5],
         "metrics": {"demographicParityDifference": 0.01},
         "groups": [group("<0.5", 200, positives=90, negatives=110, selectionRate=0.4),
                    group(">=0.5", 200, positives=90, negatives=110, selectionRate=0.41)]},
        {"name": "sex&race", "kind": "intersection", "usedAsInput": False, "of": ["sex", "race"],
         "metrics": {"demographicParityDifference": 0.31},
         "groups": [group("F&P", 120, positives=50, negatives=70), group("M&P", 130, positives=50, negatives=80)]},
    ],
}  # fmt: skip


# --- reading a gate's metric ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "value", "insufficient"),
    [
        ("fairness.sex.demographicParityDifference", 0.25, None),
        ("fairness.sex.demographicParityRatio", 0.55, None),
        ("fairness.sex.groups.F.selectionRate", 0.3, None),
        ("fairness.sex.groups.M.recall", 0.8, None),
        ("fairness.score.band.demographicParityDifference", 0.01, None),
        ("fairness.score.band.groups.>=0.5.selectionRate", 0.41, None),
        ("fairness.sex&race.demographicParityDifference", 0.31, None),
        ("fairness.race.demographicParityDifference", 0.08,
         "groups R (12 held-out rows, fewer than 30), Z (0 held-out rows, fewer than 30)"),
        # Equalized odds also needs both labels in every group: R has no positive one.
        ("fairness.race.groups.R.selectionRate", 0.4, "group R (12 held-out rows, fewer than 30)"),
        ("fairness.race.groups.P.selectionRate", 0.42, None),
        ("fairness.race.groups.Z.selectionRate", None, "group Z (0 held-out rows"),
        ("fairness.sexx.demographicParityDifference", None, None),
        ("fairness.sex.demographicParity", None, None),
        ("fairness.sex.groups.X.selectionRate", None, None),
        ("fairness.sex.groups.F.accuracy", None, None),  # not recorded for the group: missing, not zero
        ("fairness.score.band.equalizedOddsDifference", None, None),
    ],
)
def test_a_gate_reads_the_number_and_the_evidence_from_the_record(
    metric: str, value: float | None, insufficient: str | None
) -> None:
    reading = fairness.read(metric, RECORD)
    assert reading.value == value
    if insufficient is None:
        assert reading.insufficient is None
    else:
        assert reading.insufficient is not None
        assert reading.insufficient.startswith(insufficient)


def test_equalized_odds_needs_both_labels_in_every_group() -> None:
    reading = fairness.read("fairness.race.equalizedOddsDifference", RECORD)
    assert reading.value == 0.3
    assert reading.insufficient is not None
    assert "R (12 held-out rows" in reading.insufficient
    assert "Z (0 held-out rows" in reading.insufficient
    big = copy.deepcopy(RECORD)
    big["minGroupSize"] = 10  # R is big enough now, but still has no positive label
    reading = fairness.read("fairness.race.equalizedOddsDifference", big)
    assert reading.insufficient is not None
    assert "R (no positive label in the held-out split)" in reading.insufficient
    assert "R" not in (fairness.read("fairness.race.demographicParityDifference", big).insufficient or "")


def test_the_policy_can_ask_for_more_rows_than_the_version_did() -> None:
    assert fairness.read("fairness.sex.demographicParityDifference", RECORD).insufficient is None
    stricter = fairness.read("fairness.sex.demographicParityDifference", RECORD, min_group_size=200)
    assert stricter.insufficient is not None
    assert stricter.insufficient == "group F (180 held-out rows, fewer than 200)"


def test_no_record_means_no_value() -> None:
    assert fairness.read("fairness.sex.demographicParityDifference", None) == fairness.Reading(None)
    assert fairness.read("fairness.sex.demographicParityDifference", {}) == fairness.Reading(None)


def test_summary_is_each_features_gaps() -> None:
    summary = fairness.summary(RECORD)
    assert list(summary) == ["sex", "race", "score.band", "sex&race"]
    assert summary["sex"] == RECORD["features"][0]["metrics"]
    assert fairness.summary(None) == {}


# --- gates, the policy's knobs and the decision ---------------------------------------------------


def policy(**production: Any) -> Any:
    gates = [{"metric": "fairness.sex.demographicParityDifference", "op": "<=", "threshold": 0.3},
             {"metric": "fairness.race.groups.R.selectionRate", "op": ">=", "threshold": 0.2}]  # fmt: skip
    return parse({"stages": {"Production": {"approvals": 0, "gates": gates, **production}}})


def decide(policy_: Any, record: dict[str, Any] | None = RECORD, **extra: Any) -> gov.Decision:
    return gov.decide(
        desired="Production", granted="Staging", policy=policy_, metrics={"accuracy": 0.9}, records=[],
        creators=[], history=[], rejected=None, sha256="ab" * 32, now=NOW, fairness_record=record, **extra,
    )  # fmt: skip


def test_a_gate_on_a_group_with_too_few_rows_fails_as_insufficient_evidence() -> None:
    decision = decide(policy(), version_gates=[])
    assert decision.stage == "Staging"
    first, second = decision.gates
    assert (first["value"], first["passed"]) == (0.25, True)
    assert "insufficientEvidence" not in first
    assert (second["value"], second["passed"]) == (0.4, False)  # 0.4 >= 0.2, yet too few rows to say so
    assert second["insufficientEvidence"] == "group R (12 held-out rows, fewer than 30)"
    validated = next(c for c in decision.conditions if c[0] == "Validated")
    assert validated[1:3] == (False, "GatesFailed")
    assert "fairness.race.groups.R.selectionRate 0.4: insufficient evidence, group R (12 held-out rows" in validated[3]


def test_the_policy_may_allow_insufficient_evidence_and_the_gate_is_judged_on_its_value() -> None:
    decision = decide(policy(allowInsufficientEvidence=True), version_gates=[])
    assert decision.stage == "Production"
    assert [g["passed"] for g in decision.gates] == [True, True]
    assert decision.gates[1]["insufficientEvidence"].endswith("(allowed by the policy)")
    # Allowed evidence does not rescue a value that fails.
    failing = decide(policy(allowInsufficientEvidence=True), version_gates=[
        {"stage": "Production", "metric": "fairness.race.groups.R.selectionRate", "op": ">=", "threshold": 0.5}])
    assert failing.stage == "Staging"
    assert failing.gates[-1]["source"] == "version"
    assert failing.gates[-1]["passed"] is False


def test_a_version_gate_and_a_policy_minimum_of_rows_apply_too() -> None:
    decision = decide(policy(minGroupSize=200), version_gates=[
        {"stage": "Production", "metric": "fairness.sex&race.demographicParityDifference", "op": "<=",
         "threshold": 0.2}])  # fmt: skip
    sex, _, both = decision.gates
    assert sex["passed"] is False
    assert sex["insufficientEvidence"] == "group F (180 held-out rows, fewer than 200)"
    assert (both["value"], both["passed"], both["source"]) == (0.31, False, "version")
    validated = next(c for c in decision.conditions if c[0] == "Validated")
    assert "fairness.sex&race.demographicParityDifference 0.31 is not <= 0.2" in validated[3]


def test_a_version_without_a_fairness_record_fails_its_fairness_gates_saying_how_to_get_one() -> None:
    decision = decide(policy(), record=None, version_gates=[])
    assert [g["value"] for g in decision.gates] == [None, None]
    validated = next(c for c in decision.conditions if c[0] == "Validated")
    assert "fairness.sex.demographicParityDifference is missing from spec.fairness (needs <= 0.3; train with " \
           "spec.evaluation.sensitiveFeatures" in validated[3]  # fmt: skip


def test_ordinary_gates_are_untouched() -> None:
    plain = parse({"stages": {"Production": {"gates": [{"metric": "accuracy", "threshold": 0.95}]}}})
    gates = gov.evaluate_gates(plain, [], {"accuracy": 0.9}, "Production", RECORD)
    assert gates == [{"stage": "Production", "metric": "accuracy", "op": ">=", "threshold": 0.95, "value": 0.9,
                      "passed": False, "source": "policy"}]  # fmt: skip


def test_the_policy_knobs_parse_and_refuse_nonsense() -> None:
    parsed = parse({"stages": {"Staging": {"minGroupSize": 50, "allowInsufficientEvidence": True}}})
    assert (parsed.stage("Staging").min_group_size, parsed.stage("Staging").allow_insufficient_evidence) == (50, True)
    assert parsed.stage("Production").allow_insufficient_evidence is False
    with pytest.raises(PolicyError, match="minGroupSize"):
        parse({"stages": {"Staging": {"minGroupSize": -1}}})


# --- the record on the version ---------------------------------------------------------------------


def version(**spec: Any) -> dict[str, Any]:
    base = {"model": "m", "version": 1, "artifact": {"uri": "s3://b/k", "sha256": "a" * 64}}
    return {"metadata": {"annotations": {}}, "spec": {**base, **spec}}


IMPORTANCE = {"method": "permutation", "scoring": "accuracy", "baseline": 0.9, "rows": 400, "repeats": 5, "seed": 42,
              "features": [{"feature": "x", "mean": 0.2, "std": 0.01}, {"feature": "color", "mean": 0.0, "std": 0.0}]}


@pytest.mark.parametrize(("field", "value"), [("fairness", RECORD), ("featureImportance", IMPORTANCE)])
def test_the_records_are_immutable_like_the_metrics(field: str, value: dict[str, Any]) -> None:
    old = version(**{field: value})
    changed = copy.deepcopy(value)
    changed["rows"] = 1
    for new in (version(**{field: changed}), version()):
        with pytest.raises(DeniedError) as caught:
            gov.validate_version("UPDATE", old, new, Identity("bob"))
        assert str(caught.value) == f"spec.{field} is immutable once set: register a new ModelVersion instead"
    gov.validate_version("UPDATE", version(), version(**{field: value}), Identity("bob"))  # set once: allowed


@pytest.mark.parametrize("field", ["fairness", "featureImportance"])
def test_the_crd_says_so_too(field: str) -> None:
    crd = yaml.safe_load((REPO / "crds" / "modelops.io_modelversions.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = {r["rule"]: r for r in spec["x-kubernetes-validations"]}
    rule = f"!has(oldSelf.{field}) || (has(self.{field}) && self.{field} == oldSelf.{field})"
    assert rules[rule]["message"] == f"spec.{field} is immutable once set: register a new ModelVersion instead"


RUN = TrainingRunSpec.model_validate({
    "model": "loans", "dataset": {"uri": "pvc://data/loans.csv", "target": "approved"},
    "estimator": {"className": "sklearn.linear_model.LogisticRegression"},
    "evaluation": {"sensitiveFeatures": [{"name": "sex", "useAsInput": False}, {"name": "race"}]},
})  # fmt: skip


def test_registration_carries_both_records_and_they_fit_the_crd() -> None:
    result = {
        "ok": True, "task": "classification", "metrics": {"accuracy": 0.9},
        "artifact": {"uri": "pvc://models/ml/loans/model.joblib", "sha256": "c" * 64, "sizeBytes": 10},
        "fairness": RECORD, "featureImportance": IMPORTANCE,
    }  # fmt: skip
    mv = registration.model_version(RUN, training.RunRef("loans", "ml", "u"), result, version=1,
                                    job={"metadata": {"name": "j"}}, image="i", trial=None)  # fmt: skip
    spec = ModelVersionSpec.model_validate(mv["spec"])
    assert spec.fairness is not None
    assert spec.fairness.features[1].groups[3].count == 0
    assert spec.feature_importance is not None
    assert spec.feature_importance.features[0].feature == "x"
    assert mv["spec"]["fairness"] == RECORD
    crd = yaml.safe_load((REPO / "crds" / "modelops.io_modelversions.yaml").read_text())
    jsonschema.validate(mv, openapi_to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]))


# --- the TrainingRun's evaluation, refused before a pod starts -------------------------------------


def run_spec(evaluation: Any, **dataset: Any) -> TrainingRunSpec:
    return TrainingRunSpec.model_validate({
        "model": "loans", "dataset": {"uri": "pvc://data/loans.csv", "target": "approved", **dataset},
        "estimator": {"className": "sklearn.linear_model.LogisticRegression"}, "evaluation": evaluation,
        "artifactStore": {"uri": "pvc://models"},
    })  # fmt: skip


@pytest.mark.parametrize(
    ("evaluation", "dataset", "message"),
    [
        ({"sensitiveFeatures": [{"name": "approved"}]}, {},
         "spec.evaluation.sensitiveFeatures[0].name: 'approved' is the target column"),
        ({"sensitiveFeatures": [{"name": "race"}, {"name": "sex", "useAsInput": False}]}, {"features": ["x", "sex"]},
         "spec.evaluation.sensitiveFeatures[1].name: 'sex' has useAsInput: false but dataset.features lists it"),
    ],
)  # fmt: skip
def test_an_evaluation_at_odds_with_the_dataset_is_refused_before_a_pod(
    evaluation: dict[str, Any], dataset: dict[str, Any], message: str
) -> None:
    with pytest.raises(training.InvalidRunError) as caught:
        training.desired_children(run_spec(evaluation, **dataset), training.RunRef("r", "ml", "u"), image="i",
                                  default_store=None)  # fmt: skip
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"sensitiveFeatures": [{"name": "a"}, {"name": "a"}]}, "sensitiveFeatures[1].name: 'a' is listed twice"),
        ({"sensitiveFeatures": [{"name": "a", "bins": [2, 1]}]}, "bins: must be strictly increasing"),
        ({"sensitiveFeatures": [{"name": "a", "bins": [1], "labels": ["x"]}]}, "labels: needs bins, and one label"),
        ({"sensitiveFeatures": [{"name": "a", "labels": ["x", "y"]}]}, "labels: needs bins"),
        ({"sensitiveFeatures": [{"name": "a", "bins": [1], "labels": ["x", "x"]}]}, "labels: must be distinct"),
        ({"sensitiveFeatures": [{"name": "a"}], "intersections": [["a", "b"]]},
         "intersections[0]: 'b' is not one of sensitiveFeatures"),
        ({"sensitiveFeatures": [{"name": "a"}], "intersections": [["a", "a"]]}, "intersections[0]: 'a' twice"),
        ({"sensitiveFeatures": [{"name": "a"}, {"name": "b"}, {"name": "a&b"}], "intersections": [["a", "b"]]},
         "intersections[0]: its name 'a&b' is a feature's too"),
        ({"sensitiveFeatures": [{"name": "a", "bins": list(range(21))}]}, "at most 20 items"),
        ({"sensitiveFeatures": [{"name": f"c{i}"} for i in range(11)]}, "at most 10 items"),
        ({"maxGroups": 1000}, "less than or equal to 200"),
        ({"sensitiveFeatures": [{"name": "a", "bins": [1, 2, 3]}], "maxGroups": 3},
         "spec.evaluation.sensitiveFeatures[0].bins: 3 cut points make 4 groups, more than maxGroups (3)"),
        ({"featureImportance": {"repeats": 1}}, "greater than or equal to 2"),
    ],
)  # fmt: skip
def test_the_schema_refuses_a_bad_evaluation_naming_the_entry(evaluation: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        run_spec(evaluation)
    # What the operator's Ready condition says (modelops.logic.validation): the entry's path first.
    described = validation.describe(caught.value)
    assert message in described.message
    assert described.message.startswith("spec.evaluation.")


def test_the_crd_carries_the_same_rules_as_cel() -> None:
    crd = yaml.safe_load((REPO / "crds" / "modelops.io_trainingruns.yaml").read_text())
    evaluation = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "evaluation"]  # fmt: skip
    messages = [r["message"] for r in evaluation["x-kubernetes-validations"]]
    assert messages == [
        "spec.evaluation.sensitiveFeatures: each column may be listed once",
        "spec.evaluation.intersections: each pair names two different sensitiveFeatures",
        "spec.evaluation.sensitiveFeatures: bins make more groups than spec.evaluation.maxGroups",
    ]
    feature = evaluation["properties"]["sensitiveFeatures"]["items"]
    assert feature["x-kubernetes-validations"][0]["fieldPath"] == ".labels"
    assert evaluation["properties"]["sensitiveFeatures"]["maxItems"] == 10


def test_the_run_config_carries_the_evaluation_and_a_trial_its_gaps() -> None:
    configmap, _ = training.desired_children(RUN, training.RunRef("r", "ml", "u"), image="i",
                                             default_store="pvc://models")  # fmt: skip
    import json

    config = json.loads(configmap["data"][training.CONFIG_KEY])
    assert config["evaluation"] == {"sensitiveFeatures": [{"name": "sex", "useAsInput": False},
                                                          {"name": "race", "useAsInput": True}],
                                    "minGroupSize": 30, "maxGroups": 50}  # fmt: skip
    # The trainer reads it with the same model.
    assert EvaluationSpec.model_validate(config["evaluation"]) == RUN.evaluation
    message = {"ok": True, "metrics": {"f1": 0.8}, "artifact": {"uri": "pvc://m/a", "sha256": "a" * 64},
               "fairness": RECORD}  # fmt: skip
    pod = {
        "metadata": {"name": "p0", "annotations": {training.COMPLETION_INDEX: "0"}},
        "status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "train", "state": {"terminated": {"exitCode": 0, "message": json.dumps(message)}}}]},
    }  # fmt: skip
    seen = training.observe(RUN, {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}, [pod])
    assert seen.trials[0]["fairness"]["sex"] == {"demographicParityDifference": 0.25, "demographicParityRatio": 0.55,
                                                 "equalizedOddsDifference": 0.12}  # fmt: skip


def test_a_retrain_from_lineage_measures_fairness_again() -> None:
    from modelops.api.driftpolicy import RetrainAction
    from modelops.logic import driftloop

    mv = registration.model_version(RUN, training.RunRef("loans", "ml", "u"), {
        "artifact": {"uri": "pvc://m/a", "sha256": "c" * 64}}, version=1, job={"metadata": {"name": "j"}},
        image="i", trial=None)  # fmt: skip
    evaluation = RUN.evaluation.model_dump(by_alias=True, exclude_none=True) if RUN.evaluation else None
    assert mv["spec"]["lineage"]["evaluation"] == evaluation
    ModelVersionSpec.model_validate(mv["spec"])
    mv["metadata"]["name"] = "loans-v1"
    # The run is gone: the lineage says what to measure.
    retrain = driftloop.retrain_spec(RetrainAction(), "loans", mv, None)
    assert retrain["evaluation"] == evaluation
    TrainingRunSpec.model_validate(retrain)
    # The run is there: its own evaluation wins.
    run = {"spec": {**RUN.model_dump(by_alias=True, exclude_none=True), "evaluation": {"minGroupSize": 50}}}
    assert driftloop.retrain_spec(RetrainAction(), "loans", mv, run)["evaluation"] == {"minGroupSize": 50}


def test_a_truncated_message_gets_both_records_from_the_whole_result() -> None:
    whole = training.completed_message({"ok": True, "truncated": True}, {"fairness": RECORD,
                                                                        "featureImportance": IMPORTANCE})
    assert (whole["fairness"], whole["featureImportance"]) == (RECORD, IMPORTANCE)


# --- binning a numeric sensitive column -------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=6, unique=True).map(sorted),
    values=st.lists(st.one_of(st.floats(-2e6, 2e6, allow_nan=False), st.just(float("nan"))), min_size=1, max_size=40),
)
def test_binning_agrees_with_pandas_cut(cuts: list[float], values: list[float]) -> None:
    column = pd.Series(values, dtype=float)
    labels, groups = trainer_fairness._binned(column, cuts, None)
    names = default_bin_names(cuts)
    expected = pd.cut(column, [-np.inf, *cuts, np.inf], right=False, labels=range(len(cuts) + 1))
    for got, value, position in zip(labels, values, expected, strict=True):
        assert got == (trainer_fairness.MISSING if np.isnan(value) else names[int(position)])
    assert set(groups) == set(labels)
    assert list(groups) == [n for n in [*names, trainer_fairness.MISSING] if n in set(labels)]
    # The model server puts a served value in the same group as the trainer did (docs/fairness.md, In production).
    record = SensitiveGroups("f", (*names, trainer_fairness.MISSING), tuple(cuts), names)
    layout = serve_metrics.build_layout(model="m", version="v", classes=["0"], sensitive=[(record, True, 0)])
    slot = layout.sensitive[0]
    assert [slot.groups[serve_metrics.group_of(slot, v)] for v in values] == list(labels)


def test_a_binned_features_record_keeps_every_intervals_label_and_the_server_names_them_all() -> None:
    """Custom labels, and no held-out row in the middle interval: the record still names it (binLabels),
    so the server counts a served value there as "adult", not as __other__."""
    frame = pd.DataFrame({"age": [10.0, 12.0, 70.0, 80.0, 15.0, 75.0], "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    evaluation = EvaluationSpec.model_validate(
        {"sensitiveFeatures": [{"name": "age", "bins": [18, 65], "labels": ["child", "adult", "senior"]}],
         "minGroupSize": 1}
    )  # fmt: skip
    (grouping,) = trainer_fairness.groupings(frame, evaluation, ["age", "x"], "mem://t")
    assert grouping.groups == ("child", "senior")
    y = np.array(["no", "no", "yes", "yes", "no", "yes"], dtype=object)
    record = trainer_fairness.evaluate([grouping], frame.index, y, y, "classification", ["no", "yes"], evaluation)
    (entry,) = record["features"]
    assert entry["binLabels"] == ["child", "adult", "senior"]
    assert [g["group"] for g in entry["groups"]] == ["child", "senior"]
    (groups,) = serve_contract._parse_sensitive(record, {"age", "x"})
    layout = serve_metrics.build_layout(model="m", version="v", classes=["no", "yes"], sensitive=[(groups, True, 0)])
    slot = layout.sensitive[0]
    assert [slot.groups[serve_metrics.group_of(slot, v)] for v in (5.0, 40.0, 65.0, float("nan"))] == [
        "child", "adult", "senior", "__other__"]
