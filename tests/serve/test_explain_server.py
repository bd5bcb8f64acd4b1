"""``/v2/models/NAME/explain`` through a real ``modelops serve``, for every estimator of the allow-list.

Each supported estimator is trained by our own trainer on a messy table (gaps in numbers and in a
category, a number that is a category, text categories), binary, multi-class and regression; a
real server explains held-out-like rows plus a row with unseen categories, and:

- the contributions plus the base value add up to ``output`` to 1e-9 (relative to the terms);
- ``output`` is the loaded pipeline's own output in the space the answer names (``predict_proba``,
  ``decision_function``, ``predict``), computed here from the artifact;
- for linear models, a row that differs from another in one column differs in that column's
  contribution only, by exactly the change of the output (so contributions really are per column);
- for a forest, the contributions are shap's own TreeExplainer values (no preprocessing to fold).

Estimators we do not explain answer 501 naming them; without shap installed, tree models answer
501 naming the extra. Every request shape of ``/infer`` (JSON, binary tensors) works on ``/explain``,
rows are bounded by ``--explain-max-rows``, and ``/metrics`` counts explanations apart from
inference.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st

import messytables
from modelops.serve import app, predictor
from serve import tables
from serve.conftest import Server

pytestmark = pytest.mark.slow

CHURN_KINDS = {"age": "float", "income": "float", "tenure_months": "int", "num_products": "int_cat",
               "plan": "str_cat", "region": "str_cat"}  # fmt: skip
PLAN_KINDS = {**{k: v for k, v in CHURN_KINDS.items() if k != "plan"}, "churned": "str_cat"}
SPEND_KINDS = CHURN_KINDS
SCALED = {"scaleNumeric": True}

#: Supported classifiers (servable: they have predict_proba) -> params; explained on binary and 3-class targets.
CLASSIFIERS: dict[str, dict[str, Any]] = {
    "sklearn.linear_model.LogisticRegression": {"max_iter": 500},
    "sklearn.linear_model.SGDClassifier": {"loss": "log_loss"},
    "sklearn.discriminant_analysis.LinearDiscriminantAnalysis": {},
    "sklearn.ensemble.RandomForestClassifier": {"n_estimators": 20},
    "sklearn.ensemble.ExtraTreesClassifier": {"n_estimators": 20},
    "sklearn.ensemble.GradientBoostingClassifier": {"n_estimators": 20},
    "sklearn.ensemble.HistGradientBoostingClassifier": {"max_iter": 20},
    "sklearn.tree.DecisionTreeClassifier": {"max_depth": 6},
    "sklearn.tree.ExtraTreeClassifier": {"max_depth": 6},
    "sklearn.dummy.DummyClassifier": {},
}
#: Binary only: a linear-kernel SVC's one-vs-one decision over three classes is not linear.
BINARY_ONLY: dict[str, dict[str, Any]] = {"sklearn.svm.SVC": {"kernel": "linear", "probability": True}}
REGRESSORS: dict[str, dict[str, Any]] = {
    "sklearn.linear_model.LinearRegression": {},
    "sklearn.linear_model.Ridge": {},
    "sklearn.linear_model.Lasso": {"alpha": 0.1},
    "sklearn.linear_model.ElasticNet": {"alpha": 0.1},
    "sklearn.linear_model.SGDRegressor": {},
    "sklearn.linear_model.HuberRegressor": {"max_iter": 500},
    "sklearn.linear_model.BayesianRidge": {},
    "sklearn.svm.SVR": {"kernel": "linear"},
    "sklearn.svm.LinearSVR": {},
    "sklearn.ensemble.RandomForestRegressor": {"n_estimators": 20},
    "sklearn.ensemble.ExtraTreesRegressor": {"n_estimators": 20},
    "sklearn.ensemble.GradientBoostingRegressor": {"n_estimators": 20},
    "sklearn.ensemble.HistGradientBoostingRegressor": {"max_iter": 20},
    "sklearn.tree.DecisionTreeRegressor": {"max_depth": 6},
    "sklearn.dummy.DummyRegressor": {},
}
#: Allow-listed estimators that are served but not explained (no exact per-row contributions).
UNSUPPORTED: dict[str, tuple[str, dict[str, Any]]] = {
    "sklearn.ensemble.AdaBoostClassifier": ("classification", {"n_estimators": 10}),
    "sklearn.neighbors.KNeighborsClassifier": ("classification", {}),
    "sklearn.svm.NuSVC": ("classification", {"nu": 0.2, "probability": True}),
    "sklearn.naive_bayes.GaussianNB": ("classification", {}),
    "sklearn.naive_bayes.BernoulliNB": ("classification", {}),
    "sklearn.neural_network.MLPClassifier": ("classification", {"max_iter": 50}),
    "sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis": ("classification", {"reg_param": 0.5}),
    "sklearn.ensemble.AdaBoostRegressor": ("regression", {"n_estimators": 10}),
    "sklearn.neighbors.KNeighborsRegressor": ("regression", {}),
    "sklearn.svm.SVR": ("regression", {}),  # the RBF kernel, the default
    "sklearn.svm.NuSVR": ("regression", {}),
    "sklearn.neural_network.MLPRegressor": ("regression", {"max_iter": 50}),
    "sklearn.kernel_ridge.KernelRidge": ("regression", {}),
}
TOLERANCE = 1e-9


def churn_table(rows: int = 500, seed: int = 3) -> pd.DataFrame:
    return messytables.customers(rows, seed).drop(columns=["customer_id", "signup_date"])


def spend_table(rows: int = 500, seed: int = 4) -> pd.DataFrame:
    return messytables.spend(rows, seed).drop(columns=["customer_id", "signup_date"])


def train(tmp: Path, table: str, class_name: str, params: dict[str, Any]) -> tables.Trained:
    estimator = {"className": class_name, "params": params, "preprocessing": SCALED}
    if table == "binary":
        return tables.train(tmp, churn_table(), "churned", CHURN_KINDS, estimator)
    if table == "multiclass":
        return tables.train(tmp, churn_table(), "plan", PLAN_KINDS, estimator)
    return tables.train(tmp, spend_table(), "monthly_spend", SPEND_KINDS, estimator)


def rows_to_explain(trained: tables.Trained, count: int = 12) -> pd.DataFrame:
    """Rows as the trainer read them (gaps included), and one with categories the model never saw."""
    rows = trained.frame.iloc[:count].copy().reset_index(drop=True)
    unseen = rows.iloc[[0]].copy()
    unseen["region"] = "atlantis"
    unseen["num_products"] = 9
    return pd.concat([rows, unseen], ignore_index=True)


def _cell(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def columns_doc(trained: tables.Trained, rows: pd.DataFrame) -> dict[str, Any]:
    """One JSON tensor per input: what a KServe or MLServer client sends for a table."""
    inputs = []
    for name in trained.features:
        values = [_cell(v) for v in rows[name].tolist()]
        datatype = "BYTES" if trained.kinds[name] == "str_cat" else ("INT64" if None not in values and trained.kinds[
            name] in ("int", "int_cat") else "FP64")  # fmt: skip
        inputs.append({"name": name, "shape": [len(values)], "datatype": datatype, "data": values})
    return {"id": "why", "inputs": inputs}


def explain(server: Server, doc: dict[str, Any]) -> requests.Response:
    # The first explanation prepares the explainer (importing shap takes seconds on a busy machine).
    return server.session.post(f"{server.url}/v2/models/typed/explain", json=doc, timeout=180)


def unpack(answer: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    outputs = {o["name"]: o for o in answer["outputs"]}
    n, f, k = outputs["contributions"]["shape"]
    contributions = np.reshape(outputs["contributions"]["data"], (n, f, k))
    return contributions, np.asarray(outputs["base_value"]["data"]), np.reshape(outputs["output"]["data"], (n, k))


def loaded(trained: tables.Trained) -> Any:
    """The pipeline as the server loads it (the artifact verified against its sha256)."""
    contract = predictor.load_contract(trained.path)
    return predictor.load(trained.path, contract, trained.result["artifact"]["sha256"]).model


def own_output(model: Any, rows: pd.DataFrame, space: str) -> np.ndarray:
    if space == "probability":
        out = model.predict_proba(rows)
    elif space == "decision_function":
        out = model.decision_function(rows)
    elif space == "log_prediction":
        out = np.log(model.predict(rows))
    else:
        out = model.predict(rows)
    return np.asarray(out, dtype=np.float64).reshape(len(rows), -1)


def assert_adds_up(contributions: np.ndarray, base: np.ndarray, output: np.ndarray) -> None:
    total = base[None, :] + contributions.sum(axis=1)
    scale = 1.0 + np.abs(base)[None, :] + np.abs(contributions).sum(axis=1) + np.abs(output)
    assert np.all(np.abs(total - output) <= TOLERANCE * scale), np.abs(total - output).max()


def assert_local(server: Server, trained: tables.Trained, rows: pd.DataFrame) -> None:
    """A linear model: changing one column of a row changes that column's contribution only, by the output's change."""
    first, donor = rows.iloc[[0]], rows.iloc[[5]]
    pairs = []
    for name in trained.features:
        changed = first.copy()
        changed[name] = donor[name].to_numpy()
        pairs += [first, changed]
    response = explain(server, columns_doc(trained, pd.concat(pairs, ignore_index=True)))
    assert response.status_code == 200, response.text
    contributions, _, output = unpack(response.json())
    for j in range(len(trained.features)):
        before, after = contributions[2 * j], contributions[2 * j + 1]
        delta = after - before
        scale = 1.0 + np.abs(before).sum() + np.abs(after).sum()
        others = np.delete(delta, j, axis=0)
        assert np.all(np.abs(others) <= TOLERANCE * scale), (trained.features[j], others)
        np.testing.assert_allclose(delta[j], output[2 * j + 1] - output[2 * j], rtol=0, atol=TOLERANCE * scale)


def expected_classes(model: Any, space: str, k: int) -> list[str]:
    classes = [str(c) for c in getattr(model, "classes_", [])]
    if not classes:
        return []
    return classes if k == len(classes) else classes[1:]


CASES = (
    [("binary", c, p) for c, p in {**CLASSIFIERS, **BINARY_ONLY}.items()]
    + [("multiclass", c, p) for c, p in CLASSIFIERS.items()]
    + [("regression", c, p) for c, p in REGRESSORS.items()]
    + [("count", "sklearn.ensemble.HistGradientBoostingRegressor", {"max_iter": 20, "loss": "poisson"})]
)


@pytest.mark.parametrize(
    ("table", "class_name", "params"), CASES, ids=[f"{t}-{c.rsplit('.', 1)[1]}" for t, c, _ in CASES]
)
def test_every_supported_estimator_adds_up_through_a_real_server(
    tmp_path: Path, table: str, class_name: str, params: dict[str, Any]
) -> None:
    if table == "count":  # a count target: a Poisson loss explains the log of the prediction
        estimator = {"className": class_name, "params": params, "preprocessing": SCALED}
        trained = tables.train(tmp_path, spend_table(), "tenure_months", {**{k: v for k, v in SPEND_KINDS.items()
                               if k != "tenure_months"}, "monthly_spend": "float"}, estimator)  # fmt: skip
    else:
        trained = train(tmp_path, table, class_name, params)
    rows = rows_to_explain(trained)
    assert rows[["age", "income", "region"]].isna().any().any(), "the rows must hold gaps"
    server = Server(trained.path, "--sha256", trained.result["artifact"]["sha256"]).wait_ready()
    try:
        response = explain(server, columns_doc(trained, rows))
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["id"] == "why"
        parameters = answer["parameters"]
        assert parameters["features"] == trained.features
        contributions, base, output = unpack(answer)
        assert contributions.shape[:2] == (len(rows), len(trained.features))
        assert_adds_up(contributions, base, output)
        model = loaded(trained)
        space = parameters["space"]
        np.testing.assert_allclose(output, own_output(model, rows, space), rtol=1e-12, atol=1e-12)
        assert parameters.get("classes", []) == expected_classes(model, space, output.shape[1])
        kind = class_name.rsplit(".", 1)[1]
        if kind.startswith("Dummy"):
            assert parameters["method"] == "constant"
            assert not contributions.any()
        elif any(kind.startswith(p) for p in ("Random", "Extra", "Gradient", "HistGradient", "DecisionTree")):
            assert parameters["method"] == "tree_shap"
        else:
            assert parameters["method"] == "linear"
            assert space == ("decision_function" if table in ("binary", "multiclass") else "prediction")
            assert_local(server, trained, rows)
        if table == "count":
            assert space == "log_prediction"
        elif kind.startswith(("RandomForestC", "ExtraTreesC", "DecisionTreeC", "ExtraTreeC", "DummyC")):
            assert space == "probability"
        elif table in ("binary", "multiclass"):
            assert space == "decision_function"
            assert output.shape[1] == (1 if table == "binary" else 3)
    finally:
        server.close()


def test_a_forest_is_explained_with_shaps_own_values(tmp_path: Path) -> None:
    """Numeric columns without gaps: the forest takes the scaled columns one to one, so nothing is folded."""
    import shap
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    kinds = {c: "float" for c in frame.columns if c != "target"}
    estimator = {"className": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 30},
                 "preprocessing": SCALED}  # fmt: skip
    trained = tables.train(tmp_path, frame, "target", kinds, estimator)
    rows = trained.frame.iloc[::10].reset_index(drop=True)
    server = Server(trained.path, "--sha256", trained.result["artifact"]["sha256"]).wait_ready()
    try:
        response = explain(server, columns_doc(trained, rows))
        assert response.status_code == 200, response.text
        contributions, base, _ = unpack(response.json())
    finally:
        server.close()
    model = loaded(trained)
    reference = shap.TreeExplainer(model[-1])
    values = np.asarray(reference.shap_values(model[:-1].transform(rows)))
    np.testing.assert_allclose(contributions, values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(base, reference.expected_value, rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def linear(tmp_path_factory: pytest.TempPathFactory) -> tables.Trained:
    return train(tmp_path_factory.mktemp("linear"), "binary", "sklearn.linear_model.LogisticRegression", {})


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> tables.Trained:
    return train(tmp_path_factory.mktemp("forest"), "multiclass", "sklearn.ensemble.RandomForestClassifier",
                 {"n_estimators": 10})  # fmt: skip


@pytest.fixture(scope="module")
def linear_server(linear: tables.Trained) -> Iterator[Server]:
    server = Server(linear.path, "--sha256", linear.result["artifact"]["sha256"]).wait_ready()
    yield server
    server.close()


def _post(server: Server, request: tables.Request) -> requests.Response:
    headers = {"Content-Type": "application/octet-stream" if request.header_length else "application/json"}
    if request.header_length is not None:
        headers["Inference-Header-Content-Length"] = str(request.header_length)
    return server.session.post(f"{server.url}/v2/models/typed/explain", data=request.body, headers=headers, timeout=180)


@pytest.mark.parametrize("model", ["linear", "forest"])
def test_every_request_shape_of_infer_is_explained_alike(model: str, request: pytest.FixtureRequest) -> None:
    trained: tables.Trained = request.getfixturevalue(model)
    rows = rows_to_explain(trained, 6).iloc[:6]
    server = Server(trained.path, "--sha256", trained.result["artifact"]["sha256"]).wait_ready()
    try:
        answers = {}
        for shaped in tables.requests(trained, rows, ["predict"]):
            response = _post(server, shaped)
            assert response.status_code == 200, (shaped.shape, response.text)
            length = response.headers.get("Inference-Header-Content-Length")
            assert (length is not None) == shaped.binary_outputs, shaped.shape
            result = triton.InferenceServerClient.parse_response_body(
                response.content, header_length=int(length) if length else None
            )
            answers[shaped.shape] = result.as_numpy("contributions")
            assert result.get_response()["parameters"]["features"] == trained.features
        first = next(iter(answers.values()))
        assert first.shape[:2] == (6, len(trained.features))
        for shape, contributions in answers.items():
            np.testing.assert_array_equal(contributions, first, err_msg=shape)
    finally:
        server.close()


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in /metrics")


def test_explanations_are_counted_apart_from_inference(linear: tables.Trained, linear_server: Server) -> None:
    before = linear_server.get("/metrics").text
    rows = rows_to_explain(linear, 4)
    doc = columns_doc(linear, rows)
    assert explain(linear_server, doc).status_code == 200
    assert explain(linear_server, {"inputs": []}).status_code == 400
    assert linear_server.get("/v2/models/typed/explain").status_code == 405
    after = linear_server.get("/metrics").text
    for code, added in (("200", 1), ("400", 1), ("405", 1)):
        assert _metric(after, "modelops_explain_requests_total", code=code) == _metric(
            before, "modelops_explain_requests_total", code=code) + added  # fmt: skip
    assert _metric(after, "modelops_explain_rows_total") == _metric(before, "modelops_explain_rows_total") + len(rows)
    assert _metric(after, "modelops_explain_request_duration_seconds_count") == _metric(
        before, "modelops_explain_request_duration_seconds_count") + 3  # fmt: skip
    # Inference's own series (which the canary analysis reads) did not move.
    for name in ("modelops_requests_total", "modelops_request_duration_seconds_count", "modelops_feature_bucket"):
        assert [line for line in after.splitlines() if line.startswith(name)] == [
            line for line in before.splitlines() if line.startswith(name)], name  # fmt: skip
    infer = linear_server.post("/v2/models/typed/infer", json=doc)
    assert infer.status_code == 200
    assert _metric(linear_server.get("/metrics").text, "modelops_requests_total", code="200") == _metric(
        before, "modelops_requests_total", code="200") + 1  # fmt: skip


def test_rows_per_request_are_bounded_by_a_flag(linear: tables.Trained) -> None:
    rows = rows_to_explain(linear, 4)
    server = Server(linear.path, "--sha256", linear.result["artifact"]["sha256"], "--explain-max-rows", "3")
    server.wait_ready()
    try:
        response = explain(server, columns_doc(linear, rows.iloc[:4]))
        assert response.status_code == 413
        assert "at most 3 rows per request (--explain-max-rows)" in response.json()["error"]
        assert explain(server, columns_doc(linear, rows.iloc[:3])).status_code == 200
        # The bound is on explanations only: inference takes the same four rows.
        assert server.post("/v2/models/typed/infer", json=columns_doc(linear, rows.iloc[:4])).status_code == 200
    finally:
        server.close()
    off = Server(linear.path, "--sha256", linear.result["artifact"]["sha256"], "--explain-max-rows", "0").wait_ready()
    try:
        response = explain(off, columns_doc(linear, rows.iloc[:1]))
        assert response.status_code == 403
        assert "turned off" in response.json()["error"]
    finally:
        off.close()


def test_without_shap_a_tree_model_names_the_extra_and_a_linear_one_still_explains(
    tmp_path: Path, forest: tables.Trained, linear: tables.Trained
) -> None:
    blocker = tmp_path / "no-shap" / "shap"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("shap is not installed here (test)")\n')
    for trained, status in ((forest, 501), (linear, 200)):
        server = Server(trained.path, "--sha256", trained.result["artifact"]["sha256"],
                        pythonpath=(blocker.parent,)).wait_ready()  # fmt: skip
        try:
            response = explain(server, columns_doc(trained, rows_to_explain(trained, 2)))
            assert response.status_code == status, response.text
            if status == 501:
                error = response.json()["error"]
                assert re.search(r"RandomForestClassifier .*pip install 'modelops-operator\[explain\]'", error)
                # The server keeps serving.
                infer = server.post("/v2/models/typed/infer", json=columns_doc(trained, rows_to_explain(trained, 2)))
                assert infer.status_code == 200
        finally:
            server.close()


def test_an_estimator_we_do_not_explain_is_501_naming_it_through_a_real_server(tmp_path: Path) -> None:
    trained = train(tmp_path, "binary", "sklearn.neighbors.KNeighborsClassifier", {})
    server = Server(trained.path, "--sha256", trained.result["artifact"]["sha256"]).wait_ready()
    try:
        for _ in range(2):  # the refusal is remembered, and says the same the second time
            response = explain(server, columns_doc(trained, rows_to_explain(trained, 2)))
            assert response.status_code == 501
            assert "KNeighborsClassifier" in response.json()["error"]
        assert server.post("/v2/models/typed/infer", json=columns_doc(trained, rows_to_explain(trained, 2))).ok
    finally:
        server.close()


@pytest.mark.parametrize("class_name", list(UNSUPPORTED))
def test_every_other_estimator_of_the_allow_list_is_501_naming_it(tmp_path: Path, class_name: str) -> None:
    """The same app a server runs, in-process (a server per estimator adds nothing to a refusal)."""
    task, params = UNSUPPORTED[class_name]
    trained = train(tmp_path, "binary" if task == "classification" else "regression", class_name, params)
    contract = predictor.load_contract(trained.path)
    model = predictor.load(trained.path, contract, trained.result["artifact"]["sha256"])
    application = app.build(model, name="typed", version="1", server_version="test")
    body = json.dumps(columns_doc(trained, rows_to_explain(trained, 2))).encode()
    status, _, answer = application.handle(b"POST", b"/v2/models/typed/explain", body, time.perf_counter())
    assert status == 501
    assert class_name.rsplit(".", 1)[1] in answer.decode()


def test_a_linear_artifact_without_the_training_reference_says_to_retrain(tmp_path: Path) -> None:
    import joblib

    from modelops.train import reference

    trained = train(tmp_path, "regression", "sklearn.linear_model.Ridge", {})
    model = loaded(trained)
    delattr(model, reference.ATTRIBUTE)
    joblib.dump(model, tmp_path / "old.joblib")
    contract = predictor.load_contract(trained.path)
    old = predictor.Predictor(contract, joblib.load(tmp_path / "old.joblib"))
    application = app.build(old, name="typed", version="1", server_version="test")
    body = json.dumps(columns_doc(trained, rows_to_explain(trained, 2))).encode()
    status, _, answer = application.handle(b"POST", b"/v2/models/typed/explain", body, time.perf_counter())
    assert status == 501
    assert re.search(r"Ridge .*training split.*retrain it", answer.decode())


# -- a property: generated rows, a real server ---------------------------------------------------------


@st.composite
def churn_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    def row() -> dict[str, Any]:
        gap = st.none()
        return {
            "age": draw(gap | st.floats(0, 120, allow_nan=False)),
            "income": draw(gap | st.floats(0, 1e6, allow_nan=False)),
            "tenure_months": draw(st.integers(0, 200)),
            "num_products": draw(st.sampled_from([1, 2, 3, 4, 7])),
            "plan": draw(st.sampled_from(["basic", "standard", "premium", "unheard-of"])),
            "region": draw(gap | st.sampled_from(["north", "south", "east", "west", "atlantis"])),
        }

    first = row()
    second = dict(first)
    column = draw(st.sampled_from(sorted(first)))
    second[column] = row()[column]
    return [first, second]


@settings(max_examples=30, deadline=None, database=None)
@given(pair=churn_rows())
def test_generated_rows_add_up_and_a_change_in_one_column_shows_in_that_column_only(
    linear: tables.Trained, linear_server: Server, pair: list[dict[str, Any]]
) -> None:
    rows = pd.DataFrame(pair)[linear.features]
    response = explain(linear_server, columns_doc(linear, rows))
    assert response.status_code == 200, response.text
    contributions, base, output = unpack(response.json())
    assert_adds_up(contributions, base, output)
    # The other path, /infer, answers the same rows with the probabilities of the same log-odds.
    doc = {**columns_doc(linear, rows), "outputs": [{"name": "predict_proba"}]}
    infer = linear_server.post("/v2/models/typed/infer", json=doc)
    proba = np.reshape(infer.json()["outputs"][0]["data"], (2, 2))
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-output[:, 0])), rtol=1e-12, atol=1e-12)
    changed = [j for j, name in enumerate(linear.features) if pair[0][name] != pair[1][name]]
    delta = contributions[1] - contributions[0]
    scale = 1.0 + np.abs(contributions).sum()
    untouched = [j for j in range(len(linear.features)) if j not in changed]
    assert np.all(np.abs(delta[untouched]) <= TOLERANCE * scale)
