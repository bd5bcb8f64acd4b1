"""Unit tests of request decoding and validation (``modelops.serve.codec``), without any server."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from modelops.serve.codec import RequestError, decode_infer, encode_infer, make_plan
from modelops.serve.contract import parse_result

NUMERIC = parse_result({
    "model": "m", "task": "classification", "artifact": {"path": "model.joblib", "sha256": "0" * 64},
    "signature": {"inputs": [{"name": "a", "datatype": "FP64"}, {"name": "b", "datatype": "FP64"},
                             {"name": "c", "datatype": "INT64"}], "classes": [0, 1]},
})  # fmt: skip
MIXED = parse_result({
    "model": "m", "task": "classification", "artifact": {"path": "model.joblib", "sha256": "0" * 64},
    "signature": {"inputs": [{"name": "colour", "datatype": "BYTES"}, {"name": "x", "datatype": "FP64"}],
                  "classes": ["no", "yes"]},
})  # fmt: skip
PLAN = make_plan(NUMERIC)
MIXED_PLAN = make_plan(MIXED)


def req(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def t(name: str, shape: list[int], data: list[Any], datatype: str = "FP64") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def bad(body: bytes, plan: Any = PLAN) -> str:
    with pytest.raises(RequestError) as info:
        decode_infer(body, plan)
    assert info.value.status == 400
    return info.value.message


def test_matrix_tensor_row_major() -> None:
    d = decode_infer(req(t("input-0", [2, 3], [1, 2, 3, 4, 5, 6])), PLAN)
    assert d.rows == 2
    np.testing.assert_array_equal(d.numeric, [[1, 2, 3], [4, 5, 6]])
    assert d.numeric.dtype == np.float64
    assert d.outputs == ("predict",)


def test_matrix_nested_data_and_content_type() -> None:
    body = req(t("x", [2, 3], [[1, 2, 3], [4, 5, 6]]), parameters={"content_type": "np"})
    np.testing.assert_array_equal(decode_infer(body, PLAN).numeric, [[1, 2, 3], [4, 5, 6]])


def test_per_feature_tensors_any_order_and_shapes() -> None:
    body = req(t("c", [2, 1], [7, 8], "INT64"), t("a", [2], [1.5, 2.5]), t("b", [2], [True, False], "BOOL"),
               parameters={"content_type": "pd"})  # fmt: skip
    d = decode_infer(body, PLAN)
    np.testing.assert_array_equal(d.numeric, [[1.5, 1, 7], [2.5, 0, 8]])


@pytest.mark.parametrize("datatype", ["FP32", "INT32", "INT64", "FP64"])
def test_numeric_datatypes_accepted(datatype: str) -> None:
    assert decode_infer(req(t("x", [1, 3], [1, 2, 3], datatype)), PLAN).rows == 1


def test_outputs_and_id() -> None:
    body = req(t("x", [1, 3], [1, 2, 3]), id="abc", outputs=[{"name": "predict_proba"}, {"name": "predict"}])
    d = decode_infer(body, PLAN)
    assert d.outputs == ("predict_proba", "predict")
    assert d.request_id == "abc"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "JSON object"),
        (orjson.dumps({"inputs": []}), "non-empty list"),
        (orjson.dumps({"inputs": [t("x", [1, 3], [1, 2, 3])], "id": 5}), "'id'"),
        (req(t("x", [1, 2], [1, 2])), "input 'x' has shape [1, 2]; expected [N, 3]"),
        (req(t("x", [3], [1, 2, 3])), "input 'x' has shape [3]"),
        (req(t("x", [2, 3], [1, 2, 3])), "input 'x': 'data' has 3 values but shape [2, 3] needs 6"),
        (req(t("x", [1, 3], [1, 2, 3], "FP128")), "input 'x': unknown datatype 'FP128'"),
        (req(t("x", [1, 3], ["1", "2", "3"], "BYTES")), "input 'x' has datatype BYTES"),
        (req(t("x", [1, 3], [1, "two", 3])), "input 'x' (FP64): 'data' holds non-numeric values"),
        (req(t("x", [1, 3], [1, None, 3])), "non-numeric"),
        (req(t("x", [2, 3], [[1, 2, 3], [4, 5]])), "input 'x': 'data' is a ragged nested list"),
        (req(t("x", [-1, 3], [1, 2, 3])), "input 'x': 'shape'"),
        (req({"name": "x", "shape": [1, 3], "datatype": "FP64"}), "input 'x': 'data' must be a list"),
        (req(t("a", [1], [1]), t("b", [1], [2])), "missing input 'c'"),
        (req(t("a", [1], [1]), t("b", [1], [2]), t("c", [1], [3]), t("d", [1], [4])), "unknown input 'd'"),
        (req(t("a", [1], [1]), t("b", [2], [2, 3]), t("c", [1], [3])), "input 'b' has 2 rows but input 'a' has 1"),
        (req(t("a", [1, 2], [1, 2]), t("b", [1], [2]), t("c", [1], [3])), "input 'a' has shape [1, 2]"),
        (req(t("a", [1], ["x"], "BYTES"), t("b", [1], [2]), t("c", [1], [3])), "input 'a' has datatype BYTES"),
        (req(t("a", [1], [1]), t("a", [1], [1]), t("c", [1], [3])), "input 'a' is given twice"),
        (req(t("x", [1, 3], [1, 2, 3]), outputs=[{"name": "nope"}]), "unknown output 'nope'"),
        (req(t("x", [0, 3], [])), "no rows"),
    ],
)
def test_rejections_name_the_problem(body: bytes, needle: str) -> None:
    assert needle in bad(body)


def test_mixed_per_feature() -> None:
    body = req(t("colour", [2], ["red", "mauve"], "BYTES"), t("x", [2, 1], [0.5, 1.5]))
    d = decode_infer(body, MIXED_PLAN)
    assert d.categorical == [["red", "mauve"]]
    np.testing.assert_array_equal(d.numeric, [[0.5], [1.5]])


def test_mixed_matrix_bytes() -> None:
    d = decode_infer(req(t("in", [2, 2], ["red", 0.5, "blue", "1.5"], "BYTES")), MIXED_PLAN)
    assert d.categorical == [["red", "blue"]]
    np.testing.assert_array_equal(d.numeric, [[0.5], [1.5]])


def test_mixed_rejections() -> None:
    assert "input 'colour' has datatype FP64" in bad(req(t("colour", [1], [1.0]), t("x", [1], [1.0])), MIXED_PLAN)
    assert "must hold strings" in bad(req(t("colour", [1], [1], "BYTES"), t("x", [1], [1.0])), MIXED_PLAN)
    assert "feature 'x'" in bad(req(t("in", [1, 2], ["red", "abc"], "BYTES")), MIXED_PLAN)


def test_predict_proba_only_for_classifiers() -> None:
    regression = parse_result({
        "model": "r", "task": "regression", "artifact": {"sha256": "0" * 64},
        "signature": {"inputs": [{"name": "a"}]},
    })  # fmt: skip
    plan = make_plan(regression)
    assert "unknown output 'predict_proba'" in bad(req(t("a", [1], [1.0]), outputs=[{"name": "predict_proba"}]), plan)


def test_encode_response_with_numpy() -> None:
    out = orjson.loads(encode_infer("m", "1", "id-1", [
        {"name": "predict", "datatype": "INT64", "shape": [2], "data": np.array([0, 1])},
        {"name": "predict_proba", "datatype": "FP64", "shape": [2, 2],
         "data": np.array([[0.25, 0.75], [1, 0]]).ravel()},
    ]))  # fmt: skip
    assert out == {
        "model_name": "m", "model_version": "1", "id": "id-1",
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 1]},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [2, 2], "data": [0.25, 0.75, 1.0, 0.0]}],
    }  # fmt: skip
