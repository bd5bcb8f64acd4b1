"""Typed inputs served exactly as trained: a property test over generated tables, and the refusals.

For a generated table (numeric and integer columns, integers and floats declared categorical,
strings, strings that look like numbers, booleans, missing values), our trainer fits a real
pipeline; the server (its app, in-process: the same codec and predictor a process runs) must answer
every request shape with exactly the loaded pipeline's own ``predict``/``predict_proba`` on the
same rows read back from the CSV -- and count in ``/metrics`` what the model was given.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelops.serve import app, loading, predictor
from modelops.train import signature
from serve import tables
from serve.conftest import Server

pytestmark = pytest.mark.slow  # hypothesis sweeps of every v2 request shape over generated tables

CLASSIFIERS = {
    "sklearn.linear_model.LogisticRegression": {"max_iter": 300},
    "sklearn.ensemble.HistGradientBoostingClassifier": {"max_iter": 15},
    "sklearn.tree.DecisionTreeClassifier": {"max_depth": 4},
    "sklearn.ensemble.RandomForestClassifier": {"n_estimators": 5, "max_depth": 4},
}
REGRESSORS = {
    "sklearn.linear_model.Ridge": {},
    "sklearn.ensemble.HistGradientBoostingRegressor": {"max_iter": 15},
    "sklearn.tree.DecisionTreeRegressor": {"max_depth": 4},
}
KINDS = ("float", "int", "int_cat", "float_cat", "str_cat", "numstr_cat", "bool")


def _artifact_path(model_dir: Path) -> str:
    return str(json.loads((model_dir / "result.json").read_text())["artifact"]["path"])


def trained_pipeline(model_dir: Path) -> Any:
    """The pipeline the trainer saved, loaded the server's way (skops with trusted types)."""
    result = json.loads((model_dir / "result.json").read_text())
    data = (model_dir / result["artifact"]["path"]).read_bytes()
    return loading.load_model(data, result["artifact"].get("format", "skops"), str(model_dir), allow_pickle=False)


def copy_artifact(source: Path, target: Path) -> None:
    name = _artifact_path(source)
    (target / name).write_bytes((source / name).read_bytes())


def _column(kind: str, rng: np.random.Generator, n: int) -> list[Any]:
    if kind == "float":
        return list(np.round(rng.normal(10, 5, n), 3))
    if kind == "int":
        return [int(v) for v in rng.integers(-5, 50, n)]
    if kind == "int_cat":  # e.g. num_products: a number the model must see as a category
        return [int(v) for v in rng.choice([1, 2, 3, 10], n)]
    if kind == "float_cat":
        return [float(v) for v in rng.choice([0.5, 1.5, 2.0], n)]
    if kind == "str_cat":
        return [str(v) for v in rng.choice(["basic", "gold", "pro"], n)]
    if kind == "numstr_cat":  # strings a CSV reader keeps as text because one of them is not a number
        return [str(v) for v in rng.choice(["1", "2", "07", "x"], n)]
    return [bool(v) for v in rng.integers(0, 2, n)]


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    task = draw(st.sampled_from(["classification", "regression"]))
    pool = CLASSIFIERS if task == "classification" else REGRESSORS
    class_name = draw(st.sampled_from(sorted(pool)))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=5))
    gaps = draw(st.lists(st.booleans(), min_size=len(kinds), max_size=len(kinds)))
    return {
        "task": task,
        "estimator": {"className": class_name, "params": pool[class_name],
                      "preprocessing": {"scaleNumeric": draw(st.booleans())}},
        # Gaps anywhere: estimators that cannot take NaN get the trainer's imputation where the
        # training split had gaps, and the server must refuse them where it had none.
        "columns": [(f"{k}_{i}", k, gap) for i, (k, gap) in enumerate(zip(kinds, gaps, strict=True))],
        "seed": draw(st.integers(0, 2**31)),
        "rows": draw(st.integers(40, 90)),
    }  # fmt: skip


def make_table(case: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(case["seed"])
    n = case["rows"]
    data: dict[str, list[Any]] = {}
    kinds: dict[str, str] = {}
    for name, kind, gappy in case["columns"]:
        values = _column(kind, rng, n)
        if gappy:
            for i in rng.choice(n, max(1, n // 8), replace=False)[1:]:  # row 0 stays whole
                values[int(i)] = None
        data[name], kinds[name] = values, kind
    signal = rng.normal(size=n)
    if case["task"] == "classification":
        data["target"] = ["yes" if i % 2 else "no" for i in range(n)]  # both classes, stratifiable
    else:
        data["target"] = list(np.round(signal * 3 + 1, 4))
    return pd.DataFrame(data), kinds


def answer(application: app.App, request: tables.Request) -> tuple[int, Any]:
    header = None if request.header_length is None else str(request.header_length).encode()
    status, headers, body = application.handle(
        b"POST", b"/v2/models/typed/infer", request.body, time.perf_counter(), header
    )
    if status != 200:
        return status, orjson.loads(body)["error"]
    length = None
    for line in headers.decode().split("\r\n"):
        if line.lower().startswith("inference-header-content-length:"):
            length = int(line.split(":", 1)[1])
    assert (length is not None) == request.binary_outputs, request.shape
    return status, triton.InferenceServerClient.parse_response_body(body, header_length=length)


def load_app(trained: tables.Trained) -> app.App:
    contract = predictor.load_contract(trained.path)
    model = predictor.load(trained.path, contract, trained.result["artifact"]["sha256"])
    return app.build(model, name="typed", version="1", server_version="test")


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_every_request_shape_answers_as_the_pipeline(case: dict[str, Any]) -> None:
    table, kinds = make_table(case)
    with tempfile.TemporaryDirectory() as tmp:
        trained = tables.train(Path(tmp), table, "target", kinds, case["estimator"])
        pipeline = trained_pipeline(trained.path)
        application = load_app(trained)
        sample = trained.frame.iloc[: min(24, len(trained.frame))]
        classifier = case["task"] == "classification"
        outputs = ["predict", "predict_proba"] if classifier else ["predict"]
        # The pipeline's own verdict, row by row, with scikit-learn's input checks on: a row it refuses
        # (a gap where the training split had none and nothing imputes it) must be refused by the server.
        taken = [signature.model_takes(pipeline, sample.iloc[[i]]) for i in range(len(sample))]
        refused = [sample.iloc[[i]] for i, ok in enumerate(taken) if not ok][:1]
        # And a gap put where the trainer recorded that the model takes none (a numeric column without
        # an imputer in front of an estimator that cannot take NaN): refused by the pipeline and the server.
        for spec in trained.result["signature"]["inputs"]:
            if spec["acceptsMissing"] is False:
                row = sample.iloc[[0]].astype({spec["name"]: "float64"})
                row.loc[row.index[0], spec["name"]] = math.nan
                assert not signature.model_takes(pipeline, row)
                refused.append(row)
        for row in refused[:3]:
            for request in tables.requests(trained, row, outputs):
                status, error = answer(application, request)
                assert status == 400, (request.shape, error)
                assert "missing value; the model does not take missing values in" in error, (request.shape, error)
        rows = sample[taken]
        if rows.empty:
            return
        expected = pipeline.predict(rows)
        proba = pipeline.predict_proba(rows) if classifier else None
        for request in tables.requests(trained, rows, outputs):
            status, result = answer(application, request)
            assert status == 200, (request.shape, result)
            got = result.as_numpy("predict")
            if classifier:
                assert [v.decode() if isinstance(v, bytes) else v for v in got.tolist()] == expected.tolist(), (
                    request.shape
                )
                np.testing.assert_allclose(result.as_numpy("predict_proba"), proba, rtol=1e-9, atol=1e-12)
            else:
                np.testing.assert_allclose(got, expected, rtol=1e-9, err_msg=request.shape)


# -- the table, by hand -------------------------------------------------------------------------


CHURN_COLUMNS = ["age", "income", "num_products", "plan", "region"]


def churn_table(rows: int = 400, seed: int = 5) -> pd.DataFrame:
    """age and income with gaps, num_products a number declared categorical, two strings, a yes/no target."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows).astype(float)
    income = np.round(rng.normal(60, 20, rows), 1)
    products = rng.choice([1, 2, 3, 4], rows, p=[0.4, 0.3, 0.2, 0.1])
    plan = rng.choice(["basic", "plus", "premium"], rows)
    region = rng.choice(["north", "south", "east", "west"], rows)
    score = 0.03 * (age - 50) + np.where(products == 2, 1.2, -0.4) + np.where(plan == "basic", 0.5, -0.5)
    churn = np.where(score + rng.normal(0, 0.7, rows) > 0, "yes", "no")
    age[rng.random(rows) < 0.08] = np.nan
    income[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame({"age": age, "income": income, "num_products": products, "plan": plan, "region": region,
                         "churn": churn})  # fmt: skip


CHURN_KINDS = {"age": "float", "income": "float", "num_products": "int_cat", "plan": "str_cat", "region": "str_cat"}


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> tables.Trained:
    return tables.train(
        tmp_path_factory.mktemp("churn"), churn_table(), "churn", CHURN_KINDS,
        {"className": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 30}},
    )  # fmt: skip


@pytest.fixture(scope="module")
def churn_linear(tmp_path_factory: pytest.TempPathFactory) -> tables.Trained:
    """The same table without the gappy columns, for a model that cannot take missing values."""
    kinds = {"score": "float", "num_products": "int_cat", "plan": "str_cat", "region": "str_cat"}
    table = churn_table().drop(columns=["age", "income"])
    table.insert(0, "score", np.round(np.random.default_rng(1).normal(size=len(table)), 3))
    return tables.train(
        tmp_path_factory.mktemp("churn-linear"), table, "churn", kinds,
        {"className": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
    )  # fmt: skip


_APPS: dict[str, app.App] = {}


def load_app_cached(trained: tables.Trained) -> app.App:
    """One app per trained model for the tests that only send requests (loading probes the model)."""
    key = str(trained.path)
    if key not in _APPS:
        _APPS[key] = load_app(trained)
    return _APPS[key]


def infer(application: app.App, doc: dict[str, Any]) -> tuple[int, Any]:
    body = json.dumps(doc).encode()  # not orjson: it cannot write integers past 64 bits
    status, _, body = application.handle(b"POST", b"/v2/models/typed/infer", body, time.perf_counter())
    return status, orjson.loads(body)


def matrix(rows: list[list[Any]], datatype: str = "BYTES", width: int = 5) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": [len(rows), width], "datatype": datatype, "data": rows}],
            "outputs": [{"name": "predict_proba"}]}  # fmt: skip


def test_the_signature_records_types_categories_and_missing(churn: tables.Trained) -> None:
    inputs = {i["name"]: i for i in churn.result["signature"]["inputs"]}
    assert inputs["num_products"] == {"name": "num_products", "datatype": "INT64", "categorical": True,
                                      "categories": [1, 2, 3, 4], "acceptsMissing": True}  # fmt: skip
    assert inputs["plan"]["categories"] == ["basic", "plus", "premium"]
    assert inputs["age"] == {"name": "age", "datatype": "FP64", "acceptsMissing": True}


def test_a_categorical_number_in_a_bytes_matrix_is_the_trained_category(churn: tables.Trained) -> None:
    application = load_app(churn)
    pipeline = trained_pipeline(churn.path)
    frame = pd.DataFrame([[40.0, 100.0, 2, "basic", "south"]], columns=CHURN_COLUMNS)
    expected = pipeline.predict_proba(frame)[0]
    unseen = pipeline.predict_proba(frame.astype({"num_products": str}))[0]
    assert not np.allclose(expected, unseen)  # "2" would be an unseen category: the bug this guards
    for row in ([40, 100, 2, "basic", "south"], ["40", "100", "2", "basic", "south"], [40, 100, 2.0, "basic", "south"]):
        status, body = infer(application, matrix([row]))
        assert status == 200, body
        np.testing.assert_allclose(body["outputs"][0]["data"], expected, rtol=1e-12)
    # /metrics counts what the model saw: the category 2, three times.
    text = application.handle(b"GET", b"/metrics", b"", 0.0)[2].decode()
    assert 'modelops_feature_category_total{category="2",feature="num_products",model="typed",version="1"} 3.0' in text


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ([40, 100, 2.5, "basic", "south"], "column 2 (feature 'num_products'): the number 2.5 is not an integer"),
        ([40, 100, "two", "basic", "south"], "column 2 (feature 'num_products'): the string 'two' is not an integer"),
        ([40, 100, 2, 7, "south"], "column 3 (feature 'plan'): the number 7 is not a string"),
        ([40, "abc", 2, "basic", "south"], "column 1 (feature 'income'): the string 'abc' is not a number"),
        ([40, 100, 2**63, "basic", "south"],
         "column 2 (feature 'num_products'): the number 9223372036854775808 is out of the int64 range"),
        ([40, 100, 2**70, "basic", "south"],
         "column 2 (feature 'num_products'): the number 1.1805916207174113e+21 is out of the int64 range"),
    ],
)  # fmt: skip
def test_values_that_do_not_convert_losslessly_are_400(churn: tables.Trained, row: list[Any], needle: str) -> None:
    status, body = infer(load_app_cached(churn), matrix([[40, 100, 2, "basic", "south"], row]))
    assert status == 400, body
    assert body["error"].startswith("input 'x', row 1, column ")
    assert needle in body["error"], body


def test_numbers_for_string_features_are_refused_whatever_the_datatype(churn: tables.Trained) -> None:
    status, body = infer(load_app_cached(churn), matrix([[40, 100, 2, 1, 2]], datatype="FP64"))
    assert status == 400
    assert body["error"] == (
        "input 'x', row 0, column 3 (feature 'plan'): the input has datatype FP64, but 'plan' takes strings: send BYTES"
    )
    doc = {"inputs": [
        {"name": "age", "shape": [1], "datatype": "FP64", "data": [40]},
        {"name": "income", "shape": [1], "datatype": "FP64", "data": [100]},
        {"name": "num_products", "shape": [1], "datatype": "INT64", "data": [2]},
        {"name": "plan", "shape": [1], "datatype": "INT64", "data": [3]},
        {"name": "region", "shape": [1], "datatype": "BYTES", "data": ["south"]},
    ]}  # fmt: skip
    status, body = infer(load_app_cached(churn), doc)
    assert status == 400
    assert body["error"].startswith("input 'plan', row 0: the input has datatype INT64, but 'plan' takes strings")


def test_missing_values_where_the_model_takes_them(churn: tables.Trained) -> None:
    application = load_app_cached(churn)
    pipeline = trained_pipeline(churn.path)
    rows = [[None, None, 2, None, "south"], ["", "NaN", "3", "premium", "north"]]
    status, body = infer(application, matrix(rows))
    assert status == 200, body
    frame = pd.DataFrame([[math.nan, math.nan, 2, math.nan, "south"], [math.nan, math.nan, 3, "premium", "north"]],
                         columns=CHURN_COLUMNS)  # fmt: skip
    np.testing.assert_allclose(np.reshape(body["outputs"][0]["data"], (2, 2)), pipeline.predict_proba(frame))


def test_infinities_only_where_the_model_takes_them(churn: tables.Trained) -> None:
    """HistGradientBoosting sorts an infinity past every threshold; asked at load, the server lets it through."""
    application = load_app_cached(churn)
    features = {f.name: f for f in application.predictor.contract.features}
    assert features["income"].accepts_infinite
    assert not features["num_products"].accepts_infinite
    pipeline = trained_pipeline(churn.path)
    status, body = infer(application, matrix([[40, "1e400", 2, "basic", "south"]]))
    assert status == 200, body
    frame = pd.DataFrame([[40.0, math.inf, 2, "basic", "south"]], columns=CHURN_COLUMNS)
    np.testing.assert_allclose(body["outputs"][0]["data"], pipeline.predict_proba(frame)[0])


def test_missing_values_where_the_model_cannot_take_them(churn_linear: tables.Trained) -> None:
    inputs = {i["name"]: i for i in churn_linear.result["signature"]["inputs"]}
    assert inputs["score"]["acceptsMissing"] is False
    assert inputs["plan"]["acceptsMissing"] is True  # the one-hot encoder has room for it
    application = load_app_cached(churn_linear)
    for value in (None, "", "nan", "NA"):
        status, body = infer(application, matrix([[0.5, 2, "basic", "south"], [value, 2, "basic", "south"]], width=4))
        assert status == 400, body
        assert body["error"] == (
            "input 'x', row 1, column 0 (feature 'score'): missing value; the model does not take missing values "
            "in 'score'"
        )
    for value in ("inf", "-Infinity"):
        status, body = infer(application, matrix([[value, 2, "basic", "south"]], width=4))
        assert status == 400
        assert "column 0 (feature 'score'): infinite value (" in body["error"]
        assert "the model does not take infinities" in body["error"]
    doc = {"inputs": [
        {"name": "score", "shape": [2], "datatype": "FP64", "data": [0.5, None]},
        {"name": "num_products", "shape": [2], "datatype": "INT64", "data": [2, 2]},
        {"name": "plan", "shape": [2], "datatype": "BYTES", "data": ["basic", "basic"]},
        {"name": "region", "shape": [2], "datatype": "BYTES", "data": ["south", "south"]},
    ]}  # fmt: skip
    status, body = infer(application, doc)
    assert status == 400
    assert body["error"] == "input 'score', row 1: missing value; the model does not take missing values in 'score'"


def test_an_old_record_without_the_new_fields_is_served_the_same(churn: tables.Trained, tmp_path: Path) -> None:
    """The documented fallback: categorical from referenceStats, kinds from the encoder, missing by asking the model."""
    old = tmp_path / "old"
    old.mkdir()
    copy_artifact(churn.path, old)
    result = json.loads((churn.path / "result.json").read_text())
    result["signature"]["inputs"] = [
        {"name": i["name"], "datatype": i["datatype"]} for i in result["signature"]["inputs"]
    ]
    (old / "result.json").write_text(json.dumps(result))
    old_app = load_app(tables.Trained(old, result, churn.frame, churn.features, churn.kinds))
    new_app = load_app_cached(churn)

    def settled(application: app.App) -> list[tuple[Any, ...]]:
        return [(f.name, f.categorical, f.kind, f.accepts_missing, f.accepts_infinite)
                for f in application.predictor.contract.features]  # fmt: skip

    assert settled(old_app) == settled(new_app)
    assert [f.kind for f in new_app.predictor.contract.features] == ["number", "number", "int", "string", "string"]
    # Without referenceStats either (a ModelVersion registered from a truncated termination message):
    # num_products is INT64, and only the model says it is categorical.
    del result["referenceStats"]
    (old / "result.json").write_text(json.dumps(result))
    bare = load_app(tables.Trained(old, result, churn.frame, churn.features, churn.kinds))
    features = {f.name: f for f in bare.predictor.contract.features}
    assert features["num_products"].categorical
    assert features["num_products"].kind == "int"
    assert infer(bare, matrix([[40, 100, 2, "basic", "south"]])) == infer(
        new_app, matrix([[40, 100, 2, "basic", "south"]])
    )


def test_a_record_that_contradicts_the_model_is_refused_at_load(churn: tables.Trained, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    copy_artifact(churn.path, bad)
    result = json.loads((churn.path / "result.json").read_text())
    for item in result["signature"]["inputs"]:
        if item["name"] == "num_products":
            item["datatype"], item["categories"] = "BYTES", ["1", "2", "3", "4"]
    (bad / "result.json").write_text(json.dumps(result))
    with pytest.raises(predictor.LoadError) as info:
        load_app(tables.Trained(bad, result, churn.frame, churn.features, churn.kinds))
    assert str(info.value) == (
        "feature 'num_products': result.json says the model was trained on string values but its encoder holds "
        "int categories"
    )


# -- a real `modelops serve` process and tritonclient's defaults ------------------------------------------


def test_tritonclient_defaults_on_a_messy_table_against_a_real_server(churn: tables.Trained) -> None:
    pipeline = trained_pipeline(churn.path)
    rows = churn.frame.iloc[:40]  # with the gaps the table has
    assert rows.isna().any().any()
    server = Server(churn.path).wait_ready()
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        # A frame as one BYTES matrix: tritonclient writes each cell with str() ("nan" for a gap, "2" for 2).
        tensor = triton.InferInput("x", list(rows.shape), "BYTES")
        tensor.set_data_from_numpy(rows.to_numpy(dtype=object))
        outputs = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]
        result = client.infer("typed", [tensor], outputs=outputs)
        assert [v.decode() for v in result.as_numpy("predict")] == pipeline.predict(rows).tolist()
        np.testing.assert_allclose(result.as_numpy("predict_proba"), pipeline.predict_proba(rows), rtol=1e-12)
        # One typed tensor per column, as a numpy user would send them.
        columns = []
        for name, data, datatype in (
            ("age", rows["age"].to_numpy(np.float64), "FP64"),
            ("income", rows["income"].to_numpy(np.float32), "FP32"),
            ("num_products", rows["num_products"].to_numpy(np.int32), "INT32"),
            ("plan", rows["plan"].to_numpy(object), "BYTES"),
            ("region", rows["region"].to_numpy(object), "BYTES"),
        ):
            column = triton.InferInput(name, [len(rows)], datatype)
            column.set_data_from_numpy(data)
            columns.append(column)
        result = client.infer("typed", columns)
        expected = pipeline.predict(rows.astype({"income": np.float32}).astype({"income": np.float64}))
        assert [v.decode() for v in result.as_numpy("predict")] == expected.tolist()
        # The metrics saw integers 1..4 and gaps: every num_products row is under its own category.
        text = server.get("/metrics").text
        counts = rows["num_products"].value_counts()
        for value, count in counts.items():
            labels = f'category="{value}",feature="num_products",model="typed",version="1"'
            needle = f"modelops_feature_category_total{{{labels}}}"
            assert f"{needle} {2.0 * count}" in text, needle
        assert 'category="__other__",feature="num_products"' in text
        present = int(rows["age"].notna().sum())
        assert f'modelops_feature_count{{feature="age",model="typed",version="1"}} {2.0 * present}' in text
    finally:
        client.close()
        assert server.terminate() == 0
