"""``modelops train`` as a real subprocess: bundled datasets, files, HTTP, S3, PVC, sweeps.

Each test runs ``python -m modelops train`` and checks the output contract of
``docs/contracts.md``: the artifact and its sha256, ``result.json``, the termination message.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trainer.conftest import Run, config_for, run_trainer


def load_skops(path: Path) -> Any:
    """A skops artifact loaded by skops alone, trusting what the file names (the test wrote it)."""
    import skops.io

    return skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_success(run: Run, task: str, trial: int | None = None) -> dict[str, Any]:
    """The common output contract of a successful run; returns result.json."""
    assert run.returncode == 0, run.stderr
    directory = run.output / f"trial-{trial}" if trial is not None else run.output
    assert sorted(p.name for p in directory.iterdir() if p.is_file()) == ["model.skops", "result.json"]
    result = run.result(trial)
    model = directory / "model.skops"
    assert result["resultVersion"] == 1
    assert result["task"] == task
    assert result["artifact"]["sha256"] == sha256(model)
    assert result["artifact"]["sizeBytes"] == model.stat().st_size
    assert result["artifact"]["path"] == "model.skops"
    assert result["artifact"]["format"] == "skops"
    assert result["framework"]["name"] == "scikit-learn"
    assert result["dataset"]["rows"] == result["dataset"]["trainRows"] + result["dataset"]["testRows"]
    expected = {"accuracy", "precision", "recall", "f1"} if task == "classification" else {"rmse", "mae", "r2"}
    assert expected <= set(result["metrics"])
    stats = result["referenceStats"]
    assert stats["sampleSize"] == result["dataset"]["trainRows"]
    assert [f["name"] for f in stats["features"]] == [i["name"] for i in result["signature"]["inputs"]]
    for feature in stats["features"]:
        if feature["kind"] == "numeric":
            assert len(feature["edges"]) == len(feature["counts"]) + 1
            assert feature["edges"] == sorted(feature["edges"])
        else:
            assert feature["categories"][-1] == "__other__"
            assert len(feature["categories"]) == len(feature["counts"]) <= 51
        assert sum(feature["counts"]) <= stats["sampleSize"]
    term = run.termination
    assert term is not None
    assert term["ok"] is True
    assert len(run.termination_raw or "") <= 4096
    assert term["artifact"] == {k: result["artifact"][k] for k in ("uri", "sha256", "sizeBytes", "format")}
    assert term["dataset"] == {k: result["dataset"][k] for k in ("uri", "sha256")}
    assert term["metrics"] == result["metrics"]
    assert term["resultFile"].endswith("/result.json")
    assert term["trial"] == result["trial"]
    return result


def predict_with_artifact(run: Run, frame: pd.DataFrame, trial: int | None = None) -> Any:
    directory = run.output / f"trial-{trial}" if trial is not None else run.output
    return load_skops(directory / "model.skops").predict(frame)


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    config = config_for(
        "sklearn://iris",
        estimator={"className": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 15}},
        artifactUri="pvc://models/iris/iris-rf",
        run={"name": "iris-rf", "namespace": "ml"},
    )
    return run_trainer(config, tmp_path_factory.mktemp("iris"))


def test_iris_random_forest(iris_run: Run) -> None:
    result = check_success(iris_run, "classification")
    assert result["model"] == "test-model"
    assert result["artifact"]["uri"] == "pvc://models/iris/iris-rf/model.skops"
    assert iris_run.termination is not None
    assert iris_run.termination["resultFile"] == "pvc://models/iris/iris-rf/result.json"
    assert result["dataset"]["rows"] == 150
    assert result["dataset"]["testRows"] == 38
    assert result["signature"]["classes"] == [0, 1, 2]
    assert result["signature"]["outputs"] == [{"name": "predict", "datatype": "INT64"}]
    # A random forest takes missing values (scikit-learn >= 1.4): the trainer asked the fitted model.
    assert result["signature"]["inputs"][0] == {"name": "sepal length (cm)", "datatype": "FP64", "acceptsMissing": True}
    assert result["estimator"]["params"] == {"n_estimators": 15, "random_state": 7}
    assert result["lineage"] == {"run": {"name": "iris-rf", "namespace": "ml"}, "params": result["estimator"]["params"]}
    assert result["trial"] is None
    assert result["metrics"]["accuracy"] > 0.8
    assert 0 < result["metrics"]["roc_auc"] <= 1
    # The canonical serialisation of sklearn://iris is its frame as CSV.
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    canonical = frame.to_csv(index=False, lineterminator="\n").encode()
    assert result["dataset"]["sha256"] == hashlib.sha256(canonical).hexdigest()
    # The artifact is the fitted Pipeline, taking the signature's named columns.
    predictions = predict_with_artifact(iris_run, frame.drop(columns="target").head(5))
    assert list(predictions) == [0, 0, 0, 0, 0]


def test_deterministic_artifact(iris_run: Run, tmp_path: Path) -> None:
    config = json.loads((iris_run.output.parent / "run.json").read_text())
    again = run_trainer(config, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.result()["artifact"]["sha256"] == iris_run.result()["artifact"]["sha256"]
    assert (again.output / "model.skops").read_bytes() == (iris_run.output / "model.skops").read_bytes()
    assert again.result()["metrics"] == iris_run.result()["metrics"]


@pytest.mark.parametrize(
    ("dataset", "class_name", "params", "task"),
    [
        ("breast_cancer", "sklearn.linear_model.LogisticRegression", {"max_iter": 1000}, "classification"),
        ("wine", "sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20}, "classification"),
        ("diabetes", "sklearn.linear_model.Ridge", {"alpha": 0.5}, "regression"),
    ],
)
def test_bundled_datasets(tmp_path: Path, dataset: str, class_name: str, params: dict[str, Any], task: str) -> None:
    config = config_for(f"sklearn://{dataset}", estimator={"className": class_name, "params": params})
    run = run_trainer(config, tmp_path)
    result = check_success(run, task)
    if dataset == "breast_cancer":  # binary: positive class 1, roc_auc from predict_proba
        assert result["signature"]["classes"] == [0, 1]
        assert result["metrics"]["roc_auc"] > 0.95
    if dataset == "wine":
        assert result["metrics"]["f1"] > 0.8
        assert "roc_auc" in result["metrics"]
    if task == "regression":
        assert result["signature"]["outputs"] == [{"name": "predict", "datatype": "FP64"}]
        assert "classes" not in result["signature"]
        assert result["metrics"]["r2"] > 0.2
        assert result["estimator"]["params"] == {"alpha": 0.5, "random_state": 7}


def test_digits_termination_message_fits(tmp_path: Path) -> None:
    """64 features and a long artifact URI: the message stays valid JSON of at most 4 KiB.

    Without feature importance, which would not fit beside the statistics of 64 columns
    (tests/trainer/test_importance.py shows what happens then)."""
    config = config_for(
        "sklearn://digits",
        estimator={"className": "sklearn.naive_bayes.GaussianNB", "params": {}},
        artifactUri="pvc://models/" + "very-long-prefix/" * 20 + "digits",
        evaluation={"featureImportance": {"enabled": False}},
    )
    run = run_trainer(config, tmp_path)
    result = check_success(run, "classification")
    assert len(result["signature"]["inputs"]) == 64
    assert len(result["referenceStats"]["features"]) == 64
    # 64 features of reference statistics travel in the termination message, compressed.
    assert run.termination_raw is not None
    assert len(run.termination_raw.encode()) <= 4096
    assert run.termination is not None
    assert run.termination["referenceStats"] == result["referenceStats"]
    assert "truncated" not in run.termination
    pixel = next(f for f in result["referenceStats"]["features"] if f["name"] == "pixel_0_0")
    # A constant column gets the bins x < 0, x == 0, x > 0, strictly increasing as the server requires.
    below = float(np.nextafter(0.0, -1.0))
    assert pixel == {"name": "pixel_0_0", "kind": "numeric", "edges": [2 * below, below, 0, -below],
                     "counts": [0, 1347, 0]}  # fmt: skip
    assert result["signature"]["inputs"][0]["datatype"] == "FP64"


def make_table(rows: int = 240, seed: int = 3) -> pd.DataFrame:
    """A binary classification table with a categorical (string) and an integer column."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], size=rows, p=[0.5, 0.3, 0.2])
    x1 = rng.normal(size=rows)
    count = rng.integers(0, 10, size=rows)
    score = x1 + np.where(colour == "red", 1.5, -1.0) + 0.1 * count + rng.normal(scale=0.5, size=rows)
    return pd.DataFrame(
        {"x1": x1, "count": count, "colour": colour, "label": np.where(score > 0, "yes", "no")}
    )


def check_table_result(result: dict[str, Any]) -> None:
    # LogisticRegression refuses NaN; the one-hot encoder has room for a missing colour.
    assert result["signature"]["inputs"] == [
        {"name": "x1", "datatype": "FP64", "acceptsMissing": False},
        {"name": "count", "datatype": "INT64", "acceptsMissing": False},
        {"name": "colour", "datatype": "BYTES", "categorical": True, "categories": ["blue", "green", "red"],
         "acceptsMissing": True},
    ]
    assert result["signature"]["classes"] == ["no", "yes"]
    assert result["signature"]["outputs"] == [{"name": "predict", "datatype": "BYTES"}]
    colour = result["referenceStats"]["features"][2]
    assert colour["kind"] == "categorical"
    assert colour["categories"] == ["red", "green", "blue", "__other__"]
    assert sum(colour["counts"]) == result["referenceStats"]["sampleSize"]
    assert colour["counts"][-1] == 0
    assert result["metrics"]["accuracy"] > 0.75


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_file_uri_csv_and_parquet(tmp_path: Path, fmt: str) -> None:
    table = make_table()
    path = tmp_path / f"table.{fmt}"
    if fmt == "csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)
    run = run_trainer(config_for(path.as_uri(), target="label"), tmp_path)
    result = check_success(run, "classification")
    assert result["dataset"]["sha256"] == sha256(path)
    check_table_result(result)
    # Unseen categories are ignored by the one-hot encoder, not an error.
    unseen = pd.DataFrame({"x1": [2.0, -2.0], "count": [1, 1], "colour": ["purple", "red"]})
    assert set(predict_with_artifact(run, unseen)) <= {"yes", "no"}


def test_pvc_uri(tmp_path: Path) -> None:
    root = tmp_path / "pvc-root"
    (root / "datasets" / "tables").mkdir(parents=True)
    path = root / "datasets" / "tables" / "table.csv"
    make_table().to_csv(path, index=False)
    config = config_for("pvc://datasets/tables/table.csv", target="label")
    run = run_trainer(config, tmp_path, env={"MODELOPS_PVC_ROOT": str(root)})
    result = check_success(run, "classification")
    assert result["dataset"]["uri"] == "pvc://datasets/tables/table.csv"
    assert result["dataset"]["sha256"] == sha256(path)


def test_http_uri(tmp_path: Path, http_root: tuple[Path, str]) -> None:
    root, base = http_root
    make_table().to_parquet(root / "table.parquet", index=False)
    run = run_trainer(config_for(f"{base}/table.parquet", target="label"), tmp_path)
    result = check_success(run, "classification")
    assert result["dataset"]["sha256"] == sha256(root / "table.parquet")
    check_table_result(result)


def test_s3_uri(tmp_path: Path, s3_endpoint: str) -> None:
    boto3 = pytest.importorskip("boto3")
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])
    client.create_bucket(Bucket="datasets")
    body = make_table().to_csv(index=False).encode()
    client.put_object(Bucket="datasets", Key="tables/my table.csv", Body=body)

    config = config_for("s3://datasets/tables/my table.csv", target="label",
                        dataset={"s3": {"endpointUrl": s3_endpoint, "region": "us-east-1"}})
    run = run_trainer(config, tmp_path, env=creds)
    result = check_success(run, "classification")
    assert result["dataset"]["sha256"] == hashlib.sha256(body).hexdigest()
    check_table_result(result)


def test_s3_artifact_store_gets_the_model_then_the_result(tmp_path: Path, s3_endpoint: str) -> None:
    """With an s3:// store the trainer uploads what it wrote, signed with the pod's credentials."""
    boto3 = pytest.importorskip("boto3")
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])
    client.create_bucket(Bucket="models")
    config = config_for("sklearn://iris", artifactUri="s3://models/ml/iris-rf",
                        artifactStore={"s3": {"endpointUrl": s3_endpoint, "region": "us-east-1"}})
    run = run_trainer(config, tmp_path, env=creds)
    result = check_success(run, "classification")
    assert result["artifact"]["uri"] == "s3://models/ml/iris-rf/model.skops"
    stored = client.get_object(Bucket="models", Key="ml/iris-rf/model.skops")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == result["artifact"]["sha256"]
    uploaded = json.loads(client.get_object(Bucket="models", Key="ml/iris-rf/result.json")["Body"].read())
    assert uploaded == result
    assert run.termination is not None
    assert run.termination["resultFile"] == "s3://models/ml/iris-rf/result.json"


def test_s3_artifact_store_refusal_is_one_line(tmp_path: Path, s3_endpoint: str) -> None:
    """A bucket that does not exist: the S3 error code in the trainer's one-line message."""
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}
    config = config_for("sklearn://iris", artifactUri="s3://no-such-bucket/x",
                        artifactStore={"s3": {"endpointUrl": s3_endpoint}})
    run = run_trainer(config, tmp_path, env=creds)
    assert run.returncode != 0
    assert run.termination is not None
    assert run.termination["ok"] is False
    assert run.termination["error"].startswith("PUT s3://no-such-bucket/x/model.skops answered HTTP 404 NoSuchBucket")


@pytest.mark.slow
def test_grid_sweep_trial_by_trial_and_best(tmp_path: Path) -> None:
    """Every trial of a grid in its own process, as an Indexed Job runs them."""
    from modelops.train.sweep import best_trial, expand_sweep

    sweep = {"strategy": "grid", "parameters": {"max_depth": [1, None], "n_estimators": [3, 12]},
             "metric": "accuracy", "goal": "maximize", "parallelism": 2}
    config = config_for(
        "sklearn://wine",
        estimator={"className": "sklearn.ensemble.ExtraTreesClassifier", "params": {"n_estimators": 99}},
        sweep=sweep,
        artifactUri="pvc://models/wine",
    )
    trials = expand_sweep(sweep)
    assert trials == [
        {"max_depth": 1, "n_estimators": 3},
        {"max_depth": 1, "n_estimators": 12},
        {"max_depth": None, "n_estimators": 3},
        {"max_depth": None, "n_estimators": 12},
    ]
    results: list[dict[str, Any]] = []
    for index in range(len(trials)):
        # Half the trials get their index the way an Indexed Job gives it.
        if index % 2:
            run = run_trainer(config, tmp_path, "--trial-index", str(index), name="sweep")
        else:
            run = run_trainer(config, tmp_path, env={"JOB_COMPLETION_INDEX": str(index)}, name="sweep")
        result = check_success(run, "classification", trial=index)
        assert result["trial"] == {"index": index, "params": trials[index]}
        assert result["estimator"]["params"] == {**trials[index], "random_state": 7}
        assert result["artifact"]["uri"] == f"pvc://models/wine/trial-{index}/model.skops"
        assert run.termination is not None
        assert run.termination["trial"]["index"] == index
        results.append(result)
    assert sorted(p.name for p in (tmp_path / "sweep" / "out").iterdir()) == [f"trial-{i}" for i in range(4)]
    best = best_trial(results, "accuracy", "maximize")
    accuracies = [r["metrics"]["accuracy"] for r in results]
    assert best == accuracies.index(max(accuracies))
    assert results[0]["metrics"]["accuracy"] < max(accuracies)  # a one-level stump of 3 trees is worse


@pytest.mark.slow
def test_random_sweep(tmp_path: Path) -> None:
    from modelops.train.sweep import best_trial, expand_sweep

    sweep = {"strategy": "random", "trials": 2, "seed": 5, "metric": "rmse", "goal": "minimize",
             "parameters": {"alpha": {"low": 0.001, "high": 10.0, "log": True}, "fit_intercept": [True, False]}}
    config = config_for("sklearn://diabetes",
                        estimator={"className": "sklearn.linear_model.Ridge", "params": {}}, sweep=sweep)
    trials = expand_sweep(sweep)
    runs = [run_trainer(config, tmp_path, "--trial-index", str(i), name="random") for i in range(2)]
    results = [check_success(run, "regression", trial=i) for i, run in enumerate(runs)]
    for index, result in enumerate(results):
        assert result["trial"]["params"] == trials[index]
        assert result["estimator"]["params"]["alpha"] == trials[index]["alpha"]
    rmse = [r["metrics"]["rmse"] for r in results]
    assert best_trial([runs[0].termination, runs[1].termination], "rmse", "minimize") == rmse.index(min(rmse))
