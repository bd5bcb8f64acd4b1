"""The DriftPolicy's pure decisions: counts from buckets, evaluation, retrain gating, the run it creates."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from modelops.api.driftpolicy import DriftPolicySpec, RetrainAction
from modelops.api.trainingrun import TrainingRunSpec
from modelops.drift import bins as binning
from modelops.drift import compare_binned
from modelops.logic import driftloop as loop
from modelops.logic.driftrules import Target
from modelops.logic.rules import missing_labels, rule_labels

NOW = datetime.datetime(2026, 1, 2, 12, 0, 0, tzinfo=datetime.UTC)
REFERENCE: dict[str, Any] = {
    "sampleSize": 100,
    "features": [
        {"name": "x", "kind": "numeric", "edges": [0.0, 1.0, 2.0, 3.0, 4.0], "counts": [25, 25, 25, 25]},
        {"name": "colour", "kind": "categorical", "categories": ["red", "blue", "__other__"], "counts": [50, 30, 20]},
    ],
}
TARGET = Target(policy="inputs", namespace="ml", deployment="iris", model="iris", version="iris-v3")


def at(minutes_ago: float) -> str:
    return (NOW - datetime.timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec(**changes: Any) -> DriftPolicySpec:
    return DriftPolicySpec.model_validate({"deployment": "iris", **changes})


def x_bins() -> binning.NumericBins:
    bins = binning.parse_reference_stats(REFERENCE)["x"]
    assert isinstance(bins, binning.NumericBins)
    return bins


# --- counts and evaluation ------------------------------------------------------------------------


def test_cumulative_buckets_become_bins_whatever_the_le_spelling() -> None:
    counts, problem = loop.numeric_counts(x_bins(), {"1.0": 10, "2": 30, "3e+00": 60, "+Inf": 100})
    assert (counts, problem) == ([10, 20, 30, 40], None)


def test_extrapolation_noise_never_gives_a_negative_bin() -> None:
    counts, _ = loop.numeric_counts(x_bins(), {"1.0": 10.2, "2.0": 10.1, "3.0": 60, "+Inf": 100})
    assert counts is not None
    assert min(counts) == 0.0
    assert sum(counts) == pytest.approx(100)


@pytest.mark.parametrize(
    ("buckets", "problem"),
    [({}, "no live series"), ({"1.0": 1, "2.0": 2, "+Inf": 3}, "no le=3.0"), ({"+Inf": 5, "1.5": 1}, "no le=1.0")],
)
def test_missing_or_foreign_buckets_are_named(buckets: dict[str, float], problem: str) -> None:
    counts, message = loop.numeric_counts(x_bins(), buckets)
    assert counts is None
    assert message is not None
    assert problem in message


def test_evaluation_scores_like_the_library_and_names_drifted_features() -> None:
    buckets = {"x": {"1.0": 30, "2.0": 60, "3.0": 90, "+Inf": 120}}
    categories = {"colour": {"red": 5.0, "blue": 5.0, "__other__": 110.0}}
    result = loop.evaluate(spec(), REFERENCE, ["x", "colour"], buckets, categories)
    library = compare_binned(REFERENCE, {"x": [30, 30, 30, 30], "colour": categories["colour"]}, method="psi")
    assert result.drifted_features == ["colour"] == library.drifted_features
    assert result.samples == 120
    by_name = {row["name"]: row for row in result.features}
    assert by_name["colour"]["score"] == pytest.approx(library.feature("colour").score, abs=1e-6)
    assert (by_name["x"]["drifted"], by_name["x"]["samples"], by_name["x"]["threshold"]) == (False, 120, 0.2)
    message = loop.drift_message(spec(), result)
    assert message.startswith("psi drift in colour over the last 1h (120 samples)")


def test_a_feature_without_data_is_unscored_and_said_so() -> None:
    result = loop.evaluate(spec(), REFERENCE, ["x", "colour"], {}, {"colour": {"red": 50, "blue": 30, "__other__": 20}})
    x = next(row for row in result.features if row["name"] == "x")
    assert (x["score"], x["drifted"]) == (None, False)
    assert "x: no live series" in loop.drift_message(spec(), result)


def test_other_methods_are_evaluated_by_the_library() -> None:
    buckets = {"x": {"1.0": 0, "2.0": 0, "3.0": 0, "+Inf": 400}}
    result = loop.evaluate(spec(method="ks"), REFERENCE, ["x"], buckets, {})
    assert result.drifted_features == ["x"]
    assert result.features[0]["threshold"] == 0.05


def test_a_method_for_numeric_features_only_names_the_categorical_ones() -> None:
    reference = binning.parse_reference_stats(REFERENCE)
    with pytest.raises(ValueError, match=r"spec\.method: wasserstein applies to numeric features only; colour is"):
        loop.check_methods(spec(method="wasserstein"), reference, ["x", "colour"])
    loop.check_methods(spec(method="wasserstein"), reference, ["x"])


@pytest.mark.parametrize("method", ["ks", "chi2"])
def test_a_test_s_threshold_must_be_a_p_value(method: str) -> None:
    reference = binning.parse_reference_stats(REFERENCE)
    with pytest.raises(ValueError, match=rf"spec\.threshold: {method} is a test and its threshold a p-value"):
        loop.check_methods(spec(method=method, threshold=2.0), reference, ["x"])
    with pytest.raises(ValueError, match=r"spec\.threshold"):
        loop.check_methods(spec(method=method, threshold=0.0), reference, ["x"])
    loop.check_methods(spec(method=method, threshold=0.01), reference, ["x"])
    loop.check_methods(spec(method="psi", threshold=2.0), reference, ["x"])  # a distance: any size


@pytest.mark.parametrize(
    ("was", "drifted", "expected"),
    [(None, True, ["DriftStarted"]), (False, True, ["DriftStarted"]), (True, True, []),
     (True, False, ["DriftEnded"]), (False, False, []), (None, False, [])],
)  # fmt: skip
def test_events_only_when_drift_starts_or_ends(was: bool | None, drifted: bool, expected: list[str]) -> None:
    evaluation = loop.Evaluation(500, [], ["x"] if drifted else [])
    assert [reason for _, reason, _ in loop.drift_events(was, evaluation, "m")] == expected


def test_queries_select_the_serving_version_of_the_deployment_in_the_namespace_or_without_one() -> None:
    query = loop.bucket_query(TARGET, "600s")
    assert query == (
        'sum by (feature, le) (increase(modelops_feature_bucket{namespace=~"ml|", deployment="iris", model="iris", '
        'version="iris-v3"}[600s]))'
    )
    assert "modelops_feature_category_total" in loop.category_query(TARGET, "600s")


def test_due_after_the_interval() -> None:
    assert loop.seconds_until_due(None, "5m", NOW) == 0
    assert loop.seconds_until_due(at(2), "5m", NOW) == pytest.approx(180)
    assert loop.seconds_until_due(at(6), "5m", NOW) < 0


# --- retraining -----------------------------------------------------------------------------------


def action(**changes: Any) -> RetrainAction:
    return RetrainAction.model_validate({"enabled": True, "cooldown": "1h", **changes})


@pytest.mark.parametrize(
    ("changes", "drifted", "records", "create", "reason"),
    [
        ({}, True, [], True, "RetrainStarted"),
        ({"enabled": False}, True, [], False, "Disabled"),
        ({}, False, [], False, "NoDrift"),
        ({}, None, [], False, "NoDrift"),
        ({}, True, [{"name": "a", "at": at(5), "phase": "Running"}], False, "InFlight"),
        ({}, True, [{"name": "a", "at": at(5)}], False, "InFlight"),
        ({}, True, [{"name": "a", "at": at(30), "phase": "Succeeded"}], False, "CoolingDown"),
        ({}, True, [{"name": "a", "at": at(61), "phase": "Failed"}], True, "RetrainStarted"),
        ({}, True, [{"name": "a", "at": at(61), "phase": "Deleted"}], True, "RetrainStarted"),
        ({"maxPerDay": 2, "cooldown": "1m"}, True,
         [{"name": "a", "at": at(600), "phase": "Succeeded"}, {"name": "b", "at": at(60), "phase": "Succeeded"}],
         False, "BudgetUsed"),
        ({"maxPerDay": 2, "cooldown": "1m"}, True,
         [{"name": "a", "at": at(1500), "phase": "Succeeded"}, {"name": "b", "at": at(60), "phase": "Succeeded"}],
         True, "RetrainStarted"),
        ({}, False, [{"name": "a", "at": at(90), "phase": "Succeeded"}], False, "Finished"),
    ],
)  # fmt: skip
def test_retrain_decision(
    changes: dict[str, Any], drifted: bool | None, records: list[dict[str, Any]], create: bool, reason: str
) -> None:
    decision = loop.retrain_decision(action(**changes), drifted_now=drifted, records=records, now=NOW)
    assert (decision.create, decision.reason) == (create, reason), decision.message


def version(**lineage: Any) -> dict[str, Any]:
    base = {
        "trainingRun": {"name": "iris-rf"},
        "dataset": {"uri": "sklearn://iris", "sha256": "0" * 64},
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 20},
    }
    return {"metadata": {"name": "iris-v3"}, "spec": {"model": "iris", "task": "classification",
                                                      "lineage": {**base, **lineage}}}  # fmt: skip


def test_retrain_from_lineage_keeps_estimator_params_and_the_runs_dataset_shape() -> None:
    original = {"spec": {"model": "iris", "dataset": {"uri": "file:///old.csv", "target": "species", "testSize": 0.3},
                         "estimator": {"className": "sklearn.ensemble.RandomForestClassifier",
                                       "params": {"n_estimators": [1]}, "preprocessing": {"scaleNumeric": True}},
                         "sweep": {"parameters": {"n_estimators": [10, 20]}, "metric": "f1"},
                         "artifactStore": {"uri": "pvc://models/x"}}}  # fmt: skip
    spec_ = loop.retrain_spec(action(), "iris", version(), original)
    assert spec_["dataset"] == {"uri": "sklearn://iris", "target": "species", "testSize": 0.3}
    assert spec_["estimator"] == {"className": "sklearn.ensemble.RandomForestClassifier",
                                  "params": {"n_estimators": 20}, "preprocessing": {"scaleNumeric": True}}  # fmt: skip
    assert "sweep" not in spec_
    assert spec_["artifactStore"] == {"uri": "pvc://models/x"}
    assert spec_["task"] == "classification"


def test_retrain_dataset_override_and_bundled_datasets() -> None:
    fresh = action(dataset={"uri": "s3://data/latest.parquet", "target": "y"})
    assert loop.retrain_spec(fresh, "iris", version(), None)["dataset"]["uri"] == "s3://data/latest.parquet"
    assert loop.retrain_spec(action(), "iris", version(), None)["dataset"] == {
        "uri": "sklearn://iris",
        "target": "target",
    }
    with pytest.raises(loop.RetrainError, match=r"spec\.actions\.retrain\.dataset"):
        loop.retrain_spec(action(), "iris", version(dataset={"uri": "s3://b/k.csv"}), None)
    with pytest.raises(loop.RetrainError, match=r"no lineage\.estimator"):
        loop.retrain_spec(action(), "iris", version(estimator=None), None)


def test_retrain_from_a_template() -> None:
    template = {
        "labels": {"team": "ml"},
        "spec": {
            "model": "other",
            "dataset": {"uri": "sklearn://wine", "target": "t"},
            "estimator": {"className": "sklearn.tree.DecisionTreeClassifier"},
        },
    }
    act = action(template=template)
    spec_ = loop.retrain_spec(act, "iris", version(), None)
    assert (spec_["model"], spec_["dataset"]["uri"]) == ("iris", "sklearn://wine")
    run = loop.retrain_run(TARGET, act, spec_, "drift in x", NOW, "2026-01-02T12:00:00Z")
    meta = run["metadata"]
    assert meta["labels"]["team"] == "ml"
    assert meta["labels"]["modelops.io/drift-policy"] == "inputs"
    assert "ownerReferences" not in meta
    assert meta["name"] == "inputs-retrain-260102120000"
    assert meta["annotations"]["modelops.io/retrained-from"] == "iris-v3"


def test_run_names_fit_a_job_name() -> None:
    name = loop.run_name("a" * 29 + "-" + "b" * 200, NOW)
    assert len(name + "-train") <= 63
    assert not name.startswith("-")
    assert "--" not in name


def test_records_merge_status_and_runs() -> None:
    previous = [{"name": "old", "at": at(3000), "phase": "Succeeded", "modelVersion": "iris-v2"},
                {"name": "gone", "at": at(100), "phase": "Running"}]  # fmt: skip
    runs = [{"metadata": {"name": "new", "creationTimestamp": at(5), "annotations": {loop.REASON_ANNOTATION: "drift"}},
             "status": {"phase": "Succeeded", "modelVersion": "iris-v4"}}]  # fmt: skip
    records = loop.merge_records(previous, runs)
    assert [(r["name"], r["phase"]) for r in records] == [
        ("old", "Succeeded"),
        ("gone", "Deleted"),
        ("new", "Succeeded"),
    ]
    assert records[-1]["reason"] == "drift"
    assert records[-1]["modelVersion"] == "iris-v4"
    assert [r["name"] for r in loop.to_promote(records, action(promoteTo="Staging"))] == ["old", "new"]
    records[0]["stageRequested"] = "Staging"
    assert [r["name"] for r in loop.to_promote(records, action(promoteTo="Staging"))] == ["new"]
    assert loop.to_promote(records, action()) == []


# --- rule labels ----------------------------------------------------------------------------------


def test_rule_labels_parse_and_refuse_bad_pairs() -> None:
    assert rule_labels(None) == {} == rule_labels(" ")
    assert rule_labels("release=kps, team=ml-platform,") == {"release": "kps", "team": "ml-platform"}
    assert rule_labels("prometheus.io/rules=true") == {"prometheus.io/rules": "true"}
    with pytest.raises(ValueError, match="'release' is not a label"):
        rule_labels("release")
    with pytest.raises(ValueError, match="'a=b c'"):
        rule_labels("a=b c")
    assert missing_labels({"release": "old"}, {"release": "kps", "team": "ml"}) == {"release": "kps", "team": "ml"}
    assert missing_labels({"release": "kps"}, {"release": "kps"}) == {}


def test_retrain_from_the_lineage_alone_once_the_run_is_gone() -> None:
    """A version registered by the operator records how its data was read: no old run needed."""
    recorded = {"uri": "s3://b/k.csv", "sha256": "1" * 64, "rows": 900, "format": "csv", "target": "churned",
                "features": ["age", "plan"], "categoricalFeatures": ["plan"], "testSize": 0.25, "seed": 7}
    spec_ = loop.retrain_spec(action(), "churn", version(dataset=recorded, preprocessing={"oneHotCategorical": True}),
                              None)  # fmt: skip
    assert spec_["dataset"] == {k: v for k, v in recorded.items() if k not in ("sha256", "rows")}
    assert spec_["estimator"]["preprocessing"] == {"oneHotCategorical": True}
    TrainingRunSpec.model_validate(spec_)  # a valid TrainingRun spec as it stands
