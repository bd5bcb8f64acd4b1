"""Decoding and validating Open Inference Protocol v2 requests; encoding responses. Pure, no I/O.

A request carries either one tensor of shape ``[N, F]`` (F = the number of signature inputs, in
signature order) or one tensor per feature, named after the signature inputs, of shape ``[N]`` or
``[N, 1]``. Everything that can be decided before the first request (the column of each feature,
which features are categorical, which outputs exist) is in an :class:`InputPlan` built once.

Every rejection is a :class:`RequestError` with a 4xx status and a message naming the input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from modelops.serve.contract import DATATYPES, NUMERIC_DATATYPES, ModelContract

FloatArray = npt.NDArray[np.float64]

_NUMERIC_KINDS = frozenset("biuf")
_MAX_NAMES_IN_MESSAGE = 8


class RequestError(Exception):
    """A request the server refuses: ``status`` is the HTTP code, ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InputPlan:
    """How requests map onto the model's inputs, computed once from the contract."""

    names: tuple[str, ...]
    datatypes: tuple[str, ...]
    categorical: tuple[bool, ...]
    #: feature name -> (is categorical, column in the numeric matrix or in the categorical columns)
    slots: dict[str, tuple[bool, int]]
    numeric_names: tuple[str, ...]
    categorical_names: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def all_numeric(self) -> bool:
        return not self.categorical_names

    def names_for_message(self) -> str:
        shown = ", ".join(self.names[:_MAX_NAMES_IN_MESSAGE])
        more = len(self.names) - _MAX_NAMES_IN_MESSAGE
        return f"{shown}, … ({more} more)" if more > 0 else shown


def make_plan(contract: ModelContract) -> InputPlan:
    """The input plan of a model: numeric features in signature order form the numeric matrix."""
    slots: dict[str, tuple[bool, int]] = {}
    numeric: list[str] = []
    categorical: list[str] = []
    for f in contract.features:
        if f.categorical:
            slots[f.name] = (True, len(categorical))
            categorical.append(f.name)
        else:
            slots[f.name] = (False, len(numeric))
            numeric.append(f.name)
    outputs = ("predict", "predict_proba") if contract.is_classifier else ("predict",)
    return InputPlan(
        names=contract.feature_names,
        datatypes=tuple(f.datatype for f in contract.features),
        categorical=tuple(f.categorical for f in contract.features),
        slots=slots,
        numeric_names=tuple(numeric),
        categorical_names=tuple(categorical),
        outputs=outputs,
    )


@dataclass
class Decoded:
    """A validated request: ``numeric`` is [N, numeric features]; ``categorical`` one list per feature."""

    rows: int
    numeric: FloatArray
    categorical: list[list[Any]]
    outputs: tuple[str, ...]
    request_id: str | None


def _bad(message: str) -> RequestError:
    return RequestError(400, message)


def _tensor(item: Any, i: int) -> tuple[str, list[int], str, list[Any]]:
    if type(item) is not dict:
        raise _bad(f"inputs[{i}] is not a tensor object")
    name = item.get("name")
    if type(name) is not str:
        raise _bad(f"inputs[{i}] has no string 'name'")
    shape = item.get("shape")
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise _bad(f"input {name!r}: 'shape' must be a list of non-negative integers")
    datatype = item.get("datatype")
    if datatype not in DATATYPES:
        raise _bad(f"input {name!r}: unknown datatype {datatype!r}; expected one of {', '.join(sorted(DATATYPES))}")
    data = item.get("data")
    if type(data) is not list:
        raise _bad(f"input {name!r}: 'data' must be a list")
    return name, shape, datatype, data


def _numeric_values(name: str, datatype: str, shape: list[int], data: list[Any], size: int) -> FloatArray:
    if data and type(data[0]) is not list:
        # Flat, row-major (the spec's form): straight into a float64 array, no dtype inference pass.
        if len(data) != size:
            raise _bad(f"input {name!r}: 'data' has {len(data)} values but shape {shape} needs {size}")
        try:
            flat = np.fromiter(data, np.float64, size)
        except (TypeError, ValueError):
            raise _bad(f"input {name!r} ({datatype}): 'data' holds non-numeric values") from None
        # JSON has no NaN, so a NaN here was a null. (Numeric strings such as "1.5" are converted.)
        if np.isnan(flat.sum()):
            raise _bad(f"input {name!r} ({datatype}): 'data' holds non-numeric values")
        return flat
    try:
        arr = np.asarray(data)
    except ValueError:
        raise _bad(f"input {name!r}: 'data' is a ragged nested list") from None
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise _bad(f"input {name!r} ({datatype}): 'data' holds non-numeric values")
    if arr.size != size:
        raise _bad(f"input {name!r}: 'data' has {arr.size} values but shape {shape} needs {size}")
    return arr.astype(np.float64, copy=False).reshape(-1)


def _flat(data: list[Any]) -> list[Any]:
    """Row-major values of a possibly nested list (v2 allows nested ``data``)."""
    if not data or type(data[0]) is not list:
        return data
    out: list[Any] = []

    def walk(items: list[Any]) -> None:
        for v in items:
            if type(v) is list:
                walk(v)
            else:
                out.append(v)

    walk(data)
    return out


def _categorical_values(
    name: str, feature_datatype: str, datatype: str, shape: list[int], data: list[Any], size: int
) -> list[Any]:
    if (datatype == "BYTES") != (feature_datatype == "BYTES"):
        raise _bad(
            f"input {name!r} has datatype {datatype} but feature {name!r} is categorical with datatype "
            f"{feature_datatype}"
        )
    values = _flat(data)
    if len(values) != size:
        raise _bad(f"input {name!r}: 'data' has {len(values)} values but shape {shape} needs {size}")
    if datatype == "BYTES":
        if not all(type(v) is str for v in values):
            raise _bad(f"input {name!r} (BYTES): 'data' must hold strings")
        return values
    arr = _numeric_values(name, datatype, shape, values, size)
    as_list: list[Any] = arr.tolist() if datatype.startswith("FP") else arr.astype(np.int64).tolist()
    return as_list


def _outputs(raw: Any, plan: InputPlan) -> tuple[str, ...]:
    if raw is None:
        return ("predict",)
    if type(raw) is not list:
        raise _bad("'outputs' must be a list of {\"name\": …} objects")
    names: list[str] = []
    for i, item in enumerate(raw):
        name = item.get("name") if type(item) is dict else None
        if type(name) is not str:
            raise _bad(f"outputs[{i}] has no string 'name'")
        if name not in plan.outputs:
            raise _bad(f"unknown output {name!r}; this model's outputs are: {', '.join(plan.outputs)}")
        if name not in names:
            names.append(name)
    return tuple(names) or ("predict",)


def parse_body(body: bytes) -> Any:
    """The request body as JSON (any JSON value; :func:`decode_doc` checks it)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"malformed JSON: {exc}") from None


def single_row(doc: Any, plan: InputPlan) -> tuple[list[float], tuple[str, ...], str | None] | None:
    """The most common request, decoded without numpy: ``(row, outputs, id)``, or None.

    Only for an all-numeric model and one numeric ``[1, F]`` tensor with flat ``data``, every
    value a number and the sum not NaN (so none was null), and well-formed ``id``,
    ``parameters`` and ``outputs``. Anything else -- including every request that is wrong --
    gives None, and :func:`decode_doc` decides (and words the error).
    """
    if type(doc) is not dict or not plan.all_numeric:
        return None
    inputs = doc.get("inputs")
    if type(inputs) is not list or len(inputs) != 1:
        return None
    item = inputs[0]
    if type(item) is not dict:
        return None
    name, shape, data = item.get("name"), item.get("shape"), item.get("data")
    width = len(plan.names)
    if (
        type(name) is not str
        or name in plan.slots
        or type(shape) is not list
        or len(shape) != 2
        or type(shape[0]) is not int
        or type(shape[1]) is not int
        or shape[0] != 1
        or shape[1] != width
        or item.get("datatype") not in NUMERIC_DATATYPES
        or type(data) is not list
        or len(data) != width
    ):
        return None
    request_id = doc.get("id")
    parameters = doc.get("parameters")
    if (request_id is not None and type(request_id) is not str) or (
        parameters is not None and type(parameters) is not dict
    ):
        return None
    raw_outputs = doc.get("outputs")
    if raw_outputs is None:
        outputs: tuple[str, ...] = ("predict",)
    else:
        try:
            outputs = _outputs(raw_outputs, plan)
        except RequestError:
            return None
    try:
        # float() is what np.fromiter applies in decode_doc: the same values are accepted.
        row = [float(v) for v in data]
    except (TypeError, ValueError):
        return None
    if math.isnan(sum(row)):
        return None
    return row, outputs, request_id


def decode_infer(body: bytes, plan: InputPlan) -> Decoded:
    """Parse and validate an inference request body against the plan."""
    return decode_doc(parse_body(body), plan)


def decode_doc(doc: Any, plan: InputPlan) -> Decoded:
    """Validate a parsed inference request against the plan."""
    if type(doc) is not dict:
        raise _bad("the request body must be a JSON object with 'inputs'")
    inputs = doc.get("inputs")
    if type(inputs) is not list or not inputs:
        raise _bad("'inputs' must be a non-empty list of tensors")
    request_id = doc.get("id")
    if request_id is not None and type(request_id) is not str:
        raise _bad("'id' must be a string")
    parameters = doc.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        raise _bad("'parameters' must be an object")
    outputs = _outputs(doc.get("outputs"), plan)
    first = inputs[0]
    if len(inputs) == 1 and not (type(first) is dict and first.get("name") in plan.slots):
        return _decode_matrix(first, plan, outputs, request_id)
    return _decode_columns(inputs, plan, outputs, request_id)


def _decode_matrix(item: Any, plan: InputPlan, outputs: tuple[str, ...], request_id: str | None) -> Decoded:
    name, shape, datatype, data = _tensor(item, 0)
    width = len(plan.names)
    if len(shape) != 2 or shape[1] != width:
        raise _bad(
            f"input {name!r} has shape {shape}; expected [N, {width}] with one column per feature, "
            f"or one tensor per feature named after the model's inputs: {plan.names_for_message()}"
        )
    rows = shape[0]
    if rows == 0:
        raise _bad(f"input {name!r} has no rows")
    if plan.all_numeric:
        if datatype == "BYTES":
            raise _bad(f"input {name!r} has datatype BYTES but the model's features are numeric")
        matrix = _numeric_values(name, datatype, shape, data, rows * width).reshape(rows, width)
        return Decoded(rows, matrix, [], outputs, request_id)
    # A mixed model in one tensor: a BYTES (or numeric) [N, F] matrix, each column parsed per feature.
    values = _flat(data)
    if len(values) != rows * width:
        raise _bad(f"input {name!r}: 'data' has {len(values)} values but shape {shape} needs {rows * width}")
    numeric = np.empty((rows, len(plan.numeric_names)), dtype=np.float64)
    categorical: list[list[Any]] = [[] for _ in plan.categorical_names]
    for j, feature in enumerate(plan.names):
        column = values[j::width]
        is_cat, slot = plan.slots[feature]
        if is_cat:
            categorical[slot] = [v if type(v) is str else str(v) for v in column]
            continue
        try:
            numeric[:, slot] = [float(v) for v in column]
        except (TypeError, ValueError):
            raise _bad(f"input {name!r}: column {j} (feature {feature!r}) holds non-numeric values") from None
        if not all(math.isfinite(v) for v in numeric[:, slot]):
            raise _bad(f"input {name!r}: column {j} (feature {feature!r}) holds non-finite values")
    return Decoded(rows, numeric, categorical, outputs, request_id)


def _decode_columns(
    inputs: Sequence[Any], plan: InputPlan, outputs: tuple[str, ...], request_id: str | None
) -> Decoded:
    rows = -1
    first_name = ""
    numeric_columns: list[FloatArray | None] = [None] * len(plan.numeric_names)
    categorical: list[list[Any]] = [[] for _ in plan.categorical_names]
    seen: set[str] = set()
    for i, item in enumerate(inputs):
        name, shape, datatype, data = _tensor(item, i)
        slot_of = plan.slots.get(name)
        if slot_of is None:
            raise _bad(f"unknown input {name!r}; the model's inputs are: {plan.names_for_message()}")
        if name in seen:
            raise _bad(f"input {name!r} is given twice")
        seen.add(name)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise _bad(f"input {name!r} has shape {shape}; a per-feature tensor has shape [N] or [N, 1]")
        n = shape[0]
        if rows < 0:
            rows, first_name = n, name
        elif n != rows:
            raise _bad(f"input {name!r} has {n} rows but input {first_name!r} has {rows}")
        is_cat, slot = slot_of
        if is_cat:
            feature_datatype = plan.datatypes[plan.names.index(name)]
            categorical[slot] = _categorical_values(name, feature_datatype, datatype, shape, data, n)
        else:
            if datatype == "BYTES":
                raise _bad(f"input {name!r} has datatype BYTES but feature {name!r} is numeric")
            numeric_columns[slot] = _numeric_values(name, datatype, shape, data, n)
    missing = [n for n in plan.names if n not in seen]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:_MAX_NAMES_IN_MESSAGE])
        more = f" and {len(missing) - _MAX_NAMES_IN_MESSAGE} more" if len(missing) > _MAX_NAMES_IN_MESSAGE else ""
        raise _bad(f"missing input {shown}{more}; the model's inputs are: {plan.names_for_message()}")
    if rows == 0:
        raise _bad("the inputs have no rows")
    numeric = np.empty((rows, len(plan.numeric_names)), dtype=np.float64)
    for j, col in enumerate(numeric_columns):
        numeric[:, j] = col
    return Decoded(rows, numeric, categorical, outputs, request_id)


def encode_infer(model: str, version: str, request_id: str | None, outputs: list[dict[str, Any]]) -> bytes:
    """A v2 inference response; numpy arrays in ``outputs`` are serialised by orjson directly."""
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    if request_id is not None:
        doc["id"] = request_id
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_error(message: str) -> bytes:
    """The body of every error response."""
    return orjson.dumps({"error": message})
