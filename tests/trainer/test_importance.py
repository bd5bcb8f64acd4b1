"""Global feature importance: permutation importance per source column, on the held-out split.

Given a table whose label depends on one column only, when a depth-1 tree is trained on it and a
column of noise, then the column it uses has a positive importance and the noise exactly none; a
categorical input counts as one column however many one-hot columns it became; a wide table's
cost is bounded by a sample of rows and fewer repeats, as the record says; the same run gives the
same numbers; and ``enabled: false`` records nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelops.api.trainingrun import FeatureImportanceSpec
from modelops.logic import training
from modelops.train.importance import repeats_for
from trainer.conftest import run_in_process, run_trainer


def table(rows: int = 800, seed: int = 11, extra: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=rows)
    color = rng.choice(["red", "green", "blue", "white"], size=rows)
    label = ((x + 3 * (color == "red") >= 1) ^ (rng.random(rows) < 0.1)).astype(int)
    frame = pd.DataFrame({"x": x, "noise": rng.normal(size=rows), "color": color, "label": label})
    for index in range(extra):
        frame[f"w{index:02d}"] = rng.normal(size=rows)
    return frame


def config(path: Path, estimator: dict[str, Any], **importance: Any) -> dict[str, Any]:
    return {
        "dataset": {"uri": str(path), "target": "label", "testSize": 0.25, "seed": 3},
        "estimator": estimator,
        "evaluation": {"featureImportance": importance} if importance else {},
    }


TREE = {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 1}}
LINEAR = {"className": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}}


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("importance") / "table.csv"
    table().to_csv(path, index=False)
    return path


def test_the_column_the_model_uses_matters_and_noise_does_not(
    csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(csv, TREE)
    cfg["dataset"]["features"] = ["x", "noise"]
    run = run_in_process(cfg, csv.parent, capsys, name=tmp_path.name)
    assert run.returncode == 0, run.stderr
    record = run.result()["featureImportance"]
    assert (record["method"], record["scoring"], record["rows"], record["repeats"], record["seed"]) == (
        "permutation", "accuracy", 200, 5, 3,
    )  # fmt: skip
    # The baseline is the held-out accuracy: every held-out row is used (200 < maxRows).
    assert record["baseline"] == pytest.approx(run.result()["metrics"]["accuracy"])
    first, second = record["features"]
    assert first["feature"] == "x"
    assert first["mean"] > 0.2
    assert first["std"] > 0
    # A depth-1 tree never looks at the noise: shuffling it changes no prediction.
    assert second == {"feature": "noise", "mean": 0.0, "std": 0.0}
    assert "feature importance (accuracy drop, 2 columns x 5 repeats on 200 rows" in run.stdout
    assert run.termination is not None
    assert run.termination["featureImportance"] == record


def test_one_hot_columns_count_as_the_column_they_came_from(
    csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_in_process(config(csv, LINEAR), csv.parent, capsys, name=tmp_path.name)
    assert run.returncode == 0, run.stderr
    entries = run.result()["featureImportance"]["features"]
    assert sorted(e["feature"] for e in entries) == ["color", "noise", "x"]
    means = [e["mean"] for e in entries]
    assert means == sorted(means, reverse=True)
    assert all(e["std"] >= 0 for e in entries)
    by_name = {e["feature"]: e for e in entries}
    # Red raises the odds: its one-hot column carries that, folded into the column it came from.
    assert by_name["color"]["mean"] > 0.05

    again = run_in_process(config(csv, LINEAR), csv.parent, capsys, name=tmp_path.name + "-again")
    assert again.result()["featureImportance"] == run.result()["featureImportance"]


def test_a_wide_table_costs_a_sample_of_rows_and_fewer_repeats(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wide.csv"
    table(rows=1200, extra=57).to_csv(path, index=False)  # 60 input columns
    run = run_in_process(config(path, TREE, maxRows=50, maxPermutations=100), tmp_path, capsys)
    assert run.returncode == 0, run.stderr
    record = run.result()["featureImportance"]
    assert (record["rows"], record["repeats"], len(record["features"])) == (50, 2, 60)
    assert "60 columns x 2 repeats on 50 rows" in run.stdout


def test_on_64_columns_the_message_leaves_importance_to_the_whole_result(tmp_path: Path) -> None:
    cfg = {"dataset": {"uri": "sklearn://digits", "target": "target", "seed": 7},
           "estimator": {"className": "sklearn.naive_bayes.GaussianNB"}}  # fmt: skip
    run = run_trainer(cfg, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.termination_raw is not None
    assert len(run.termination_raw.encode()) <= 4096
    assert run.termination is not None
    # Importance is the first thing to go: the statistics of 64 columns still travel in the message...
    assert run.termination["truncated"] is True
    assert "featureImportance" not in run.termination
    assert run.termination["referenceStats"] == run.result()["referenceStats"]
    # ...and the whole result, importance included, is the log's last line, for the operator to read.
    whole = training.result_from_log(run.stdout, run.termination["resultSha256"])
    assert len(whole["featureImportance"]["features"]) == 64
    assert whole == run.result()


def test_it_can_be_turned_off(csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_in_process(config(csv, TREE, enabled=False), csv.parent, capsys, name=tmp_path.name)
    assert run.returncode == 0, run.stderr
    assert "featureImportance" not in run.result()
    assert run.termination is not None
    assert "featureImportance" not in run.termination
    assert "feature importance" not in run.stdout


def test_regression_uses_r2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {
        "dataset": {"uri": "sklearn://diabetes", "target": "target", "seed": 1},
        "estimator": {"className": "sklearn.linear_model.Ridge"},
    }
    run = run_in_process(cfg, tmp_path, capsys)
    assert run.returncode == 0, run.stderr
    record = run.result()["featureImportance"]
    assert record["scoring"] == "r2"
    assert record["baseline"] == pytest.approx(run.result()["metrics"]["r2"])
    assert len(record["features"]) == 10


@pytest.mark.parametrize(
    ("columns", "repeats", "budget", "expected"),
    [(4, 5, 500, 5), (100, 5, 500, 5), (101, 5, 500, 4), (400, 5, 500, 2), (5000, 5, 500, 2), (10, 50, 100, 10)],
)
def test_repeats_shrink_on_wide_tables_but_never_below_two(
    columns: int, repeats: int, budget: int, expected: int
) -> None:
    settings = FeatureImportanceSpec(repeats=repeats, max_permutations=budget)
    assert repeats_for(columns, settings) == expected
