"""Custom adapter: the JSON path subset, config-time errors, rows and ids from paths."""

from __future__ import annotations

import json
from typing import Any

import pytest
from adapters_support import assert_valid

from exporter.adapters import detect
from exporter.adapters.base import Message, PayloadError
from exporter.adapters.custom import CustomAdapter, JsonPath

DOC = {"req": {"id": "r-1", "rows": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]},
       "items": [{"features": {"a": 3}, "key": "k1"}, {"features": {"a": 4}, "key": "k2"}],
       "out": {"scores": [0.1, 0.2]}, "odd.key": [5]}


def msg(doc: Any) -> Message:
    return Message("/score", "other", {}, json.dumps(doc).encode())


@pytest.mark.parametrize(("path", "found"), [
    ("$", [DOC]),
    ("$.req.id", ["r-1"]),
    ("$.req.rows[0].b", ["x"]),
    ("$.req.rows[-1].a", [2]),
    ("$.req.rows[*].a", [1, 2]),
    ("$.items[*].features", [{"a": 3}, {"a": 4}]),
    ("$['odd.key'][0]", [5]),
    ('$["out"].scores', [[0.1, 0.2]]),
    ("$.missing.a", []),
    ("$.req.rows[7]", []),
    ("$.req[*]", []),  # [*] only expands lists
])
def test_path_finds(path: str, found: list[Any]) -> None:
    assert JsonPath.compile(path).find(DOC) == found


@pytest.mark.parametrize("path", ["a.b", "$.", "$..a", "$.a[", "$.a[x]", "$.a[?(@.b)]", "$[1:2]", "$.a b", ""])
def test_invalid_paths_fail_at_config_time(path: str) -> None:
    with pytest.raises(ValueError, match="JSON path"):
        CustomAdapter(features=path)
    with pytest.raises(ValueError, match="JSON path"):
        CustomAdapter(features="$.x", predictions=path)
    with pytest.raises(ValueError, match="JSON path"):
        CustomAdapter(features="$.x", id_path=path)


def test_list_of_row_objects_with_a_single_id() -> None:
    adapter = CustomAdapter(features="$.req.rows", predictions="$.out.scores", id_path="$.req.id")
    rows = adapter.parse_request(msg(DOC))
    assert_valid(rows)
    assert rows.columns == {"a": [1, 2], "b": ["x", "y"]} and rows.ids == ["r-1:0", "r-1:1"]
    response = adapter.parse_response(msg(DOC), msg({"out": {"scores": [0.9, 0.8]}}))
    assert response.columns == {"x0": [0.9, 0.8]} and response.positional and response.ids is None


def test_wildcard_rows_with_one_id_each() -> None:
    adapter = CustomAdapter(features="$.items[*].features", id_path="$.items[*].key")
    rows = adapter.parse_request(msg(DOC))
    assert rows.columns == {"a": [3, 4]} and rows.ids == ["k1", "k2"]
    assert detect(msg(DOC)) is None  # never auto-detected: only model.protocol: custom picks it


def test_single_object_is_one_row_and_header_id_is_the_fallback() -> None:
    adapter = CustomAdapter(features="$.req.rows[1]", id_path="$.nope")
    rows = adapter.parse_request(Message("/", "", {"x-request-id": "h"}, json.dumps(DOC).encode()))
    assert rows.columns == {"a": [2], "b": ["y"]} and rows.n == 1 and rows.ids == ["h"]


def test_no_predictions_path_gives_no_prediction_rows() -> None:
    rows = CustomAdapter(features="$.req.rows").parse_response(msg(DOC), msg({"anything": 1}))
    assert rows.n == 0 and rows.columns == {}


def test_path_matching_nothing_is_a_counted_error() -> None:
    with pytest.raises(PayloadError) as caught:
        CustomAdapter(features="$.absent").parse_request(msg(DOC))
    assert caught.value.reason == "unsupported_shape"
