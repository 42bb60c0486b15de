"""V2 binary tensor extension: every datatype, zero-copy decoding, BYTES prefixes, bad framing."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from adapters_support import assert_valid

from exporter.adapters import v2
from exporter.adapters.base import Message, PayloadError

NUMERIC = {
    "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
    "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}


def binary_message(tensors: list[tuple[dict[str, Any], bytes | None]], key: str = "inputs", extra: bytes = b"",
                   **doc: Any) -> Message:
    """A binary-extension body: JSON header, then each binary tensor's bytes in order."""
    specs, blobs = [], []
    for spec, blob in tensors:
        if blob is not None:
            spec = {**spec, "parameters": {"binary_data_size": len(blob)}}
            blobs.append(blob)
        specs.append(spec)
    header = json.dumps({**doc, key: specs}).encode()
    return Message(path="/v2/models/m/infer", route="/v2/models/{model}/infer",
                   headers={"inference-header-content-length": str(len(header))},
                   body=header + b"".join(blobs) + extra)


def le_bytes(values: np.ndarray) -> bytes:
    return values.astype(values.dtype.newbyteorder("<")).tobytes()


def bytes_tensor(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@pytest.mark.parametrize("datatype", sorted(NUMERIC))
def test_every_numeric_datatype_decodes_zero_copy(datatype: str) -> None:
    dtype = NUMERIC[datatype]
    values = (np.arange(12).reshape(3, 4) * 3).astype(dtype)
    request = binary_message([({"name": "t", "shape": [3, 4], "datatype": datatype}, le_bytes(values))])
    rows = v2.adapter.parse_request(request)
    assert_valid(rows)
    assert rows.n == 3 and list(rows.columns) == [f"t[{j}]" for j in range(4)]
    assert rows.positional and set(rows.datatypes.values()) == {datatype}
    for j in range(4):
        column = rows.columns[f"t[{j}]"]
        assert isinstance(column, np.ndarray) and column.dtype == np.dtype(dtype).newbyteorder("<")
        assert column.tolist() == values[:, j].tolist()
        assert np.shares_memory(column, np.frombuffer(request.body, dtype=np.uint8))  # a view, not a copy


def test_bool_and_bytes_and_bf16() -> None:
    flags = np.array([True, False, True])
    words = [b"alpha", b"", "naïve".encode()]
    floats = np.array([1.5, -2.0, 0.15625], dtype=np.float32)  # exactly representable in bfloat16
    bf16 = (floats.view(np.uint32) >> 16).astype("<u2").tobytes()
    request = binary_message([
        ({"name": "flag", "shape": [3], "datatype": "BOOL"}, flags.astype(np.uint8).tobytes()),
        ({"name": "word", "shape": [3, 1], "datatype": "BYTES"}, bytes_tensor(words)),
        ({"name": "bf", "shape": [3], "datatype": "BF16"}, bf16),
    ])
    rows = v2.adapter.parse_request(request)
    assert_valid(rows)
    assert list(rows.columns) == ["flag", "word", "bf"]
    assert rows.columns["flag"].tolist() == [True, False, True]
    assert list(rows.columns["word"]) == words
    assert rows.columns["bf"].tolist() == floats.tolist()
    assert rows.datatypes == {"flag": "BOOL", "word": "BYTES", "bf": "BF16"}


def test_json_and_binary_inputs_mix_in_input_order() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    c = np.array([7, 8], dtype=np.int64)
    request = binary_message([
        ({"name": "a", "shape": [2, 2], "datatype": "FP32"}, le_bytes(a)),
        ({"name": "b", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]}, None),
        ({"name": "c", "shape": [2], "datatype": "INT64"}, le_bytes(c)),
    ], id="req-1")
    rows = v2.adapter.parse_request(request)
    assert {k: list(v) for k, v in rows.columns.items()} == {"a[0]": [1.0, 3.0], "a[1]": [2.0, 4.0], "b": ["x", "y"], "c": [7, 8]}
    assert rows.ids == ["req-1:0", "req-1:1"] and not rows.positional


def test_binary_response_outputs() -> None:
    proba = np.array([[0.1, 0.9], [0.7, 0.3]], dtype=np.float32)
    request = Message(path="/v2/models/m/versions/2/infer", route="", headers={"x-request-id": "h"}, body=b"{}")
    response = binary_message([({"name": "proba", "shape": [2, 2], "datatype": "FP32"}, le_bytes(proba))],
                              key="outputs", model_name="m", model_version="2")
    rows = v2.adapter.parse_response(request, response)
    assert rows.model == "m" and rows.version == "2" and rows.ids == ["h:0", "h:1"]
    assert rows.columns["proba[1]"].tolist() == proba[:, 1].tolist()


@pytest.mark.parametrize(("tensors", "header", "reason"), [
    # fewer bytes than announced
    ([({"name": "t", "shape": [2], "datatype": "FP32"}, b"\0" * 8)], "cut", "invalid_binary"),
    # announced size disagrees with shape × item size
    ([({"name": "t", "shape": [3], "datatype": "FP32"}, b"\0" * 8)], None, "invalid_binary"),
    # BYTES prefix runs past the tensor
    ([({"name": "t", "shape": [1], "datatype": "BYTES"}, struct.pack("<I", 9) + b"abc")], None, "invalid_binary"),
    # BYTES count disagrees with shape
    ([({"name": "t", "shape": [2], "datatype": "BYTES"}, bytes_tensor([b"a"]))], None, "invalid_binary"),
    # header length beyond the body
    ([({"name": "t", "shape": [1], "datatype": "INT8"}, b"\1")], "99999", "invalid_binary"),
    # header not a number
    ([({"name": "t", "shape": [1], "datatype": "INT8"}, b"\1")], "-3", "invalid_binary"),
    # header too short: the JSON is cut
    ([({"name": "t", "shape": [1], "datatype": "INT8"}, b"\1")], "10", "invalid_json"),
])
def test_bad_binary_framing(tensors: list[tuple[dict[str, Any], bytes]], header: str | None, reason: str) -> None:
    request = binary_message(tensors)
    if header == "cut":
        request = Message(request.path, request.route, request.headers, request.body[:-4])
    elif header is not None:
        request = Message(request.path, request.route, {"inference-header-content-length": header}, request.body)
    with pytest.raises(PayloadError) as caught:
        v2.adapter.parse_request(request)
    assert caught.value.reason == reason


def test_wrong_binary_size_for_shape_is_reported_even_if_bytes_follow() -> None:
    spec = {"name": "t", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 8}}
    header = json.dumps({"inputs": [spec]}).encode()
    request = Message("/v2/models/m/infer", "", {"inference-header-content-length": str(len(header))}, header + b"\0" * 16)
    with pytest.raises(PayloadError, match="invalid_binary"):
        v2.adapter.parse_request(request)
