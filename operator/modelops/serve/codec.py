"""Decoding Open Inference Protocol v2 requests into the columns the model was trained on; encoding responses.

Pure, no I/O. A request carries either one tensor of shape ``[N, F]`` (F = the number of signature
inputs, in signature order) or one tensor per feature, named after the signature inputs, of shape
``[N]`` or ``[N, 1]``; its data is JSON (flat or nested ``data``) or binary (the binary tensor data
extension, :mod:`modelops.serve.tensors`).

Every value is converted to exactly what the training pipeline saw in its column, by the input's
:attr:`~modelops.serve.contract.Feature.kind` (``docs/inference.md``):

- ``number`` (a numeric feature) and ``float`` (float categories): a float64; ``int`` categories: an
  int64, from an integer, an integral float (``2.0``) or an integer string (``"2"``), never from
  ``2.5``; ``bool``: from booleans, 0/1 or ``"true"``/``"false"``; ``string``: only from strings;
- missing: JSON ``null``, NaN in float data, and the strings ``pandas.read_csv`` reads as missing
  (``""``, ``"NA"``, ``"nan"``, ``"null"`` …, as the trainer read its CSV) unless the training
  values held that very string; accepted only where the model takes missing values;
- infinities (``"inf"``, ``"1e400"``, binary inf) only where the model takes them (no scikit-learn
  model does).

Anything that cannot be converted losslessly is a :class:`RequestError` (400) naming the input,
the row and the column. Everything that can be decided before the first request is in an
:class:`InputPlan` built once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from modelops.serve import tensors
from modelops.serve.contract import DATATYPES, NUMERIC_DATATYPES, Feature, ModelContract

FloatArray = npt.NDArray[np.float64]

_MAX_NAMES_IN_MESSAGE = 8
#: What ``pandas.read_csv`` reads as missing by default, hence what the trainer saw as missing in a CSV.
NA_STRINGS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
     "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip
_TRUE = frozenset({"True", "TRUE", "true", "1"})
_FALSE = frozenset({"False", "FALSE", "false", "0"})
_INT64 = 2**63


class RequestError(Exception):
    """A request the server refuses: ``status`` is the HTTP code, ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _ConversionError(Exception):
    """One value that cannot be converted; the caller adds where it is."""


class _Missing:
    """The marker element converters return for a missing value."""


MISSING = _Missing()


@dataclass(frozen=True)
class InputPlan:
    """How requests map onto the model's inputs, computed once from the contract."""

    names: tuple[str, ...]
    features: tuple[Feature, ...]
    #: feature name -> (is categorical, column in the numeric matrix or in the categorical columns)
    slots: dict[str, tuple[bool, int]]
    numeric_names: tuple[str, ...]
    categorical_names: tuple[str, ...]
    outputs: tuple[str, ...]
    by_name: dict[str, Feature] = field(compare=False)
    #: outputs of the protocol this model cannot give -> why (asking for one is a 400 saying so)
    refused_outputs: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def all_numeric(self) -> bool:
        return not self.categorical_names

    @property
    def datatypes(self) -> tuple[str, ...]:
        return tuple(f.datatype for f in self.features)

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
    outputs = ("predict", "predict_proba") if contract.has_probabilities else ("predict",)
    refused = {"predict_proba": contract.no_probabilities} if contract.no_probabilities is not None else {}
    return InputPlan(
        names=contract.feature_names,
        features=contract.features,
        slots=slots,
        numeric_names=tuple(numeric),
        categorical_names=tuple(categorical),
        outputs=outputs,
        by_name={f.name: f for f in contract.features},
        refused_outputs=refused,
    )


@dataclass
class Decoded:
    """A validated request.

    ``numeric`` is [N, numeric features] float64 (NaN only where the feature takes missing values);
    ``categorical`` one array per categorical feature in the dtype the model was trained on;
    ``labels`` the same columns as the metrics name their categories (``None`` for missing).
    """

    rows: int
    numeric: FloatArray
    categorical: list[npt.NDArray[Any]]
    outputs: tuple[str, ...]
    request_id: str | None
    binary_outputs: frozenset[str] = frozenset()
    labels: list[Sequence[Any] | npt.NDArray[Any]] = field(default_factory=list)


def _bad(message: str) -> RequestError:
    return RequestError(400, message)


# -- one value ---------------------------------------------------------------------------------------


def _describe(v: Any) -> str:
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, int | float):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {v!r}"
    return f"a JSON {type(v).__name__}"


def _to_float(v: Any) -> float:
    t = type(v)
    if t is float:
        return v  # type: ignore[no-any-return]
    if t is int or t is bool:
        try:
            return float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    if v is None:
        return math.nan
    if t is str:
        text = v.strip()
        if text in NA_STRINGS:
            return math.nan
        try:
            return float(text)
        except ValueError:
            raise _ConversionError(f"{_describe(v)} is not a number") from None
    if isinstance(v, np.generic):
        return float(v)
    raise _ConversionError(f"{_describe(v)} is not a number")


def _to_int(v: Any) -> int | _Missing:
    t = type(v)
    if t is int or t is bool:
        number: float | int = int(v)
    elif v is None:
        return MISSING
    elif t is str:
        text = v.strip()
        if text in NA_STRINGS:
            return MISSING
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise _ConversionError(f"{_describe(v)} is not an integer") from None
    elif t is float or isinstance(v, np.generic):
        number = float(v)
    else:
        raise _ConversionError(f"{_describe(v)} is not an integer")
    if isinstance(number, float):
        if math.isnan(number):
            return MISSING
        if math.isinf(number):
            raise _ConversionError(f"infinite value ({_describe(v)})")
        if not number.is_integer():
            raise _ConversionError(f"{_describe(v)} is not an integer, and the model was trained on integer categories")
        number = int(number)
    if not -_INT64 <= number < _INT64:
        raise _ConversionError(f"{_describe(v)} is out of the int64 range")
    return number


def _to_bool(v: Any) -> bool | _Missing:
    t = type(v)
    if t is bool:
        return v  # type: ignore[no-any-return]
    if v is None:
        return MISSING
    if t is str:
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        if v.strip() in NA_STRINGS:
            return MISSING
    elif t is int or t is float or isinstance(v, np.generic):
        if v != v:
            return MISSING
        if v in (0, 1):
            return bool(v)
    raise _ConversionError(f"{_describe(v)} is not a boolean (true/false, 1/0)")


# -- one column --------------------------------------------------------------------------------------

Where = Callable[[int], str]


def _floats(values: Sequence[Any] | npt.NDArray[Any], where: Where) -> FloatArray:
    """float64 values, NaN for missing (infinities kept: the caller decides on both)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(np.float64, copy=False)
    try:
        # The common case in one call; np.fromiter applies float() as _to_float does, and anything
        # it refuses (null, "NA", "abc") is decided element by element below.
        return np.fromiter(values, np.float64, len(values))
    except (TypeError, ValueError, OverflowError):
        pass
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            out[i] = _to_float(v)
        except _ConversionError as exc:
            raise _bad(f"{where(i)}: {exc}") from None
    return out


def _check_floats(column: FloatArray, feature: Feature, where: Where) -> None:
    """Refuse NaN (missing) and infinities where the model does not take them."""
    if np.isfinite(column).all():
        return
    if not feature.accepts_infinite:
        infinite = np.isinf(column)
        if infinite.any():
            i = int(np.argmax(infinite))
            raise _bad(f"{where(i)}: infinite value ({column[i]}); the model does not take infinities")
    if not feature.accepts_missing:
        missing = np.isnan(column)
        if missing.any():
            i = int(np.argmax(missing))
            raise _bad(f"{where(i)}: missing value; the model does not take missing values in {feature.name!r}")


def _elementwise(
    values: Sequence[Any], convert: Callable[[Any], Any], feature: Feature, where: Where
) -> tuple[list[Any], bool]:
    out: list[Any] = [None] * len(values)
    missing = False
    for i, v in enumerate(values):
        try:
            c = convert(v)
        except _ConversionError as exc:
            raise _bad(f"{where(i)}: {exc}") from None
        if c is MISSING:
            if not feature.accepts_missing:
                raise _bad(f"{where(i)}: missing value; the model does not take missing values in {feature.name!r}")
            missing = True
            c = None
        out[i] = c
    return out, missing


def _strings(feature: Feature) -> Callable[[Any], Any]:
    known = {c for c in feature.categories or () if isinstance(c, str)}

    def convert(v: Any) -> Any:
        if type(v) is str:
            return MISSING if v in NA_STRINGS and v not in known else v
        if v is None:
            return MISSING
        raise _ConversionError(f"{_describe(v)} is not a string, and {feature.name!r} takes strings: send it as one")

    return convert


def _anything(feature: Feature) -> Callable[[Any], Any]:
    known = {c for c in feature.categories or () if isinstance(c, str)}

    def convert(v: Any) -> Any:
        if v is None or (type(v) is str and v in NA_STRINGS and v not in known):
            return MISSING
        if type(v) is float and math.isnan(v):
            return MISSING
        return v.item() if isinstance(v, np.generic) else v

    return convert


def _object_column(values: list[Any]) -> npt.NDArray[Any]:
    """An object array with NaN for missing, as pandas holds a text column read from a file."""
    out = np.empty(len(values), dtype=object)
    out[:] = [math.nan if v is None else v for v in values]
    return out


def column(
    values: Sequence[Any] | npt.NDArray[Any], datatype: str, feature: Feature, where: Where
) -> tuple[npt.NDArray[Any], Sequence[Any] | npt.NDArray[Any]]:
    """One feature's values as the model was trained on them, and as the metrics label them."""
    kind = feature.kind
    if kind in ("number", "float"):
        floats = _floats(values, where)
        _check_floats(floats, feature, where)
        return floats, floats
    if isinstance(values, np.ndarray):
        if kind == "int" and values.dtype.kind in "iub":
            if values.dtype == np.uint64 and values.size and int(values.max()) >= _INT64:
                i = int(np.argmax(values >= _INT64))
                raise _bad(f"{where(i)}: {int(values[i])} is out of the int64 range")
            ints = values.astype(np.int64)
            return ints, ints
        items: Sequence[Any] = values.tolist()
    else:
        items = values
    return _convert(items, datatype, feature, where)


def _convert(
    values: Sequence[Any], datatype: str, feature: Feature, where: Where
) -> tuple[npt.NDArray[Any], Sequence[Any] | npt.NDArray[Any]]:
    kind = feature.kind
    if kind == "string":
        if datatype != "BYTES":
            raise _bad(f"{where(0)}: the input has datatype {datatype}, but {feature.name!r} takes strings: send BYTES")
        out, _ = _elementwise(values, _strings(feature), feature, where)
        return _object_column(out), out
    if kind == "int":
        out, missing = _elementwise(values, _to_int, feature, where)
        if missing:
            # pandas holds an integer column with gaps as float64 (NaN): what the model saw from a file.
            return np.array([math.nan if v is None else v for v in out], dtype=np.float64), out
        ints = np.array(out, dtype=np.int64)
        return ints, ints
    if kind == "bool":
        out, missing = _elementwise(values, _to_bool, feature, where)
        return (_object_column(out) if missing else np.array(out, dtype=bool)), out
    out, _ = _elementwise(values, _anything(feature), feature, where)
    return _object_column(out), out


# -- tensors -----------------------------------------------------------------------------------------


@dataclass
class _Tensor:
    name: str
    shape: list[int]
    datatype: str
    #: JSON data (a possibly nested list), a flat array (binary numbers), or strings (binary BYTES)
    data: Any
    binary: bool


def _tensor(item: Any, i: int, binary: memoryview | None, offset: int) -> tuple[_Tensor, int]:
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
    parameters = item.get("parameters")
    size = parameters.get("binary_data_size") if type(parameters) is dict else None
    if type(parameters) is dict and "shared_memory_region" in parameters:
        raise _bad(f"input {name!r}: the shared-memory extension is not supported; send the data in the request")
    if size is None:
        data = item.get("data")
        if type(data) is not list:
            raise _bad(f"input {name!r}: 'data' must be a list")
        return _Tensor(name, shape, datatype, data, False), offset
    if type(size) is not int or size < 0:
        raise _bad(f"input {name!r}: parameters.binary_data_size must be a non-negative integer")
    if "data" in item:
        raise _bad(f"input {name!r} has both 'data' and parameters.binary_data_size")
    if binary is None:
        raise _bad(
            f"input {name!r} has parameters.binary_data_size but the request has no Inference-Header-Content-Length"
        )
    if offset + size > len(binary):
        raise _bad(f"input {name!r}: binary_data_size {size} runs past the end of the body")
    count = math.prod(shape)
    try:
        values = tensors.decode(name, datatype, count, binary[offset : offset + size])
    except ValueError as exc:
        raise _bad(str(exc)) from None
    return _Tensor(name, shape, datatype, values, True), offset + size


def _flat(data: list[Any], name: str) -> list[Any]:
    """Row-major values of a possibly nested list (v2 allows nested ``data``); ragged nesting is refused."""
    if not data or type(data[0]) is not list:
        return data
    out: list[Any] = []
    lengths: dict[int, int] = {}
    leaf_depth = -1

    def walk(items: list[Any], depth: int) -> None:
        nonlocal leaf_depth
        if lengths.setdefault(depth, len(items)) != len(items):
            raise _bad(f"input {name!r}: 'data' is a ragged nested list")
        for v in items:
            if type(v) is list:
                walk(v, depth + 1)
                continue
            if leaf_depth < 0:
                leaf_depth = depth
            if depth != leaf_depth:
                raise _bad(f"input {name!r}: 'data' is a ragged nested list")
            out.append(v)

    walk(data, 0)
    return out


def _values(t: _Tensor, size: int) -> Sequence[Any] | npt.NDArray[Any]:
    values = t.data if t.binary else _flat(t.data, t.name)
    if len(values) != size:
        raise _bad(f"input {t.name!r}: 'data' has {len(values)} values but shape {t.shape} needs {size}")
    return values


def _outputs(raw: Any, plan: InputPlan, binary_default: bool) -> tuple[tuple[str, ...], frozenset[str]]:
    if raw is None:
        return ("predict",), frozenset({"predict"} if binary_default else ())
    if type(raw) is not list:
        raise _bad("'outputs' must be a list of {\"name\": …} objects")
    names: list[str] = []
    binary: set[str] = set()
    for i, item in enumerate(raw):
        name = item.get("name") if type(item) is dict else None
        if type(name) is not str:
            raise _bad(f"outputs[{i}] has no string 'name'")
        if name not in plan.outputs:
            if name in plan.refused_outputs:
                raise _bad(f"output {name!r}: {plan.refused_outputs[name]}")
            raise _bad(f"unknown output {name!r}; this model's outputs are: {', '.join(plan.outputs)}")
        parameters = item.get("parameters")
        wants = binary_default
        if parameters is not None:
            if type(parameters) is not dict:
                raise _bad(f"output {name!r}: 'parameters' must be an object")
            if parameters.get("classification"):
                raise _bad(f"output {name!r}: the classification extension is not supported; ask for predict_proba")
            flag = parameters.get("binary_data", binary_default)
            if type(flag) is not bool:
                raise _bad(f"output {name!r}: parameters.binary_data must be true or false")
            wants = flag
        if name not in names:
            names.append(name)
        if wants:
            binary.add(name)
    return (tuple(names) or ("predict",)), frozenset(binary)


def parse_body(body: bytes) -> Any:
    """The request body as JSON (any JSON value; :func:`decode_doc` checks it)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Python's json (behind requests' json= and tritonclient's JSON tensors) writes a float gap as
        # NaN and an overflow as Infinity, which are not JSON; read them as the values they stand for
        # (1e400 too), and let the feature's rules decide. Only then: no second parse of other garbage.
        if b"NaN" in body or b"Infinity" in body or "infinity" in str(exc):
            try:
                return json.loads(body)
            except (ValueError, RecursionError):
                pass
        if b'"binary_data_size"' in body:
            raise _bad(
                "the body is JSON followed by binary tensor data, but the request has no "
                "Inference-Header-Content-Length header saying where the JSON ends"
            ) from None
        raise _bad(f"malformed JSON: {exc}") from None


def single_row(doc: Any, plan: InputPlan) -> tuple[list[float], tuple[str, ...], str | None] | None:
    """The most common request, decoded without numpy: ``(row, outputs, id)``, or None.

    Only for an all-numeric model and one numeric ``[1, F]`` tensor with flat JSON ``data``, every
    value a finite number, and well-formed ``id``, ``parameters`` and ``outputs``, all answered in JSON.
    Anything else -- including every request that is wrong or holds a missing value -- gives None,
    and :func:`decode_doc` decides (and words the error).
    """
    if type(doc) is not dict or not plan.all_numeric:
        return None
    parameters = doc.get("parameters")
    if parameters is not None and (type(parameters) is not dict or parameters.get("binary_data_output") is not None):
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
    if request_id is not None and type(request_id) is not str:
        return None
    raw_outputs = doc.get("outputs")
    if raw_outputs is None:
        outputs: tuple[str, ...] = ("predict",)
    else:
        try:
            outputs, binary = _outputs(raw_outputs, plan, False)
        except RequestError:
            return None
        if binary:
            return None
    try:
        # float() is what np.fromiter applies in decode_doc: the same values are accepted.
        row = [float(v) for v in data]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(sum(row)):
        return None
    return row, outputs, request_id


def decode_infer(body: bytes, plan: InputPlan, header_length: bytes | None = None) -> Decoded:
    """Parse and validate an inference request body (JSON, or JSON and binary tensor data) against the plan."""
    try:
        head, binary = tensors.split_body(body, header_length)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    return decode_doc(parse_body(head), plan, binary)


def decode_doc(doc: Any, plan: InputPlan, binary: memoryview | None = None) -> Decoded:
    """Validate a parsed inference request against the plan; ``binary`` is the body after its JSON header."""
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
    binary_default = parameters.get("binary_data_output", False) if parameters else False
    if type(binary_default) is not bool:
        raise _bad("parameters.binary_data_output must be true or false")
    outputs, binary_outputs = _outputs(doc.get("outputs"), plan, binary_default)
    tensors_: list[_Tensor] = []
    offset = 0
    for i, item in enumerate(inputs):
        t, offset = _tensor(item, i, binary, offset)
        tensors_.append(t)
    if binary is not None and offset != len(binary):
        raise _bad(
            f"the body has {len(binary)} bytes after the JSON header, "
            f"but the inputs' binary_data_size add up to {offset}"
        )
    if len(tensors_) == 1 and tensors_[0].name not in plan.slots:
        decoded = _decode_matrix(tensors_[0], plan)
    else:
        decoded = _decode_columns(tensors_, plan)
    decoded.outputs, decoded.binary_outputs, decoded.request_id = outputs, binary_outputs, request_id
    return decoded


def _matrix_where(name: str, j: int, feature: str) -> Where:
    return lambda i: f"input {name!r}, row {i}, column {j} (feature {feature!r})"


def _decode_matrix(t: _Tensor, plan: InputPlan) -> Decoded:
    name, shape = t.name, t.shape
    width = len(plan.names)
    if len(shape) != 2 or shape[1] != width:
        raise _bad(
            f"input {name!r} has shape {shape}; expected [N, {width}] with one column per feature, "
            f"or one tensor per feature named after the model's inputs: {plan.names_for_message()}"
        )
    rows = shape[0]
    if rows == 0:
        raise _bad(f"input {name!r} has no rows")
    values = _values(t, rows * width)
    if plan.all_numeric:
        # One conversion for the whole matrix; a value it cannot take is found and named below.
        try:
            flat = _floats(values, lambda i: "")
        except RequestError:
            flat = None
        if flat is not None:
            matrix = flat.reshape(rows, width)
            if np.isfinite(matrix).all():
                return Decoded(rows, matrix, [], (), None)
    numeric = np.empty((rows, len(plan.numeric_names)), dtype=np.float64)
    categorical: list[npt.NDArray[Any]] = [np.empty(0)] * len(plan.categorical_names)
    labels: list[Sequence[Any] | npt.NDArray[Any]] = [()] * len(plan.categorical_names)
    for j, feature in enumerate(plan.features):
        where = _matrix_where(name, j, feature.name)
        col = values[j::width]
        converted, label = column(col, t.datatype, feature, where)
        is_cat, slot = plan.slots[feature.name]
        if is_cat:
            categorical[slot], labels[slot] = converted, label
        else:
            numeric[:, slot] = converted
    return Decoded(rows, numeric, categorical, (), None, labels=labels)


def _column_where(name: str) -> Where:
    return lambda i: f"input {name!r}, row {i}"


def _decode_columns(inputs: Sequence[_Tensor], plan: InputPlan) -> Decoded:
    rows = -1
    first_name = ""
    numeric_columns: list[FloatArray | None] = [None] * len(plan.numeric_names)
    categorical: list[npt.NDArray[Any]] = [np.empty(0)] * len(plan.categorical_names)
    labels: list[Sequence[Any] | npt.NDArray[Any]] = [()] * len(plan.categorical_names)
    seen: set[str] = set()
    for t in inputs:
        name, shape = t.name, t.shape
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
        values = _values(t, n)
        converted, label = column(values, t.datatype, plan.by_name[name], _column_where(name))
        is_cat, slot = slot_of
        if is_cat:
            categorical[slot], labels[slot] = converted, label
        else:
            numeric_columns[slot] = converted
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
    return Decoded(rows, numeric, categorical, (), None, labels=labels)


# -- responses ---------------------------------------------------------------------------------------


class Output(NamedTuple):
    """One output tensor of a response."""

    name: str
    datatype: str
    shape: list[int]
    data: Any
    binary: bool = False


def encode_infer(
    model: str,
    version: str,
    request_id: str | None,
    outputs: Sequence[Output],
    feedback_id: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """A v2 inference response body, and the length of its JSON header when binary outputs follow it.

    JSON ``data`` may be numpy arrays (serialised by orjson directly). ``feedback_id`` and
    ``parameters`` as in :func:`encode_json`.
    """
    items: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for o in outputs:
        item: dict[str, Any] = {"name": o.name, "datatype": o.datatype, "shape": o.shape}
        if o.binary:
            blob = tensors.encode(o.datatype, o.data)
            item["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            item["data"] = o.data
        items.append(item)
    head = encode_json(model, version, request_id, items, feedback_id, parameters)
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)


def encode_json(
    model: str,
    version: str,
    request_id: str | None,
    outputs: list[dict[str, Any]],
    feedback_id: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> bytes:
    """A v2 inference response of JSON output tensors (the single-row path builds them itself).

    ``feedback_id``, the request's prediction id, is the response's ``id``, unless the request had an
    ``id`` of its own, which v2 says comes back: then it is ``parameters.feedback_id``.
    ``parameters``, if given, starts the response's own ``parameters`` object.
    """
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": outputs}
    params = dict(parameters) if parameters else {}
    if request_id is not None:
        doc["id"] = request_id
        if feedback_id is not None:
            params["feedback_id"] = feedback_id
    elif feedback_id is not None:
        doc["id"] = feedback_id
    if params:
        doc["parameters"] = params
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_error(message: str) -> bytes:
    """The body of every error response."""
    return orjson.dumps({"error": message})
