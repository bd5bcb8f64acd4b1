"""Unit tests of request decoding and validation (``modelops.serve.codec``), without any server."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from modelops.serve import tensors
from modelops.serve.codec import Output, RequestError, decode_infer, encode_infer, make_plan
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
        (req(t("x", [1, 3], ["1", "b", "3"], "BYTES")),
         "input 'x', row 0, column 1 (feature 'b'): the string 'b' is not a number"),
        (req(t("x", [2, 3], [1, 2, 3, 1, "two", 3])),
         "input 'x', row 1, column 1 (feature 'b'): the string 'two' is not a number"),
        (req(t("x", [1, 3], [1, None, 3])),
         "input 'x', row 0, column 1 (feature 'b'): missing value; the model does not take missing values in 'b'"),
        (req(t("x", [1, 3], [1, "inf", 3])),
         "input 'x', row 0, column 1 (feature 'b'): infinite value (inf); the model does not take infinities"),
        (req(t("x", [1, 3], [1, 2, {"v": 3}])),
         "input 'x', row 0, column 2 (feature 'c'): a JSON dict is not a number"),
        (req(t("x", [2, 3], [[1, 2], [3, 4, 5, 6]])), "input 'x': 'data' is a ragged nested list"),
        (req(t("x", [2, 3], [[1, 2, 3], [4, 5]])), "input 'x': 'data' is a ragged nested list"),
        (req(t("x", [-1, 3], [1, 2, 3])), "input 'x': 'shape'"),
        (req({"name": "x", "shape": [1, 3], "datatype": "FP64"}), "input 'x': 'data' must be a list"),
        (req(t("a", [1], [1]), t("b", [1], [2])), "missing input 'c'"),
        (req(t("a", [1], [1]), t("b", [1], [2]), t("c", [1], [3]), t("d", [1], [4])), "unknown input 'd'"),
        (req(t("a", [1], [1]), t("b", [2], [2, 3]), t("c", [1], [3])), "input 'b' has 2 rows but input 'a' has 1"),
        (req(t("a", [1, 2], [1, 2]), t("b", [1], [2]), t("c", [1], [3])), "input 'a' has shape [1, 2]"),
        (req(t("a", [1], ["x"], "BYTES"), t("b", [1], [2]), t("c", [1], [3])),
         "input 'a', row 0: the string 'x' is not a number"),
        (req(t("a", [2], [1, None]), t("b", [2], [2, 2]), t("c", [2], [3, 3])),
         "input 'a', row 1: missing value; the model does not take missing values in 'a'"),
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
    assert d.categorical[0].dtype == object
    assert d.categorical[0].tolist() == ["red", "mauve"]
    np.testing.assert_array_equal(d.numeric, [[0.5], [1.5]])


def test_mixed_matrix_bytes() -> None:
    d = decode_infer(req(t("in", [2, 2], ["red", 0.5, "blue", "1.5"], "BYTES")), MIXED_PLAN)
    assert d.categorical[0].tolist() == ["red", "blue"]
    np.testing.assert_array_equal(d.numeric, [[0.5], [1.5]])


def test_mixed_rejections() -> None:
    assert bad(req(t("colour", [1], [1.0]), t("x", [1], [1.0])), MIXED_PLAN) == (
        "input 'colour', row 0: the input has datatype FP64, but 'colour' takes strings: send BYTES"
    )
    assert bad(req(t("colour", [1], [1], "BYTES"), t("x", [1], [1.0])), MIXED_PLAN) == (
        "input 'colour', row 0: the number 1 is not a string, and 'colour' takes strings: send it as one"
    )
    assert bad(req(t("in", [1, 2], ["red", "abc"], "BYTES")), MIXED_PLAN) == (
        "input 'in', row 0, column 1 (feature 'x'): the string 'abc' is not a number"
    )


def test_predict_proba_only_for_classifiers() -> None:
    regression = parse_result({
        "model": "r", "task": "regression", "artifact": {"sha256": "0" * 64},
        "signature": {"inputs": [{"name": "a"}]},
    })  # fmt: skip
    plan = make_plan(regression)
    assert "unknown output 'predict_proba'" in bad(req(t("a", [1], [1.0]), outputs=[{"name": "predict_proba"}]), plan)


def test_encode_response_with_numpy() -> None:
    payload, head = encode_infer("m", "1", "id-1", [
        Output("predict", "INT64", [2], np.array([0, 1])),
        Output("predict_proba", "FP64", [2, 2], np.array([[0.25, 0.75], [1, 0]]).ravel()),
    ])  # fmt: skip
    assert head is None
    assert orjson.loads(payload) == {
        "model_name": "m", "model_version": "1", "id": "id-1",
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 1]},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [2, 2], "data": [0.25, 0.75, 1.0, 0.0]}],
    }  # fmt: skip


# -- typed categorical columns ------------------------------------------------------------------------

TYPED = parse_result({
    "model": "m", "task": "classification", "artifact": {"path": "model.joblib", "sha256": "0" * 64},
    "signature": {"inputs": [
        {"name": "n", "datatype": "INT64", "categorical": True, "categories": [1, 2, 3], "acceptsMissing": True},
        {"name": "f", "datatype": "FP64", "categorical": True, "categories": [0.5, 1.5, None], "acceptsMissing": True},
        {"name": "b", "datatype": "BYTES", "categorical": True, "categories": [False, True], "acceptsMissing": False},
        {"name": "s", "datatype": "BYTES", "categorical": True, "categories": ["NA", "x"], "acceptsMissing": True},
    ], "classes": [0, 1]},
})  # fmt: skip
TYPED_PLAN = make_plan(TYPED)


def test_python_json_nan_and_infinity_are_values_not_malformed_json() -> None:
    """requests' json=, tritonclient's JSON tensors and MLServer's codecs write a float gap as NaN."""
    body = b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, NaN, 3]}]}'
    assert bad(body) == (
        "input 'x', row 0, column 1 (feature 'b'): missing value; the model does not take missing values in 'b'"
    )
    for token in (b"Infinity", b"-Infinity", b"1e400"):
        body = b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, %s]}]}' % token
        assert "column 2 (feature 'c'): infinite value (" in bad(body)
    d = decode_infer(b'{"inputs": [{"name": "f", "shape": [1], "datatype": "FP64", "data": [NaN]},'
                     b'{"name": "n", "shape": [1], "datatype": "INT64", "data": [2]},'
                     b'{"name": "b", "shape": [1], "datatype": "BOOL", "data": [true]},'
                     b'{"name": "s", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}', TYPED_PLAN)  # fmt: skip
    assert np.isnan(d.categorical[1][0])
    assert "malformed JSON" in bad(b'{"inputs": [NaN')


def test_kinds_from_the_record() -> None:
    assert [f.kind for f in TYPED.features] == ["int", "float", "bool", "string"]
    assert [f.kind for f in MIXED.features] == ["string", "number"]


def test_typed_columns_become_the_trained_dtypes() -> None:
    body = req(t("x", [3, 4], [[2, "0.5", 1, "x"], ["3", 1.5, "false", "NA"], [1.0, None, "True", ""]], "BYTES"))
    d = decode_infer(body, TYPED_PLAN)
    n, f, b, s = d.categorical
    assert n.dtype == np.int64
    assert n.tolist() == [2, 3, 1]
    assert f.dtype == np.float64
    assert f.tolist()[:2] == [0.5, 1.5]
    assert np.isnan(f[2])
    assert b.dtype == bool
    assert b.tolist() == [True, False, True]
    # "NA" is a category the model was trained on, so it stays a string; "" is missing (NaN, as pandas reads it).
    assert s.dtype == object
    assert s[:2].tolist() == ["x", "NA"]
    assert isinstance(s[2], float)
    assert np.isnan(s[2])
    assert [list(labels) for labels in d.labels][3][:2] == ["x", "NA"]


def test_an_integer_category_with_a_gap_is_float_as_pandas_holds_it() -> None:
    d = decode_infer(req(t("n", [2], [2, None]), t("f", [2], [0.5, 0.5]), t("b", [2], [True, False], "BOOL"),
                         t("s", [2], ["x", "x"], "BYTES")), TYPED_PLAN)  # fmt: skip
    assert d.categorical[0].dtype == np.float64
    assert list(d.labels[0]) == [2, None]  # the metrics name it "2", as the reference categories do


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ([2.5, 0.5, True, "x"], "column 0 (feature 'n'): the number 2.5 is not an integer"),
        (["2.5", 0.5, True, "x"], "column 0 (feature 'n'): the string '2.5' is not an integer"),
        ([2, 0.5, 2, "x"], "column 2 (feature 'b'): the number 2 is not a boolean"),
        ([2, 0.5, "yes", "x"], "column 2 (feature 'b'): the string 'yes' is not a boolean"),
        ([2, 0.5, None, "x"], "column 2 (feature 'b'): missing value; the model does not take missing values in 'b'"),
        ([2, 0.5, True, 5], "column 3 (feature 's'): the number 5 is not a string"),
        ([2, 0.5, True, True], "column 3 (feature 's'): the boolean true is not a string"),
        (["inf", 0.5, True, "x"], "column 0 (feature 'n'): infinite value (the string 'inf')"),
    ],
)
def test_typed_rejections(row: list[Any], needle: str) -> None:
    message = bad(req(t("x", [1, 4], row, "BYTES")), TYPED_PLAN)
    assert message.startswith("input 'x', row 0, ")
    assert needle in message


# -- the binary tensor data extension -------------------------------------------------------------------


def binary_request(*inputs: tuple[str, list[int], str, bytes], **extra: Any) -> tuple[bytes, bytes]:
    head = orjson.dumps({"inputs": [{"name": n, "shape": s, "datatype": d, "parameters": {"binary_data_size": len(b)}}
                                    for n, s, d, b in inputs], **extra})  # fmt: skip
    return head + b"".join(b for *_, b in inputs), str(len(head)).encode()


def strings(*values: str) -> bytes:
    return b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)


def test_binary_matrix_and_columns() -> None:
    x = np.array([[1.5, 2, 3], [4, 5, 6]])
    body, length = binary_request(("x", [2, 3], "FP64", x.astype("<f8").tobytes()))
    d = decode_infer(body, PLAN, length)
    np.testing.assert_array_equal(d.numeric, x)
    body, length = binary_request(
        ("c", [2], "INT32", np.array([7, 8], "<i4").tobytes()),
        ("a", [2, 1], "FP32", np.array([1.5, 2.5], "<f4").tobytes()),
        ("b", [2], "BOOL", bytes([1, 0])),
    )
    np.testing.assert_array_equal(decode_infer(body, PLAN, length).numeric, [[1.5, 1, 7], [2.5, 0, 8]])
    body, length = binary_request(("in", [2, 2], "BYTES", strings("red", "0.5", "blue", "")))
    with pytest.raises(RequestError, match=r"input 'in', row 1, column 1 \(feature 'x'\): missing value"):
        decode_infer(body, MIXED_PLAN, length)
    body, length = binary_request(("in", [2, 2], "BYTES", strings("red", "0.5", "blue", "1e1")))
    d = decode_infer(body, MIXED_PLAN, length)
    assert d.categorical[0].tolist() == ["red", "blue"]
    np.testing.assert_array_equal(d.numeric, [[0.5], [10.0]])


def test_binary_and_json_inputs_mix_and_outputs_choose() -> None:
    head = orjson.dumps({
        "inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
                   {"name": "b", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}},
                   {"name": "c", "shape": [1], "datatype": "INT64", "data": [3]}],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "predict"}, {"name": "predict_proba", "parameters": {"binary_data": False}}],
    })  # fmt: skip
    d = decode_infer(head + np.array([2.0]).tobytes(), PLAN, str(len(head)).encode())
    np.testing.assert_array_equal(d.numeric, [[1, 2, 3]])
    assert d.binary_outputs == frozenset({"predict"})
    d = decode_infer(req(t("x", [1, 3], [1, 2, 3]), outputs=[{"name": "predict", "parameters": {"binary_data": True}}]),
                     PLAN)  # fmt: skip
    assert d.binary_outputs == frozenset({"predict"})
    d = decode_infer(req(t("x", [1, 3], [1, 2, 3]), parameters={"binary_data_output": True}), PLAN)
    assert d.binary_outputs == {"predict"}


@pytest.mark.parametrize(
    ("body", "length", "needle"),
    [
        (b'{"inputs": []}', b"x", "Inference-Header-Content-Length 'x' is not a byte count"),
        (b'{"inputs": []}', b"99", "Inference-Header-Content-Length is 99 but the body has only 14 bytes"),
        (*binary_request(("x", [1, 3], "FP64", b"\0" * 16)),
         "binary_data_size is 16 bytes but 3 FP64 elements take 24"),
        (*binary_request(("x", [1, 3], "BF16", b"\0" * 6)), "input 'x': unknown datatype 'BF16'"),
        (*binary_request(("a", [1], "BOOL", b"\x02"), ("b", [1], "FP64", b"\0" * 8), ("c", [1], "FP64", b"\0" * 8)),
         "input 'a': BOOL element 0 is the byte 2, not 0 or 1"),
        (*binary_request(("in", [1, 2], "BYTES", strings("red") + b"\x05\0\0\0ab")),
         "input 'in': BYTES element 1 says 5 bytes but fewer remain"),
        (*binary_request(("in", [1, 2], "BYTES", strings("red", "1", "2"))),
         "input 'in': the binary data holds more than the shape's 2 BYTES elements"),
        (*binary_request(("in", [1, 2], "BYTES", strings("red") + b"\x02\0\0\0\xff\xfe")),
         "input 'in': BYTES element 1 is not UTF-8 text"),
    ],
)
def test_binary_rejections(body: bytes, length: bytes, needle: str) -> None:
    plan = MIXED_PLAN if b'"in"' in body else PLAN
    with pytest.raises(RequestError) as info:
        decode_infer(body, plan, length)
    assert needle in info.value.message


def test_binary_framing_rejections() -> None:
    body, length = binary_request(("x", [1, 3], "FP64", np.zeros(3).tobytes()))
    assert "add up to 24" in bad_binary(body + b"junk", length)
    assert "the request has no Inference-Header-Content-Length header" in bad_binary(body, None)
    head = body[: int(length)]
    assert "has parameters.binary_data_size but the request has no Inference-Header-Content-Length" in bad_binary(
        head, None
    )
    head = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3],
                                     "parameters": {"binary_data_size": 24}}]})  # fmt: skip
    assert "has both 'data' and parameters.binary_data_size" in bad_binary(head + bytes(24), str(len(head)).encode())
    head = orjson.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64",
                                     "parameters": {"shared_memory_region": "r", "shared_memory_byte_size": 24}}]})
    assert "shared-memory extension is not supported" in bad_binary(head, None)
    assert "classification extension is not supported" in bad_binary(
        req(t("x", [1, 3], [1, 2, 3]), outputs=[{"name": "predict", "parameters": {"classification": 2}}]), None
    )


def bad_binary(body: bytes, length: bytes | None) -> str:
    with pytest.raises(RequestError) as info:
        decode_infer(body, PLAN, length)
    return info.value.message


def test_binary_outputs_round_trip_through_tritonclient() -> None:
    import tritonclient.http as triton

    proba = np.array([[0.25, 0.75], [1.0, 0.0]])
    payload, head = encode_infer("m", "1", None, [
        Output("predict", "BYTES", [2], ["yes", "nø"], binary=True),
        Output("predict_proba", "FP64", [2, 2], proba.ravel(), binary=True),
        Output("flags", "BOOL", [2], np.array([True, False]), binary=True),
        Output("n", "INT64", [2], np.array([3, -4])),
    ])  # fmt: skip
    assert head is not None
    result = triton.InferenceServerClient.parse_response_body(payload, header_length=head)
    assert result.as_numpy("predict").tolist() == [b"yes", "nø".encode()]
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), proba)
    assert result.as_numpy("flags").tolist() == [True, False]
    assert result.as_numpy("n").tolist() == [3, -4]
    assert tensors.encode("INT64", [1, 2]) == np.array([1, 2], "<i8").tobytes()
