"""V2 JSON tensors: the numpy fast path, the Python fallback, and column naming rules."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from adapters_support import assert_valid

from exporter.adapters import v2
from exporter.adapters.base import Message, PayloadError


def parse(inputs: list[dict[str, Any]], **doc: Any) -> Any:
    body = json.dumps({**doc, "inputs": inputs}).encode()
    rows = v2.adapter.parse_request(Message("/v2/models/m/infer", "", {}, body))
    assert_valid(rows)
    return rows


def test_clean_numeric_data_becomes_numpy_columns() -> None:
    rows = parse([{"name": "x", "shape": [32, 20], "datatype": "FP32", "data": [[float(i * 20 + j) for j in range(20)] for i in range(32)]}])
    assert rows.n == 32 and len(rows.columns) == 20
    assert all(isinstance(c, np.ndarray) and c.dtype == np.float64 for c in rows.columns.values())
    assert rows.columns["x[3]"].tolist() == [float(i * 20 + 3) for i in range(32)]


def test_ints_in_a_float_tensor_are_floats_and_bools_stay_bools() -> None:
    rows = parse([{"name": "f", "shape": [8], "datatype": "FP32", "data": [1, 2] * 4},
                  {"name": "b", "shape": [8], "datatype": "BOOL", "data": [True, False] * 4},
                  {"name": "i", "shape": [8], "datatype": "INT64", "data": [1, 2] * 4}])
    assert rows.columns["f"].dtype.kind == "f" and rows.columns["b"].dtype == np.bool_
    assert rows.columns["i"].dtype.kind == "i"


def test_small_tensors_keep_json_values_in_lists() -> None:
    rows = parse([{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2.5, 3], [4, 5, 6]]}])
    assert rows.columns["x[1]"] == [2.5, 5] and all(isinstance(c, list) for c in rows.columns.values())
    rows = parse([{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, "2", None]}])
    assert rows.columns == {"x[0]": [1], "x[1]": ["2"], "x[2]": [None]}


@pytest.mark.parametrize("data", [
    [1.5, "2.5"] * 4,        # a numeric string is a type error for quality checks, not a number
    [1.5, None] * 4,
    [1.5, {"v": 1}] * 4,
    [[1.5]] * 7 + [[2.5, 3.5]],  # ragged
])
def test_dirty_data_in_a_batch_keeps_python_values(data: list[Any]) -> None:
    flat_len = 9 if isinstance(data[0], list) else 8
    rows = parse([{"name": "f", "shape": [flat_len], "datatype": "FP32", "data": data}])
    column = rows.columns["f"]
    assert isinstance(column, list) and column == [v for d in data for v in (d if isinstance(d, list) else [d])]


def test_integer_tensor_with_floats_keeps_python_values() -> None:
    rows = parse([{"name": "i", "shape": [8], "datatype": "INT32", "data": [1, 2.5] * 4}])
    assert rows.columns["i"] == [1, 2.5] * 4


def test_naming_rules() -> None:
    single = parse([{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [[1.0]]}])
    assert list(single.columns) == ["x[0]"] and single.positional  # tabular single input
    vector = parse([{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}])
    assert list(vector.columns) == ["x"] and not vector.positional
    multi = parse([{"name": "a", "shape": [1, 1], "datatype": "FP32", "data": [1.0]},
                   {"name": "b", "shape": [1, 2, 2], "datatype": "INT8", "data": [[[1, 2], [3, 4]]]}])
    assert list(multi.columns) == ["a", "b[0]", "b[1]", "b[2]", "b[3]"] and not multi.positional
    assert list(multi.columns["b[2]"]) == [3]


def test_ids_prefer_payload_then_header() -> None:
    body = json.dumps({"id": "p", "inputs": [{"name": "a", "shape": [2], "datatype": "INT8", "data": [1, 2]}]}).encode()
    rows = v2.adapter.parse_request(Message("/v2/models/m/infer", "", {"x-request-id": "h"}, body))
    assert rows.ids == ["p:0", "p:1"]
    body = json.dumps({"inputs": [{"name": "a", "shape": [1], "datatype": "INT8", "data": [1]}]}).encode()
    assert v2.adapter.parse_request(Message("/v2/models/m/infer", "", {"x-request-id": "h"}, body)).ids == ["h"]
    assert v2.adapter.parse_request(Message("/v2/models/m/infer", "", {}, body)).ids is None


@pytest.mark.parametrize(("inputs", "reason"), [
    ([{"name": "a", "shape": [-1], "datatype": "FP32", "data": []}], "unsupported_shape"),
    ([{"name": "a", "shape": "2", "datatype": "FP32", "data": [1, 2]}], "unsupported_shape"),
    ([{"name": 3, "shape": [1], "datatype": "FP32", "data": [1]}], "unsupported_shape"),
    ([{"name": "a", "shape": [1], "datatype": "FP32"}], "unsupported_shape"),
    ([{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}] * 2, "unsupported_shape"),
    ([{"name": "a", "shape": [1], "datatype": "FP32", "data": [1], "parameters": {"binary_data_size": "4"}}], "invalid_binary"),
    ("nope", "unsupported_shape"),
    ([{"name": "a", "shape": [10**9, 0], "datatype": "FP32", "data": []}], "unsupported_shape"),  # rows from nothing
    ([{"name": "a", "shape": [0, 10**9], "datatype": "FP32", "data": []}], "unsupported_shape"),  # names from nothing
])
def test_bad_tensors(inputs: Any, reason: str) -> None:
    body = json.dumps({"inputs": inputs}).encode()
    with pytest.raises(PayloadError) as caught:
        v2.adapter.parse_request(Message("/v2/models/m/infer", "", {}, body))
    assert caught.value.reason == reason
