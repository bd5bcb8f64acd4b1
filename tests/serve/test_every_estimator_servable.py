"""Whatever training accepts, serving accepts: every allow-listed estimator, trained and served for real.

For each estimator of ``modelops.train.estimators.ALLOWED_ESTIMATORS`` (classification and
regression), ``modelops train`` runs as a process on a small generated messy table -- gaps in a
number and in a text column, a text categorical, integers declared categorical -- and a real
``modelops serve`` (with feedback keys) serves the result. Its answers, through every request shape
the v2 protocol allows (:func:`serve.tables.requests`: JSON and binary, per column and matrix), equal
the loaded pipeline's own ``predict`` (and ``predict_proba`` where the estimator has it) on the same
rows read back from the CSV. A classifier without probabilities answers a ``predict_proba`` request
with a 400 that says so, has no ``modelops_expected_*`` series, and still counts its predictions
per class and the labels sent back in its confusion matrix. ``/explain`` answers or says why not
(501), never fails (500).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import confusion_matrix

from modelops.train import estimators
from serve import tables
from serve.conftest import Server
from serve.test_feedback_parts import one_key_dir
from serve.test_typed_inputs import trained_pipeline
from trainer.conftest import run_trainer

pytestmark = pytest.mark.slow  # every allow-listed estimator trained and served by real processes

#: Small settings, so that 41 estimators train in reasonable time; applied where the estimator takes them.
QUICK = {"n_estimators": 5, "max_iter": 60}
EXTRA = {
    # One-hot columns are collinear: QDA's covariance needs regularising (as in test_trusted_types).
    "sklearn.discriminant_analysis.QuadraticDiscriminantAnalysis": {"reg_param": 0.1},
}
KINDS = {"age": "float", "tenure": "int", "plan": "str_cat", "num_products": "int_cat"}
ROWS = 120
SENT = 24  # rows sent in every request shape


def messy_table(task: str, seed: int = 11) -> pd.DataFrame:
    """Gaps in ``age`` and ``plan``, text ``plan``, numeric-looking ``num_products`` (declared categorical)."""
    rng = np.random.default_rng(seed)
    age = np.round(rng.normal(45, 12, ROWS), 1)
    tenure = rng.integers(0, 100, ROWS)
    plan = rng.choice(["basic", "plus", "premium"], ROWS).astype(object)
    products = rng.choice([1, 2, 3, 4], ROWS)
    score = 0.04 * (age - 45) - 0.02 * (tenure - 50) + np.where(plan == "basic", 0.8, -0.4) + (products == 2)
    age[rng.random(ROWS) < 0.12] = np.nan
    plan[rng.random(ROWS) < 0.1] = None
    table = pd.DataFrame({"age": age, "tenure": tenure, "plan": plan, "num_products": products})
    if task == "classification":
        table["target"] = np.where(score + rng.normal(0, 0.6, ROWS) > 0.2, "yes", "no")
    else:
        table["target"] = np.round(20 + 8 * score + rng.normal(0, 1, ROWS), 3)
    return table


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("messy")
    for task in ("classification", "regression"):
        messy_table(task).to_csv(base / f"{task}.csv", index=False)
    return base


def post(server: Server, request: tables.Request) -> tuple[int, Any]:
    """Send one of :func:`tables.requests`; (status, parsed result) or (status, error text)."""
    headers = {"Content-Type": "application/octet-stream" if request.header_length is not None else "application/json"}
    if request.header_length is not None:
        headers["Inference-Header-Content-Length"] = str(request.header_length)
    r = server.post("/v2/models/servable/infer", data=request.body, headers=headers)
    if r.status_code != 200:
        return r.status_code, r.json()["error"]
    length = r.headers.get("Inference-Header-Content-Length")
    assert (length is not None) == request.binary_outputs, request.shape
    parsed = triton.InferenceServerClient.parse_response_body(r.content, header_length=int(length) if length else None)
    return 200, parsed


def samples(server: Server) -> dict[str, list[tuple[dict[str, str], float]]]:
    """/metrics as name -> [(labels, value)]."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(server.get("/metrics").text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def wait_for(check: Any, what: str, deadline_s: float = 30.0) -> Any:
    """Poll ``check()`` until it returns something truthy (metrics are flushed once a second)."""
    deadline = time.monotonic() + deadline_s
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            assert got, what
            return got
        time.sleep(0.1)


CASES = [pytest.param(name, None, id=name) for name in sorted(estimators.ALLOWED_ESTIMATORS)] + [
    # estimator.calibration: CalibratedClassifierCV around the estimator, which gives one without
    # probabilities some (and the expected series); its types are in the trusted list too.
    pytest.param("sklearn.svm.LinearSVC", {"method": "sigmoid", "cv": 3}, id="LinearSVC-calibrated-sigmoid"),
    pytest.param(
        "sklearn.naive_bayes.GaussianNB", {"method": "isotonic", "cv": 3}, id="GaussianNB-calibrated-isotonic"
    ),
]


@pytest.mark.parametrize(("class_name", "calibration"), CASES)
def test_what_modelops_train_fits_modelops_serve_answers_as_the_pipeline(
    class_name: str, calibration: dict[str, Any] | None, data_dir: Path, tmp_path: Path
) -> None:
    task = estimators.ALLOWED_ESTIMATORS[class_name]
    accepted = estimators.valid_params(class_name)
    params = {k: v for k, v in QUICK.items() if k in accepted} | EXTRA.get(class_name, {})
    csv = data_dir / f"{task}.csv"
    run = run_trainer(
        {
            "model": "servable",
            "dataset": {"uri": str(csv), "target": "target", "features": list(KINDS),
                        "categoricalFeatures": ["plan", "num_products"], "testSize": 0.25, "seed": 3},
            "estimator": {"className": class_name, "params": params, "preprocessing": {"scaleNumeric": True},
                          **({"calibration": calibration} if calibration else {})},
            "evaluation": {"featureImportance": {"enabled": False}},  # not what this test is about; seconds each
        },
        tmp_path, env={"MODELOPS_FILE_ROOTS": str(data_dir)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = run.result()
    pipeline = trained_pipeline(run.output)
    frame = pd.read_csv(csv)
    trained = tables.Trained(run.output, result, frame[list(KINDS)], list(KINDS), KINDS)
    rows = trained.frame.iloc[:SENT]
    assert rows.isna().any().any()  # gaps are sent too (null in JSON, NaN or "" in binary tensors)
    classifier = task == "classification"
    probabilities = classifier and hasattr(pipeline, "predict_proba")
    assert probabilities or not calibration
    outputs = ["predict", "predict_proba"] if probabilities else ["predict"]
    expected = pipeline.predict(rows)
    proba = pipeline.predict_proba(rows) if probabilities else None

    keys = one_key_dir(tmp_path / "keys")
    server = Server(run.output, "--sha256", result["artifact"]["sha256"],
                    "--feedback-keys", str(keys), "--feedback-scope", "ml/test").wait_ready()  # fmt: skip
    try:
        meta = server.get("/v2/models/servable").json()
        assert [o["name"] for o in meta["outputs"]] == outputs
        shapes = tables.requests(trained, rows, outputs)
        feedback_ids: list[str] = []
        for request in shapes:
            status, answer = post(server, request)
            assert status == 200, (request.shape, answer)
            got = answer.as_numpy("predict")
            if classifier:
                labels = [v.decode() if isinstance(v, bytes) else v for v in got.tolist()]
                assert labels == expected.tolist(), request.shape
            else:
                np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, err_msg=request.shape)
            if proba is not None:
                np.testing.assert_allclose(answer.as_numpy("predict_proba"), proba, rtol=1e-9, atol=1e-12)
            response = answer.get_response()
            feedback_ids.append(response.get("parameters", {}).get("feedback_id") or response["id"])

        if classifier and not probabilities:
            for request in tables.requests(trained, rows.iloc[:2], ["predict", "predict_proba"])[:3]:
                status, error = post(server, request)
                assert status == 400, request.shape
                assert error.startswith("output 'predict_proba': this model (")
                assert "has no probabilities" in error

        explained = server.post("/v2/models/servable/explain", data=shapes[0].body)
        assert explained.status_code in (200, 501), explained.text

        # Labels for one request's rows: counted in the confusion matrix (or the error sums).
        actual = frame["target"].iloc[:SENT].tolist()
        r = server.post("/v2/models/servable/feedback", json=[{"id": feedback_ids[0], "actual": actual}])
        assert r.status_code == 200, r.text
        assert r.json()["counted"] == SENT

        def flushed() -> dict[str, list[tuple[dict[str, str], float]]] | None:
            got = samples(server)
            labels = sum(v for _, v in got.get("modelops_feedback_labels_total", []))
            return got if labels == SENT else None

        metrics = wait_for(flushed, "the feedback labels reach /metrics")
        names = set(metrics)
        if classifier:
            per_class = {s["class"]: v for s, v in metrics["modelops_predictions_total"]}
            counts = pd.Series(expected).value_counts()
            assert per_class == {c: float(counts.get(c, 0)) * len(shapes) for c in ("no", "yes")}
            assert any(n.startswith("modelops_expected_") for n in names) == probabilities
            confusion = {(s["predicted"], s["actual"]): v for s, v in metrics["modelops_feedback_confusion_total"]}
            want = confusion_matrix(actual, expected, labels=["no", "yes"]).T  # rows: predicted
            assert confusion == {(p, a): float(want[i, j]) for i, p in enumerate(["no", "yes"])
                                 for j, a in enumerate(["no", "yes"])}  # fmt: skip
        else:
            assert not any(n.startswith("modelops_expected_") for n in names)
            error = sum(v for _, v in metrics["modelops_feedback_absolute_error_total"])
            assert error == pytest.approx(float(np.abs(np.asarray(actual) - expected).sum()), rel=1e-9)
    finally:
        server.close()


def test_a_model_without_probabilities_says_so_to_tritonclient(data_dir: Path, tmp_path: Path) -> None:
    """The official client's default request (binary tensors) asking for probabilities: a 400 naming the output."""
    run = run_trainer(
        {
            "model": "servable",
            "dataset": {"uri": str(data_dir / "classification.csv"), "target": "target", "features": list(KINDS),
                        "categoricalFeatures": ["plan", "num_products"]},
            "estimator": {"className": "sklearn.linear_model.Perceptron", "params": {}},
        },
        tmp_path, env={"MODELOPS_FILE_ROOTS": str(data_dir)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    server = Server(run.output).wait_ready()
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        tensor = triton.InferInput("x", [1, 4], "BYTES")
        tensor.set_data_from_numpy(np.array([[40.0, 12, "basic", 2]], dtype=object))
        with pytest.raises(triton.InferenceServerException) as caught:
            client.infer("servable", [tensor], outputs=[triton.InferRequestedOutput("predict_proba")])
        assert caught.value.message() == (
            "output 'predict_proba': this model (Perceptron) has no probabilities, only labels; ask for 'predict'"
        )
        answer = client.infer("servable", [tensor])
        assert answer.as_numpy("predict").tolist() in ([b"yes"], [b"no"])
    finally:
        client.close()
        server.close()
