"""Calibration at training: the expected calibration error against a reference written out here, and
CalibratedClassifierCV on request, trained by the real trainer, served by the real server.

The reference ECE is the contract's words as a loop (docs/contracts.md, "Calibration"): bins
(0, 0.1], …, (0.9, 1] of each row's top probability, the edges being the floats i / 10, so that a
probability of 0.3 (the float) is in the third bin and 0.4 in the fourth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from modelops.train import calibration
from modelops.train.config import parse_config
from modelops.train.errors import ConfigError
from serve.conftest import Server
from trainer.conftest import config_for, run_in_process, run_trainer


def reference_ece(y: list[Any], proba: list[list[float]], classes: list[Any]) -> float:
    rows: list[list[tuple[float, bool]]] = [[] for _ in range(10)]
    for label, p in zip(y, proba, strict=True):
        top = max(range(len(p)), key=lambda k: (p[k], -k))  # the first of equal maxima, as argmax
        confidence = p[top]
        b = next(i for i in range(10) if confidence <= (i + 1) / 10)
        rows[b].append((confidence, classes[top] == label))
    total = 0.0
    for members in rows:
        if members:
            accuracy = sum(hit for _, hit in members) / len(members)
            mean_confidence = sum(c for c, _ in members) / len(members)
            total += len(members) / len(y) * abs(accuracy - mean_confidence)
    return total


def _load(output: Path) -> Any:
    """The run's artifact, loaded the model server's way (skops, trusted types only)."""
    from modelops.serve import loading

    data = (output / "model.skops").read_bytes()
    return loading.load_model(data, "skops", str(output), allow_pickle=False)


@settings(max_examples=200, deadline=None)
@given(
    classes=st.integers(2, 5),
    rows=st.lists(
        st.tuples(st.lists(st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.45, 0.5, 0.7, 1.0, 2.0, 3.0]), min_size=5,
                           max_size=5), st.integers(0, 4)),
        min_size=1, max_size=40,
    ),
)  # fmt: skip
def test_ece_is_the_contracts_formula(classes: int, rows: list[tuple[list[float], int]]) -> None:
    proba, y = [], []
    for weights, label in rows:
        w = np.array(weights[:classes]) + 1e-3 * np.arange(1, classes + 1)
        proba.append((w / w.sum()).tolist())
        y.append(label % classes)
    # exact edges too: rows whose top probability is exactly 0.3, 0.5 and 1.0
    proba += [[0.3, 0.3, 0.4][:2] + [0.0] * (classes - 2) if classes == 2 else [0.3] * 3 + [0.1] * (classes - 3),
              [0.5, 0.5] + [0.0] * (classes - 2), [1.0] + [0.0] * (classes - 1)]  # fmt: skip
    y += [1, 0, 0]
    labels = list(range(classes))
    got = calibration.expected_calibration_error(y, proba, labels)
    assert got == pytest.approx(reference_ece(y, proba, labels), abs=1e-12)


def test_ece_of_string_classes_and_a_perfectly_calibrated_case() -> None:
    classes = ["no", "yes"]
    # Four rows at 0.75 "yes", three of them right: accuracy 0.75 = confidence, ECE 0.
    proba = [[0.25, 0.75]] * 4
    assert calibration.expected_calibration_error(["yes", "yes", "yes", "no"], proba, classes) == 0.0
    assert calibration.expected_calibration_error(["no"] * 4, proba, classes) == pytest.approx(0.75)


def breast_cancer_csv(tmp_path: Path) -> Path:
    frame = load_breast_cancer(as_frame=True).frame
    path = tmp_path / "bc.csv"
    frame.to_csv(path, index=False)
    return path


def held_out(path: Path, seed: int = 7, test_size: float = 0.25) -> tuple[Any, Any]:
    import pandas as pd

    frame = pd.read_csv(path)
    x, y = frame.drop(columns="target"), frame["target"]
    _, x_test, _, y_test = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    return x_test, y_test


def test_every_classifier_records_its_ece_and_calibration_makes_a_naive_bayes_honest(tmp_path: Path) -> None:
    data = breast_cancer_csv(tmp_path)
    nb = {"className": "sklearn.naive_bayes.GaussianNB", "params": {}}
    plain = run_trainer(config_for(f"file://{data}", estimator=nb), tmp_path, name="plain")
    assert plain.returncode == 0, plain.stderr
    calibrated = run_trainer(
        config_for(f"file://{data}", estimator={**nb, "calibration": {"method": "isotonic", "cv": 4}}),
        tmp_path, name="calibrated",
    )  # fmt: skip
    assert calibrated.returncode == 0, calibrated.stderr
    x_test, y_test = held_out(data)
    for run, method in ((plain, "none"), (calibrated, "isotonic")):
        result = run.result()
        model = _load(run.output)
        reference = reference_ece(y_test.tolist(), model.predict_proba(x_test).tolist(), list(model.classes_))
        assert result["metrics"]["ece"] == pytest.approx(reference, abs=1e-12)
        assert result["calibration"] == {"method": method, "bins": 10, "rows": len(x_test),
                                         **({"cv": 4} if method != "none" else {})}  # fmt: skip
        assert run.termination is not None
        assert run.termination["calibration"] == result["calibration"]
        assert run.termination["metrics"]["ece"] == result["metrics"]["ece"]
    final = _load(calibrated.output)[-1]
    assert isinstance(final, CalibratedClassifierCV)
    assert (final.method, final.cv) == ("isotonic", 4)
    # Gaussian naive Bayes is famously over-confident on correlated features; isotonic calibration fixes that.
    assert plain.result()["metrics"]["ece"] > 0.02
    assert calibrated.result()["metrics"]["ece"] < plain.result()["metrics"]["ece"]
    assert "calibrating sklearn.naive_bayes.GaussianNB's probabilities: isotonic, 4 folds" in calibrated.stdout

    # The calibrated model serves: the server asks its final step for probabilities once, and its predict
    # is the class of the highest one, as CalibratedClassifierCV's own.
    server = Server(calibrated.output).wait_ready()
    try:
        model = _load(calibrated.output)
        rows = x_test.to_numpy(dtype=np.float64)
        body = {"inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}],
                "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}  # fmt: skip
        r = server.post("/v2/models/test-model/infer", json=body)
        assert r.status_code == 200, r.text
        outputs = {o["name"]: o["data"] for o in r.json()["outputs"]}
        assert outputs["predict"] == model.predict(x_test).tolist()
        np.testing.assert_allclose(np.array(outputs["predict_proba"]).reshape(-1, 2), model.predict_proba(x_test),
                                   rtol=1e-12)  # fmt: skip
    finally:
        server.close()


def test_a_regressor_has_no_ece(tmp_path: Path) -> None:
    import pandas as pd
    from sklearn.datasets import load_diabetes

    path = tmp_path / "d.csv"
    pd.DataFrame(load_diabetes(as_frame=True).frame).to_csv(path, index=False)
    run = run_trainer(config_for(f"file://{path}", estimator={"className": "sklearn.linear_model.Ridge",
                                                               "params": {}}), tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "ece" not in run.result()["metrics"]
    assert "calibration" not in run.result()


@pytest.mark.parametrize(
    ("calibration_doc", "estimator", "needle"),
    [
        ({"method": "sigmoid"}, "sklearn.linear_model.Ridge", "estimator.calibration: sklearn.linear_model.Ridge is a "
                                                              "regressor; only classifiers are calibrated"),
        ({"method": "beta"}, "sklearn.naive_bayes.GaussianNB", "estimator.calibration.method: must be one of sigmoid"),
        ({"cv": 5}, "sklearn.naive_bayes.GaussianNB", "estimator.calibration.method: is required"),
        ({"method": "sigmoid", "cv": 1}, "sklearn.naive_bayes.GaussianNB", "estimator.calibration.cv: must be an "
                                                                           "integer in [2, 20]"),
        ({"method": "sigmoid", "folds": 3}, "sklearn.naive_bayes.GaussianNB", "folds"),
    ],
)  # fmt: skip
def test_bad_calibration_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], calibration_doc: dict[str, Any], estimator: str, needle: str
) -> None:
    config = config_for("sklearn://iris", estimator={"className": estimator, "params": {},
                                                     "calibration": calibration_doc})  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        parse_config(json.loads(json.dumps(config)))
    assert needle in str(caught.value)
    run = run_in_process(config, tmp_path, capsys)
    assert run.returncode != 0
    assert needle in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
