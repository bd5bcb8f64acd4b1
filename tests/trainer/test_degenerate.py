"""Whatever training accepts, serving accepts: generated degenerate tables, trained, served, drift-checked.

Given a table with degenerate columns -- all missing, constant, two values, fewer distinct values
than bins, a handful of values among gaps, values near the float limits, categories that never
vary -- when ``modelops train`` runs on it, then either it refuses up front with one line naming
the column (only for a column with no value in the training split), or the model it wrote loads in
the model server's own loading path (contract, artifact, predictor, metric layout), answers an
inference request with rows of the same table, exports its per-feature histograms on
``/metrics``, and ``modelops drift`` checks the table against the result's reference bins without
an error. One fixed table with every kind at once also goes through a real ``modelops serve``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelops.drift import cli as drift_cli
from modelops.train import cli as train_cli

NUMERIC_KINDS = (
    "normal", "constant", "two_values", "few_integers", "handful", "mostly_missing", "all_missing", "huge",
    "large", "tiny", "negative_constant", "zero",
)  # fmt: skip
CATEGORICAL_KINDS = ("few", "constant", "with_missing", "all_missing", "many")
#: The only columns training may refuse, and what it must say: no value in the training split, or
#: values no estimator (or float32, which trees use) can hold.
MAY_BE_REFUSED = {
    "all_missing": "no values", "handful": "no values", "mostly_missing": "no values", "huge": "values beyond",
}  # fmt: skip
ESTIMATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "logistic": ("sklearn.linear_model.LogisticRegression", {"max_iter": 200}),
    "hgb": ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 5}),
    "forest": ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 3}),
    "tree": ("sklearn.tree.DecisionTreeClassifier", {"max_depth": 3}),
    "ridge": ("sklearn.linear_model.Ridge", {}),
    "hgb_regressor": ("sklearn.ensemble.HistGradientBoostingRegressor", {"max_iter": 5}),
}


def numeric_column(kind: str, rows: int, rng: np.random.Generator) -> np.ndarray[Any, Any]:
    values: np.ndarray[Any, Any]
    if kind == "normal":
        values = rng.normal(size=rows)
    elif kind == "constant":
        values = np.full(rows, 3.5)
    elif kind == "negative_constant":
        values = np.full(rows, -1e6)
    elif kind == "zero":
        values = np.zeros(rows)
    elif kind == "two_values":
        values = rng.choice([0.0, 1.0], rows)
    elif kind == "few_integers":
        values = rng.integers(0, 4, rows).astype(float)
    elif kind == "huge":
        values = rng.choice([-1.7e308, 1.7e308, 0.0], rows)
    elif kind == "large":
        values = rng.choice([-3e38, 3e38, 1e30, 0.0], rows)
    elif kind == "tiny":
        values = rng.normal(size=rows) * 1e-300
    else:
        values = rng.normal(size=rows)
        keep = {"handful": min(rows, int(rng.integers(1, 5))), "mostly_missing": max(1, rows // 10), "all_missing": 0}[
            kind
        ]
        values[rng.permutation(rows)[keep:]] = np.nan
    return values


def categorical_column(kind: str, rows: int, rng: np.random.Generator) -> list[str | None]:
    if kind == "few":
        return list(rng.choice(["red", "green", "blue"], rows))
    if kind == "constant":
        return ["same"] * rows
    if kind == "all_missing":
        return [None] * rows
    if kind == "many":
        return [f"v{int(i)}" for i in rng.integers(0, 70, rows)]
    return [None if rng.random() < 0.3 else str(v) for v in rng.choice(["a", "b"], rows)]


@st.composite
def tables(draw: st.DrawFn) -> tuple[pd.DataFrame, dict[str, str], str, list[str]]:
    """(table, column -> kind, estimator key, declared categorical columns)."""
    rows = draw(st.integers(min_value=24, max_value=90))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    kinds: dict[str, str] = {}
    numeric = draw(st.lists(st.sampled_from(NUMERIC_KINDS), min_size=1, max_size=4))
    categorical = draw(st.lists(st.sampled_from(CATEGORICAL_KINDS), min_size=0, max_size=2))
    table: dict[str, Any] = {}
    for i, kind in enumerate(numeric):
        table[f"n{i}_{kind}"] = numeric_column(kind, rows, rng)
        kinds[f"n{i}_{kind}"] = kind
    for i, kind in enumerate(categorical):
        table[f"c{i}_{kind}"] = categorical_column(kind, rows, rng)
        kinds[f"c{i}_{kind}"] = kind
    estimator = draw(st.sampled_from(sorted(ESTIMATORS)))
    if ESTIMATORS[estimator][0].endswith(("Regressor", "Ridge")):
        table["target"] = rng.normal(size=rows)
    else:
        labels = np.array(["yes", "no"] * rows)[:rows]
        table["target"] = rng.permutation(labels)
    # A "many" column would look like an identifier: declare the categorical columns, as a user must.
    many = any(kind == "many" for kind in kinds.values())
    declared = [name for name in kinds if name.startswith("c")] if many else []
    return pd.DataFrame(table), kinds, estimator, declared


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A scratch directory the trainer may read from; library warnings behave as in a real process
    (printed, never fatal; this tier's pytest turns them into errors)."""
    with (
        tempfile.TemporaryDirectory(prefix="modelops-degenerate-") as name,
        pytest.MonkeyPatch.context() as patch,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        patch.setenv("MODELOPS_FILE_ROOTS", name)
        yield Path(name)


def train(table: pd.DataFrame, estimator: str, declared: list[str], work: Path) -> tuple[int, str, Path]:
    """Run ``modelops train`` in this process on ``table``; (exit code, stderr, output dir)."""
    data = work / "table.csv"
    table.to_csv(data, index=False)
    class_name, params = ESTIMATORS[estimator]
    dataset: dict[str, Any] = {"uri": data.as_uri(), "target": "target", "testSize": 0.25, "seed": 3}
    if declared:
        dataset["categoricalFeatures"] = declared
        dataset["features"] = [c for c in table.columns if c != "target"]
    config = {"model": "degenerate", "dataset": dataset, "estimator": {"className": class_name, "params": params}}
    (work / "run.json").write_text(json.dumps(config))
    out = work / "out"
    err = work / "stderr"
    with open(err, "w") as handle, open(os.devnull, "w") as sink, contextlib.redirect_stderr(handle), \
            contextlib.redirect_stdout(sink):
        code = train_cli.main(["--config", str(work / "run.json"), "--output", str(out),
                               "--termination-log", str(work / "termination")])  # fmt: skip
    return code, err.read_text(), out


def request_rows(table: pd.DataFrame, result: dict[str, Any], rows: int = 5) -> dict[str, Any]:
    """A v2 request, one tensor per signature input, with the first rows of the table (gaps filled)."""
    inputs = []
    for spec in result["signature"]["inputs"]:
        column = table[spec["name"]].iloc[:rows]
        if spec["datatype"] == "BYTES":
            data: list[Any] = ["x" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in column]
        else:
            data = [0.0 if not math.isfinite(float(v)) else float(v) for v in column]
        inputs.append({"name": spec["name"], "shape": [len(data)], "datatype": spec["datatype"], "data": data})
    return {"inputs": inputs}


def serve_in_process(model_dir: Path, request: dict[str, Any]) -> tuple[int, bytes, bytes]:
    """The model server's own loading path and routes, without a socket: (infer status, body, /metrics)."""
    from modelops.serve import app, codec, metrics, predictor

    contract = predictor.load_contract(model_dir)
    assert contract.sha256 is not None
    model = predictor.load(model_dir, contract, contract.sha256)
    plan = codec.make_plan(contract)
    layout = metrics.build_layout(
        model=contract.model, version="v1", classes=model.class_labels, prediction_bounds=model.prediction_bounds,
        numeric=[(s.name, plan.slots[s.name][1], s.interior) for s in contract.numeric_stats],
        categorical=[(s.name, plan.slots[s.name][1], s.categories) for s in contract.categorical_stats],
    )  # fmt: skip
    application = app.App(model, plan, metrics.Store(layout), name=contract.model, version="v1", server_version="t")
    target = f"/v2/models/{contract.model}/infer".encode()
    status, _, body = application.handle(b"POST", target, json.dumps(request).encode(), time.perf_counter())
    _, _, exposition = application.handle(b"GET", b"/metrics", b"", time.perf_counter())
    return status, body, exposition


def drift_check(result_file: Path, data: Path) -> tuple[int, str]:
    errors = io.StringIO()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(errors):
        code = drift_cli.main(["--reference", str(result_file), "--current", str(data)])
    return code, errors.getvalue()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_a_degenerate_table_is_refused_naming_the_column_or_served_and_drift_checked(
    example: tuple[pd.DataFrame, dict[str, str], str, list[str]],
) -> None:
    table, kinds, estimator, declared = example
    with workdir() as work:
        code, stderr, out = train(table, estimator, declared, work)
        if code != 0:
            # Refused up front: one line, naming a column that may really be empty in the training split.
            assert stderr.count("\n") == 1, stderr
            assert stderr.startswith("modelops train: error: "), stderr
            named = [name for name in kinds if f"feature column {name!r} has" in stderr]
            assert named, stderr
            for name in named:
                assert kinds[name] in MAY_BE_REFUSED, (name, stderr)
                pattern = rf"feature column {re.escape(repr(name))} has [^;]*{MAY_BE_REFUSED[kinds[name]]}"
                assert re.search(pattern, stderr), stderr
            return
        result = json.loads((out / "result.json").read_text())
        edges_ok = all(
            len(f["edges"]) >= 2 and all(b > a for a, b in zip(f["edges"], f["edges"][1:], strict=False))
            for f in result["referenceStats"]["features"]
            if f["kind"] == "numeric"
        )
        assert edges_ok, result["referenceStats"]
        status, body, exposition = serve_in_process(out, request_rows(table, result))
        assert status == 200, body
        answer = json.loads(body)
        assert answer["outputs"][0]["shape"][0] == min(5, len(table))
        numeric = [f["name"] for f in result["referenceStats"]["features"] if f["kind"] == "numeric"]
        for name in numeric:
            assert f'feature="{name}"' in exposition.decode(), name
        # A verdict (0: no drift, 1: drift), or a one-line refusal when no feature has enough
        # values to be scored (tiny tables): never a traceback.
        code, stderr = drift_check(out / "result.json", work / "table.csv")
        assert code in (0, 1, 2), stderr
        if code == 2:
            assert stderr.count("\n") == 1, stderr
            assert stderr.startswith("modelops drift: error: no feature could be scored"), stderr


def every_kind_at_once(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    kinds = [kind for kind in NUMERIC_KINDS if kind not in ("all_missing", "huge")]
    table: dict[str, Any] = {f"n_{kind}": numeric_column(kind, rows, rng) for kind in kinds}
    table.update({f"c_{kind}": categorical_column(kind, rows, rng) for kind in ("few", "constant", "with_missing")})
    table["target"] = rng.permutation(np.array(["yes", "no"] * rows)[:rows])
    return pd.DataFrame(table)


@pytest.mark.parametrize("estimator", ["logistic", "hgb"])
def test_every_degenerate_kind_at_once_is_served_by_a_real_server(estimator: str) -> None:
    from serve.conftest import Server

    table = every_kind_at_once()
    with workdir() as work:
        code, stderr, out = train(table, estimator, [], work)
        assert code == 0, stderr
        result = json.loads((out / "result.json").read_text())
        server = Server(out)
        try:
            server.wait_ready(60)
            answer = server.post("/v2/models/degenerate/infer", json=request_rows(table, result, 20))
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["outputs"][0]["data"]) == 20
            exposition = server.get("/metrics").text
        finally:
            server.close()
        constant = next(f for f in result["referenceStats"]["features"] if f["name"] == "n_constant")
        assert constant["edges"][2] == 3.5
        assert len(constant["edges"]) == 4
        assert 'modelops_feature_bucket{feature="n_constant"' in exposition.replace("model=\"degenerate\",", "")
        assert drift_check(out / "result.json", work / "table.csv") == (0, "")


def test_an_all_missing_column_is_refused_before_fitting_naming_it() -> None:
    rng = np.random.default_rng(5)
    table = pd.DataFrame({"a": rng.normal(size=60), "empty": np.nan, "target": ["yes", "no"] * 30})
    with workdir() as work:
        code, stderr, out = train(table, "hgb", [], work)
    assert code == 1
    assert "feature column 'empty' has no values in the training split (all 45 missing)" in stderr
    assert not (out / "result.json").exists()


def test_infinite_values_are_refused_naming_the_column() -> None:
    table = pd.DataFrame({"a": [1.0, 2.0, math.inf] * 20, "target": ["yes", "no", "yes"] * 20})
    with workdir() as work:
        code, stderr, _ = train(table, "forest", [], work)
    assert code == 1
    assert "feature column 'a' has" in stderr
    assert "infinite values" in stderr
