"""The trusted types: derived from what the trainer writes, fresh, and enough for every allow-listed estimator.

Every allow-listed estimator is trained by the real trainer (``runner.train``) on a table with a
text column (the one-hot path) or a bundled one, its ``model.skops`` loaded the way the server
loads it (sha256, audit, skops, structure checks) into a :class:`Predictor`, and its predictions
compared with the same archive loaded by skops alone. The generated list is re-derived and must
equal the committed one (``make trusted-types`` rewrites it).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io

from modelops.serve import loading, predictor, trusted, trusted_types
from modelops.train import estimators, output, runner
from modelops.train.config import parse_config

QUICK = {"n_estimators": 10, "max_iter": 50}
# Scaled, gaps filled (with indicators): the most column steps a trained pipeline can hold.
PREPROCESSING = {
    "scaleNumeric": True,
    "impute": {"numeric": "median", "categorical": "most_frequent", "indicators": True},
}


@pytest.fixture(scope="module")
def mixed_csv(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A messy table: gaps in a number and a text column, and a text column with many values."""
    rng = np.random.default_rng(3)
    n = 160
    frame = pd.DataFrame(
        {"x1": rng.normal(size=n), "x2": rng.normal(5, 2, size=n), "colour": rng.choice(["red", "green", "blue"], n),
         "city": rng.choice([f"city-{i}" for i in range(70)], n)}
    )  # fmt: skip
    frame["label"] = np.where(frame["x1"] + (frame["colour"] == "red") > 0.2, "yes", "no")
    frame["value"] = 3 * frame["x1"] - frame["x2"] + 2 * (frame["colour"] == "blue") + 0.1 * rng.normal(size=n)
    frame.loc[rng.random(n) < 0.1, "x2"] = np.nan
    frame.loc[rng.random(n) < 0.1, "colour"] = None
    path = tmp_path_factory.mktemp("data") / "mixed.csv"
    frame.to_csv(path, index=False)
    return path.as_uri()


@pytest.fixture(autouse=True)
def file_roots(mixed_csv: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer reads file:// data only inside its file roots."""
    monkeypatch.setenv("MODELOPS_FILE_ROOTS", str(Path(mixed_csv.removeprefix("file://")).parent))


def _dataset(class_name: str, mixed: str) -> dict[str, Any]:
    """Half the estimators on the mixed table, the others on a bundled one: both paths, every estimator."""
    task = estimators.ALLOWED_ESTIMATORS[class_name]
    if sorted(estimators.ALLOWED_ESTIMATORS).index(class_name) % 2 == 0:
        return {"uri": mixed, "target": "label" if task == "classification" else "value"}
    return {"uri": "sklearn://iris" if task == "classification" else "sklearn://diabetes", "target": "target"}


@pytest.mark.parametrize("class_name", sorted(estimators.ALLOWED_ESTIMATORS))
def test_every_allow_listed_estimator_round_trips_through_skops_and_serves(
    class_name: str, mixed_csv: str, tmp_path: Path
) -> None:
    accepted = estimators.valid_params(class_name)
    params: dict[str, Any] = {k: v for k, v in QUICK.items() if k in accepted}
    if class_name.endswith("QuadraticDiscriminantAnalysis"):
        params["reg_param"] = 0.1
    config = parse_config(
        {
            "model": "m",
            "dataset": _dataset(class_name, mixed_csv),
            "estimator": {"className": class_name, "params": params, "preprocessing": PREPROCESSING},
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the quick settings
        runner.train(config, tmp_path)
    result = json.loads((tmp_path / output.RESULT_FILE).read_text())
    assert result["artifact"]["format"] == "skops"
    assert result["artifact"]["path"] == "model.skops"
    data = (tmp_path / "model.skops").read_bytes()
    assert trusted.untrusted(trusted.read_schema(data)) == []

    contract = predictor.load_contract(tmp_path)
    reference = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    frame = pd.read_csv(config.dataset.uri.removeprefix("file://")) if config.dataset.uri.startswith("file:") else None
    if frame is None:
        from sklearn.datasets import load_diabetes, load_iris

        loader = load_iris if contract.is_classifier else load_diabetes
        frame = loader(as_frame=True).frame
    x = frame[list(contract.feature_names)].head(20)
    # The server's loader (audit, skops with the trusted types, structure checks) gives the same model.
    loaded = loading.load_model(data, "skops", "model.skops", allow_pickle=False)
    np.testing.assert_array_equal(loaded.predict(x), reference.predict(x))
    served = predictor.load(tmp_path, contract, result["artifact"]["sha256"])  # allow_pickle is False
    assert served.has_proba == hasattr(reference, "predict_proba")
    x = x.dropna()  # a request carries no NaN: the codec refuses them
    numeric = x[[n for n in contract.feature_names if n in served.numeric_names]].to_numpy(dtype=np.float64)
    categorical = [x[n].astype(str).tolist() for n in served.categorical_names]
    got = served.predict_batch(numeric, categorical, want_proba=contract.is_classifier)
    expected = reference.predict(x)
    if contract.is_classifier:
        np.testing.assert_array_equal(got.predict, expected)
        if served.has_proba:
            np.testing.assert_allclose(got.proba, reference.predict_proba(x), rtol=1e-7, atol=1e-9)
        else:  # labels only (Perceptron, LinearSVC, SVC without probability=True, …)
            assert got.proba is None
    else:
        np.testing.assert_allclose(got.predict, expected, rtol=1e-7, atol=1e-9)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # it trains about a thousand small models: minutes on a busy machine
def test_the_generated_list_is_fresh() -> None:
    """``make trusted-types`` was run after the last change to the allow-list, scikit-learn or skops."""
    expected = trusted.render(trusted.derive())
    assert trusted.GENERATED.read_text() == expected, "trusted_types.py is stale: run make trusted-types"


def test_the_generated_list_trusts_no_code_runner() -> None:
    """Nothing that runs code by being named: no functions, no modules beyond data and scikit-learn."""
    assert "FunctionNode" not in trusted_types.LOADERS
    assert "OperatorFuncNode" not in trusted_types.LOADERS
    assert "PartialNode" not in trusted_types.LOADERS
    roots = {name.split(".", 1)[0] for name in trusted_types.TYPES}
    assert roots <= {"builtins", "numpy", "sklearn"}
    builtins = {name for name in trusted_types.TYPES if name.startswith("builtins.")}
    assert builtins <= {"builtins.dict", "builtins.list", "builtins.slice", "builtins.str", "builtins.tuple"}
    for name in estimators.ALLOWED_ESTIMATORS:
        cls = estimators.load_class(name)
        assert f"{cls.__module__}.{cls.__qualname__}" in trusted_types.TYPES, name
