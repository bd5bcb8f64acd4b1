"""Fairness at training time, on tables built to have a known gap, checked against fairlearn's own numbers.

Given a loan table where group B is selected less often than group A by construction (its scores
are lower, and its labels are flipped more often), when a run names ``sex`` (kept out of the
inputs), ``age`` (binned) and ``race`` as sensitive features, then the trainer records, for the
held-out split, every group's count, selection rate, accuracy, precision, recall and false
positive rate, and each feature's demographic parity difference and ratio and equalized odds
difference -- the very numbers fairlearn computes on the same rows and predictions. Small groups
are marked, a group the held-out split lacks is listed with count 0, and a bad sensitive feature
is refused in one line naming its field before anything is fitted.

The held-out rows are found as the trainer finds them (``train_test_split`` with the run's seed,
stratified by the target: ``docs/contracts.md``), and the predictions are known without loading
the model: a depth-1 tree on one integer column ``x`` whose labels are mostly ``x >= 1`` splits at
0.5, so it predicts ``x >= 1`` (the record's own accuracy confirms it, row for row).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
)
from sklearn.metrics import accuracy_score, precision_score, recall_score
from sklearn.model_selection import train_test_split

from trainer.conftest import SOURCE_ROOT, Run, run_in_process, run_trainer

SEED = 7
TEST_SIZE = 0.25
ROWS = 3000


def loans(rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    """Group B's scores are lower (fewer x >= 1) and its labels are flipped more often (0.25 vs 0.05)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["A", "B"], size=rows, p=[0.55, 0.45])
    x = np.where(sex == "A", rng.integers(-2, 4, size=rows), rng.integers(-3, 2, size=rows))
    flip = rng.random(rows) < np.where(sex == "A", 0.05, 0.25)
    approved = ((x >= 1) ^ flip).astype(int)
    age = rng.integers(18, 80, size=rows).astype(float)
    race = rng.choice(["P", "Q", "R"], size=rows, p=[0.55, 0.42, 0.03])
    frame = pd.DataFrame({"x": x, "junk": rng.normal(size=rows), "sex": sex, "age": age, "race": race,
                          "approved": approved})  # fmt: skip
    # One person of a group seen only in the training rows: listed with count 0, never dropped.
    train_rows, _ = train_test_split(np.arange(rows), test_size=TEST_SIZE, random_state=SEED, stratify=approved)
    frame.loc[int(train_rows[0]), "race"] = "Z"
    return frame


def config(path: Path, evaluation: dict[str, Any], **dataset: Any) -> dict[str, Any]:
    return {
        "model": "loans",
        "dataset": {"uri": str(path), "target": "approved", "testSize": TEST_SIZE, "seed": SEED, **dataset},
        "estimator": {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 1}},
        "evaluation": evaluation,
    }


def train(cfg: dict[str, Any], work: Path, pythonpath: str | None = None, name: str = "run") -> Run:
    """``modelops train`` as a process, reading the data file wherever the test made it."""
    env = {"MODELOPS_FILE_ROOTS": str(Path(cfg["dataset"]["uri"]).parent)}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return run_trainer(cfg, work, env=env, name=name)


def held_out(frame: pd.DataFrame, target: str, stratify: bool = True) -> pd.DataFrame:
    """The held-out rows, found as the trainer finds them."""
    y = frame[target]
    _, test = train_test_split(frame, test_size=TEST_SIZE, random_state=SEED, stratify=y if stratify else None)
    return test


@pytest.fixture(scope="module")
def loans_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fair") / "loans.csv"
    loans().to_csv(path, index=False)
    return path


EVALUATION = {
    "sensitiveFeatures": [
        {"name": "sex", "useAsInput": False},
        {"name": "age", "bins": [30, 50]},
        {"name": "race"},
    ],
    "intersections": [["sex", "race"]],
}


@pytest.fixture(scope="module")
def trained(loans_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    cfg = config(loans_csv, EVALUATION, features=["x", "junk", "age", "race"])
    run = train(cfg, tmp_path_factory.mktemp("trained"))
    assert run.returncode == 0, run.stderr
    return run


def feature(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in record["features"] if f["name"] == name)


def expected_groups(test: pd.DataFrame, groups: Any) -> dict[str, dict[str, float]]:
    """fairlearn's MetricFrame on the held-out rows, the predictions being x >= 1."""
    y_true, y_pred = test["approved"].to_numpy(), (test["x"] >= 1).astype(int).to_numpy()
    frame = MetricFrame(
        metrics={
            "count": count,
            "selectionRate": selection_rate,
            "accuracy": accuracy_score,
            "precision": lambda t, p: precision_score(t, p, zero_division=np.nan),
            "recall": lambda t, p: recall_score(t, p, zero_division=np.nan),
            "falsePositiveRate": false_positive_rate,
        },
        y_true=y_true, y_pred=y_pred, sensitive_features=np.asarray(groups, dtype=object),
    )  # fmt: skip
    return {str(g): row for g, row in frame.by_group.to_dict(orient="index").items()}


def expected_gaps(test: pd.DataFrame, groups: Any) -> dict[str, float]:
    y_true, y_pred = test["approved"].to_numpy(), (test["x"] >= 1).astype(int).to_numpy()
    labels = np.asarray(groups, dtype=object)
    return {
        "demographicParityDifference": demographic_parity_difference(y_true, y_pred, sensitive_features=labels),
        "demographicParityRatio": demographic_parity_ratio(y_true, y_pred, sensitive_features=labels),
        "equalizedOddsDifference": equalized_odds_difference(y_true, y_pred, sensitive_features=labels),
    }


def assert_matches(recorded: dict[str, Any], test: pd.DataFrame, groups: Any) -> None:
    want = expected_groups(test, groups)
    assert recorded["metrics"] == pytest.approx(expected_gaps(test, groups), abs=1e-12)
    by_name = {g["group"]: g for g in recorded["groups"]}
    for name, values in want.items():
        got = by_name[name]
        assert got["count"] == int(values["count"])
        for key in ("selectionRate", "accuracy", "precision", "recall", "falsePositiveRate"):
            if np.isnan(values[key]):
                assert key not in got, (name, key)
            else:
                assert got[key] == pytest.approx(values[key], abs=1e-12), (name, key)


def test_the_known_gap_is_recorded_with_fairlearns_own_numbers(loans_csv: Path, trained: Run) -> None:
    frame = pd.read_csv(loans_csv)
    test = held_out(frame, "approved")
    record = trained.result()["fairness"]
    # The tree predicts x >= 1: its accuracy on the held-out rows is exactly that rule's.
    assert record["overall"]["accuracy"] == pytest.approx(accuracy_score(test["approved"], test["x"] >= 1))
    assert (record["rows"], record["minGroupSize"], record["positiveClass"]) == (len(test), 30, "1")
    assert record["library"].startswith("fairlearn ")

    sex = feature(record, "sex")
    assert_matches(sex, test, test["sex"])
    assert (sex["kind"], sex["usedAsInput"]) == ("categorical", False)
    a, b = ({g["group"]: g for g in sex["groups"]}[k] for k in ("A", "B"))
    # The gap built into the data: B is selected far less often, and its errors differ.
    assert a["selectionRate"] - b["selectionRate"] > 0.25
    assert sex["metrics"]["demographicParityDifference"] == pytest.approx(a["selectionRate"] - b["selectionRate"])
    assert sex["metrics"]["demographicParityRatio"] < 0.6
    assert sex["metrics"]["equalizedOddsDifference"] > 0.1

    bands = pd.cut(test["age"], [-np.inf, 30, 50, np.inf], right=False, labels=["<30", "[30, 50)", ">=50"])
    age = feature(record, "age")
    assert (age["kind"], age["bins"], age["usedAsInput"]) == ("binned", [30.0, 50.0], True)
    assert [g["group"] for g in age["groups"]] == ["<30", "[30, 50)", ">=50"]
    assert_matches(age, test, bands.astype(str))

    both = feature(record, "sex&race")
    assert (both["kind"], both["of"], both["usedAsInput"]) == ("intersection", ["sex", "race"], False)
    assert_matches(both, test, test["sex"] + "&" + test["race"])


def test_small_groups_are_reported_as_such_and_none_is_dropped(loans_csv: Path, trained: Run) -> None:
    frame = pd.read_csv(loans_csv)
    test = held_out(frame, "approved")
    race = feature(trained.result()["fairness"], "race")
    groups = {g["group"]: g for g in race["groups"]}
    # Every value of the column is a group, in the whole table's order, the one only in training included.
    assert list(groups) == ["P", "Q", "R", "Z"]
    for name, group in groups.items():
        assert group["count"] == int((test["race"] == name).sum())
        assert group["insufficient"] == (group["count"] < 30)
    assert groups["R"]["insufficient"]
    assert groups["R"]["count"] > 0
    assert groups["Z"] == {"group": "Z", "count": 0, "insufficient": True}
    assert not groups["P"]["insufficient"]
    assert_matches(race, test, test["race"])


def test_a_column_kept_out_of_the_inputs_is_evaluated_but_never_seen_by_the_model(
    loans_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_in_process(config(loans_csv, {"sensitiveFeatures": [{"name": "sex", "useAsInput": False}]}),
                         loans_csv.parent, capsys, name=tmp_path.name)  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = run.result()
    inputs = [i["name"] for i in result["signature"]["inputs"]]
    assert inputs == ["x", "junk", "age", "race"]
    assert "sex" not in {f["name"] for f in result["referenceStats"]["features"]}
    assert "sex" not in {e["feature"] for e in result["featureImportance"]["features"]}
    assert feature(result["fairness"], "sex")["usedAsInput"] is False
    # The operator registers what the termination message carries.
    assert run.termination is not None
    assert run.termination["fairness"] == result["fairness"]
    assert "fairness on" in run.stdout


def test_a_sensitive_input_stays_an_input(loans_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_in_process(config(loans_csv, {"sensitiveFeatures": [{"name": "sex"}]}), loans_csv.parent, capsys,
                         name=tmp_path.name)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "sex" in [i["name"] for i in run.result()["signature"]["inputs"]]
    assert feature(run.result()["fairness"], "sex")["usedAsInput"] is True


@pytest.mark.parametrize(
    ("evaluation", "dataset", "wanted"),
    [
        ({"sensitiveFeatures": [{"name": "sex"}, {"name": "gender"}]}, {},
         "spec.evaluation.sensitiveFeatures[1].name: column 'gender' is not in dataset"),
        ({"sensitiveFeatures": [{"name": "junk"}]}, {},
         "spec.evaluation.sensitiveFeatures[0].name: column 'junk' has 3000 groups, more than "
         "spec.evaluation.maxGroups (50); give bins"),
        ({"sensitiveFeatures": [{"name": "race"}], "maxGroups": 3}, {},
         "spec.evaluation.sensitiveFeatures[0].name: column 'race' has 4 groups, more than "
         "spec.evaluation.maxGroups (3); choose a coarser column"),
        ({"sensitiveFeatures": [{"name": "sex", "bins": [1]}]}, {},
         "spec.evaluation.sensitiveFeatures[0].bins: column 'sex' is not numeric"),
        ({"sensitiveFeatures": [{"name": "sex"}, {"name": "race"}], "intersections": [["sex", "race"]],
          "maxGroups": 5}, {},
         "spec.evaluation.intersections[0]: sex&race has 7 groups, more than spec.evaluation.maxGroups (5)"),
        ({"sensitiveFeatures": [{"name": "sex"}], "positiveClass": "yes"}, {},
         "spec.evaluation.positiveClass: 'yes' is not one of the target's classes (0, 1)"),
        ({"sensitiveFeatures": [{"name": "approved"}]}, {},
         "config evaluation.sensitiveFeatures[0].name: 'approved' is the target column"),
        ({"sensitiveFeatures": [{"name": "sex", "useAsInput": False}]}, {"features": ["x", "sex"]},
         "config evaluation.sensitiveFeatures[0].name: 'sex' has useAsInput: false but dataset.features lists it"),
        ({"sensitiveFeatures": [{"name": "age", "bins": [50, 30]}]}, {},
         "config evaluation.sensitiveFeatures[0].bins: must be strictly increasing"),
        ({"sensitiveFeatures": [{"name": "sex"}], "intersections": [["sex", "race"]]}, {},
         "config evaluation.intersections[0]: 'race' is not one of sensitiveFeatures"),
    ],
)  # fmt: skip
def test_a_bad_sensitive_feature_is_refused_in_one_line_before_fitting(
    loans_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    evaluation: dict[str, Any],
    dataset: dict[str, Any],
    wanted: str,
) -> None:
    run = run_in_process(config(loans_csv, evaluation, **dataset), loans_csv.parent, capsys, name=tmp_path.name)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1, run.stderr
    assert wanted in run.stderr
    assert run.termination is not None
    assert wanted in run.termination["error"]
    assert "fitting" not in run.stdout


def test_without_fairlearn_a_run_asking_for_fairness_is_refused_naming_the_package(
    loans_csv: Path, tmp_path: Path
) -> None:
    # A fairlearn that cannot be imported, ahead of the real one on the path.
    shadow = tmp_path / "shadow" / "fairlearn"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('fairlearn is not installed here')\n")
    path = f"{shadow.parent}:{SOURCE_ROOT}"
    run = train(config(loans_csv, {"sensitiveFeatures": [{"name": "sex"}]}), tmp_path, pythonpath=path)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1, run.stderr
    assert "spec.evaluation.sensitiveFeatures needs the Python package fairlearn" in run.stderr
    assert "loaded" not in run.stdout  # refused before even reading the data
    # The same trainer without fairness trains.
    plain = train(config(loans_csv, {}), tmp_path, pythonpath=path, name="plain")
    assert plain.returncode == 0, plain.stderr
    assert "fairness" not in plain.result()


def three_classes(rows: int = 1800, seed: int = 5) -> pd.DataFrame:
    """Class = x (0, 1, 2) with 10 % noise; group B has fewer x == 2."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B"], size=rows)
    x = np.where(group == "A", rng.choice(3, size=rows, p=[0.3, 0.3, 0.4]), rng.choice(3, size=rows, p=[0.5, 0.3, 0.2]))
    noise = rng.random(rows) < 0.1
    label = np.where(noise, rng.integers(0, 3, size=rows), x)
    names = np.array(["low", "mid", "high"], dtype=object)
    return pd.DataFrame({"x": x, "group": group, "label": names[label]})


@pytest.fixture(scope="module")
def multiclass_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("multi") / "three.csv"
    three_classes().to_csv(path, index=False)
    return path


def multiclass_config(path: Path, **evaluation: Any) -> dict[str, Any]:
    return {
        "dataset": {"uri": str(path), "target": "label", "testSize": TEST_SIZE, "seed": SEED, "features": ["x"]},
        "estimator": {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 2}},
        "evaluation": {"sensitiveFeatures": [{"name": "group"}], **evaluation},
    }


def test_multiclass_selection_is_per_class_unless_a_positive_class_is_named(
    multiclass_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(multiclass_csv)
    test = held_out(frame, "label")
    names = np.array(["low", "mid", "high"], dtype=object)
    y_true, y_pred, groups = test["label"].to_numpy(), names[test["x"].to_numpy()], test["group"].to_numpy()

    run = run_in_process(multiclass_config(multiclass_csv), multiclass_csv.parent, capsys, name=tmp_path.name)
    assert run.returncode == 0, run.stderr
    record = run.result()["fairness"]
    assert "positiveClass" not in record
    recorded = feature(record, "group")
    assert record["overall"]["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))  # the tree predicts x
    per_class = []
    for label in ("high", "low", "mid"):
        truth, predicted = y_true == label, y_pred == label
        per_class.append((
            demographic_parity_difference(truth, predicted, sensitive_features=groups),
            demographic_parity_ratio(truth, predicted, sensitive_features=groups),
            equalized_odds_difference(truth, predicted, sensitive_features=groups),
        ))  # fmt: skip
    assert recorded["metrics"] == pytest.approx({
        "demographicParityDifference": max(p[0] for p in per_class),
        "demographicParityRatio": min(p[1] for p in per_class),
        "equalizedOddsDifference": max(p[2] for p in per_class),
    })  # fmt: skip
    for group in recorded["groups"]:
        rows = groups == group["group"]
        assert "selectionRate" not in group
        assert group["selectionRateByClass"] == pytest.approx(
            {label: float(np.mean(y_pred[rows] == label)) for label in ("high", "low", "mid")}
        )

    named = run_in_process(multiclass_config(multiclass_csv, positiveClass="high"), multiclass_csv.parent, capsys,
                           name=tmp_path.name + "-named")  # fmt: skip
    assert named.returncode == 0, named.stderr
    record = named.result()["fairness"]
    assert record["positiveClass"] == "high"
    truth, predicted = y_true == "high", y_pred == "high"
    assert feature(record, "group")["metrics"] == pytest.approx({
        "demographicParityDifference": demographic_parity_difference(truth, predicted, sensitive_features=groups),
        "demographicParityRatio": demographic_parity_ratio(truth, predicted, sensitive_features=groups),
        "equalizedOddsDifference": equalized_odds_difference(truth, predicted, sensitive_features=groups),
    })  # fmt: skip
    for group in feature(record, "group")["groups"]:
        rows = groups == group["group"]
        assert group["selectionRate"] == pytest.approx(float(np.mean(predicted[rows])))
        assert group["recall"] == pytest.approx(recall_score(truth[rows], predicted[rows]))


def test_regression_records_mae_per_group_on_a_bundled_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # diabetes' sex column holds two scaled values; a depth-1 tree on it predicts each group's training mean.
    cfg = {
        "dataset": {"uri": "sklearn://diabetes", "target": "target", "testSize": TEST_SIZE, "seed": SEED,
                    "features": ["sex"]},
        "estimator": {"className": "sklearn.tree.DecisionTreeRegressor", "params": {"max_depth": 1}},
        "evaluation": {"sensitiveFeatures": [{"name": "sex"}]},
    }  # fmt: skip
    run = run_in_process(cfg, tmp_path, capsys)
    assert run.returncode == 0, run.stderr
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    train, test = train_test_split(frame, test_size=TEST_SIZE, random_state=SEED)
    means = train.groupby("sex")["target"].mean()
    predicted = test["sex"].map(means)
    recorded = feature(run.result()["fairness"], "sex")
    assert len(recorded["groups"]) == 2
    for group in recorded["groups"]:
        value = next(v for v in means.index if str(v) == group["group"])
        rows = test["sex"] == value
        assert group["count"] == int(rows.sum())
        assert group["mae"] == pytest.approx(float((test["target"][rows] - predicted[rows]).abs().mean()))
        assert group["meanPrediction"] == pytest.approx(float(means[value]))
    assert recorded["metrics"]["meanPredictionDifference"] == pytest.approx(float(abs(means.iloc[0] - means.iloc[1])))
    assert "maeDifference" in recorded["metrics"]


def test_a_sweep_records_fairness_for_every_trial(loans_csv: Path, tmp_path: Path) -> None:
    cfg = config(loans_csv, {"sensitiveFeatures": [{"name": "sex", "useAsInput": False}]})
    cfg["sweep"] = {"parameters": {"max_depth": [1, 3]}, "metric": "accuracy"}
    run = train(cfg, tmp_path)
    assert run.returncode == 0, run.stderr
    for trial in (0, 1):
        record = run.result(trial)["fairness"]
        assert feature(record, "sex")["metrics"]["demographicParityDifference"] > 0.2
    assert run.result(0)["fairness"] != run.result(1)["fairness"]  # each trial's own predictions


def test_the_record_is_the_same_for_the_same_run(loans_csv: Path, tmp_path: Path, trained: Run) -> None:
    again = train(config(loans_csv, EVALUATION, features=["x", "junk", "age", "race"]), tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.dumps(again.result()["fairness"]) == json.dumps(trained.result()["fairness"])
    assert json.dumps(again.result()["featureImportance"]) == json.dumps(trained.result()["featureImportance"])
