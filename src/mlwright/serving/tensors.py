"""Open Inference Protocol v2 tensors over REST: JSON tensors and Triton's binary extension.

>>> decode_inputs({"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]}]})
{'x': array([1., 2.])}

A request's ``inputs`` become one numpy array per input; a ``[n, 1]`` tensor is one value per
row like ``[n]``. With the binary extension (what ``tritonclient.http`` sends by default) the
body is the JSON header (``Inference-Header-Content-Length`` bytes) followed by each input's
raw little-endian bytes, in order; BYTES elements are 4-byte-length-prefixed.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from mlwright.errors import RequestValidationError

NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
         "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
         "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}


def _bad(field: str, problem: str) -> RequestValidationError:
    return RequestValidationError(f"Bad tensor '{field}': {problem}.",
                                  [{"field": field, "problem": problem}])


def _shape(tensor: dict[str, Any], name: str) -> list[int]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise _bad(name, "'shape' must be a list of non-negative integers")
    return shape


def decode_bytes_elements(raw: bytes, name: str) -> list[str]:
    """Triton's BYTES serialization: each element a 4-byte little-endian length, then bytes."""
    out: list[str] = []
    position = 0
    while position < len(raw):
        if position + 4 > len(raw):
            raise _bad(name, "truncated BYTES element length")
        (length,) = struct.unpack_from("<I", raw, position)
        position += 4
        if position + length > len(raw):
            raise _bad(name, "truncated BYTES element")
        try:
            out.append(raw[position:position + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise _bad(name, "BYTES element is not UTF-8 text") from None
        position += length
    return out


def encode_bytes_elements(values: list[Any]) -> bytes:
    parts: list[bytes] = []
    for value in values:
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def decode_inputs(header: Any, binary: bytes = b"") -> dict[str, Any]:
    """The request's input tensors by name (checked for shape and datatype)."""
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise RequestValidationError("An inference request needs 'inputs': a list of tensors.",
                                     [{"field": "inputs", "problem": "expected a list"}])
    columns: dict[str, Any] = {}
    offset = 0
    for i, tensor in enumerate(header["inputs"]):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise _bad(f"inputs[{i}]", "each tensor needs a 'name'")
        name = tensor["name"]
        if name in columns:
            raise _bad(name, "given twice")
        shape = _shape(tensor, name)
        datatype = tensor.get("datatype")
        if datatype != "BYTES" and datatype not in NUMPY:
            raise _bad(name, f"unknown datatype {datatype!r}")
        count = int(np.prod(shape)) if shape else 1
        parameters = tensor.get("parameters") or {}
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise _bad(name, "binary_data_size runs past the end of the body")
            raw = binary[offset:offset + size]
            offset += size
            if datatype == "BYTES":
                values: Any = np.asarray(decode_bytes_elements(raw, name), dtype=object)
            else:
                dtype = np.dtype(NUMPY[datatype]).newbyteorder("<")
                if size % dtype.itemsize:
                    raise _bad(name, f"{size} bytes is not a whole number of {datatype}")
                values = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
        else:
            data = tensor.get("data")
            if not isinstance(data, list):
                raise _bad(name, "'data' must be a list")
            try:
                if datatype == "BYTES":
                    values = np.asarray(_flatten(data), dtype=object)
                else:
                    values = np.asarray(data)
                    if values.dtype.kind not in "biuf":
                        raise _bad(name, f"data is not {datatype}")
                    if datatype == "BOOL" and values.dtype.kind != "b":
                        raise _bad(name, "data is not BOOL")
                    values = values.ravel()
            except (ValueError, TypeError):
                raise _bad(name, "'data' is ragged or holds mixed types") from None
        if len(values) != count:
            raise _bad(name, f"shape {shape} needs {count} values, got {len(values)}")
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise _bad(name, f"shape {shape} is not one value per row ([n] or [n, 1])")
        columns[name] = values
    return columns


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in data:
        if isinstance(item, list):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def encode_output(name: str, array: np.ndarray, datatype: str) -> dict[str, Any]:
    """A JSON output tensor."""
    data = array.ravel().tolist() if array.dtype.kind != "O" else [str(v) for v in array.ravel()]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
