"""Tables for the typed-input tests, trained by our own trainer, and requests in every v2 shape.

:func:`train` runs ``modelops.train.runner.train`` in-process on a CSV (as ``modelops train`` does
in a pod), so the artifact and ``result.json`` are the real trainer's. :func:`requests` builds, for
a frame of rows read back from that CSV, every request shape the Open Inference Protocol allows for
the model: one matrix tensor in each sensible datatype, one tensor per feature of shape [N] and
[N, 1], in JSON (missing values as ``null``) and in the binary tensor data extension (built by
tritonclient's own encoder), asking for JSON or binary outputs.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton

from modelops.train import runner
from modelops.train.config import parse_config


@dataclass
class Trained:
    path: Path
    result: dict[str, Any]
    frame: pd.DataFrame  # the table as the trainer read it (features only)
    features: list[str]
    kinds: dict[str, str]  # name -> float | int | int_cat | float_cat | str_cat | numstr_cat | bool


def train(tmp: Path, table: pd.DataFrame, target: str, kinds: dict[str, str], estimator: dict[str, Any]) -> Trained:
    csv = tmp / "table.csv"
    table.to_csv(csv, index=False)
    categorical = [c for c, k in kinds.items() if k not in ("float", "int")]
    config = parse_config({
        "model": "typed",
        "dataset": {"uri": csv.resolve().as_uri(), "target": target, "features": list(kinds),
                    "categoricalFeatures": categorical or None, "testSize": 0.25},
        "estimator": estimator,
    })  # fmt: skip
    out = tmp / "out"
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as patch:
        warnings.simplefilter("ignore")  # convergence warnings of small generated tables
        patch.setenv("MODELOPS_FILE_ROOTS", str(tmp.resolve()))  # the one directory the trainer may read
        runner.train(config, out)
    result = json.loads((out / "result.json").read_text())
    frame = pd.read_csv(csv)[list(kinds)]
    return Trained(out, result, frame, list(kinds), kinds)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _json_value(v: Any) -> Any:
    """A cell as a JSON client sends it: numbers as numbers, missing as null."""
    if _missing(v):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _text(v: Any) -> str:
    """A cell as text, missing as the empty string (what a CSV holds)."""
    if _missing(v):
        return ""
    v = v.item() if isinstance(v, np.generic) else v
    return str(v)


def _column_datatype(kind: str, values: list[Any]) -> str:
    if kind in ("str_cat", "numstr_cat"):
        return "BYTES"
    if kind == "bool":
        return "BOOL" if not any(_missing(v) for v in values) else "BYTES"
    if kind in ("int", "int_cat") and not any(_missing(v) for v in values):
        return "INT64"
    return "FP64"


def _json_column(kind: str, values: list[Any]) -> tuple[str, list[Any]]:
    datatype = _column_datatype(kind, values)
    if datatype == "BYTES" and kind == "bool":
        return datatype, [_text(v) for v in values]  # "True", "False", "" (missing)
    return datatype, [_json_value(v) for v in values]


def _binary_column(kind: str, values: list[Any]) -> tuple[str, np.ndarray]:
    datatype = _column_datatype(kind, values)
    if datatype == "BYTES":
        return datatype, np.array([_text(v) for v in values], dtype=object)
    if datatype == "BOOL":
        return datatype, np.array(values, dtype=bool)
    if datatype == "INT64":
        return datatype, np.array(values, dtype=np.int64)
    return datatype, np.array([math.nan if _missing(v) else float(v) for v in values], dtype=np.float64)


@dataclass
class Request:
    shape: str
    body: bytes
    header_length: int | None
    binary_outputs: bool


def requests(t: Trained, rows: pd.DataFrame, outputs: list[str]) -> list[Request]:
    """Every request shape for ``rows`` (columns in signature order)."""
    n, names = len(rows), t.features
    columns = {c: rows[c].tolist() for c in names}
    cells = [[columns[c][i] for c in names] for i in range(n)]
    out: list[Request] = []

    def json_request(shape: str, inputs: list[dict[str, Any]], binary_outputs: bool = False) -> None:
        doc: dict[str, Any] = {"id": shape, "inputs": inputs}
        if binary_outputs:
            doc["parameters"] = {"binary_data_output": True}
        doc["outputs"] = [{"name": o} for o in outputs]
        out.append(Request(shape, json.dumps(doc, allow_nan=False).encode(), None, binary_outputs))

    def triton_request(shape: str, tensors: list[tuple[str, str, np.ndarray]], binary_outputs: bool) -> None:
        inputs = []
        for name, datatype, data in tensors:
            tensor = triton.InferInput(name, list(data.shape), datatype)
            tensor.set_data_from_numpy(data)  # tritonclient's default: binary
            inputs.append(tensor)
        requested = [triton.InferRequestedOutput(o, binary_data=binary_outputs) for o in outputs]
        body, json_size = triton.InferenceServerClient.generate_request_body(
            inputs, outputs=requested, request_id=shape
        )
        out.append(Request(shape, body, json_size, binary_outputs))

    # One tensor per feature, [N] and [N, 1], JSON.
    per_column = []
    nested = []
    for c in names:
        datatype, data = _json_column(t.kinds[c], columns[c])
        per_column.append({"name": c, "shape": [n], "datatype": datatype, "data": data})
        nested.append({"name": c, "shape": [n, 1], "datatype": datatype, "data": [[v] for v in data]})
    json_request("columns-json", per_column)
    json_request("columns-nested-json", nested, binary_outputs=True)
    # One BYTES matrix, JSON: numbers as JSON numbers (the issue's [[40, 100, 2, "basic", "south"]]),
    # then every cell as text.
    width = len(names)
    json_request("bytes-matrix-json", [{"name": "x", "shape": [n, width], "datatype": "BYTES",
                                        "data": [[_json_value(v) for v in row] for row in cells]}])  # fmt: skip
    json_request("text-matrix-json", [{"name": "x", "shape": [n, width], "datatype": "BYTES",
                                       "data": [_text(v) for row in cells for v in row]}])  # fmt: skip
    texts = any(t.kinds[c] in ("str_cat", "numstr_cat") for c in names)
    if not texts:
        numbers = [[None if _missing(v) else float(v) for v in row] for row in cells]
        json_request("fp64-matrix-json", [{"name": "x", "shape": [n, width], "datatype": "FP64",
                                           "data": numbers}], binary_outputs=True)  # fmt: skip
        triton_request("fp64-matrix-binary", [("x", "FP64", np.array(numbers, dtype=np.float64))], False)
        whole = all(not _missing(v) and float(v).is_integer() for row in cells for v in row)
        if whole:
            ints = np.array([[int(v) for v in row] for row in cells], dtype=np.int64)
            json_request("int64-matrix-json", [{"name": "x", "shape": [n, width], "datatype": "INT64",
                                                "data": ints.ravel().tolist()}])  # fmt: skip
            triton_request("int32-matrix-binary", [("x", "INT32", ints.astype(np.int32))], True)
    # Binary: one tensor per feature, and a BYTES matrix as tritonclient serialises an object array.
    triton_request("columns-binary", [(c, *_binary_column(t.kinds[c], columns[c])) for c in names], True)
    column_1 = [(c, d, a.reshape(n, 1)) for c, d, a in ((c, *_binary_column(t.kinds[c], columns[c])) for c in names)]
    triton_request("columns-n1-binary", column_1, False)
    matrix = np.array([[None if _missing(v) else v for v in row] for row in cells], dtype=object)
    triton_request("bytes-matrix-binary", [("x", "BYTES", matrix)], True)
    return out
