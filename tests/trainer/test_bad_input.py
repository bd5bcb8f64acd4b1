"""Bad input fails fast: exit 1, one line ``modelops train: error: …``, the same error in
the termination message, and nothing left that looks like a result.

Most cases call ``modelops.train.cli.main`` in this process (the real code path, without
paying scikit-learn's import per case); the usage and early config errors also run as a
subprocess to pin the exit codes of the real command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trainer.conftest import Run, assert_no_result, config_for, run_in_process, run_trainer

RF = "sklearn.ensemble.RandomForestClassifier"
RF_PARAMS = (
    "bootstrap, ccp_alpha, class_weight, criterion, max_depth, max_features, max_leaf_nodes, max_samples, "
    "min_impurity_decrease, min_samples_leaf, min_samples_split, min_weight_fraction_leaf, monotonic_cst, "
    "n_estimators, n_jobs, oob_score, random_state, verbose, warm_start"
)
IRIS_COLUMNS = "sepal length (cm), sepal width (cm), petal length (cm), petal width (cm), target"


def assert_failed(run: Run, message: str) -> None:
    assert run.returncode == 1, run.stdout
    assert run.stderr == f"modelops train: error: {message}\n"
    assert run.termination == {"ok": False, "error": message}
    assert_no_result(run)


def iris(**overrides: Any) -> dict[str, Any]:
    return config_for("sklearn://iris", **{"estimator": {"className": RF, "params": {"n_estimators": 5}}, **overrides})


def seed_stale_result(tmp_path: Path, name: str = "run") -> None:
    """A previous run's files in the output directory: a failed run must remove them."""
    out = tmp_path / name / "out"
    out.mkdir(parents=True)
    (out / "result.json").write_text("{}")
    (out / "model.skops").write_bytes(b"old")
    (out / "model.joblib").write_bytes(b"older")  # what a trainer before skops artifacts wrote


CASES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown estimator": (
        iris(estimator={"className": "sklearn.ensemble.RandomForrestClassifier"}),
        "config estimator.className: estimator 'sklearn.ensemble.RandomForrestClassifier' is not in the "
        "allow-list; allowed are e.g. sklearn.ensemble.RandomForestClassifier, "
        "sklearn.ensemble.AdaBoostClassifier, sklearn.linear_model.RidgeClassifier "
        "(41 in modelops.train.estimators.ALLOWED_ESTIMATORS)",
    ),
    "arbitrary import": (
        iris(estimator={"className": "os.system"}),
        "config estimator.className: estimator 'os.system' is not in the allow-list; allowed are e.g. "
        "sklearn.ensemble.RandomForestClassifier, sklearn.linear_model.LogisticRegression, "
        "sklearn.ensemble.HistGradientBoostingRegressor, sklearn.linear_model.Ridge "
        "(41 in modelops.train.estimators.ALLOWED_ESTIMATORS)",
    ),
    "bare class name": (
        iris(estimator={"className": "RandomForestClassifier"}),
        "config estimator.className: estimator 'RandomForestClassifier' is not in the allow-list; "
        "did you mean sklearn.ensemble.RandomForestClassifier?",
    ),
    "unknown param": (
        iris(estimator={"className": RF, "params": {"n_estimator": 5}}),
        "config estimator.params.n_estimator: unknown parameter 'n_estimator' for RandomForestClassifier "
        f"(did you mean 'n_estimators'?); valid parameters are: {RF_PARAMS}",
    ),
    "bad param value": (
        iris(estimator={"className": RF, "params": {"n_estimators": -1}}),
        "config estimator.params: The 'n_estimators' parameter of RandomForestClassifier must be an int in "
        "the range [1, inf). Got -1 instead.",
    ),
    "unknown sweep param": (
        iris(sweep={"parameters": {"max_dept": [1, 2]}}),
        "config sweep.parameters.max_dept: unknown parameter 'max_dept' for RandomForestClassifier "
        f"(did you mean 'max_depth'?); valid parameters are: {RF_PARAMS}",
    ),
    "missing target": (
        # Counted, never listed: until the target is found, the first line may be any file's.
        iris(dataset={"target": "species"}),
        "target column 'species' not found among the 5 columns of dataset sklearn://iris",
    ),
    "missing feature": (
        iris(dataset={"features": ["sepal length (cm)", "petal size"]}),
        f"feature column 'petal size' not found in dataset sklearn://iris; columns are: {IRIS_COLUMNS}",
    ),
    "task mismatch": (
        iris(task="regression"),
        f"config task: 'regression' does not match {RF}, a classification estimator",
    ),
    "bad testSize": (
        iris(dataset={"testSize": 2}),
        "config dataset.testSize: must be a number between 0 and 1 (exclusive), got 2",
    ),
    "unknown config field": (
        iris(dataset={"targt": "target"}),
        "config dataset.targt: unknown field; expected one of categoricalFeatures, features, format, s3, "
        "seed, target, testSize, uri",
    ),
    "missing dataset": (
        {"estimator": {"className": RF}},
        "config dataset: is required",
    ),
    "a fetch_ dataset": (
        iris(dataset={"uri": "sklearn://fetch_openml"}),
        "unknown dataset 'sklearn://fetch_openml' (the fetch_* datasets download from the internet); "
        "bundled with scikit-learn are: iris, wine, breast_cancer, digits, diabetes, linnerud",
    ),
    "unsupported scheme": (
        iris(dataset={"uri": "ftp://example/data.csv"}),
        "unsupported dataset URI 'ftp://example/data.csv'; use sklearn://, file:// (or an absolute path), "
        "pvc://, https://, http:// or s3://",
    ),
    "relative file URI": (
        iris(dataset={"uri": "file://data/table.csv"}),
        "dataset URI 'file://data/table.csv' is a relative file:// URI ('data' is read as a host); file URIs "
        "must be absolute: file:///absolute/path",
    ),
    "relative path": (
        iris(dataset={"uri": "data/table.csv"}),
        "dataset URI 'data/table.csv' is a relative path; give an absolute path or a file:///absolute/path URI",
    ),
    "file outside the roots": (
        iris(dataset={"uri": "file:///etc/passwd", "format": "csv"}),
        "dataset file:///etc/passwd is outside the directories the trainer may read ({roots}); "
        "MODELOPS_FILE_ROOTS (':'-separated) sets them",
    ),
    "plain path outside the roots": (
        iris(dataset={"uri": "/var/run/secrets/kubernetes.io/serviceaccount/token", "format": "csv"}),
        "dataset /var/run/secrets/kubernetes.io/serviceaccount/token is outside the directories the trainer may "
        "read ({roots}); MODELOPS_FILE_ROOTS (':'-separated) sets them",
    ),
    "pvc claim that climbs": (
        iris(dataset={"uri": "pvc://../etc/passwd", "format": "csv"}),
        "dataset URI 'pvc://../etc/passwd': claim '..' is not a valid PersistentVolumeClaim name (a DNS-1123 "
        "subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)",
    ),
    "pvc path that climbs": (
        iris(dataset={"uri": "pvc://data/x/../../other/t.csv"}),
        "dataset URI 'pvc://data/x/../../other/t.csv': path 'x/../../other/t.csv' must be a relative path "
        "without '..'",
    ),
    "region pasted into a host": (
        iris(dataset={"uri": "s3://bucket/t.csv", "s3": {"region": "evil.example.com/x?"}}),
        "config dataset.s3.region: 'evil.example.com/x?' is not an AWS region name (e.g. us-east-1, eu-central-2)",
    ),
    "plain http endpoint": (
        iris(dataset={"uri": "s3://bucket/t.csv", "s3": {"endpointUrl": "http://collector.example.com"}}),
        "config dataset.s3.endpointUrl: 'http://collector.example.com' must use https (plain http only to a "
        "loopback address, or to an endpoint the operator's MODELOPS_S3_ENDPOINTS allows)",
    ),
    "endpoint with user info": (
        iris(artifactStore={"s3": {"endpointUrl": "https://user:pw@minio.example.com"}}),
        "config artifactStore.s3.endpointUrl: 'https://user:pw@minio.example.com' must not carry user info, a "
        "query or a fragment",
    ),
    "bad imputation strategy": (
        iris(estimator={"className": RF, "params": {"n_estimators": 5},
                        "preprocessing": {"impute": {"numeric": "average"}}}),
        "config estimator.preprocessing.impute.numeric: must be one of auto, none, mean, median, most_frequent, "
        "constant, got 'average'",
    ),
    "imputing an unknown column": (
        iris(estimator={"className": RF, "params": {"n_estimators": 5},
                        "preprocessing": {"impute": {"columns": {"petal size": "mean"}}}}),
        "config estimator.preprocessing.impute.columns.petal size: not a feature column",
    ),
    "bad maxCategories": (
        iris(estimator={"className": RF, "params": {"n_estimators": 5}, "preprocessing": {"maxCategories": 1}}),
        "config estimator.preprocessing.maxCategories: must be an integer in [2, 1000], got 1",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_config_and_data_errors(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, message = CASES[case]
    seed_stale_result(tmp_path)
    run = run_in_process(config, tmp_path, capsys)
    assert_failed(run, message.replace("{roots}", str(tmp_path)))


@pytest.fixture
def files(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    frame = pd.DataFrame({
        "a": [1.0, np.nan, 3.0, 4.0] * 10,
        "b": [1.0, 2.0, 3.0, np.nan] * 10,
        "c": ["x", "y", None, "x"] * 10,
        "y": [0, 1] * 20,
    })
    frame.to_csv(data / "nan.csv", index=False)
    (data / "header-only.csv").write_text("a,b,y\n")
    (data / "empty.csv").write_text("")
    (data / "garbage.parquet").write_bytes(b"not parquet at all")
    (data / "data.dat").write_text("a,y\n1,0\n")
    return data


def test_file_errors(files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(uri: str, name: str, **kw: Any) -> Run:
        config = config_for(uri, target="y", **kw)
        seed_stale_result(tmp_path, name)
        return run_in_process(config, tmp_path, capsys, name=name)

    uri = (files / "nan.csv").as_uri()
    no_imputation = {"className": "sklearn.linear_model.LogisticRegression",
                     "preprocessing": {"impute": {"numeric": "none"}}}  # fmt: skip
    assert_failed(
        run(uri, "nan", estimator=no_imputation),
        "columns with missing values (NaN) that LogisticRegression cannot take: a, b; set "
        "estimator.preprocessing.impute (e.g. numeric: median, or per column), or use an estimator that accepts "
        "NaN (e.g. HistGradientBoostingClassifier/Regressor, RandomForest*, DecisionTree*)",
    )
    # By default a linear model gets the median of each numeric column with gaps, and says so.
    imputed = run(uri, "nan-imputed")
    assert imputed.returncode == 0, imputed.stderr
    assert "imputing missing values in 2 columns: a, b" in imputed.stdout
    columns = {c["name"]: c for c in imputed.result()["preprocessing"]["columns"]}
    assert (columns["a"]["impute"], columns["b"]["impute"], columns["c"]["impute"]) == ("median", "median", "none")
    assert columns["a"]["missing"] > 0
    assert columns["c"]["encoding"] == "one-hot"
    # An estimator that takes NaN trains on the same file (and the categorical NaN is a category).
    ok = run(uri, "nan-ok", estimator={"className": "sklearn.ensemble.HistGradientBoostingClassifier",
                                       "params": {"max_iter": 5}})
    assert ok.returncode == 0, ok.stderr
    colour = ok.result()["referenceStats"]["features"][2]
    assert colour["categories"] == ["x", "y", "__other__"]

    assert_failed(run((files / "header-only.csv").as_uri(), "header"),
                  f"dataset {(files / 'header-only.csv').as_uri()} has no rows")
    assert_failed(run((files / "empty.csv").as_uri(), "empty"), f"dataset {(files / 'empty.csv').as_uri()} is empty")
    missing = files / "absent.csv"
    assert_failed(run(missing.as_uri(), "absent"), f"cannot read dataset {missing.as_uri()}: no such file {missing}")
    assert_failed(run(files.as_uri() + "/", "dir", dataset={"format": "csv"}),
                  f"cannot read dataset {files.as_uri()}/: {files} is a directory")
    garbage = (files / "garbage.parquet").as_uri()
    failed = run(garbage, "garbage")
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"modelops train: error: cannot parse dataset {garbage} as parquet (")
    assert failed.stderr.count("\n") == 1
    assert_no_result(failed)
    dat = (files / "data.dat").as_uri()
    assert_failed(run(dat, "dat"),
                  f"cannot tell the format of dataset {dat!r} from its name; set dataset.format to csv or parquet")


def test_http_404(tmp_path: Path, http_root: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, base = http_root
    seed_stale_result(tmp_path)
    run = run_in_process(config_for(f"{base}/nope.csv", target="label"), tmp_path, capsys)
    assert_failed(run, f"GET {base}/nope.csv answered HTTP 404 File not found")


def test_s3_missing_key(
    tmp_path: Path, s3_endpoint: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3 = pytest.importorskip("boto3")
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="k",
                 aws_secret_access_key="s").create_bucket(Bucket="empty-bucket")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    run = run_in_process(config_for("s3://empty-bucket/absent.csv", target="y"), tmp_path, capsys)
    assert_failed(run, "GET s3://empty-bucket/absent.csv answered HTTP 404 NoSuchKey")
    run = run_in_process(config_for("s3://no-such-bucket/a.csv", target="y"), tmp_path, capsys, name="nobucket")
    assert_failed(run, "GET s3://no-such-bucket/a.csv answered HTTP 404 NoSuchBucket")


def test_sweep_trial_index_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = iris(sweep={"parameters": {"max_depth": [1, 2]}})
    assert_failed(run_in_process(sweep, tmp_path, capsys, "--trial-index", "2"),
                  "trial index 2 is out of range; the sweep has 2 trials (0..1)")
    assert_failed(run_in_process(iris(), tmp_path, capsys, "--trial-index", "0", name="nosweep"),
                  "--trial-index was given but the config has no sweep")


def test_target_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=40), "y": rng.normal(size=40), "name": ["a", "b"] * 20})
    frame.loc[3, "name"] = None
    path = tmp_path / "continuous.csv"
    frame.to_csv(path, index=False)
    config = config_for(path.as_uri(), target="y", dataset={"features": ["x"]})
    assert_failed(run_in_process(config, tmp_path, capsys, name="continuous"),
                  "target column 'y' has non-integer float values, not class labels, but "
                  "sklearn.linear_model.LogisticRegression is a classifier; use a regressor")
    ridge = {"className": "sklearn.linear_model.Ridge", "params": {}}
    config = config_for(path.as_uri(), target="name", dataset={"features": ["x"]}, estimator=ridge)
    assert_failed(run_in_process(config, tmp_path, capsys, name="nan-target"),
                  "target column 'name' has 1 missing values (NaN); drop those rows")
    frame.loc[3, "name"] = "a"
    frame.to_csv(path, index=False)
    assert_failed(run_in_process(config, tmp_path, capsys, name="string-target"),
                  "target column 'name' is not numeric (dtype str) but the task is regression")


def test_subprocess_exit_codes(tmp_path: Path) -> None:
    # Wrong usage: argparse's exit 2, its usage line on stderr.
    usage = run_trainer(iris(), tmp_path, "--trial-index", "x", name="usage")
    assert usage.returncode == 2
    assert "usage: modelops train" in usage.stderr
    assert "argument --trial-index: invalid int value: 'x'" in usage.stderr
    # Bad JSON: exit 1 with the position.
    bad = run_trainer('{"dataset": {"uri": "x",}}', tmp_path, name="json")
    config_path = tmp_path / "json" / "run.json"
    assert_failed(bad, f"config {config_path} is not valid JSON: Expecting property name enclosed in double "
                       "quotes at line 1 column 25")
    # Unknown estimator from the real command, failing before scikit-learn is imported.
    unknown = run_trainer(iris(estimator={"className": "os.system"}), tmp_path, name="estimator")
    assert_failed(unknown, CASES["arbitrary import"][1])
    assert json.loads(unknown.termination_raw or "") == {"ok": False, "error": CASES["arbitrary import"][1]}
