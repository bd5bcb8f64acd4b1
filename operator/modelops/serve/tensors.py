"""The v2 binary tensor data extension: tensor bytes after the JSON header, in requests and responses.

What KServe and Triton specify, and what ``tritonclient`` sends by default: the request's
``Inference-Header-Content-Length`` header says how many bytes of the body are the JSON header;
the rest is the binary data of the inputs whose ``parameters`` carry ``binary_data_size``, one
after another in the order of ``inputs``. Elements are little-endian, row-major, unpadded; a BOOL
is one byte (0 or 1); a BYTES element is a 4-byte little-endian length and that many bytes.
A response output is binary when its request output asks (``parameters.binary_data``) or, by
default, when the request's ``parameters.binary_data_output`` is true; its JSON then carries
``parameters.binary_data_size`` and no ``data``, and the response has the same header.

Pure, no I/O. Every refusal is a ``ValueError`` whose message names the input.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: v2 datatype -> the little-endian numpy dtype of its binary elements.
NUMPY_DTYPES: dict[str, str] = {
    "BOOL": "u1", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip
HEADER = b"inference-header-content-length"
_LENGTH = struct.Struct("<I")


def split_body(body: bytes, header_length: bytes | None) -> tuple[bytes, memoryview | None]:
    """(JSON header, binary part or None) of a request body, by ``Inference-Header-Content-Length``."""
    if header_length is None:
        return body, None
    text = header_length.strip()
    if not text.isdigit():
        raise ValueError(f"Inference-Header-Content-Length {header_length.decode('latin-1')!r} is not a byte count")
    n = int(text)
    if n > len(body):
        raise ValueError(f"Inference-Header-Content-Length is {n} but the body has only {len(body)} bytes")
    return body[:n], memoryview(body)[n:]


def decode(name: str, datatype: str, count: int, raw: memoryview) -> npt.NDArray[Any] | list[str]:
    """The ``count`` elements of one input's binary data: a flat array, or a list of strings for BYTES."""
    if datatype == "BYTES":
        return _strings(name, count, raw)
    if datatype not in NUMPY_DTYPES:
        raise ValueError(f"input {name!r}: datatype {datatype} cannot be sent as binary data here")
    dtype = np.dtype(NUMPY_DTYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise ValueError(
            f"input {name!r}: binary_data_size is {len(raw)} bytes but {count} {datatype} elements take "
            f"{count * dtype.itemsize}"
        )
    values = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL":
        if values.size and int(values.max()) > 1:
            bad = int(np.argmax(values > 1))
            raise ValueError(f"input {name!r}: BOOL element {bad} is the byte {int(values[bad])}, not 0 or 1")
        return values.astype(bool)
    return values


def _strings(name: str, count: int, raw: memoryview) -> list[str]:
    out: list[str] = []
    data = bytes(raw)
    pos, end = 0, len(data)
    while pos < end:
        if len(out) == count:
            raise ValueError(f"input {name!r}: the binary data holds more than the shape's {count} BYTES elements")
        if pos + 4 > end:
            raise ValueError(f"input {name!r}: BYTES element {len(out)} has a truncated length prefix")
        (size,) = _LENGTH.unpack_from(data, pos)
        pos += 4
        if pos + size > end:
            raise ValueError(f"input {name!r}: BYTES element {len(out)} says {size} bytes but fewer remain")
        try:
            out.append(data[pos : pos + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"input {name!r}: BYTES element {len(out)} is not UTF-8 text") from None
        pos += size
    if len(out) != count:
        raise ValueError(f"input {name!r}: the binary data holds {len(out)} BYTES elements but the shape needs {count}")
    return out


def encode(datatype: str, values: npt.NDArray[Any] | Sequence[Any]) -> bytes:
    """The binary data of one output tensor (row-major)."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for v in values:
            b = str(v).encode("utf-8")
            parts.append(_LENGTH.pack(len(b)))
            parts.append(b)
        return b"".join(parts)
    array = np.asarray(values)
    if datatype == "BOOL":
        return array.astype(np.uint8).tobytes()
    return np.ascontiguousarray(array, dtype=np.dtype(NUMPY_DTYPES[datatype])).tobytes()
