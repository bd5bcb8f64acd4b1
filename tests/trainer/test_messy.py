"""Messy tables a new user brings (tests/messytables.py): gaps, text, dates, identifiers, wide.

Given the 5,000-row churn export with missing numbers, two text columns, a date column and an
identifier, when a user trains on it as it is, then training refuses the date and the identifier
in one line naming both and saying what to do; when they leave those two out, a linear model
trains with the gaps imputed, records what was done to every column, and a real ``modelops serve``
answers rows of the table while ``modelops drift`` finds no drift against the training data.
The regression table trains too. Sweeps run locally trial after trial with a summary table;
plain absolute paths are files; files outside the trainer's roots, and file content, never come
back in a message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import messytables
from modelops.train import output
from trainer.conftest import SOURCE_ROOT, config_for, run_in_process, run_trainer

FEATURES = ["age", "income", "tenure_months", "num_products", "plan", "region"]


def churn_config(path: Path, **dataset: Any) -> dict[str, Any]:
    return config_for(
        str(path), target="churned", model="churn", dataset=dataset,
        estimator={"className": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 1000},
                   "preprocessing": {"scaleNumeric": True}},
    )  # fmt: skip


@pytest.fixture(scope="module")
def churn_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return messytables.write_csv(messytables.customers(), tmp_path_factory.mktemp("messy") / "customers.csv")


def test_dates_and_identifiers_are_refused_in_one_line_naming_both(
    churn_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_in_process(churn_config(churn_csv), churn_csv.parent, capsys, name=tmp_path.name)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1
    assert "feature column 'customer_id' looks like an identifier (3750 distinct values in 3750 rows)" in run.stderr
    assert "feature column 'signup_date' holds dates" in run.stderr
    assert "leave it out of dataset.features" in run.stderr


def test_the_churn_table_trains_with_gaps_imputed_serves_and_does_not_drift(
    churn_csv: Path, tmp_path: Path
) -> None:
    from serve.conftest import Server

    config = churn_config(churn_csv, features=FEATURES)
    config["estimator"]["preprocessing"]["impute"] = {"indicators": True, "columns": {"region": "most_frequent"}}
    run = run_trainer(config, churn_csv.parent, name=tmp_path.name)
    assert run.returncode == 0, run.stderr
    result = run.result()
    assert result["metrics"]["roc_auc"] > 0.75  # the target depends on age, tenure, products and plan
    columns = {c["name"]: c for c in result["preprocessing"]["columns"]}
    assert columns["age"] == {"name": "age", "kind": "numeric", "missing": columns["age"]["missing"],
                              "distinct": 72, "impute": "median", "indicator": True, "scaled": True,
                              "encoding": "none"}  # fmt: skip
    assert 250 < columns["age"]["missing"] < 400  # 8 % of 3,750 training rows
    assert columns["tenure_months"]["impute"] == "none"
    assert (columns["region"]["impute"], columns["region"]["indicator"]) == ("most_frequent", True)
    assert (columns["plan"]["impute"], columns["plan"]["encoding"], columns["plan"]["categories"]) == (
        "none", "one-hot", 3,
    )  # fmt: skip
    assert result["preprocessing"]["impute"]["columns"] == {"region": "most_frequent"}
    assert run.termination is not None
    assert run.termination["columns"] == result["preprocessing"]["columns"]

    table = pd.read_csv(churn_csv)
    complete = table[FEATURES].dropna().head(50)
    request = {"inputs": [
        {"name": name, "shape": [len(complete)], "datatype": "BYTES" if complete[name].dtype.kind not in "fiu"
         else "FP64", "data": [str(v) if complete[name].dtype.kind not in "fiu" else float(v)
                               for v in complete[name]]}
        for name in FEATURES
    ]}  # fmt: skip
    server = Server(run.output)
    try:
        server.wait_ready(60)
        answer = server.post("/v2/models/churn/infer", json=request)
        assert answer.status_code == 200, answer.text
        assert set(answer.json()["outputs"][0]["data"]) <= {"yes", "no"}
    finally:
        server.close()
    drift = subprocess.run(
        [sys.executable, "-m", "modelops", "drift", "--reference", str(run.output / "result.json"),
         "--current", str(churn_csv), "--features", ",".join(FEATURES)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}, timeout=120,
    )  # fmt: skip
    assert drift.returncode == 0, drift.stdout + drift.stderr
    assert "drift in 0 of 6 features" in drift.stdout


def test_the_regression_table_trains_with_a_date_declared_as_categories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = messytables.write_csv(messytables.spend(), tmp_path / "spend.csv")
    features = [*FEATURES, "signup_date"]
    config = config_for(
        str(data), target="monthly_spend", model="spend",
        dataset={"features": features, "categoricalFeatures": ["plan", "region", "signup_date"]},
        estimator={"className": "sklearn.linear_model.Ridge", "params": {}},
    )  # fmt: skip
    run = run_in_process(config, tmp_path, capsys)
    assert run.returncode == 0, run.stderr
    result = run.result()
    assert result["metrics"]["r2"] > 0.8
    signup = next(c for c in result["preprocessing"]["columns"] if c["name"] == "signup_date")
    # Declared categorical: kept, its long tail (thousands of days) bucketed into one column.
    assert (signup["encoding"], signup["categories"]) == ("one-hot, long tail bucketed", 49)
    assert signup["distinct"] > 1000


def test_high_cardinality_declared_categories_are_bucketed_not_exploded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(4)
    rows = 3000
    city = rng.choice([f"city-{i}" for i in range(400)], rows)
    table = pd.DataFrame({"x": rng.normal(size=rows), "city": city, "y": rng.choice(["yes", "no"], rows)})
    path = tmp_path / "cities.csv"
    table.to_csv(path, index=False)
    config = config_for(str(path), target="y", dataset={"categoricalFeatures": ["city"]},
                        estimator={"preprocessing": {"maxCategories": 20}})  # fmt: skip
    run = run_in_process(config, tmp_path, capsys)
    assert run.returncode == 0, run.stderr
    import skops.io

    artifact = run.output / "model.skops"
    pipeline = skops.io.load(artifact, trusted=skops.io.get_untrusted_types(file=artifact))
    assert pipeline.named_steps["preprocess"].transform(table[["x", "city"]].head(3)).shape[1] == 1 + 20
    city_plan = next(c for c in run.result()["preprocessing"]["columns"] if c["name"] == "city")
    assert city_plan["distinct"] > 390
    assert city_plan["categories"] == 19
    # Undeclared, 400 cities in 2,400 rows is not an identifier: bucketed the same way.
    auto = run_in_process(config_for(str(path), target="y", estimator={"preprocessing": {"maxCategories": 20}}),
                          tmp_path, capsys, name="auto")  # fmt: skip
    assert auto.returncode == 0, auto.stderr


def test_a_sweep_without_a_trial_index_runs_every_trial_here_and_prints_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_for("sklearn://iris", estimator={"className": "sklearn.tree.DecisionTreeClassifier",
                                                     "params": {}, "preprocessing": None},
                        sweep={"parameters": {"max_depth": [1, 3]}, "metric": "accuracy"})  # fmt: skip
    run = run_in_process(config, tmp_path, capsys)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert "modelops train: trial 1 of 2 (index 0): max_depth=1; 0.0s elapsed" in lines
    assert any(line.startswith("modelops train: trial 2 of 2 (index 1): max_depth=3; ") for line in lines)
    header = lines.index("modelops train: trial  params       accuracy  time")
    assert lines[header + 1].split()[2:5] == ["0", "max_depth=1", lines[header + 1].split()[4]]
    assert lines[header + 2].split()[-1] == "best"
    assert (run.output / "trial-0" / "result.json").exists()
    assert (run.output / "trial-1" / "result.json").exists()
    assert run.termination is not None
    assert run.termination["trial"]["index"] == 1
    assert [t["index"] for t in run.termination["sweep"]["trials"]] == [0, 1]
    assert run.termination["sweep"]["best"] == 1


def test_a_plain_absolute_path_is_a_file_and_progress_shows_while_fitting(tmp_path: Path) -> None:
    data = messytables.write_csv(messytables.wide(rows=300, features=8), tmp_path / "wide.csv")
    config = config_for(str(data), target="label",
                        estimator={"className": "sklearn.ensemble.RandomForestClassifier",
                                   "params": {"n_estimators": 300}, "preprocessing": None})  # fmt: skip
    run = run_trainer(config, tmp_path, env={"MODELOPS_PROGRESS_SECONDS": "0.1"})
    assert run.returncode == 0, run.stderr
    assert run.result()["dataset"]["uri"] == str(data)
    lines = run.stdout.splitlines()
    start = lines.index("modelops train: fitting sklearn.ensemble.RandomForestClassifier on 225 rows, 8 features")
    assert any(line.startswith("modelops train: still fitting") and line.endswith("elapsed") for line in lines[start:])
    assert any(line.startswith(lines[start] + ": done in ") for line in lines[start:])


def test_a_wide_result_goes_whole_into_the_log_when_the_message_cannot_hold_it(tmp_path: Path) -> None:
    data = messytables.write_csv(messytables.wide(rows=300, features=200), tmp_path / "wide.csv")
    config = config_for(str(data), target="label",
                        estimator={"className": "sklearn.linear_model.LogisticRegression", "params": {}})  # fmt: skip
    run = run_trainer(config, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.termination_raw is not None
    assert len(run.termination_raw.encode()) <= 4096
    assert run.termination is not None
    assert run.termination["truncated"] is True
    assert "referenceStats" not in run.termination
    lines = [line for line in run.stdout.splitlines() if line.startswith(output.RESULT_LOG_PREFIX)]
    assert len(lines) == 1
    from modelops.logic.training import result_from_log

    whole = result_from_log(run.stdout, run.termination["resultSha256"])
    assert whole == run.result()
    assert len(whole["referenceStats"]["features"]) == 200


def test_file_content_never_comes_back_in_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "token.csv"
    secret.write_text("eyJhbGciOiJSUzI1NiIsImtpZCI6InNlY3JldC10b2tlbiJ9\nsecond-line-of-the-secret\n")
    run = run_in_process(config_for(str(secret), target="label"), tmp_path, capsys)
    assert run.returncode == 1
    assert "eyJhbGci" not in run.stderr
    assert "eyJhbGci" not in (run.termination_raw or "")
    assert run.stderr == (
        f"modelops train: error: target column 'label' not found among the 1 columns of dataset {secret}\n"
    )
    # A symlink inside a root that points outside it is outside.
    link = tmp_path / "passwd.csv"
    link.symlink_to("/etc/passwd")
    escaped = run_in_process(config_for(link.as_uri(), target="label"), tmp_path, capsys, name="link")
    assert escaped.returncode == 1
    assert "is outside the directories the trainer may read" in escaped.stderr
    assert "root:" not in escaped.stderr
    broken = tmp_path / "broken.parquet"
    broken.write_text("PAR1 secret-words-in-a-broken-file")
    failed = run_in_process(config_for(str(broken), target="label"), tmp_path, capsys, name="broken")
    assert failed.returncode == 1
    assert "secret-words" not in failed.stderr, failed.stderr


def test_the_run_config_of_the_readme_style_example_round_trips(tmp_path: Path) -> None:
    # The imputation settings the result records are the run config's own spelling, defaults filled in.
    data = messytables.write_csv(messytables.customers(rows=400), tmp_path / "c.csv")
    config = churn_config(data, features=FEATURES)
    run = run_trainer(config, tmp_path)
    assert run.returncode == 0, run.stderr
    recorded = run.result()["preprocessing"]
    again = json.loads(json.dumps(config))
    again["estimator"]["preprocessing"] = {k: v for k, v in recorded.items() if k != "columns"}
    rerun = run_trainer(again, tmp_path, name="again")
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.result()["artifact"]["sha256"] == run.result()["artifact"]["sha256"]
