"""Protocol detection: route first, then body shape; the registry of built-in adapters."""

from __future__ import annotations

import json

import pytest

from exporter.adapters import ADAPTERS, BY_NAME, detect
from exporter.adapters.base import Message


def msg(path: str, body: object = None) -> Message:
    return Message(path, path, {}, json.dumps(body).encode() if body is not None else b"")


def test_registry() -> None:
    assert [a.name for a in ADAPTERS] == ["v2", "seldon", "mlflow", "ollama", "tgi", "openai", "v1"]
    assert set(BY_NAME) == {"v2", "v1", "mlflow", "seldon", "openai", "tgi", "ollama"}


@pytest.mark.parametrize(("path", "name"), [
    ("/v2/models/m/infer", "v2"), ("/v2/models/m/versions/1/infer", "v2"), ("/prefix/v2/models/m/infer", "v2"),
    ("/v1/models/m:predict", "v1"), ("/v1/models/m/versions/3:predict", "v1"),
    ("/invocations", "mlflow"),
    ("/api/v1.0/predictions", "seldon"), ("/api/v0.1/predictions", "seldon"),
    ("/v1/chat/completions", "openai"), ("/v1/completions", "openai"),
])
def test_route_wins_over_body(path: str, name: str) -> None:
    # a body of another protocol does not override the route
    assert detect(msg(path, {"instances": [[1]]})) is BY_NAME[name]


@pytest.mark.parametrize(("body", "name"), [
    ({"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}]}, "v2"),
    ({"data": {"ndarray": [[1]]}}, "seldon"),
    ({"jsonData": {"a": 1}}, "seldon"),
    ({"dataframe_split": {"columns": ["a"], "data": [[1]]}}, "mlflow"),
    ({"dataframe_records": [{"a": 1}]}, "mlflow"),
    ({"model": "llama", "messages": []}, "openai"),
    ({"model": "llama", "prompt": "hi"}, "openai"),
    ({"instances": [[1]]}, "v1"),
    ({"inputs": {"a": [1]}}, "v1"),
])
def test_body_shape(body: object, name: str) -> None:
    assert detect(msg("/predict", body)) is BY_NAME[name]


@pytest.mark.parametrize("body", [None, {"hello": "world"}, [1, 2], "text", {"inputs": 3}])
def test_unknown(body: object) -> None:
    assert detect(msg("/predict", body)) is None
    assert detect(Message("/predict", "/predict", {}, b"\xff\x00garbage")) is None
