"""Decode Open Inference Protocol tensors (JSON `data` or binary extension bytes) into columns."""

from __future__ import annotations

from typing import Any

import numpy as np

from exporter.adapters.base import PayloadError

# Little-endian numpy dtype per V2 datatype; BOOL, BF16 and BYTES are decoded specially.
NUMPY_DTYPES: dict[str, str] = {
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
ITEM_SIZES: dict[str, int] = {**{k: int(v[2]) for k, v in NUMPY_DTYPES.items()}, "BOOL": 1, "BF16": 2}
DATATYPES = frozenset(ITEM_SIZES) | {"BYTES"}

# numpy kinds a JSON `data` array may parse to for the fast path; anything else (None,
# strings in a numeric tensor, ragged lists) keeps the Python values for quality checks.
_JSON_KINDS: dict[str, str] = {
    **{k: "iu" for k in NUMPY_DTYPES if k[0] in "UI"},
    "FP16": "fiu",
    "FP32": "fiu",
    "FP64": "fiu",
    "BF16": "fiu",
    "BOOL": "b",
}
_MAX_EMPTY_WIDTH = 1024
# Below this many rows, numpy's per-array overhead costs more than it saves downstream:
# small tensors keep the JSON values in lists.
NUMPY_MIN_ROWS = 8
_PARSE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


def shape_of(tensor: dict[str, Any]) -> tuple[int, int, int]:
    """(rows, values per row, rank) of a tensor: the first dimension is the batch."""
    shape = tensor.get("shape")
    if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
        raise PayloadError("unsupported_shape", f"tensor shape must be a list of non-negative ints: {shape!r:.80}")
    if not shape:
        return 1, 1, 0  # a scalar tensor is one row of one value
    width = 1
    for d in shape[1:]:
        width *= d
    # an empty tensor carries no values, so nothing else bounds the rows or names it would make
    if width == 0 and shape[0] > 0 or shape[0] == 0 and width > _MAX_EMPTY_WIDTH:
        raise PayloadError("unsupported_shape", f"empty tensor of shape {shape!r:.80}")
    return shape[0], width, len(shape)


def _flatten(data: Any) -> list[Any]:
    """Row-major values of nested lists, iteratively (JSON can nest deeper than the stack)."""
    if type(data) is not list:
        return [data]
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def from_json(data: Any, datatype: str, rows: int, width: int) -> np.ndarray | list[Any]:
    """Flat values of JSON tensor data: numpy for clean batches, else the Python values as sent."""
    total = rows * width
    kinds = _JSON_KINDS.get(datatype)
    if kinds is not None and rows >= NUMPY_MIN_ROWS and type(data) is list:
        try:
            # no dtype: a dtype would coerce "1.5" and None; only a bool among floats still
            # is (true → 1.0), which V2 servers reject anyway
            arr = np.asarray(data)
        except _PARSE_ERRORS:
            arr = None
        if arr is not None and arr.dtype.kind in kinds and arr.size == total:
            if kinds == "fiu" and arr.dtype.kind != "f":
                arr = arr.astype(np.float64)  # ints sent for a float tensor are still floats
            return arr.reshape(total)
    if type(data) is list and len(data) == total and (not data or type(data[0]) is not list):
        return data  # already flat: the common case, no per-value work
    flat = _flatten(data)
    if len(flat) != total:
        raise PayloadError("inconsistent_rows", f"tensor shape holds {total} values, data has {len(flat)}")
    return flat


def from_binary(chunk: memoryview, datatype: str, total: int) -> np.ndarray | list[Any]:
    """Flat values of a binary-extension tensor: zero-copy numpy views for fixed-size types."""
    if datatype == "BYTES":
        return _bytes_elements(chunk, total)
    expected = total * ITEM_SIZES[datatype]
    if len(chunk) != expected:
        raise PayloadError(
            "invalid_binary", f"{datatype} tensor of {total} values needs {expected} bytes, got {len(chunk)}"
        )
    if total == 0:
        return np.empty(0, dtype=np.float32 if datatype == "BF16" else NUMPY_DTYPES.get(datatype, "?"))
    if datatype == "BOOL":
        flags: np.ndarray = np.frombuffer(chunk, dtype=np.uint8) != 0  # any non-zero byte is true
        return flags
    if datatype == "BF16":
        # bfloat16 is the high half of a float32: widen, shift, reinterpret
        wide = np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16
        return wide.view(np.float32)
    return np.frombuffer(chunk, dtype=NUMPY_DTYPES[datatype])


def _bytes_elements(chunk: memoryview, total: int) -> list[Any]:
    """BYTES elements: each a 4-byte little-endian length followed by that many bytes."""
    out: list[Any] = []
    pos, end = 0, len(chunk)
    while pos < end:
        if pos + 4 > end:
            raise PayloadError("invalid_binary", "BYTES element length prefix cut short")
        length = int.from_bytes(chunk[pos : pos + 4], "little")
        pos += 4
        if pos + length > end:
            raise PayloadError("invalid_binary", "BYTES element longer than its tensor data")
        out.append(bytes(chunk[pos : pos + length]))
        pos += length
    if len(out) != total:
        raise PayloadError("invalid_binary", f"BYTES tensor holds {len(out)} elements, shape says {total}")
    return out


def split_columns(flat: np.ndarray | list[Any], rows: int, width: int) -> list[Any]:
    """The `width` columns of a row-major flat tensor of `rows` rows (numpy views where possible)."""
    if width == 1:
        return [flat]
    if isinstance(flat, np.ndarray):
        table = flat.reshape(rows, width)
        return [table[:, j] for j in range(width)]
    if rows == 1:
        return [[v] for v in flat]  # the single-row request: twice as fast as slicing
    return [flat[j::width] for j in range(width)]
