"""The single-row fast path (``codec.single_row`` + ``Predictor.predict_row``) answers and counts as the full path."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
import pytest

from modelops.serve import app, predictor
from serve import modelkit


def make_app(m: modelkit.ModelDir, *, row_path: bool) -> app.App:
    contract = predictor.load_contract(m.path)
    model = predictor.load(m.path, contract, m.sha256)
    application = app.build(model, name=m.name, version="1", server_version="test")
    if not row_path:
        application._row_path = False  # the full path, as the reference
    return application


def infer(application: app.App, doc: Any) -> tuple[int, Any]:
    target = f"/v2/models/{application.name}/infer".encode()
    status, _, payload = application.handle(b"POST", target, orjson.dumps(doc), time.perf_counter())
    return status, orjson.loads(payload)


def without_latency(application: app.App) -> np.ndarray:
    application.flush_metrics()
    values = application.store.values.copy()
    layout = application.layout
    k = len(layout.latency_bounds) + 1
    values[layout.latency_offset : layout.latency_offset + k] = 0  # timings differ between the two apps
    values[layout.latency_sum] = 0
    return values


@pytest.mark.parametrize("key", ["breast_cancer", "iris", "diabetes"])
def test_row_path_answers_and_counts_like_the_full_path(models: dict[str, modelkit.ModelDir], key: str) -> None:
    m = models[key]
    fast, full = make_app(m, row_path=True), make_app(m, row_path=False)
    assert fast._row_path
    assert not full._row_path
    x = m.test_x.to_numpy(dtype=np.float64)
    outputs = [{"name": "predict"}] + ([{"name": "predict_proba"}] if m.classes is not None else [])
    for i, row in enumerate(x[:40]):
        doc: dict[str, Any] = {
            "id": f"r{i}",
            "inputs": [{"name": "input-0", "shape": [1, x.shape[1]], "datatype": "FP64", "data": row.tolist()}],
        }
        if i % 2:
            doc["outputs"] = outputs
        got, expected = infer(fast, doc), infer(full, doc)
        assert got[0] == expected[0] == 200
        assert got[1]["id"] == f"r{i}"
        assert [o["name"] for o in got[1]["outputs"]] == [o["name"] for o in expected[1]["outputs"]]
        for ours, theirs in zip(got[1]["outputs"], expected[1]["outputs"], strict=True):
            assert {k: v for k, v in ours.items() if k != "data"} == {k: v for k, v in theirs.items() if k != "data"}
            if ours["name"] == "predict" and m.classes is not None:
                assert ours["data"] == theirs["data"]
            else:
                np.testing.assert_allclose(ours["data"], theirs["data"], rtol=1e-12, atol=1e-15)
    # Same metrics: requests by code, classes or predicted values, and the feature histograms.
    np.testing.assert_allclose(without_latency(fast), without_latency(full), rtol=1e-12)
    assert without_latency(fast)[fast.layout.code_offset[200]] == len(x[:40])


def test_unusual_or_bad_single_rows_get_the_full_path_s_answer(models: dict[str, modelkit.ModelDir]) -> None:
    m = models["breast_cancer"]
    fast, full = make_app(m, row_path=True), make_app(m, row_path=False)
    width = m.test_x.shape[1]
    row = m.test_x.to_numpy()[0].tolist()

    def tensor(**changes: Any) -> dict[str, Any]:
        return {"inputs": [{"name": "x", "shape": [1, width], "datatype": "FP64", "data": row} | changes]}

    cases = [
        tensor(data=[*row[:-1], None]),  # a null
        tensor(data=[*row[:-1], "abc"]),  # not a number
        tensor(data=[*row[:-1], "1.5"]),  # a numeric string: accepted by both
        tensor(data=[*row[:-1], "nan"]),  # missing: this model cannot take it
        tensor(data=[*row[:-1], "inf"]),  # infinite: nor that
        tensor(shape=[1.0, width]),  # shape values must be integers
        tensor(shape=[True, width]),
        tensor(shape=[1, width + 1]),
        tensor(data=row[:-1]),
        tensor(data=[row]),  # nested data: accepted by both
        tensor(datatype="BYTES"),
        tensor(datatype="FP128"),
        tensor() | {"id": 5},
        tensor() | {"parameters": []},
        tensor() | {"outputs": [{"name": "nope"}]},
        tensor() | {"outputs": []},
        {"inputs": [tensor()["inputs"][0], tensor()["inputs"][0]]},
    ]
    statuses = []
    for doc in cases:
        got, expected = infer(fast, doc), infer(full, doc)
        assert got == expected, doc
        statuses.append(got[0])
    # Accepted: the numeric string, the nested data, numbers in a BYTES tensor and the empty outputs
    # list (it means "predict").
    assert [i for i, status in enumerate(statuses) if status == 200] == [2, 9, 10, 15]
    assert statuses[0] == statuses[1] == statuses[3] == statuses[4] == statuses[5] == statuses[7] == 400
